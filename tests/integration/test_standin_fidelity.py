"""The test stand-ins hold Mailu's real contract, never kinder than the real images.

tests/standins/README.md has the fidelity table; this proves its admin and
health rows with real containers and a real PostgreSQL (a cluster of this
module's own, reached by the containers on their network's gateway, as
tests/standins/smoke.sh does):

* an admin given a URI with a percent-encoded password never creates the
  schema (Alembic's ConfigParser refuses the ``%``) and keeps running;
* the same password through PGPASSWORD, with a password-less URI, creates it
  up to the release's Alembic head (1.9 and 2024.06);
* a 2024.06 admin upgrades a 1.9 schema along Mailu's revisions; a 1.9 admin
  on a 2024.06 schema fails its upgrade (unknown revision) and serves anyway;
* 2024.06's ``/ping`` healthcheck passes without the schema and with the
  database unreachable; 1.9's (``/sso/login?next=ui.index``) fails in both
  cases, also when Docker itself runs it;
* ``docker inspect`` shows every stand-in's Healthcheck equal to the real
  Dockerfile's (the table below cites the files), and none at all for
  ``redis:alpine`` and 1.9's fetchmail.

Skipped only when no Docker engine answers outside CI; under CI it fails.
Takes about a minute once the images are built (scripts/build-images.sh, cached).
"""

import os
import pathlib
import subprocess
import time
import uuid

import psycopg
import pytest

from pgserver import PgServer

REPO = pathlib.Path(__file__).resolve().parents[2]
PREFIX = 'localhost/nantral-standin'
RELEASES = ('1.9', '2024.06')
HEADS = {'1.9': '3b7eee912b41', '2024.06': '0ba45693748d'}
# A password that needs percent-encoding in a URL ('/' becomes %2F).
DB_PASSWORD = 'db-Example/Pass-' + uuid.uuid4().hex[:8]
DB_PASSWORD_IN_URL = DB_PASSWORD.replace('/', '%2F')
S = 1_000_000_000  # Docker's durations are nanoseconds

# The HEALTHCHECK of every real image, from Mailu's Dockerfiles (tag 1.9.50 and
# 2024.06.57): the test (a shell-form CMD is stored as CMD-SHELL) and the start
# period; no Mailu image sets an interval, a timeout or retries, so Docker's
# defaults apply (stored as 0). None: the image has no HEALTHCHECK.
REAL_HEALTHCHECKS = {
    # 1.9.50
    ('admin', '1.9'): ('core/admin/Dockerfile',
                       ['CMD-SHELL', 'curl -f -L http://localhost/sso/login?next=ui.index || exit 1'], 0),
    ('dovecot', '1.9'): ('core/dovecot/Dockerfile',
                         ['CMD-SHELL', 'echo QUIT|nc localhost 110|grep "Dovecot ready."'], 350),
    ('nginx', '1.9'): ('core/nginx/Dockerfile', ['CMD-SHELL', 'curl -k -f -L http://localhost/health || exit 1'], 0),
    ('postfix', '1.9'): ('core/postfix/Dockerfile',
                         ['CMD-SHELL', 'echo QUIT|nc localhost 25|grep "220 .* ESMTP Postfix"'], 350),
    ('rspamd', '1.9'): ('core/rspamd/Dockerfile', ['CMD-SHELL', 'curl -f -L http://localhost:11334/ || exit 1'], 350),
    ('unbound', '1.9'): ('optional/unbound/Dockerfile', ['CMD-SHELL', 'dig @127.0.0.1 || exit 1'], 0),
    ('roundcube', '1.9'): ('webmails/roundcube/Dockerfile',
                           ['CMD-SHELL', "curl -f -L -H 'User-Agent: health' http://localhost/ || exit 1"], 0),
    ('fetchmail', '1.9'): ('optional/fetchmail/Dockerfile', None, None),
    # 2024.06.57
    ('admin', '2024.06'): ('core/admin/Dockerfile',
                           ['CMD-SHELL', 'curl -m3 -skfLo /dev/null http://localhost:8080/ping'], 0),
    ('dovecot', '2024.06'): ('core/dovecot/Dockerfile', ['CMD-SHELL', 'kill -0 `cat /run/dovecot/master.pid`'], 0),
    ('nginx', '2024.06'): ('core/nginx/Dockerfile',
                           ['CMD-SHELL', 'curl -m3 -skfLo /dev/null http://127.0.0.1:10204/health '
                                         '&& kill -0 `cat /run/dovecot/master.pid`'], 60),
    ('postfix', '2024.06'): ('core/postfix/Dockerfile', ['CMD-SHELL', '! /usr/libexec/postfix/master -t'], 30),
    ('rspamd', '2024.06'): ('core/rspamd/Dockerfile',
                            ['CMD-SHELL', 'curl -m3 -skfLo /dev/null http://localhost:11334/'], 350),
    ('fetchmail', '2024.06'): ('optional/fetchmail/Dockerfile',
                               ['CMD', '/bin/sh', '-c', 'ps ax | grep [/]fetchmail.py'], 350),
    ('unbound', '2024.06'): ('optional/unbound/Dockerfile', ['CMD-SHELL', 'dig @127.0.0.1 || exit 1'], 0),
    ('webmail', '2024.06'): ('webmails/Dockerfile', ['CMD-SHELL', 'curl -m3 -f -L http://localhost/ping || exit 1'], 0),
    # Docker Hub's redis:alpine (the same for both releases).
    ('redis', 'alpine'): ('redis:alpine (official image)', None, None),
}


