# -*- coding: utf-8 -*-
# Copyright (c) 2026, Nantral Platform sysadmin team
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The connection to Mailu's PostgreSQL database and the schema guard.

The options are documented once, in the ``nantral.mailu.connection`` doc fragment.
"""

from __future__ import annotations

import getpass
import os
import socket
import time
import traceback

from ansible_collections.nantral.mailu.plugins.module_utils.mailu_input import MailuError
from ansible_collections.nantral.mailu.plugins.module_utils.mailu_schema import SCHEMA_HEADS

PSYCOPG_IMPORT_ERROR = None
try:
    import psycopg
except ImportError:
    PSYCOPG_IMPORT_ERROR = traceback.format_exc()


def connection_argument_spec():
    return dict(
        login_host=dict(type='str', default='localhost'),
        login_port=dict(type='int', default=5432),
        login_user=dict(type='str', default='mailu'),
        login_password=dict(type='str', no_log=True),
        login_db=dict(type='str', default='mailu'),
        login_unix_socket=dict(type='str'),
        ssl_mode=dict(type='str', default='prefer',
                      choices=['allow', 'disable', 'prefer', 'require', 'verify-ca', 'verify-full']),
        ca_cert=dict(type='path'),
        connect_timeout=dict(type='int', default=10),
        wait_for_schema=dict(type='int', default=0),
        lock_timeout=dict(type='int', default=120),
    )


# The advisory lock every writer of Mailu's accounts takes before it reads the state it
# plans from (advisory locks are per database).  A script that writes the same tables
# can take it too: SELECT pg_advisory_xact_lock(7953759863327255553) in its transaction.
ACCOUNTS_LOCK = 0x6e616e7472616c01  # 'nantral' in ASCII, then 1: the accounts


class CommitOutcomeUnknown(MailuError):
    """The connection was lost after COMMIT was sent: it may or may not have been applied."""

    def __init__(self, msg, plan=None, queries=None):
        self.plan = plan
        self.queries = queries or []
        super(CommitOutcomeUnknown, self).__init__(msg)


def application_name(module_name):
    """What pg_stat_activity shows for a module's session: which module, which process
    on which host, so that a message naming the lock holder identifies the writer.
    PostgreSQL keeps 63 bytes of it."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    name = 'nantral.mailu.%s pid %d %s@%s' % (module_name, os.getpid(), user, socket.gethostname())
    return name.encode('ascii', 'replace').decode('ascii')[:63]


def _connect(params, app_name):
    kwargs = dict(
        host=params['login_unix_socket'] or params['login_host'],
        port=params['login_port'],
        user=params['login_user'],
        dbname=params['login_db'],
        sslmode=params['ssl_mode'],
        connect_timeout=params['connect_timeout'],
        application_name=app_name,
    )
    if params['login_password'] is not None:
        kwargs['password'] = params['login_password']
    if params['ca_cert']:
        kwargs['sslrootcert'] = params['ca_cert']
    return psycopg.connect(**kwargs)


def _read_head(conn):
    """The Alembic head, or None when Mailu's admin has not created the schema yet."""
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('public.alembic_version') IS NOT NULL")
        if not cur.fetchone()[0]:
            return None
        cur.execute('SELECT version_num FROM public.alembic_version')
        rows = cur.fetchall()
    conn.rollback()
    return rows[0][0] if len(rows) == 1 else None


def _where(params):
    if params['login_unix_socket']:
        return 'database %s on socket %s' % (params['login_db'], params['login_unix_socket'])
    return 'database %s on %s:%s' % (params['login_db'], params['login_host'], params['login_port'])


