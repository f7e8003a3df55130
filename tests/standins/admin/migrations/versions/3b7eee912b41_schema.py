"""The Mailu schema of this image's release line, from the project's DDL.

Stand-in revision (tests/standins/README.md). Mailu reaches its 1.9 head,
3b7eee912b41, through 25 migrations; the stand-in creates the whole schema of
its release line at once from /standin/schema.sql (tests/sql/mailu-<line>.sql,
copied by scripts/build-images.sh), without the alembic_version table, which
Alembic itself creates and fills. The later revisions of a 2.x image then
find their columns present and add nothing.
"""

import re

from alembic import op

revision = '3b7eee912b41'
down_revision = None
branch_labels = None
depends_on = None

SCHEMA_FILE = '/standin/schema.sql'


def upgrade():
    bind = op.get_bind()
    if bind.dialect.name != 'postgresql':
        raise NotImplementedError('the Mailu admin stand-in only has the PostgreSQL schema, not %s'
                                  % bind.dialect.name)
    with open(SCHEMA_FILE, encoding='utf-8') as handle:
        ddl = handle.read()
    ddl = re.sub(r'CREATE TABLE alembic_version \(.*?\);', '', ddl, flags=re.S)
    ddl = re.sub(r'INSERT INTO alembic_version [^;]*;', '', ddl)
    bind.exec_driver_sql(ddl)


def downgrade():
    raise NotImplementedError('no downgrades in the stand-in')