@pytest.fixture(scope='module')
def images(docker_client):  # pylint: disable=unused-argument  # the engine must answer first
    # Cached: seconds when the images match their sources, a build otherwise.
    subprocess.run(['bash', str(REPO / 'scripts/build-images.sh')] + list(RELEASES), check=True,
                   stdout=subprocess.DEVNULL)


@pytest.fixture(scope='module')
def stand(docker_client, images):  # pylint: disable=unused-argument  # built before the stand
    """A network of our own, and a PostgreSQL its containers reach on the gateway."""
    name = 'nantral-test-fidelity-%s' % uuid.uuid4().hex[:8]
    network = docker_client.networks.create(name, driver='bridge')
    network.reload()
    gateway = network.attrs['IPAM']['Config'][0]['Gateway']
    subnet = network.attrs['IPAM']['Config'][0]['Subnet']
    server = PgServer().start()
    containers = []
    try:
        admin = server.conninfo()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET listen_addresses = '127.0.0.1,%s'" % gateway)
            hba = conn.execute('SHOW hba_file').fetchone()[0]
            conn.execute("CREATE ROLE mailu LOGIN PASSWORD '%s'" % DB_PASSWORD)
            for release in RELEASES:
                for case in ('pct', 'pgpass'):
                    conn.execute('CREATE DATABASE %s OWNER mailu' % dbname(case, release))
            conn.execute('CREATE DATABASE mailu_upgrade OWNER mailu')
        with open(hba, 'a', encoding='utf-8') as handle:
            handle.write('host all all %s scram-sha-256\n' % subnet)
        server._run('pg_ctl', '-D', server.data_dir, '-l', os.path.join(server.base_dir, 'postgres.log'),  # pylint: disable=protected-access
                    '-w', '-t', '30', 'restart')
        yield Stand(docker_client, network, gateway, server, containers)
    finally:
        for container in containers:
            container.remove(force=True, v=True)
        network.remove()
        server.stop()


def dbname(case, release):
    return 'mailu_%s_%s' % (case, release.replace('.', '_'))


