"""Add fetch.scan and fetch.folders.

Stand-in revision (tests/standins/README.md) with the ID of Mailu's own
migration f4f0f89e0047. IF NOT EXISTS: on a fresh 2.x install the columns
already come with the release's DDL (revision 3b7eee912b41).
"""

from alembic import op

revision = 'f4f0f89e0047'
down_revision = '8f9ea78776f4'
branch_labels = None
depends_on = None


def upgrade():
    op.execute('ALTER TABLE "fetch" ADD COLUMN IF NOT EXISTS scan boolean NOT NULL DEFAULT false')
    op.execute('ALTER TABLE "fetch" ADD COLUMN IF NOT EXISTS folders varchar(4096)')


def downgrade():
    raise NotImplementedError('no downgrades in the stand-in')
