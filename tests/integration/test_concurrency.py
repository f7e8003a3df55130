"""Two writers at once, and a connection lost while committing.

Real sessions against the real server, made deterministic: the other writer is a test
session that holds the accounts lock (as every writer of the collection does) with its
writes still uncommitted, and commits only once PostgreSQL shows the module waiting
behind it (pg_blocking_pids), or after a few seconds if the module never waits.
"""

import os
import threading
import time

import psycopg
import pytest

from commitcut import CommitCutter
from dbutil import HASH, rows
from ansible_collections.nantral.mailu.plugins.module_utils import mailu_accounts

# The key the modules' documentation gives, written out: a script that follows the
# documentation must take the lock the modules take.
ACCOUNTS_LOCK = 7953759863327255553


def emails(db, table):
    return sorted(r['email'] for r in rows(db, 'SELECT email FROM "%s"' % table))


class OtherSession:
    """Another session on the database: ``lock=True`` is another writer of the
    collection (it holds the accounts lock), ``lock=False`` is Mailu's admin."""

    def __init__(self, db, name, lock=True):
        self.conn = psycopg.connect(db['conninfo'], application_name=name)
        self.pid = self.conn.info.backend_pid
        self.monitor = psycopg.connect(db['conninfo'], autocommit=True)
        self.waiters = []
        self.thread = None
        if lock:
            self.conn.execute('SELECT pg_advisory_xact_lock(%s)', (ACCOUNTS_LOCK,))

    def execute(self, query, params=()):
        self.conn.execute(query, params)

    def commit_once_waited_on(self, patience=5.0):
        """Commit from a thread as soon as another session waits for this one."""
        def wait_then_commit():
            deadline = time.monotonic() + patience
            while time.monotonic() < deadline and not self.waiters:
                self.waiters = self.monitor.execute(
                    'SELECT pid, application_name FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))',
                    (self.pid,)).fetchall()
                time.sleep(0.02)
            self.conn.commit()
        self.thread = threading.Thread(target=wait_then_commit)
        self.thread.start()

    def close(self):
        if self.thread:
            self.thread.join()
        self.conn.close()
        self.monitor.close()


@pytest.fixture
def other_session():
    sessions = []

    def factory(db, name='other writer', lock=True):
        sessions.append(OtherSession(db, name, lock))
        return sessions[-1]

    yield factory
    for session in sessions:
        session.close()


def _domain(run, db, **extra):
    assert run('mailu_accounts', db, domains=[dict(name='example.org', **extra)])['changed'] is True


def test_user_waits_for_a_writer_creating_an_alias_with_its_address(mailu_db, run, other_session):
    db = mailu_db()
    _domain(run, db)
    other = other_session(db)
    other.execute("INSERT INTO alias (email, localpart, domain_name, destination, created_at) "
                  "VALUES ('race@example.org', 'race', 'example.org', 'x@example.org', current_date)")
    other.commit_once_waited_on()
    result = run('mailu_accounts', db, users=[dict(email='race@example.org', password_hash=HASH)])
    other.close()
    assert emails(db, 'alias') == ['race@example.org']
    assert emails(db, 'user') == []
    # The module waited for the other writer, named as the module and its process ...
    assert [app.split(' pid ')[0] for pid, app in other.waiters] == ['nantral.mailu.mailu_accounts']
    assert other.waiters[0][1].startswith('nantral.mailu.mailu_accounts pid %d ' % os.getpid())
    # ... then planned from what it committed.
    assert result.get('failed') is True, result
    assert 'user race@example.org: email is already used by an alias' in result['msg']


def test_domain_waits_for_a_writer_claiming_its_name_as_an_alternative(mailu_db, run, other_session):
    db = mailu_db()
    _domain(run, db)
    other = other_session(db)
    other.execute("INSERT INTO alternative (name, domain_name, created_at) "
                  "VALUES ('newdom.org', 'example.org', current_date)")
    other.commit_once_waited_on()
    result = run('mailu_accounts', db, domains=[dict(name='newdom.org')])
    other.close()
    assert [r['name'] for r in rows(db, 'SELECT name FROM domain ORDER BY name')] == ['example.org']
    assert other.waiters
    assert result.get('failed') is True, result
    assert 'domain newdom.org: name is already an alternative name of domain example.org' in result['msg']


def _applied_without_commit(conn, declared, purge):
    """What a writer of the collection does up to COMMIT (mailu_accounts.run, paused)."""
    release = '2024.06'
    parsed = mailu_accounts.parse(declared, release)
    with conn.cursor() as cur:
        state = mailu_accounts.State(cur, release, mailu_accounts.scope(parsed, purge))
        plan = mailu_accounts.Planner(state, release, parsed, purge).build()
        mailu_accounts.apply(cur, plan, release)