class Stand:
    def __init__(self, client, network, gateway, server, containers):
        self.client, self.network, self.gateway, self.server = client, network, gateway, server
        self.containers = containers
        self.admins = {}

    def admin(self, case, release, database=None):
        """The admin stand-in of ``release`` on our network, one per case (started once)."""
        if (case, release) in self.admins:
            return self.admins[case, release]
        host = '%s:%d' % (self.gateway, self.server.port)
        database = database or dbname(case, release)
        if case == 'pct':
            env = dict(SQLALCHEMY_DATABASE_URI='postgresql://mailu:%s@%s/%s' % (DB_PASSWORD_IN_URL, host, database))
        else:
            env = dict(SQLALCHEMY_DATABASE_URI='postgresql://mailu@%s/%s' % (host, database),
                       PGPASSWORD=DB_PASSWORD)
        container = self.client.containers.run(
            '%s/admin:%s' % (PREFIX, release), detach=True, environment=env, network=self.network.name,
            name='nantral-test-fidelity-admin-%s-%s-%s' % (case, release.replace('.', ''), uuid.uuid4().hex[:6]))
        self.containers.append(container)
        self.admins[case, release] = container
        return container

    def sql(self, database, query):
        with psycopg.connect(self.server.conninfo(database)) as conn:
            return conn.execute(query).fetchall()


def logs(container):
    return container.logs().decode('utf-8', 'replace')


def wait_serving(container, timeout=90):
    """Until the admin listens: the upgrade (and its retries) is over by then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if 'listening on' in logs(container):
            return container
        container.reload()
        assert container.status in ('created', 'running'), logs(container)
        time.sleep(0.5)
    pytest.fail('admin not serving after %d s:\n%s' % (timeout, logs(container)))


def healthcheck(container):
    """Run the image's own HEALTHCHECK command in the container: its exit status."""
    test = container.client.api.inspect_image(container.image.id)['Config']['Healthcheck']['Test']
    command = ['sh', '-c', test[1]] if test[0] == 'CMD-SHELL' else test[1:]
    return container.exec_run(command).exit_code


def status(container, path):
    port = 80 if container.labels.get('org.nantral.standin.mailu-version') == '1.9' else 8080
    out = container.exec_run(['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '-m', '10',
                              'http://localhost:%d%s' % (port, path)]).output.decode()
    return int(out or 0)


@pytest.fixture(scope='module')
def admins(stand):
    """Every admin case, started together (their start-ups overlap) and serving."""
    for release in RELEASES:
        for case in ('pct', 'pgpass'):
            stand.admin(case, release)
    for container in stand.admins.values():
        wait_serving(container)
    return stand


