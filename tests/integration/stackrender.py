"""Render the mailu_stack role's templates the way the role does: its settings.yml with the
given variables, then its templates, with ansible-playbook on localhost, into a directory of
the caller's own. Nothing is installed or started."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / 'roles' / 'mailu_stack' / 'templates'

BASE = {
    'mailu_stack_domain': 'example.org',
    'mailu_stack_hostnames': ['mail.example.org'],
    'mailu_stack_db_password': 'plain',
}


def render(tmp_path, variables, files=('mailu.env', 'database.env', 'compose.env', 'postfix.cf')):
    """Run settings.yml with these variables, then render the role's templates into tmp_path.
    Returns (completed process, {file name: text})."""
    out = tmp_path / 'out'
    out.mkdir(exist_ok=True)
    tasks = ''.join(
        '    - ansible.builtin.template:\n'
        '        src: %s/%s.j2\n'
        '        dest: %s/%s\n'
        '        mode: "0600"\n' % (TEMPLATES, name, out, name) for name in files)
    playbook = tmp_path / 'play.yml'
    playbook.write_text(
        '- hosts: localhost\n'
        '  gather_facts: false\n'
        '  vars:\n'
        '    _mailu_stack_secret_key: SECRETKEY0000000\n'
        '    _mailu_stack_api_token: apitoken\n'
        '  tasks:\n'
        '    - ansible.builtin.include_role:\n'
        '        name: nantral.mailu.mailu_stack\n'
        '        tasks_from: settings.yml\n'
        '        public: true\n' + tasks)
    env = dict(os.environ, ANSIBLE_LOCALHOST_WARNING='false', ANSIBLE_PYTHON_INTERPRETER=sys.executable,
               ANSIBLE_NOCOLOR='1')
    extra = dict(BASE, **variables)
    result = subprocess.run([str(Path(sys.executable).parent / 'ansible-playbook'), '-i', 'localhost,', '-c', 'local',
                             '-e', json.dumps(extra), str(playbook)],
                            env=env, capture_output=True, text=True, check=False)
    return result, {p.name: p.read_text() for p in out.iterdir()}
