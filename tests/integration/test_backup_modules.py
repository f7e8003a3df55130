"""mailu_backup_repository and mailu_backup_info, run in-process against real restic repositories."""

import json
import os
import subprocess

from backupenv import PASSWORD, BackupEnv


def _params(tmp_path, **extra):
    params = dict(repository=str(tmp_path / 'repo'), password=PASSWORD, state_dir=str(tmp_path / 'state'))
    params.update(extra)
    return params


def _marker(tmp_path):
    with open(tmp_path / 'state' / 'repository.json', encoding='utf-8') as handle:
        return json.load(handle)


def test_repository_check_mode_init_idempotent(run, tmp_path):
    params = _params(tmp_path)
    result = run('mailu_backup_repository', check=True, diff=True, **params)
    assert result['changed'] is True and result['initialised'] is True and result['id'] is None
    assert not os.path.exists(tmp_path / 'repo') and not os.path.exists(tmp_path / 'state')
    assert result['diff']['before'] == {}

    result = run('mailu_backup_repository', diff=True, **params)
    assert result['changed'] is True and result['initialised'] is True
    assert len(result['id']) == 64 and result['restic_version'].count('.') == 2
    marker = _marker(tmp_path)
    assert marker['id'] == result['id'] and marker['initialised_here'] is True
    assert oct(os.stat(tmp_path / 'state' / 'repository.json').st_mode & 0o777) == '0o600'
    assert PASSWORD not in json.dumps(result)

    for check in (True, False):
        again = run('mailu_backup_repository', check=check, **params)
        assert again['changed'] is False and again['initialised'] is False and again['id'] == result['id']
    assert _marker(tmp_path) == marker


def test_existing_repository_is_adopted_not_reinitialised(run, tmp_path):
    env = dict(os.environ, RESTIC_REPOSITORY=str(tmp_path / 'repo'), RESTIC_PASSWORD=PASSWORD)
    subprocess.run(['restic', 'init'], env=env, check=True, capture_output=True)
    config = json.loads(subprocess.run(['restic', 'cat', 'config'], env=env, check=True, capture_output=True).stdout)
    result = run('mailu_backup_repository', **_params(tmp_path))
    assert result['changed'] is True and result['initialised'] is False and result['id'] == config['id']
    assert _marker(tmp_path)['initialised_here'] is False
    assert run('mailu_backup_repository', **_params(tmp_path))['changed'] is False


def test_wrong_password_named_nothing_written(run, tmp_path):
    run('mailu_backup_repository', **_params(tmp_path))
    os.unlink(tmp_path / 'state' / 'repository.json')
    result = run('mailu_backup_repository', **_params(tmp_path, password='not it'))
    assert result['failed'] is True
    assert 'wrong password for repository %s' % (tmp_path / 'repo') in result['msg']
    assert 'nothing was changed' in result['msg'] and 'not it' not in json.dumps(result)
    assert not os.path.exists(tmp_path / 'state' / 'repository.json')


def test_vanished_repository_reported_not_recreated(run, tmp_path):
    first = run('mailu_backup_repository', **_params(tmp_path))
    subprocess.run(['rm', '-rf', str(tmp_path / 'repo')], check=True)
    for check in (True, False):
        result = run('mailu_backup_repository', check=check, **_params(tmp_path))
        assert result['failed'] is True
        assert 'repository %s vanished' % (tmp_path / 'repo') in result['msg'] and first['id'] in result['msg']
        assert result['state'] == 'vanished'
    assert not os.path.exists(tmp_path / 'repo')


def test_init_false_fails_on_a_missing_repository(run, tmp_path):
    result = run('mailu_backup_repository', **_params(tmp_path, init=False))
    assert result['failed'] is True and 'is not initialised, and init is false' in result['msg']
    assert not os.path.exists(tmp_path / 'repo') and not os.path.exists(tmp_path / 'state')


def test_info_fresh_stale_and_unreachable(run, tmp_path):
    env = BackupEnv(tmp_path)
    env.populate()
    env.init()
    result = run('mailu_backup_info', config=env.config_path)
    assert result['changed'] is False and result['newest_snapshot'] is None
    assert result['fresh'] is False and result['grace'] is True and result['problems'] == []
    assert env.main('run')[0] == 0
    result = run('mailu_backup_info', config=env.config_path, check=True)
    assert result['fresh'] is True and result['repository'] == 'ok' and result['exit'] == 0
    assert result['last_backup']['result'] == 'ok' and result['newest_snapshot']['age_hours'] < 1
    result = run('mailu_backup_info', config=env.config_path, max_age_hours=0.00001)
    assert result['fresh'] is False and result['exit'] == 1
    assert 'hours old' in result['problems'][0]
    subprocess.run(['rm', '-rf', env.repository], check=True)
    result = run('mailu_backup_info', config=env.config_path)
    assert result['repository'] == 'vanished' and result['exit'] == 2 and 'failed' not in result


def test_info_unreadable_config_fails(run, tmp_path):
    result = run('mailu_backup_info', config=str(tmp_path / 'nope.json'))
    assert result['failed'] is True and 'nope.json cannot be read' in result['msg']
