"""Add user.spam_mark_as_read.

Stand-in revision (tests/standins/README.md) with the ID of Mailu's own
migration 8f9ea78776f4. IF NOT EXISTS: on a fresh 2.x install the columns
already come with the release's DDL (revision 3b7eee912b41).
"""

from alembic import op

revision = '8f9ea78776f4'
down_revision = '3b7eee912b41'
branch_labels = None
depends_on = None


def upgrade():
    op.execute('ALTER TABLE "user" ADD COLUMN IF NOT EXISTS spam_mark_as_read boolean NOT NULL DEFAULT false')


def downgrade():
    raise NotImplementedError('no downgrades in the stand-in')
