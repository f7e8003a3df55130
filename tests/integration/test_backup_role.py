"""The mailu_backup role's files as it writes them: its templates rendered with the role's own
defaults and vars (ansible-playbook on localhost, into a directory of the test's own; nothing
is installed), and its input checks."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / 'roles' / 'mailu_backup' / 'templates'
UNITS = ['nantral-mailu-backup', 'nantral-mailu-backup-forget', 'nantral-mailu-backup-check']

PASSWORD = 'restic-Secret:pw\\with \'quotes\' "and" $HOME'
DB_PASSWORD = 'db-Secret:pw\\x'
S3_SECRET = 'aws-Secret-Key/123'
SSH_KEY = '-----BEGIN OPENSSH PRIVATE KEY-----\nssh-Secret-key-body\n-----END OPENSSH PRIVATE KEY-----'
BASE = {
    'mailu_backup_repository': '/srv/restic-mailu',
    'mailu_backup_password': PASSWORD,
    'mailu_database_password': DB_PASSWORD,
    'mailu_stack_version': '2024.06',
}
SECRETS = [PASSWORD, DB_PASSWORD, S3_SECRET, 'ssh-Secret-key-body', 'Secret']


def render(tmp_path, variables):
    """Load the role's defaults and vars (its validate.yml, public: checks only, with
    systemd-analyze for the schedules), then render its templates
    into tmp_path/out: config.json, pgpass and every unit. Returns (process, {name: text})."""
    out = tmp_path / 'out'
    out.mkdir(exist_ok=True)
    tasks = ''.join(
        '    - ansible.builtin.template:\n'
        '        src: %s/%s\n'
        '        dest: %s/%s\n'
        '        mode: "0600"\n'
        '      loop: %s\n' % (TEMPLATES, src, out, dest, loop)
        for src, dest, loop in [('config.json.j2', 'config.json', '[0]'), ('pgpass.j2', 'pgpass', '[0]'),
                                ('nantral-mailu-backup.j2', 'nantral-mailu-backup', '[0]'),
                                ('backup.service.j2', '{{ item.name }}.service', '"{{ _mailu_backup_units }}"'),
                                ('backup.timer.j2', '{{ item.name }}.timer', '"{{ _mailu_backup_units }}"')])
    playbook = tmp_path / 'play.yml'
    playbook.write_text(
        '- hosts: all\n'
        '  gather_facts: false\n'
        '  tasks:\n'
        '    - ansible.builtin.include_role:\n'
        '        name: nantral.mailu.mailu_backup\n'
        '        tasks_from: validate.yml\n'
        '        public: true\n' + tasks)
    env = dict(os.environ, ANSIBLE_LOCALHOST_WARNING='false', ANSIBLE_PYTHON_INTERPRETER=sys.executable,
               ANSIBLE_NOCOLOR='1')
    result = subprocess.run([str(Path(sys.executable).parent / 'ansible-playbook'), '-i', 'mail.example.org,',
                             '-c', 'local', '-e', json.dumps(dict(BASE, **variables)), str(playbook)],
                            env=env, capture_output=True, text=True, check=False)
    return result, {p.name: p.read_text() for p in out.iterdir()}


@pytest.fixture(scope='module')
def s3(tmp_path_factory):
    result, files = render(tmp_path_factory.mktemp('s3'), {
        'mailu_backup_repository': 's3:https://s3.example.org/bucket/mailu',
        'mailu_backup_repository_env': {'AWS_ACCESS_KEY_ID': 'AKIAEXAMPLE', 'AWS_SECRET_ACCESS_KEY': S3_SECRET},
        'mailu_backup_extra_paths': ['/srv/platform-media'],
        'mailu_database_mode': 'local', 'mailu_database_host': '127.0.0.1', 'mailu_database_port': 5433,
    })
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return files


def test_the_sources_are_mailus_data_and_secrets_then_the_extra_paths(s3):
    config = json.loads(s3['config.json'])
    assert config['sources'] == [
        {'path': '/mailu/mail', 'required': True},
        {'path': '/mailu/dkim', 'required': True},
        {'path': '/mailu/redis', 'required': True},
        {'path': '/mailu/filter', 'required': True},
        {'path': '/mailu/data', 'required': True},
        {'path': '/mailu/webmail', 'required': False},
        {'path': '/mailu/dav', 'required': False},
        {'path': '/mailu/overrides', 'required': True},
        {'path': '/mailu/mailqueue', 'required': True},
        {'path': '/mailu/certs', 'required': False},
        {'path': '/mailu/mailu.env', 'required': True},
        {'path': '/mailu/.env', 'required': True},
        {'path': '/mailu/docker-compose.yml', 'required': True},
        {'path': '/etc/letsencrypt', 'required': False},
        {'path': '/srv/platform-media', 'required': True},
    ]


def test_the_config_follows_the_contract(s3):
    config = json.loads(s3['config.json'])
    assert config['repository'] == 's3:https://s3.example.org/bucket/mailu'
    assert config['password_file'] == '/etc/nantral-mailu/backup/password'
    assert config['env'] == {'AWS_ACCESS_KEY_ID': 'AKIAEXAMPLE', 'AWS_SECRET_ACCESS_KEY': S3_SECRET}
    assert config['options'] == []
    assert config['host'] == 'mail.example.org' and config['tag'] == 'nantral-mailu'
    assert config['state_dir'] == '/var/lib/nantral-mailu/backup'
    assert config['mailu_version'] == '2024.06' and config['root'] == '/mailu'
    assert config['compose'] == {'command': ['docker', 'compose'], 'project_directory': '/mailu', 'project': 'mailu',
                                 'pause': ['smtp', 'imap'], 'redis': 'redis'}
    assert config['database'] == {'host': '127.0.0.1', 'port': 5433, 'name': 'mailu', 'user': 'mailu',
                                  'pgpass_file': '/etc/nantral-mailu/backup/pgpass',
                                  'pg_dump': 'pg_dump', 'pg_restore': 'pg_restore', 'psql': 'psql'}
    assert config['check_subset'] == '5%'
    assert config['retention'] == {'keep_daily': 7, 'keep_weekly': 4, 'keep_monthly': 6, 'keep_within': ''}
    assert config['max_age_hours'] == 36
    # No secret but the backend's own credentials (env): the password has its own file.
    assert PASSWORD not in s3['config.json'] and DB_PASSWORD not in s3['config.json']


def test_pgpass_escapes_backslash_and_colon(s3):
    assert s3['pgpass'] == '127.0.0.1:5433:mailu:mailu:db-Secret\\:pw\\\\x\n'


def test_no_secret_in_any_unit(s3):
    units = {name: text for name, text in s3.items() if name.endswith(('.service', '.timer'))}
    assert len(units) == 6
    for name, text in units.items():
        for secret in SECRETS:
            assert secret not in text, (name, secret)
        assert 'Environment' not in text, name


def test_services_run_the_command_and_timers_are_persistent_and_randomised(s3):
    for unit, command in zip(UNITS, ['run', 'forget', 'check']):
        service = s3['%s.service' % unit].splitlines()
        assert 'Type=oneshot' in service
        assert 'ExecStart=/usr/local/sbin/nantral-mailu-backup %s' % command in service
        assert ('ExecStopPost=/usr/local/sbin/nantral-mailu-backup unpause' in service) == (command == 'run')
        timer = s3['%s.timer' % unit].splitlines()
        assert 'Persistent=true' in timer and 'RandomizedDelaySec=30min' in timer
        assert 'WantedBy=timers.target' in timer
    assert 'OnCalendar=*-*-* 03:15:00' in s3['nantral-mailu-backup.timer'].splitlines()
    assert 'OnCalendar=Sun *-*-* 04:30:00' in s3['nantral-mailu-backup-forget.timer'].splitlines()
    assert 'OnCalendar=Sun *-*-* 05:30:00' in s3['nantral-mailu-backup-check.timer'].splitlines()


def test_the_host_command_runs_the_installed_engine(s3):
    command = s3['nantral-mailu-backup']
    assert command.startswith('#!/usr/bin/python3\n')
    assert 'sys.path.insert(0, "/usr/local/lib/nantral-mailu")' in command
    compile(command, 'nantral-mailu-backup', 'exec')
    for secret in SECRETS:
        assert secret not in command


@pytest.mark.parametrize('repository, known_hosts, expected', [
    ('sftp:backup@store.example.org:/srv/restic/mail', True,
     'sftp.command=ssh -i /etc/nantral-mailu/backup/ssh_key -o UserKnownHostsFile=/etc/nantral-mailu/backup/known_hosts'
     ' -o BatchMode=yes backup@store.example.org -s sftp'),
    ('sftp://backup@store.example.org:2222//srv/restic/mail', False,
     'sftp.command=ssh -i /etc/nantral-mailu/backup/ssh_key -o BatchMode=yes -p 2222 backup@store.example.org -s sftp'),
])
def test_an_sftp_repository_gets_its_ssh_command(tmp_path, repository, known_hosts, expected):
    result, files = render(tmp_path, {
        'mailu_backup_repository': repository, 'mailu_backup_ssh_private_key': SSH_KEY,
        'mailu_backup_ssh_known_hosts': ['store.example.org ssh-ed25519 AAAAC3Nza'] if known_hosts else [],
        'mailu_stack_root': '/srv/mailu', 'mailu_stack_project_name': 'mail', 'mailu_database_mode': 'external',
        'mailu_database_host': 'db.example.org', 'mailu_stack_version': '1.9'})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    config = json.loads(files['config.json'])
    assert config['options'] == [expected]
    assert 'ssh-Secret-key-body' not in files['config.json']
    assert config['root'] == '/srv/mailu' and config['sources'][0] == {'path': '/srv/mailu/mail', 'required': True}
    assert config['compose']['project'] == 'mail' and config['compose']['project_directory'] == '/srv/mailu'
    assert config['database']['host'] == 'db.example.org' and config['mailu_version'] == '1.9'


@pytest.mark.parametrize('variables, words', [
    ({'mailu_backup_repository': ''}, ['mailu_backup_repository']),
    ({'mailu_backup_password': ''}, ['mailu_backup_password']),
    ({'mailu_database_password': ''}, ['mailu_database_password']),
    ({'mailu_backup_extra_paths': ['relative/path']}, ['mailu_backup_extra_paths', 'relative/path']),
    ({'mailu_backup_ssh_private_key': SSH_KEY}, ['mailu_backup_ssh_private_key', 'SFTP']),
    ({'mailu_backup_check_schedule': 'every tuesday'}, ['mailu_backup_check_schedule', 'every tuesday']),
    ({'mailu_backup_randomized_delay': 'a while'}, ['mailu_backup_randomized_delay', 'a while']),
], ids=['repository', 'password', 'database-password', 'extra-paths', 'ssh-without-sftp', 'schedule', 'delay'])
def test_bad_input_is_refused_by_name(tmp_path, variables, words):
    result, files = render(tmp_path, variables)
    assert result.returncode != 0
    for word in words:
        assert word in result.stdout, result.stdout[-3000:]
    assert not files
    for secret in SECRETS[:3]:
        assert secret not in result.stdout + result.stderr