@pytest.mark.parametrize('release', RELEASES)
def test_percent_encoded_password_never_creates_the_schema(admins, release):
    container = admins.admins['pct', release]
    text = logs(container)
    assert 'invalid interpolation syntax' in text, text  # Alembic's ConfigParser, as in Mailu
    assert 'flask db upgrade failed' in text
    container.reload()
    assert container.status == 'running'
    tables = admins.sql(dbname('pct', release), "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    assert tables == []
    # Every page reads the domain table: the app itself connects fine but fails.
    assert status(container, '/sso/login?next=ui.index') == 500
    if release == '1.9':
        assert healthcheck(container) != 0  # 1.9's healthcheck is the login page
    else:
        assert healthcheck(container) == 0  # /ping does not touch the database
        assert status(container, '/ping') == 200


@pytest.mark.parametrize('release', RELEASES)
def test_pgpassword_with_a_passwordless_uri_creates_the_schema(admins, release):
    container = admins.admins['pgpass', release]
    database = dbname('pgpass', release)
    assert admins.sql(database, 'SELECT version_num FROM alembic_version') == [(HEADS[release],)]
    assert admins.sql(database, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(10,)]
    assert admins.sql(database, "SELECT conname FROM pg_constraint WHERE conrelid = 'alembic_version'::regclass") \
        == [('alembic_version_pkc',)]  # Alembic's own table, as on a real install
    assert 'Running upgrade  -> 3b7eee912b41' in logs(container)
    assert healthcheck(container) == 0
    assert status(container, '/sso/login?next=ui.index') == 200


def test_docker_runs_the_real_healthchecks(admins):
    """Docker's own probe, first run 30 s after the start (its default interval)."""
    wanted = {('pct', '1.9'): 1, ('pct', '2024.06'): 0, ('pgpass', '1.9'): 0, ('pgpass', '2024.06'): 0}
    deadline = time.monotonic() + 60
    results = {}
    while time.monotonic() < deadline and len(results) < len(wanted):
        for key in wanted:
            container = admins.admins[key]
            container.reload()
            log = container.attrs['State']['Health']['Log']
            if log:
                results[key] = 0 if log[0]['ExitCode'] == 0 else 1
        time.sleep(1)
    assert results == wanted


@pytest.mark.parametrize('release', RELEASES)
def test_database_unreachable(admins, release):
    """2024.06's /ping stays healthy with the database gone; 1.9's login page does not."""
    container = admins.admins['pgpass', release]
    admins.network.disconnect(container)
    try:
        assert status(container, '/sso/login') == 500
        if release == '1.9':
            assert healthcheck(container) != 0
        else:
            assert healthcheck(container) == 0
    finally:
        admins.network.connect(container)


def test_upgrade_from_19_and_no_downgrade(stand):
    """A 2024.06 admin brings a 1.9 schema to its head; a 1.9 admin then fails its upgrade and serves anyway."""
    first = wait_serving(stand.admin('upgrade-first', '1.9', database='mailu_upgrade'))
    first.stop(timeout=5)
    assert stand.sql('mailu_upgrade', 'SELECT version_num FROM alembic_version') == [(HEADS['1.9'],)]
    wait_serving(stand.admin('upgrade-then', '2024.06', database='mailu_upgrade'))
    assert stand.sql('mailu_upgrade', 'SELECT version_num FROM alembic_version') == [(HEADS['2024.06'],)]
    columns = stand.sql('mailu_upgrade', "SELECT column_name FROM information_schema.columns WHERE table_name = 'user' "
                                         "AND column_name IN ('spam_mark_as_read', 'allow_spoofing', "
                                         "'change_pw_next_login') ORDER BY ordinal_position")
    assert columns == [('spam_mark_as_read',), ('allow_spoofing',), ('change_pw_next_login',)]
    older = wait_serving(stand.admin('downgrade', '1.9', database='mailu_upgrade'))
    assert "Can't locate revision identified by '0ba45693748d'" in logs(older)
    assert 'flask db upgrade failed' in logs(older)
    assert stand.sql('mailu_upgrade', 'SELECT version_num FROM alembic_version') == [(HEADS['2024.06'],)]


@pytest.mark.usefixtures('images')
@pytest.mark.parametrize('image,release', sorted(REAL_HEALTHCHECKS), ids=str)
def test_healthcheck_settings_equal_the_real_dockerfile(docker_client, image, release):
    source, test, start_period = REAL_HEALTHCHECKS[image, release]
    config = docker_client.api.inspect_image('%s/%s:%s' % (PREFIX, image, release))['Config']
    found = config.get('Healthcheck')
    if test is None:
        assert found is None, 'no HEALTHCHECK in %s' % source
        return
    assert found is not None, source
    got = dict(test=found['Test'], start_period=found.get('StartPeriod', 0), interval=found.get('Interval', 0),
               timeout=found.get('Timeout', 0), retries=found.get('Retries', 0))
    assert got == dict(test=test, start_period=start_period * S, interval=0, timeout=0, retries=0), source


@pytest.mark.usefixtures('images')
@pytest.mark.parametrize('image', ['redis:alpine', 'fetchmail:1.9'])
def test_no_health_state_without_a_healthcheck(docker_client, image):
    container = docker_client.containers.run('%s/%s' % (PREFIX, image), detach=True,
                                             name='nantral-test-fidelity-nohealth-%s' % uuid.uuid4().hex[:8])
    try:
        time.sleep(1)
        container.reload()
        assert container.status == 'running', logs(container)
        assert 'Health' not in container.attrs['State']
    finally:
        container.remove(force=True, v=True)
