"""Add user.allow_spoofing (the 2.0 head).

Stand-in revision (tests/standins/README.md) with the ID of Mailu's own
migration 7ac252f2bbbf. IF NOT EXISTS: on a fresh 2.x install the columns
already come with the release's DDL (revision 3b7eee912b41).
"""

from alembic import op

revision = '7ac252f2bbbf'
down_revision = 'f4f0f89e0047'
branch_labels = None
depends_on = None


def upgrade():
    op.execute('ALTER TABLE "user" ADD COLUMN IF NOT EXISTS allow_spoofing boolean NOT NULL DEFAULT false')


def downgrade():
    raise NotImplementedError('no downgrades in the stand-in')
