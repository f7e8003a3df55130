"""Add user.change_pw_next_login (the 2024.06 head).

Stand-in revision (tests/standins/README.md) with the ID of Mailu's own
migration 0ba45693748d. IF NOT EXISTS: on a fresh 2.x install the columns
already come with the release's DDL (revision 3b7eee912b41).
"""

from alembic import op

revision = '0ba45693748d'
down_revision = '6b8f5e8caaa9'
branch_labels = None
depends_on = None


def upgrade():
    op.execute('ALTER TABLE "user" ADD COLUMN IF NOT EXISTS change_pw_next_login boolean NOT NULL DEFAULT false')


def downgrade():
    raise NotImplementedError('no downgrades in the stand-in')
