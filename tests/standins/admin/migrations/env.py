"""Alembic environment of the Mailu admin TEST STAND-IN (tests/standins/README.md).

Behaves like Mailu's core/admin/migrations/env.py (1.9.50 and 2024.06.57 are
the same there): the database URI from the admin's settings is handed to
Alembic's config with set_main_option, an engine is made from that config
section, and the first connection is retried (100 attempts, a random 2 to 5 s
apart) before the migrations run in one transaction.
"""

import logging
import sys
from logging.config import fileConfig

import tenacity
from alembic import context
from sqlalchemy import engine_from_config, pool

sys.path.insert(0, '/standin')
import admin  # noqa: E402  pylint: disable=wrong-import-position

config = context.config
fileConfig(config.config_file_name)
logger = logging.getLogger('standin.migrations')

# A '%' in the URI raises here (ConfigParser interpolation), as in Mailu.
config.set_main_option('sqlalchemy.url', admin.database_uri())


def run_migrations_online():
    engine = engine_from_config(config.get_section(config.config_ini_section),
                                prefix='sqlalchemy.', poolclass=pool.NullPool)

    @tenacity.retry(stop=tenacity.stop_after_attempt(100),
                    wait=tenacity.wait_random(min=2, max=5),
                    before_sleep=tenacity.before_sleep_log(logger, logging.INFO))
    def connect():
        return engine.connect()

    with connect() as connection:
        context.configure(connection=connection, target_metadata=None)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit('the stand-in has no offline mode')
run_migrations_online()
