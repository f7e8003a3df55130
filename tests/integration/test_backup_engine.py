"""The backup engine with a real restic repository and a real PostgreSQL database.

Every test lays out a small Mailu server (tests/backupenv.py) in a temporary
directory; the Compose stack is a fake command that records its arguments, the
database one of the test server's Mailu 2024.06 databases.
"""

import json
import os
import subprocess
import sys
import threading

import psycopg
import pytest

from ansible_collections.nantral.mailu.plugins.module_utils import mailu_backup as engine
from backupenv import MAILU_UID, BackupEnv, tree, write_maildir


def _accounts(params):
    with psycopg.connect(params['conninfo']) as conn:
        conn.execute("INSERT INTO domain (name, created_at) VALUES ('example.org', '2024-01-01')")
        for local in ('user', 'admin'):
            conn.execute(
                "INSERT INTO \"user\" (email, localpart, domain_name, password, quota_bytes, global_admin, enable_imap,"
                " enable_pop, forward_enabled, reply_enabled, displayed_name, spam_enabled, created_at) VALUES "
                "(%s, %s, 'example.org', '{BLF-CRYPT}$2b$12$abcdefghijklmnopqrstuuJ0X8oXv5m5Z6wz1yY9n5bXo7pX5l3xa',"
                " 0, false, true, true, false, false, '', true, '2024-01-01')", (local + '@example.org', local))
        conn.execute("INSERT INTO alias (email, localpart, domain_name, destination, created_at) "
                     "VALUES ('postmaster@example.org', 'postmaster', 'example.org', 'admin@example.org', '2024-01-01')")


def _rows(params):
    with psycopg.connect(params['conninfo']) as conn:
        return dict((table, sorted(conn.execute('SELECT * FROM "%s"' % table).fetchall(), key=repr))
                    for table in ('domain', 'user', 'alias'))


@pytest.fixture
def server(tmp_path, mailu_db):
    params = mailu_db('2024.06')
    _accounts(params)
    env = BackupEnv(tmp_path, database=params, compose=True)
    env.db = params
    env.populate()
    env.init()
    return env


def test_run_snapshot_holds_dump_sources_and_manifest(server):
    code, result, err = server.main('run')
    assert code == 0, err
    assert result['result'] == 'ok' and result['snapshot']
    snaps = server.snapshots(tag='nantral-mailu')
    assert [s['short_id'] for s in snaps] == [result['snapshot']]
    assert server.snapshots(tag=engine.PREPASS_TAG) == [], 'the prepass snapshot is forgotten'
    assert os.path.join(server.state_dir, 'staging') in snaps[0]['paths']
    listing = server.restic('ls', '--json', snaps[0]['id']).stdout
    names = [json.loads(line).get('path') for line in listing.splitlines() if line.startswith('{"name"')]
    assert os.path.join(server.state_dir, 'staging', 'mailu-database.dump') in names
    assert os.path.join(server.root, 'dkim', 'example.org.dkim.key') in names
    assert os.path.join(server.root, 'mailu.env') in names
    manifest = json.loads(server.restic('dump', snaps[0]['id'],
                                        os.path.join(server.state_dir, 'staging', 'manifest.json')).stdout)
    assert manifest['mailu_version'] == '2024.06'
    assert manifest['database']['size'] > 0 and len(manifest['database']['sha256']) == 64
    assert manifest['counts'][os.path.join(server.root, 'mail')] == 7
    assert manifest['owners'][os.path.join(server.root, 'dkim')]['uid'] == MAILU_UID
    last = server.state('last-backup.json')
    assert last['result'] == 'ok' and last['counts'] == manifest['counts']
    assert oct(os.stat(os.path.join(server.state_dir, 'last-backup.json')).st_mode & 0o777) == '0o600'
    # The services were paused around the backup and are running again; redis saved first.
    calls = server.compose.calls()
    assert ['exec', '-T', 'redis', 'redis-cli', 'save'] in calls
    assert ['pause', 'smtp', 'imap'] in calls and ['unpause', 'smtp', 'imap'] in calls
    assert calls.index(['exec', '-T', 'redis', 'redis-cli', 'save']) < calls.index(['pause', 'smtp', 'imap'])
    assert server.compose.names('paused') == []
    assert last['pause_seconds'] > 0