def test_two_purges_end_in_the_state_the_second_declared(mailu_db, run, other_session):
    db = mailu_db()
    _domain(run, db)

    def users(*names):
        return [dict(email='%s@example.org' % name, password_hash=HASH) for name in names]

    assert run('mailu_accounts', db, users=users('a', 'b', 'c'))['changed'] is True
    other = other_session(db)
    _applied_without_commit(other.conn, dict(users=users('a', 'b', 'd')), ['users'])
    other.commit_once_waited_on()
    result = run('mailu_accounts', db, users=users('a', 'c', 'e'), purge=['users'])
    other.close()
    assert emails(db, 'user') == ['a@example.org', 'c@example.org', 'e@example.org']
    assert other.waiters
    assert result.get('failed') is not True, result
    assert result['users'] == dict(created=['c@example.org', 'e@example.org'], updated=[],
                                   removed=['b@example.org', 'd@example.org'])


def test_writer_gives_up_naming_the_lock_holder(mailu_db, run, other_session, db_snapshot):
    db = mailu_db()
    before = db_snapshot(db)
    other = other_session(db, name='accounts cron job')
    started = time.monotonic()
    result = run('mailu_accounts', db, domains=[dict(name='example.org')], lock_timeout=1)
    waited = time.monotonic() - started
    assert result.get('failed') is True, result
    assert "application_name 'accounts cron job'" in result['msg']
    assert 'pid %d,' % other.pid in result['msg']
    assert 'nothing was changed' in result['msg'] and 'lock_timeout' in result['msg']
    assert 1 <= waited < 10
    other.close()
    assert db_snapshot(db) == before


def test_check_mode_and_info_do_not_wait_for_a_writer(mailu_db, run, other_session):
    db = mailu_db()
    other = other_session(db)
    started = time.monotonic()
    result = run('mailu_accounts', db, check=True, domains=[dict(name='example.org')], lock_timeout=60)
    assert result['changed'] is True and result['domains']['created'] == ['example.org']
    assert run('mailu_info', db)['domains'] == []
    assert time.monotonic() - started < 10
    other.close()


def test_clash_committed_meanwhile_by_mailu_admin_is_caught_before_commit(mailu_db, run, other_session):
    """Mailu's admin does not take the lock: its alias, committed after the module read the
    state, is found by the re-check before COMMIT.  The module's update of a user the admin
    has locked makes it wait there, in the middle of its writes, until the admin commits."""
    db = mailu_db()
    _domain(run, db)
    assert run('mailu_user', db, email='x@example.org', password_hash=HASH)['changed'] is True
    admin = other_session(db, name='mailu admin', lock=False)
    admin.execute("UPDATE \"user\" SET displayed_name = 'X' WHERE email = 'x@example.org'")
    admin.execute("INSERT INTO alias (email, localpart, domain_name, destination, created_at) "
                  "VALUES ('race@example.org', 'race', 'example.org', 'x@example.org', current_date)")
    admin.commit_once_waited_on()
    result = run('mailu_accounts', db, users=[dict(email='x@example.org', quota='2G'),
                                              dict(email='race@example.org', password_hash=HASH)])
    admin.close()
    assert emails(db, 'user') == ['x@example.org']
    assert admin.waiters
    assert result.get('failed') is True, result
    assert 'user race@example.org: email is already used by an alias, written by another client' in result['msg']
    assert rows(db, 'SELECT quota_bytes, displayed_name FROM "user"') == [dict(quota_bytes=10 ** 9, displayed_name='X')]


def test_connection_lost_while_committing_says_the_outcome_is_unknown(mailu_db, run):
    db = mailu_db()
    declared = dict(domains=[dict(name='example.org')],
                    users=[dict(email='a@example.org', password_hash=HASH)])
    with CommitCutter(db['login_host'], db['login_port']) as proxy:
        through_proxy = dict(db, login_host='127.0.0.1', login_port=proxy.port)
        result = run('mailu_accounts', through_proxy, ssl_mode='disable', **declared)
    # The server did commit; only its answer was lost.
    assert proxy.cut.is_set()
    assert emails(db, 'user') == ['a@example.org']
    assert result.get('failed') is True, result
    assert 'nothing was changed' not in result['msg']
    assert 'lost while committing' in result['msg'] and 'outcome is unknown' in result['msg']
    assert 'Run the task again' in result['msg']
    assert result['unconfirmed']['users']['created'] == ['a@example.org']
    assert result['unconfirmed']['domains']['created'] == ['example.org']
    # Running again converges.
    assert run('mailu_accounts', db, **declared)['changed'] is False
