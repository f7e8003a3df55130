"""The backup engine's pure parts: restic's errors, times, state files, configuration, the lock,
and the pause that always ends (a fake Compose command records what is asked of it)."""

import datetime
import json
import os

import pytest

from ansible_collections.nantral.mailu.plugins.module_utils import mailu_backup as engine
from backupenv import BackupEnv


@pytest.mark.parametrize('code, output, expected', [
    # restic 0.14 to 0.16: always 1, the message tells.
    (1, 'Fatal: wrong password or no key found\n', 'wrong_password'),
    (1, 'Fatal: unable to open config file: stat /srv/repo/config: no such file or directory\n'
        'Is there a repository at the following location?\n/srv/repo\n', 'missing'),
    (1, 'Fatal: unable to open config file: Stat: The specified key does not exist.\n'
        'Is there a repository at the following location?\n', 'missing'),
    (1, 'Fatal: unable to create lock in backend: repository is already locked by PID 12 on mail\n', 'locked'),
    # A network failure is not a missing repository: that would claim it vanished.
    (1, 'Fatal: unable to open config file: Stat: dial tcp 10.0.0.1:443: connect: connection refused\n'
        'Is there a repository at the following location?\n', 'other'),
    (1, 'Fatal: unable to open repository at sftp:u@h:/r: unable to start the sftp session\n', 'other'),
    # restic 0.17 and later: the exit status tells.
    (10, 'Fatal: repository does not exist: unable to open config file\n', 'missing'),
    (11, 'repo already locked, waiting up to 0s for the lock\n', 'locked'),
    (12, 'Fatal: wrong password or no key found\n', 'wrong_password'),
    (12, '', 'wrong_password'),
])
def test_classify(code, output, expected):
    assert engine.classify(code, output) == expected


def test_parse_time():
    utc = datetime.timezone.utc
    expected = datetime.datetime(2026, 11, 28, 7, 29, 17, 801970, tzinfo=utc)
    assert engine.parse_time('2026-11-28T07:29:17.801970406Z') == expected
    assert engine.parse_time('2026-11-28T08:29:17.801970+01:00') == expected
    assert engine.parse_time('2026-11-28T07:29:17Z').tzinfo is not None
    with pytest.raises(ValueError):
        engine.parse_time('yesterday')


def test_write_json_replaces_atomically_with_mode_0600(tmp_path):
    path = tmp_path / 'state' / 'last-backup.json'
    engine.write_json(str(path), {'result': 'ok'})
    os.chmod(path, 0o644)
    engine.write_json(str(path), {'result': 'failed'})
    assert json.loads(path.read_text()) == {'result': 'failed'}
    assert oct(os.stat(path).st_mode & 0o777) == '0o600'
    assert os.listdir(path.parent) == ['last-backup.json'], 'no temporary file left'
    assert engine.read_json(str(tmp_path / 'none.json')) is None
    (tmp_path / 'bad.json').write_text('[1]')
    with pytest.raises(engine.BackupError, match='holds no JSON object'):
        engine.read_json(str(tmp_path / 'bad.json'))


def test_config_errors_are_usage_errors(tmp_path):
    with pytest.raises(engine.ConfigError, match='repository is missing'):
        engine.check_config({'password_file': '/p', 'host': 'h', 'root': '/mailu', 'sources': []})
    with pytest.raises(engine.ConfigError, match='sources must be a list'):
        engine.check_config({'repository': '/r', 'password_file': '/p', 'host': 'h', 'root': '/mailu',
                             'sources': [{'path': 'relative'}]})
    (tmp_path / 'config.json').write_text('{not json')
    assert engine.main(['--config', str(tmp_path / 'config.json'), 'status']) == 2
    assert engine.main(['--config', str(tmp_path / 'absent.json'), 'run']) == 2
    assert engine.main(['no-such-command']) == 2


def test_count_files(tmp_path):
    (tmp_path / 'd' / 'sub').mkdir(parents=True)
    (tmp_path / 'd' / 'a').write_text('x')
    (tmp_path / 'd' / 'sub' / 'b').write_text('')
    (tmp_path / 'empty').write_text('')
    (tmp_path / 'full').write_text('x')
    assert engine.count_files(str(tmp_path / 'd')) == 2
    assert engine.count_files(str(tmp_path / 'empty')) == 0
    assert engine.count_files(str(tmp_path / 'full')) == 1
    assert engine.count_files(str(tmp_path / 'absent')) is None


