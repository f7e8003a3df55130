"""Stand-in for Mailu's admin container, for tests without a container registry.

What it keeps of the real admin, per release line (tests/standins/README.md has
the table of what is imitated from which file of Mailu, and what is not):

* the database settings, read from the environment the way Mailu's admin reads
  them (``database_uri``);
* the start order of Mailu's start script: 2.x hands /dkim and /data (but not
  /data/fetchmail) to uid 1000 and runs as that user; then ``flask db upgrade``
  runs as a separate command whose exit status is ignored; then the web server;
* ``flask db upgrade`` is real Alembic (migrations/env.py): the URI goes through
  Alembic's ConfigParser, so a ``%`` in it fails the upgrade before any
  connection; the connection is retried like Mailu's env.py does (100 attempts,
  2 to 5 s apart); the revisions carry Mailu's revision IDs;
* the port (80 in 1.9, 8080 in 2.x) and the pages: 2.x ``/ping`` answers 200
  without touching the database; the login page and the UI (``/sso/...``,
  ``/admin...``) read the ``domain`` table on every request, as Mailu's
  templates do, so they answer 500 while the schema is missing or the database
  cannot be reached.

Everything else (web UI, API, /internal endpoints for front, the rest of the
flask CLI, INITIAL_ADMIN_*, DKIM, the DNSSEC check of the resolver) is absent.

Commands: ``serve`` (the container's CMD), ``db-upgrade`` (what ``flask db
upgrade`` runs) and ``print-db-uri`` (prints the URI the settings resolve to).
"""

import argparse
import http.server
import os
import socket
import subprocess
import sys
import time

FAMILY = os.environ.get('MAILU_STANDIN_FAMILY', '2024.06')
PORT = 80 if FAMILY == '1.9' else 8080
MIGRATIONS = '/standin/migrations'
MAILU_UID = 1000

# Mailu's default settings for the database (core/admin/mailu/configuration.py).
DB_DEFAULTS = {
    'SQLALCHEMY_DATABASE_URI': 'sqlite:////data/main.db',
    'SQLITE_DATABASE_FILE': 'data/main.db',
    'DB_FLAVOR': None,
    'DB_USER': 'mailu',
    'DB_PW': None,
    'DB_HOST': 'database',
    'DB_NAME': 'mailu',
}
DB_TEMPLATES = {
    'sqlite': 'sqlite:////{SQLITE_DATABASE_FILE}',
    'postgresql': 'postgresql://{DB_USER}:{DB_PW}@{DB_HOST}/{DB_NAME}',
    # 1.9 writes plain mysql://, 2.x names the driver.
    'mysql': ('mysql://{DB_USER}:{DB_PW}@{DB_HOST}/{DB_NAME}' if FAMILY == '1.9' else
              'mysql+mysqlconnector://{DB_USER}:{DB_PW}@{DB_HOST}/{DB_NAME}'),
}


def log(message):
    sys.stderr.write('%s admin[stand-in %s]: %s\n' % (time.strftime('%Y-%m-%dT%H:%M:%S'), FAMILY, message))
    sys.stderr.flush()


def _setting(key, default):
    key_file = key + '_FILE'
    if key_file in os.environ:
        with open(os.environ[key_file], encoding='utf-8') as handle:
            return handle.read().strip()
    return os.environ.get(key, default)


def _coerce(value):
    if isinstance(value, str) and value.lower() in ('true', 'yes'):
        return True
    if isinstance(value, str) and value.lower() in ('false', 'no'):
        return False
    return value


def database_uri():
    """The database URI the environment gives, with Mailu's admin precedence.

    X_FILE beats X; "true"/"yes"/"false"/"no" become booleans; a set DB_FLAVOR
    builds the URI from the DB_* parts without any escaping and overrides
    SQLALCHEMY_DATABASE_URI.
    """
    config = {key: _coerce(_setting(key, default)) for key, default in DB_DEFAULTS.items()}
    if config['DB_FLAVOR']:
        config['SQLALCHEMY_DATABASE_URI'] = DB_TEMPLATES[config['DB_FLAVOR']].format(**config)
    return config['SQLALCHEMY_DATABASE_URI']


# --------------------------------------------------------------- flask db upgrade

def db_upgrade():
    """What ``flask db upgrade`` does in Mailu's admin: Alembic's upgrade to head."""
    from alembic import command  # pylint: disable=import-outside-toplevel  # only in the image
    from alembic.config import Config  # pylint: disable=import-outside-toplevel
    config = Config(os.path.join(MIGRATIONS, 'alembic.ini'))
    config.set_main_option('script_location', MIGRATIONS)
    command.upgrade(config, 'head')
    return 0


