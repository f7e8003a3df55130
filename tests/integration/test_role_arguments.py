"""Bad role variables are refused by the roles' argument specs, naming the variable,
before any task of the role runs (nothing on the host is touched)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CASES = [
    ('mailu_stack', {'mailu_stack_version': '2.0'}, 'mailu_stack_version'),
    ('mailu_stack', {'mailu_stack_ports': 'twenty-five'}, 'mailu_stack_ports'),
    ('mailu_stack', {'mailu_stack_admin_enabled': 'perhaps'}, 'mailu_stack_admin_enabled'),
    ('mailu_stack', {'mailu_stack_image_source': 'usb-stick'}, 'mailu_stack_image_source'),
    ('mailu_stack', {'mailu_stack_message_size_limit': 'huge'}, 'mailu_stack_message_size_limit'),
    ('mailu_accounts', {'mailu_accounts_users': 'admin@example.org'}, 'mailu_accounts_users'),
    ('mailu_accounts', {'mailu_accounts_purge': ['mailboxes']}, 'mailu_accounts_purge'),
    ('mailu_accounts', {'mailu_accounts_update_password': 'sometimes'}, 'mailu_accounts_update_password'),
    ('mailu_database', {'mailu_database_mode': 'cloud'}, 'mailu_database_mode'),
    ('mailu_docker', {'mailu_docker_source': 'snap'}, 'mailu_docker_source'),
    ('mailu_certificates', {'mailu_certificates_min_days_valid': 'soon'}, 'mailu_certificates_min_days_valid'),
    ('mailu_certificates', {'mailu_certificates_hostnames': {'a': 1}}, 'mailu_certificates_hostnames'),
    ('mailu_dkim', {'mailu_dkim_mailu_version': '2.0'}, 'mailu_dkim_mailu_version'),
    ('mailu_dkim', {'mailu_dkim_keys': [{'domain': 'example.org'}]}, 'private_key'),
    ('mailu_backup', {'mailu_backup_max_age_action': 'shrug'}, 'mailu_backup_max_age_action'),
    ('mailu_backup', {'mailu_backup_keep_daily': 'many'}, 'mailu_backup_keep_daily'),
    ('mailu_backup', {'mailu_backup_restore_force': 'perhaps'}, 'mailu_backup_restore_force'),
]


@pytest.mark.parametrize('role, variables, name', CASES, ids=[c[2] for c in CASES])
def test_a_bad_variable_is_refused_by_name_before_any_task(tmp_path, role, variables, name):
    playbook = tmp_path / 'play.yml'
    playbook.write_text(
        '- hosts: localhost\n'
        '  gather_facts: true\n'
        '  roles:\n'
        '    - nantral.mailu.%s\n' % role)
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK='ansible.posix.json', ANSIBLE_LOCALHOST_WARNING='false',
               ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_GATHER_SUBSET='min')
    out = subprocess.run([str(Path(sys.executable).parent / 'ansible-playbook'), '-i', 'localhost,', '-c', 'local',
                          '-e', json.dumps(variables), str(playbook)],
                         env=env, capture_output=True, text=True, check=False)
    assert out.returncode != 0
    tasks = json.loads(out.stdout)['plays'][0]['tasks']
    # Facts, then the argument spec validation, which failed: no task of the role ran.
    assert len(tasks) == 2, [t["task"]["name"] for t in tasks]
    result = tasks[1]["hosts"]["localhost"]
    assert result["failed"] and "argument" in tasks[1]["task"]["name"].lower()
    assert name in result['msg']