def test_lock_names_the_holder(tmp_path):
    config = {'lock_file': str(tmp_path / 'lock')}
    with engine._locked(config, 'run'):  # pylint: disable=protected-access
        with pytest.raises(engine.BackupError, match=r'another backup command is running \(pid %d, run since' %
                           os.getpid()):
            with engine._locked(config, 'check'):  # pylint: disable=protected-access
                pass
    with engine._locked(config, 'check'):  # pylint: disable=protected-access
        pass


def test_pause_ends_when_restic_fails(tmp_path, monkeypatch):
    env = BackupEnv(tmp_path, compose=True)
    env.populate()
    env.init()
    env.compose.set('running', ['redis', 'smtp', 'front'])  # imap is stopped: only smtp is paused

    real = engine._backup  # pylint: disable=protected-access

    def broken(restic, config, paths, tags, parent=None):
        if config['tag'] in tags:
            raise engine.BackupError('restic exploded')
        return real(restic, config, paths, tags, parent)

    monkeypatch.setattr(engine, '_backup', broken)
    code, result, err = env.main('run')
    assert code == 1 and result['message'] == 'restic exploded'
    calls = env.compose.calls()
    assert ['pause', 'smtp'] in calls and ['unpause', 'smtp'] in calls
    assert env.compose.names('paused') == []
    assert env.state('last-backup.json')['result'] == 'failed'
    assert env.snapshots() == [], 'the prepass snapshot is forgotten too'


def test_redis_save_must_say_ok(tmp_path):
    env = BackupEnv(tmp_path, compose=True)
    env.populate()
    env.init()
    env.compose.set('fail', ['exec'])
    code, result, err = env.main('run')
    assert code == 1 and 'exec -T redis redis-cli save failed' in result['message']
    assert env.snapshots() == [] and env.compose.names('paused') == []


def test_without_compose_nothing_is_paused_and_no_prepass(tmp_path):
    env = BackupEnv(tmp_path)
    env.populate()
    env.init()
    code, result, err = env.main('run')
    assert code == 0, err
    assert result['pause_seconds'] == 0 and 'prepass' not in err.replace(str(tmp_path), '')
    assert len(env.snapshots()) == 1


def test_skipped_paths_from_restic_stderr_and_the_disk(tmp_path):
    here, gone, quiet = str(tmp_path / 'here'), str(tmp_path / 'gone'), str(tmp_path / 'quiet')
    for path in (here, quiet):
        os.mkdir(path)
    stderr = '%s does not exist, skipping\nsome other warning\n' % quiet
    assert engine.skipped_paths(stderr, [here, gone, quiet]) == sorted([gone, quiet])
    assert engine.skipped_paths('', [here, quiet]) == []


@pytest.mark.parametrize('line, expected', [
    ('restoring <Snapshot 5a484058 of [/mailu/mail /var/lib/x] at 2026-11-28 08:03:50.87502596 +0000 UTC by '
     'root@mail> to /mailu/.restore-x', ('5a484058', '2026-11-28T08:03:50.87502596+00:00')),
    ('restoring snapshot 5a484058 of [/mailu/mail] at 2026-11-28 09:03:50 +0100 CET by root@mail to /t',
     ('5a484058', '2026-11-28T09:03:50+01:00')),
    ('nothing like it', (None, None)),
])
def test_restored_snapshot(line, expected):
    assert engine.restored_snapshot('repository 1234 opened\n' + line + '\n') == expected
    if expected[1]:
        moment = engine.parse_time(expected[1])
        assert moment.replace(microsecond=0) == datetime.datetime(2026, 11, 28, 8, 3, 50, tzinfo=datetime.timezone.utc)


def test_prepass_min_bytes_is_checked():
    config = {'repository': '/r', 'password_file': '/p', 'host': 'h', 'root': '/mailu', 'sources': []}
    assert engine.check_config(dict(config))['prepass_min_bytes'] == 1024 ** 3
    for wrong in (-1, '1G', True):
        with pytest.raises(engine.ConfigError, match='prepass_min_bytes'):
            engine.check_config(dict(config, prepass_min_bytes=wrong))