def test_second_run_has_no_prepass_and_a_short_pause(server):
    assert server.main('run')[0] == 0
    before = len(server.compose.calls())
    code, result, err = server.main('run')
    assert code == 0, err
    assert 'unpaused prepass' not in err
    assert len(server.snapshots(tag='nantral-mailu')) == 2
    assert ['pause', 'smtp', 'imap'] in server.compose.calls()[before:]


def test_dump_failure_records_no_snapshot(server, mailu_db):
    assert server.main('run')[0] == 0
    good = server.snapshots()
    server.config['database']['port'] = 1  # nothing listens there: the dump cannot connect
    server.save()
    code, result, err = server.main('run')
    assert code == 1
    assert result['result'] == 'failed'
    assert 'cannot be queried' in result['message'] and server.config['database']['name'] in result['message']
    assert server.snapshots() == good, 'no new snapshot, the earlier ones intact'
    last = server.state('last-backup.json')
    assert last['result'] == 'failed' and last['snapshot'] is None
    assert last['counts'], 'the last good counts are kept'
    assert server.compose.names('paused') == []


def test_pg_dump_failure_is_caught(server):
    """The server answers, pg_dump itself fails (a client that refuses): no snapshot."""
    fake = os.path.join(server.tmp, 'pg_dump')
    with open(fake, 'w', encoding='utf-8') as handle:
        handle.write('#!/bin/sh\nif [ "$1" = --version ]; then echo "pg_dump (PostgreSQL) 99.0"; exit 0; fi\n'
                     'echo "pg_dump: error: connection lost" >&2; exit 1\n')
    os.chmod(fake, 0o755)
    server.config['database']['pg_dump'] = fake
    server.save()
    code, result, err = server.main('run')
    assert code == 1
    assert 'pg_dump of database' in result['message'] and 'connection lost' in result['message']
    assert server.snapshots() == []
    assert not os.path.exists(os.path.join(server.state_dir, 'staging', 'mailu-database.dump.tmp'))


def test_pg_dump_older_than_server_refused(server):
    fake = os.path.join(server.tmp, 'pg_dump')
    with open(fake, 'w', encoding='utf-8') as handle:
        handle.write('#!/bin/sh\necho "pg_dump (PostgreSQL) 9.6.24"\n')
    os.chmod(fake, 0o755)
    server.config['database']['pg_dump'] = fake
    server.save()
    code, result, err = server.main('run')
    assert code == 1
    assert 'PostgreSQL 9, older than the server' in result['message']


def test_empty_source_that_had_files_refused(server):
    assert server.main('run')[0] == 0
    good = server.snapshots()
    mail = os.path.join(server.root, 'mail')
    subprocess.run(['rm', '-rf', mail], check=True)
    os.mkdir(mail)
    code, result, err = server.main('run')
    assert code == 1
    assert '%s is empty, it held 7 files at the last good backup' % mail in result['message']
    assert server.snapshots() == good
    code, result, err = server.main('run', '--allow-empty', mail)
    assert code == 0, err


def test_missing_required_source_refused(server):
    os.unlink(os.path.join(server.root, 'mailu.env'))
    code, result, err = server.main('run')
    assert code == 1
    assert '%s is missing (a required source)' % os.path.join(server.root, 'mailu.env') in result['message']
    assert server.snapshots() == []
    assert server.state('last-backup.json')['result'] == 'failed'


def test_missing_optional_source_is_fine(server):
    code, result, err = server.main('run')
    assert code == 0, err  # certs and dav do not exist


def test_unreadable_file_exit_3_forgets_the_snapshot(server):
    """restic's exit 3 (a file it could not read): the incomplete snapshot is forgotten."""
    assert server.main('run')[0] == 0
    good = server.snapshots()
    secret = os.path.join(server.root, 'filter', 'unreadable')
    with open(secret, 'w', encoding='utf-8') as handle:
        handle.write('x')
    os.chmod(secret, 0)
    # restic without the capabilities that let root read anything: it cannot read that file.
    wrapper = os.path.join(server.tmp, 'restic-nocaps')
    with open(wrapper, 'w', encoding='utf-8') as handle:
        handle.write('#!/bin/sh\nexec setpriv --bounding-set -dac_override,-dac_read_search restic "$@"\n')
    os.chmod(wrapper, 0o755)
    server.config['restic'] = wrapper
    server.save()
    code, result, err = server.main('run')
    assert code == 1, err
    assert 'incomplete snapshot' in result['message'] and 'forgotten' in result['message']
    assert 'unreadable' in result['message']
    assert server.snapshots() == good
    assert server.state('last-backup.json')['result'] == 'failed'
    assert server.compose.names('paused') == []


