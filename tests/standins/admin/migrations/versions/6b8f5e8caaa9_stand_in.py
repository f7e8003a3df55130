"""Enlarge token.ip (no effect on PostgreSQL).

Stand-in revision (tests/standins/README.md) with the ID of Mailu's own
migration 6b8f5e8caaa9. Nothing to do on PostgreSQL.
"""

revision = '6b8f5e8caaa9'
down_revision = '7ac252f2bbbf'
branch_labels = None
depends_on = None


def upgrade():
    pass  # Mailu widens token.ip in the model only: no change on PostgreSQL


def downgrade():
    raise NotImplementedError('no downgrades in the stand-in')