def connect(params, module_name='nantral.mailu'):
    """Connect and check the schema: returns (connection, Mailu release line).

    With ``wait_for_schema`` > 0, an unreachable server, a missing schema or a head that
    is not (yet) a supported one are retried until that many seconds have passed:
    Mailu's admin container creates and migrates the schema when it starts.
    """
    deadline = time.monotonic() + max(0, params['wait_for_schema'])
    while True:
        conn = None
        try:
            conn = _connect(params, application_name(module_name))
            head = _read_head(conn)
        except psycopg.Error as exc:
            if conn is not None:
                conn.close()
            problem = 'cannot connect to Mailu\'s %s as %s: %s' % (
                _where(params), params['login_user'], str(exc).strip())
            head = conn = None
        else:
            if head in SCHEMA_HEADS:
                return conn, SCHEMA_HEADS[head]
            conn.close()
            if head is None:
                problem = ('no Mailu schema in %s (no alembic_version row): start Mailu\'s admin '
                           'container first, or set wait_for_schema' % _where(params))
            else:
                problem = ('unsupported Mailu schema revision %s in %s; supported: %s' % (
                    head, _where(params),
                    ', '.join('%s (%s)' % (rev, rel) for rev, rel in SCHEMA_HEADS.items())))
        if time.monotonic() >= deadline:
            if params['wait_for_schema'] > 0:
                problem += ' (waited %d seconds)' % params['wait_for_schema']
            raise MailuError(problem)
        time.sleep(min(2.0, max(0.1, deadline - time.monotonic())))


def _lock_holder(conn):
    """The session holding the accounts lock, as pg_stat_activity shows it, or None."""
    query = (
        "SELECT a.pid, a.application_name, a.usename, host(a.client_addr), a.client_port, "
        "to_char(a.xact_start, 'YYYY-MM-DD HH24:MI:SS TZ'), a.state "
        "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND l.classid::bigint = %s AND l.objid::bigint = %s")
    with conn.cursor() as cur:
        cur.execute(query, ((ACCOUNTS_LOCK >> 32) & 0xffffffff, ACCOUNTS_LOCK & 0xffffffff))
        row = cur.fetchone()
    conn.rollback()
    if row is None:
        return None
    pid, app, user, addr, port, since, state = row
    where = 'local socket' if addr is None and port == -1 else ('%s port %s' % (addr, port) if addr else 'an unknown client')
    return ('PostgreSQL backend pid %d, application_name %r, user %s, from %s, transaction started %s, %s'
            % (pid, app or '', user, where, since, state))


def set_lock_timeout(cur, seconds):
    """Bound every lock wait of the current transaction (row locks included)."""
    cur.execute("SELECT set_config('lock_timeout', %s, true)", ('%dms' % (max(0, seconds) * 1000 or 1),))


def lock_accounts(conn, seconds):
    """Take the accounts lock for the current transaction, waiting at most ``seconds``.

    Fails with a message naming the session that holds it.  Must be the first statement
    of the transaction: under READ COMMITTED every later statement then sees what the
    previous holder committed.
    """
    try:
        with conn.cursor() as cur:
            set_lock_timeout(cur, seconds)
            cur.execute('SELECT pg_advisory_xact_lock(%s)', (ACCOUNTS_LOCK,))
    except psycopg.errors.LockNotAvailable:
        conn.rollback()
        holder = _lock_holder(conn)
        raise MailuError(
            'another writer is changing Mailu\'s accounts (%s); waited %d second(s) for it (lock_timeout), '
            'nothing was changed. Run again once it has finished, or raise lock_timeout'
            % (holder or 'it has finished since', seconds))


def commit(conn, plan=None, queries=None):
    """COMMIT; a connection lost on the way is not "nothing was changed"."""
    try:
        conn.commit()
    except psycopg.OperationalError as exc:
        if not (conn.broken or conn.closed):
            raise
        raise CommitOutcomeUnknown(
            'the connection to Mailu\'s database was lost while committing (%s): PostgreSQL may or may '
            'not have applied this run\'s changes, so the outcome is unknown. Run the task again: it reads '
            'the database afresh, converges, and reports what was still missing'
            % str(exc).strip(), plan, queries)