def test_source_vanishing_after_the_check_forgets_the_snapshot(server, monkeypatch):
    """restic skips a path that vanished after the sources were checked (exit 0 in 0.14):
    the snapshot lacks it, so it is forgotten."""
    real = engine._backup  # pylint: disable=protected-access
    dav = os.path.join(server.root, 'overrides')

    def vanishing(restic, config, paths, tags, parent=None):
        if config['tag'] in tags:
            subprocess.run(['rm', '-rf', dav], check=True)
        return real(restic, config, paths, tags, parent)

    monkeypatch.setattr(engine, '_backup', vanishing)
    code, result, err = server.main('run')
    assert code == 1, err
    assert 'restic skipped %s' % dav in result['message']
    assert server.snapshots(tag='nantral-mailu') == []


def test_pause_failure_unpauses_and_fails(server):
    server.compose.set('fail', ['pause'])
    code, result, err = server.main('run')
    assert code == 1
    assert 'pause' in result['message']
    assert server.snapshots(tag='nantral-mailu') == []


def test_two_runs_at_once(server):
    lock = server.config['lock_file']
    holder = subprocess.Popen([sys.executable, '-c', 'import fcntl, os, sys, time\n'
                               'fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n'
                               'fcntl.flock(fd, fcntl.LOCK_EX)\n'
                               'os.write(fd, b"pid %d, run since now" % os.getpid())\n'
                               'print("locked", flush=True)\n'
                               'time.sleep(60)\n', lock], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'locked'
        code, result, err = server.main('run')
        assert code == 1
        assert 'another backup command is running (pid %d, run since now' % holder.pid in result['message']
        assert server.snapshots() == []
    finally:
        holder.kill()
        holder.wait()
    assert server.main('run')[0] == 0


def test_wrong_password_named_and_nothing_written(server):
    server.set_password('not the password')
    code, result, err = server.main('run')
    assert code == 1
    assert 'wrong password for repository %s' % server.repository in result['message']
    assert 'not the password' not in err + json.dumps(result)
    assert [call for call in server.compose.calls() if call[0] == 'pause'] == [], \
        'mail is never paused for a repository that cannot be opened'


def test_redis_is_counted_after_its_save(server):
    os.unlink(os.path.join(server.root, 'redis', 'dump.rdb'))
    code, result, err = server.main('run')
    assert code == 0, err
    assert result['counts'][os.path.join(server.root, 'redis')] == 1, 'the dump.rdb the save wrote'


def test_vanished_repository_not_recreated(server):
    subprocess.run(['rm', '-rf', server.repository], check=True)
    code, result, err = server.main('run')
    assert code == 1
    assert 'repository %s vanished' % server.repository in result['message']
    assert 'not re-created' in result['message']
    assert not os.path.exists(server.repository)


def test_different_repository_refused(server, tmp_path):
    subprocess.run(['rm', '-rf', server.repository], check=True)
    server.restic('init')
    code, result, err = server.main('run')
    assert code == 1
    assert 'a different repository is at %s' % server.repository in result['message']


def test_forget_keeps_the_policy_and_records(server):
    assert server.main('run')[0] == 0
    code, result, err = server.main('forget')
    assert code == 0, err
    assert server.state('last-forget.json')['result'] == 'ok'
    assert len(server.snapshots()) == 1


def _damage_a_pack(repository):
    packs = []
    for directory, dirs, files in os.walk(os.path.join(repository, 'data')):
        packs += [os.path.join(directory, name) for name in files]
    biggest = max(packs, key=os.path.getsize)
    with open(biggest, 'r+b') as handle:
        handle.seek(os.path.getsize(biggest) // 2)
        handle.write(b'\0damaged by the test\0' * 8)
    return os.path.basename(biggest)


def test_damaged_pack_found_by_check(server):
    assert server.main('run')[0] == 0
    code, result, err = server.main('check', '--read-data-subset', '100%')
    assert code == 0, err
    assert server.state('last-check.json')['result'] == 'ok'
    pack = _damage_a_pack(server.repository)
    code, result, err = server.main('check', '--read-data-subset', '100%')
    assert code == 1
    last = server.state('last-check.json')
    assert last['result'] == 'failed' and last['subset'] == '100%'
    assert pack[:8] in last['message'] or 'does not match' in last['message'], last['message']
    code, report, err = server.main('status', '--json')
    assert code == 1
    assert any('the last integrity check failed' in problem for problem in report['problems'])


def test_status_fresh_stale_none(server):
    code, report, err = server.main('status', '--json')
    assert report['newest_snapshot'] is None and report['grace'] is True  # a new repository
    assert code == 0
    marker = os.path.join(server.state_dir, 'repository.json')
    with open(marker, encoding='utf-8') as handle:
        data = json.load(handle)
    data['first_seen'] = '2020-01-01T00:00:00Z'
    engine.write_json(marker, data)
    code, report, err = server.main('status', '--json')
    assert code == 1 and report['grace'] is False
    assert 'holds no snapshot of mail.example.org' in report['problems'][0]
    assert server.main('run')[0] == 0
    code, report, err = server.main('status', '--json')
    assert code == 0 and report['fresh'] is True and report['problems'] == []
    assert report['newest_snapshot']['id'] == server.state('last-backup.json')['snapshot']
    code, report, err = server.main('status', '--json', '--max-age-hours', '0.0001')
    assert code == 1 and report['fresh'] is False
    assert 'hours old (more than 0.0001)' in report['problems'][0]
    code, text, err = server.main('status')
    assert 'fresh' in text and 'last backup run: ok' in text
    server.set_password('wrong')
    code, report, err = server.main('status', '--json')
    assert code == 2 and report['repository'] == 'wrong_password'


def test_unpause_is_idempotent(server):
    server.compose.set('paused', ['smtp', 'imap'])
    assert server.main('unpause')[0] == 0
    assert server.compose.names('paused') == []
    calls = len(server.compose.calls())
    assert server.main('unpause')[0] == 0
    assert not any(call[0] == 'unpause' for call in server.compose.calls()[calls:])


# ---------------------------------------------------------------- restore


@pytest.fixture
def backed_up(server, tmp_path, mailu_db):
    """A backup of ``server``, then a fresh server: the same configuration, an empty
    database as mailu_database leaves it (no tables yet), no files, the stack stopped."""
    code, result, err = server.main('run')
    assert code == 0, err
    before = dict(files=tree(server.root), rows=_rows(server.db))
    fresh = mailu_db('2024.06')
    with psycopg.connect(fresh['conninfo']) as conn:
        for table in ('"fetch"', 'token', 'manager', 'alternative', 'relay', 'alias', '"user"', 'domain',
                      'alembic_version', 'config'):
            conn.execute('DROP TABLE IF EXISTS %s CASCADE' % table)
    subprocess.run(['rm', '-rf', server.root, server.state_dir], check=True)
    server.config['database'] = server.database_config(fresh)
    server.save()
    server.db = fresh
    server.compose.set('running', [])
    os.makedirs(server.state_dir)
    engine.ensure_repository(engine.Restic.from_config(server.engine_config), server.state_dir, init=False)
    return before


def test_restore_into_an_empty_server(server, backed_up):
    code, result, err = server.main('restore')
    assert code == 0, err
    assert result['moved_aside'] == []
    names = ('mail', 'dkim', 'redis', 'filter', 'data', 'webmail', 'overrides', 'mailqueue', 'mailu.env', '.env',
             'docker-compose.yml')
    assert sorted(result['restored']) == sorted(os.path.join(server.root, name) for name in names)
    assert result['database']['rows'] == dict(user=2, domain=1, alias=1)
    assert _rows(server.db) == backed_up['rows']
    assert tree(server.root) == backed_up['files'], 'contents, modes and ownership as backed up'
    assert not [name for name in os.listdir(server.root) if name.startswith('.restore')]


def test_restore_refused_when_the_server_holds_data(server, backed_up):
    write_maildir(server.root, 'new@example.org', [100])
    code, result, err = server.main('restore')
    assert code == 1
    assert 'this server holds data: 1 entries in %s (new@example.org)' % os.path.join(server.root, 'mail') in err
    assert os.listdir(os.path.join(server.root, 'mail')) == ['new@example.org']


def test_restore_refused_names_account_rows_and_force_replaces(server, backed_up):
    code, result, err = server.main('restore')
    assert code == 0, err
    code, result, err = server.main('restore')
    assert code == 1
    assert '2 rows in table user' in err and '1 rows in table domain' in err and '1 rows in table alias' in err
    assert 'files in %s' % os.path.join(server.root, 'dkim') in err
    write_maildir(server.root, 'new@example.org', [100])
    code, result, err = server.main('restore', '--force')
    assert code == 0, err
    mail = os.path.join(server.root, 'mail')
    aside = [path for path in result['moved_aside'] if path.startswith(mail + '.before-restore-')]
    assert len(aside) == 1 and 'new@example.org' in os.listdir(aside[0])
    assert 'new@example.org' not in os.listdir(mail)
    assert _rows(server.db) == backed_up['rows']


def test_a_restore_that_stops_says_where_the_server_stands(server, backed_up, monkeypatch):
    real_move = engine._move_into_place  # pylint: disable=protected-access
    moved = []

    def move(source, path):
        if len(moved) == 2:
            raise OSError(28, 'No space left on device', path)
        moved.append(path)
        return real_move(source, path)

    monkeypatch.setattr(engine, '_move_into_place', move)
    code, result, err = server.main('restore')
    assert code == 1
    assert 'stopped at ' in err and 'No space left on device' in err
    assert 'database restored: yes; restored: %s; moved aside: nothing' % ', '.join(moved) in err
    assert _rows(server.db) == backed_up['rows']


def test_restore_refused_while_the_stack_runs(server, backed_up):
    server.compose.set('running', ['admin', 'front'])
    code, result, err = server.main('restore')
    assert code == 1
    assert 'the Mailu stack is running (admin, front)' in err


def test_restore_refuses_another_mailu_line(server, backed_up):
    server.config['mailu_version'] = '1.9'
    server.save()
    code, result, err = server.main('restore')
    assert code == 1
    assert 'is Mailu 2024.06, this server is 1.9: upgrade is not a restore' in err
    assert not os.path.exists(os.path.join(server.root, 'mail'))


def test_restore_mailbox_copies_only_missing_messages(server):
    code, result, err = server.main('run')
    assert code == 0, err
    box = os.path.join(server.root, 'mail', 'user@example.org')
    other = os.path.join(server.root, 'mail', 'admin@example.org')
    cur = sorted(os.listdir(os.path.join(box, 'cur')))
    os.unlink(os.path.join(box, 'cur', cur[0]))                      # lost: comes back
    flagged = cur[1].replace(':2,S', ':2,RS')                         # flags changed since: left alone
    os.rename(os.path.join(box, 'cur', cur[1]), os.path.join(box, 'cur', flagged))
    sent = os.path.join(box, '.Sent', 'cur')
    lost_sent = sorted(os.listdir(sent))[0]
    os.unlink(os.path.join(sent, lost_sent))
    new_message = os.path.join(box, 'cur', 'new-since-backup:2,S')
    with open(new_message, 'w', encoding='utf-8') as handle:
        handle.write('kept')
    other_files = tree(other)
    os.unlink(os.path.join(other, 'new', os.listdir(os.path.join(other, 'new'))[0]))  # not restored: another box
    other_files_after = tree(other)
    code, result, err = server.main('restore-mailbox', 'user@example.org')
    assert code == 0, err
    assert result['restored'] == 2
    assert sorted(result['files']) == sorted([os.path.join(box, 'cur', cur[0]), os.path.join(sent, lost_sent)])
    restored = os.stat(os.path.join(box, 'cur', cur[0]))
    assert (restored.st_uid, restored.st_gid, oct(restored.st_mode & 0o777)) == (MAILU_UID, MAILU_UID, '0o600')
    assert os.path.exists(new_message) and os.path.exists(os.path.join(box, 'cur', flagged))
    assert not os.path.exists(os.path.join(box, 'cur', cur[1]))
    assert tree(other) == other_files_after != other_files
    assert not [name for name in os.listdir(server.root) if name.startswith('.restore')]


def test_restore_mailbox_one_folder(server):
    assert server.main('run')[0] == 0
    box = os.path.join(server.root, 'mail', 'user@example.org')
    subprocess.run(['rm', '-rf', os.path.join(box, '.Sent')], check=True)
    lost_inbox = sorted(os.listdir(os.path.join(box, 'cur')))[0]
    os.unlink(os.path.join(box, 'cur', lost_inbox))
    code, result, err = server.main('restore-mailbox', 'user@example.org', '--folder', 'Sent')
    assert code == 0, err
    assert result['restored'] == 2
    assert not os.path.exists(os.path.join(box, 'cur', lost_inbox)), 'INBOX is not touched'
    sent = os.stat(os.path.join(box, '.Sent'))
    assert (sent.st_uid, oct(sent.st_mode & 0o777)) == (MAILU_UID, '0o700')
    code, result, err = server.main('restore-mailbox', 'nobody@example.org')
    assert code == 1 and 'holds no mailbox nobody@example.org' in err


def test_restore_mailbox_brings_back_a_folders_empty_directories(server):
    box = os.path.join(server.root, 'mail', 'user@example.org')
    drafts = os.path.join(box, '.Drafts')
    write_maildir(server.root, 'user@example.org', [700, 800], folder='Drafts')
    for name in os.listdir(os.path.join(drafts, 'new')):      # every message in cur/: new/ stays empty
        os.rename(os.path.join(drafts, 'new', name), os.path.join(drafts, 'cur', name + ':2,S'))
    assert server.main('run')[0] == 0
    subprocess.run(['rm', '-rf', drafts], check=True)
    code, result, err = server.main('restore-mailbox', 'user@example.org', '--folder', 'Drafts')
    assert code == 0, err
    assert result['restored'] == 2
    for sub in ('cur', 'new', 'tmp'):
        info = os.stat(os.path.join(drafts, sub))
        assert (info.st_uid, oct(info.st_mode & 0o777)) == (MAILU_UID, '0o700'), sub


# ---------------------------------------------------------------- one restic command on the critical path


def _logging_restic(server):
    """restic behind a wrapper that logs each command's first argument that is not an option."""
    log_path = os.path.join(server.tmp, 'restic-calls')
    wrapper = os.path.join(server.tmp, 'restic-logged')
    with open(wrapper, 'w', encoding='utf-8') as handle:
        handle.write('#!/bin/sh\nfor a in "$@"; do case "$a" in -*) ;; *) echo "$a" >> %s; break;; esac; done\n'
                     'exec restic "$@"\n' % log_path)
    os.chmod(wrapper, 0o755)
    server.config['restic'] = wrapper
    server.save()

    def calls():
        if not os.path.exists(log_path):
            return []
        with open(log_path, encoding='utf-8') as handle:
            found = handle.read().split()
        os.unlink(log_path)
        return sorted(found)
    return calls


def test_a_run_is_one_backup_beside_the_probe(server):
    """No listing before or after: the probe (cat config) and the backup, on the first run and the next."""
    calls = _logging_restic(server)
    code, result, err = server.main('run')
    assert code == 0, err
    assert calls() == ['backup', 'cat']
    assert 'reads all' in err, 'a small store: no prepass'
    last = server.state('last-backup.json')
    assert last['last_good']['snapshot'] == result['snapshot'] and last['last_good']['repository'] == server.repository
    code, result, err = server.main('run')
    assert code == 0, err
    assert calls() == ['backup', 'cat']
    server.compose.set('running', [])
    code, result, err = server.main('restore', '--force')
    assert code == 0, err
    assert calls() == ['cat', 'restore'], 'restic restore picks the latest snapshot itself'
    newest = server.snapshots(tag='nantral-mailu')[-1]
    assert result['snapshot'] == newest['short_id']
    assert engine.parse_time(result['snapshot_time']) == engine.parse_time(newest['time'])


def test_prepass_for_a_big_store_is_forgotten(server):
    server.config['prepass_min_bytes'] = 0
    server.save()
    code, result, err = server.main('run')
    assert code == 0, err
    assert 'an unpaused prepass reads everything first' in err
    assert server.snapshots(tag=engine.PREPASS_TAG) == []
    assert not os.path.exists(os.path.join(server.state_dir, engine.PREPASS_PENDING))
    code, result, err = server.main('run')
    assert code == 0, err
    assert 'prepass' not in err.replace(server.tmp, ''), 'the last good run is the parent: no prepass'


def test_last_good_run_survives_a_failed_one(server):
    assert server.main('run')[0] == 0
    good = server.state('last-backup.json')['last_good']
    server.compose.set('fail', ['exec'])
    assert server.main('run')[0] == 1
    assert server.state('last-backup.json')['last_good'] == good


@pytest.mark.parametrize('recorded', [True, False])
def test_prepass_left_by_a_killed_run_is_forgotten(server, recorded):
    staging = os.path.join(server.state_dir, 'staging')
    os.makedirs(staging, exist_ok=True)
    left = server.restic('backup', '--json', '--host', 'mail.example.org', '--tag', engine.PREPASS_TAG,
                         os.path.join(server.root, 'dkim'))
    left_id = json.loads(left.stdout.splitlines()[-1])['snapshot_id']
    engine.write_json(os.path.join(server.state_dir, engine.PREPASS_PENDING),
                      dict(started='2026-01-01T00:00:00Z', snapshot=left_id if recorded else None))
    code, result, err = server.main('run')
    assert code == 0, err
    assert 'forgetting 1 prepass snapshot(s) an interrupted run left' in err
    assert server.snapshots(tag=engine.PREPASS_TAG) == []
    assert not os.path.exists(os.path.join(server.state_dir, engine.PREPASS_PENDING))


def test_path_restic_said_it_skipped_forgets_the_snapshot(server, monkeypatch):
    """restic 0.14 skips a path missing when it starts, says so on stderr, exits 0; the path is back by the
    time restic ends, so only its message tells."""
    real = engine._backup  # pylint: disable=protected-access
    overrides = os.path.join(server.root, 'overrides')

    def vanishing_for_a_while(restic, config, paths, tags, parent=None):
        os.rename(overrides, overrides + '.away')
        try:
            return real(restic, config, paths, tags, parent)
        finally:
            os.rename(overrides + '.away', overrides)

    monkeypatch.setattr(engine, '_backup', vanishing_for_a_while)
    code, result, err = server.main('run')
    assert code == 1, err
    assert 'restic skipped %s' % overrides in result['message']
    assert server.snapshots(tag='nantral-mailu') == []
    assert server.state('last-backup.json')['result'] == 'failed'


def test_a_different_repository_found_after_the_backup(server, monkeypatch):
    """The probe ends after the backup (it runs beside it when nothing is to be paused): the snapshot made
    in the other repository is forgotten and the run fails."""
    subprocess.run(['rm', '-rf', server.repository], check=True)
    server.restic('init')
    server.compose.set('running', [])
    backed_up = threading.Event()
    real_backup, real_probe = engine._backup, engine.Restic.probe  # pylint: disable=protected-access

    def backup(*args, **kwargs):
        try:
            return real_backup(*args, **kwargs)
        finally:
            backed_up.set()

    def late_probe(self):
        assert backed_up.wait(120)
        return real_probe(self)

    monkeypatch.setattr(engine, '_backup', backup)
    monkeypatch.setattr(engine.Restic, 'probe', late_probe)
    code, result, err = server.main('run')
    assert code == 1, err
    assert 'a different repository is at %s' % server.repository in result['message']
    assert 'the snapshot just made there was forgotten' in result['message']
    assert server.snapshots() == []
    assert server.state('last-backup.json')['result'] == 'failed'
    assert server.compose.names('paused') == []


def test_restore_latest_of_an_empty_repository(server, backed_up):
    subprocess.run(['rm', '-rf', server.repository], check=True)
    server.restic('init')
    os.unlink(os.path.join(server.state_dir, 'repository.json'))
    code, result, err = server.main('restore')
    assert code == 1
    assert 'holds no snapshot of mail.example.org (tag nantral-mailu)' in err
    assert not os.path.exists(os.path.join(server.root, 'mail'))