# --------------------------------------------------------------- the web server

class Pages:
    """The pages, and the database engine they use (SQLAlchemy, like the app)."""

    def __init__(self, uri):
        self.uri = uri
        self.engine = None
        self.error = None

    def make_engine(self):
        import sqlalchemy  # pylint: disable=import-outside-toplevel  # only in the image
        from sqlalchemy.pool import NullPool  # pylint: disable=import-outside-toplevel
        self.engine = sqlalchemy.create_engine(self.uri, poolclass=NullPool)

    def read_domains(self):
        """What every rendered page of Mailu's admin does (inject_defaults): read ``domain``."""
        import sqlalchemy  # pylint: disable=import-outside-toplevel
        if self.engine is None:
            self.make_engine()  # 1.9 (Flask-SQLAlchemy 2.5): the engine is made at first use
        with self.engine.connect() as conn:
            return conn.execute(sqlalchemy.text('SELECT name FROM domain WHERE signup_enabled')).fetchall()


def make_handler(pages):
    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = 'gunicorn'  # what Mailu's admin answers with (it is not one)

        def do_GET(self):  # noqa: N802 (the name http.server dispatches to)
            path = self.path.split('?', 1)[0]
            if path == '/ping' and FAMILY != '1.9':
                self._answer(200, '')  # 2.x: never touches the database
                return
            if not (path.startswith('/sso/') or path == '/admin' or path.startswith('/admin/')):
                self._answer(404, 'Not Found (Mailu admin stand-in)\n')
                return
            try:
                pages.read_domains()
            except Exception as exc:  # pylint: disable=broad-exception-caught  # Flask answers 500 to any error
                log('ERROR: %s %s: %s' % (self.command, self.path, str(exc).strip().splitlines()[0]))
                self._answer(500, 'Internal Server Error\n')
                return
            self._answer(200, 'Mailu admin test stand-in: %s\n' % path)

        do_POST = do_GET  # noqa: N815

        def _answer(self, status, body):
            data = body.encode()
            self.send_response(status)
            self.send_header('Content-Type', 'text/html; charset=utf-8')
            self.send_header('Content-Length', str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format, *args):  # pylint: disable=redefined-builtin
            # Mailu 2.x leaves /ping out of its access log.
            if not self.path.startswith('/ping'):
                log('%s %s' % (self.address_string(), format % args))

    return Handler


class DualStackServer(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True


def drop_privileges():
    """2.x: hand /dkim, and /data except its fetchmail part, to the mailu user, then become it."""
    for top, skip in (('/dkim', None), ('/data', '/fetchmail')):
        for root, dirs, files in os.walk(top):
            for name in [root] + [os.path.join(root, entry) for entry in dirs + files]:
                if skip and skip in name:
                    continue
                os.lchown(name, MAILU_UID, MAILU_UID)
    os.setgroups([])
    os.setgid(MAILU_UID)
    os.setuid(MAILU_UID)
    os.environ['HOME'] = '/data'


def serve():
    if FAMILY != '1.9' and os.geteuid() == 0:
        drop_privileges()
    # Mailu's start script runs the upgrade as a command and ignores how it ends.
    status = subprocess.call(['flask', 'db', 'upgrade'])
    if status != 0:
        log('flask db upgrade failed (exit status %d); starting anyway, as Mailu does' % status)
    pages = Pages(database_uri())
    if FAMILY != '1.9':
        # 2.x (Flask-SQLAlchemy 3.1) makes the engine when the app is created:
        # a URI SQLAlchemy cannot use stops the app from starting at all.
        try:
            pages.make_engine()
        except Exception as exc:  # pylint: disable=broad-exception-caught
            log('ERROR: the app cannot start: %s' % exc)
            return 1
    if FAMILY != '1.9' and os.environ.get('SUBNET6'):
        server = DualStackServer(('::', PORT), make_handler(pages))
    else:
        server = http.server.ThreadingHTTPServer(('0.0.0.0', PORT), make_handler(pages))
        server.daemon_threads = True
    signal_stop(server)
    log('listening on %d' % PORT)
    server.serve_forever()
    return 0


def signal_stop(server):
    import signal  # pylint: disable=import-outside-toplevel
    import threading  # pylint: disable=import-outside-toplevel

    def stop(_signum, _frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def main(argv=None):
    parser = argparse.ArgumentParser(description='Mailu admin stand-in')
    parser.add_argument('action', choices=['serve', 'db-upgrade', 'print-db-uri'])
    args = parser.parse_args(argv)
    if args.action == 'serve':
        return serve()
    if args.action == 'db-upgrade':
        return db_upgrade()
    print(database_uri())
    return 0


if __name__ == '__main__':
    sys.exit(main())
