"""Benchmark: the backup engine beside bare restic, on a synthetic mail store, in one run.

A Mailu server's files (tests/backupenv.py) with 10,000 messages in Maildir layout, about
200 MB in all (sizes drawn from a log-normal distribution: most messages a few kB, a few
of several MB), and a Mailu 2024.06 database with accounts on a throwaway PostgreSQL
cluster (tests/pgserver.py).  Measured, each beside a bare ``restic backup`` or
``restic restore`` of the same paths into a repository of its own:

* the first backup;
* a backup with nothing changed;
* a restore of the latest snapshot (the engine's includes the database and moving the
  files into place).

The engine runs with a fake Compose stack (a command that records its arguments), so its
pause of the mail services happens as on a server and its length is printed; the fake's
own run time (a Python start, some ms) is part of it.  Targets: ratio <= 1.2, no-change
backup < 10 s.

    make bench-backup        (or: .venv/bin/python benchmarks/backup.py [--messages N])
"""

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, 'tests'))

import conftest  # noqa: E402,F401 pylint: disable=wrong-import-position,unused-import  # makes the collection importable
import psycopg  # noqa: E402 pylint: disable=wrong-import-position
from backupenv import PASSWORD, BackupEnv, write_maildir  # noqa: E402 pylint: disable=wrong-import-position
from pgserver import PgServer  # noqa: E402 pylint: disable=wrong-import-position


def message_sizes(count, total, seed=9):
    """``count`` sizes of about ``total`` bytes together, log-normal like a real mailbox."""
    rng = random.Random(seed)
    raw = [min(rng.lognormvariate(9.2, 1.3), 8e6) for unused in range(count)]
    scale = total / sum(raw)
    return [max(300, int(size * scale)) for size in raw]


def build_store(env, messages, total):
    sizes = message_sizes(messages, total)
    users = ['user%03d@example.org' % number for number in range(50)]
    per_user = len(sizes) // len(users)
    for index, email in enumerate(users):
        chunk = sizes[index * per_user:(index + 1) * per_user if index < len(users) - 1 else len(sizes)]
        inbox, sent = chunk[:len(chunk) * 3 // 4], chunk[len(chunk) * 3 // 4:]
        write_maildir(env.root, email, inbox, start=index * 1000)
        write_maildir(env.root, email, sent, folder='Sent', start=index * 1000 + len(inbox))
    return sum(sizes)


def database(server):
    admin = psycopg.connect(server.conninfo(), autocommit=True)
    admin.execute("CREATE ROLE mailu LOGIN PASSWORD 'bench'")
    admin.execute('CREATE DATABASE mailu OWNER mailu')
    params = dict(login_host=server.host, login_port=server.port, login_user='mailu', login_password='bench',
                  login_db='mailu')
    conninfo = 'host=%s port=%d user=mailu password=bench dbname=mailu' % (server.host, server.port)
    with open(os.path.join(REPO, 'tests', 'sql', 'mailu-2024.06.sql'), encoding='utf-8') as handle:
        ddl = handle.read()
    with psycopg.connect(conninfo) as conn:
        conn.execute(ddl)
        conn.execute("INSERT INTO domain (name, created_at) VALUES ('example.org', '2024-01-01')")
        for number in range(50):
            conn.execute(
                "INSERT INTO \"user\" (email, localpart, domain_name, password, quota_bytes, global_admin, enable_imap,"
                " enable_pop, forward_enabled, reply_enabled, displayed_name, spam_enabled, created_at) VALUES "
                "(%s, %s, 'example.org', '{BLF-CRYPT}x', 0, false, true, true, false, false, '', true, '2024-01-01')",
                ('user%03d@example.org' % number, 'user%03d' % number))
    admin.close()
    return params, conninfo


def timed(function, *args):
    start = time.monotonic()
    result = function(*args)
    return time.monotonic() - start, result


def seconds(function, *args):
    return timed(function, *args)[0]


def bare(repository, *args):
    env = dict(os.environ, RESTIC_REPOSITORY=repository, RESTIC_PASSWORD=PASSWORD)
    subprocess.run(['restic'] + list(args), env=env, check=True, stdout=subprocess.DEVNULL)


def engine_run(env):
    code, result, err = env.main('run')
    if code != 0:
        raise SystemExit('engine run failed: %s' % err)
    return result


def engine_restore(env):
    code, result, err = env.main('restore', '--force')
    if code != 0:
        raise SystemExit('engine restore failed: %s' % err)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--messages', type=int, default=10000)
    parser.add_argument('--megabytes', type=int, default=200)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix='nantral-bench-backup-', dir='/var/tmp')
    try:
        with PgServer() as server:
            params, conninfo = database(server)
            env = BackupEnv(os.path.join(tmp, 'engine'), database=params, compose=True)
            env.populate(mailboxes={'postmaster@example.org': [1000]})
            size = build_store(env, args.messages, args.megabytes * 1024 * 1024)
            env.init()
            paths = [source['path'] for source in env.config['sources'] if os.path.exists(source['path'])]
            bare_repo = os.path.join(tmp, 'bare-repo')
            bare(bare_repo, 'init', '--repository-version', '2')
            print('mail store: %d messages, %.1f MB; %d sources' % (args.messages, size / 1e6, len(paths)))

            # Both first backups read from the page cache: the one that ran second would otherwise.
            subprocess.run(['tar', '-cf', '/dev/null'] + paths, check=True)
            bare_first = seconds(bare, bare_repo, 'backup', '--host', 'bench', *paths)
            engine_first, first = timed(engine_run, env)
            bare_again = seconds(bare, bare_repo, 'backup', '--host', 'bench', *paths)
            engine_again, again = timed(engine_run, env)

            target = os.path.join(tmp, 'bare-restore')
            bare_restore = seconds(bare, bare_repo, 'restore', 'latest', '--target', target)
            shutil.rmtree(target)
            env.compose.set('running', [])
            engine_back, restored = timed(engine_restore, env)
            with psycopg.connect(conninfo) as conn:
                users = conn.execute('SELECT count(*) FROM "user"').fetchone()[0]

        rows = [
            ('first backup', engine_first, bare_first, 'pause %.2f s' % first['pause_seconds']),
            ('no-change backup', engine_again, bare_again, 'pause %.2f s' % again['pause_seconds']),
            ('restore', engine_back, bare_restore, '%d users back, %d paths' % (users, len(restored['restored']))),
        ]
        print('%-18s %9s %9s %7s  %s' % ('', 'engine s', 'bare s', 'ratio', ''))
        failed = []
        for name, mine, theirs, note in rows:
            ratio = mine / theirs
            print('%-18s %9.2f %9.2f %7.2f  %s' % (name, mine, theirs, ratio, note))
            if ratio > 1.2:
                failed.append('%s ratio %.2f > 1.2' % (name, ratio))
        if engine_again >= 10:
            failed.append('no-change backup %.1f s >= 10 s' % engine_again)
        print(json.dumps(dict(first=[engine_first, bare_first], no_change=[engine_again, bare_again],
                              restore=[engine_back, bare_restore], pause_first=first['pause_seconds'],
                              pause_no_change=again['pause_seconds'])))
        print('targets: %s' % ('all met' if not failed else 'MISSED: ' + '; '.join(failed)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
