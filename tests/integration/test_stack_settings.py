"""What the mailu_stack role writes for Mailu, and what it refuses, rendered by the role's
own tasks (settings.yml, then its templates) with ansible-playbook on localhost. Nothing
is installed or started: the files go to a directory of the test's own."""

import json
import os
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest
from alembic.config import Config

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / 'roles' / 'mailu_stack' / 'templates'
# Every character a URI, a config parser, compose's env_file reader or a shell treats as syntax.
HOSTILE_PASSWORD = 'Db/pa%ss:w@rd%41 \'q\' "x" $HOME ${X} \\n #y'

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


def env_lines(text):
    return dict(line.split('=', 1) for line in text.splitlines() if line and not line.startswith('#'))


# --- Item 1: any database password, and Mailu's migrations still get their URI ------------------

def test_any_password_stays_out_of_the_uri_that_alembic_parses(tmp_path):
    result, files = render(tmp_path, {'mailu_stack_db_password': HOSTILE_PASSWORD})
    assert result.returncode == 0, result.stdout
    uri = env_lines(files['mailu.env'])['SQLALCHEMY_DATABASE_URI']
    assert uri == 'postgresql://mailu@192.168.203.1:5432/mailu'
    # What Mailu's core/admin/migrations/env.py does with it: it must not raise.
    config = Config()
    config.set_main_option('sqlalchemy.url', uri)
    assert config.get_main_option('sqlalchemy.url') == uri
    # The password goes to the admin alone, as libpq's PGPASSWORD, in compose's
    # double-quoted env_file form: \, " and $ escaped, nothing else.
    value = env_lines(files['database.env'])['PGPASSWORD']
    assert value.startswith('"') and value.endswith('"')
    unescaped = value[1:-1].replace('\\\\', '\0').replace('\\"', '"').replace('\\$', '$').replace('\0', '\\')
    assert unescaped == HOSTILE_PASSWORD
    assert HOSTILE_PASSWORD not in files['mailu.env']
    assert urllib.parse.quote(HOSTILE_PASSWORD, safe='') not in files['mailu.env']


def test_a_url_encoded_password_is_what_alembic_refuses():
    # The failure the role avoids, shown with the same Alembic call: why no password is in the URI.
    config = Config()
    with pytest.raises(ValueError, match='interpolation'):
        config.set_main_option('sqlalchemy.url', 'postgresql://mailu:%s@db/mailu'
                               % urllib.parse.quote(HOSTILE_PASSWORD, safe=''))


@pytest.mark.parametrize('variable, value', [
    ('mailu_stack_db_user', 'mail%u'),
    ('mailu_stack_db_name', 'mailu db'),
    ('mailu_stack_db_password', 'two\nlines'),
])
def test_names_and_passwords_that_cannot_be_passed_on_are_refused(tmp_path, variable, value):
    result, _files = render(tmp_path, {variable: value})
    assert result.returncode != 0
    assert variable in result.stdout


# --- Item 2: the web root points at a location front serves ----------------------------------

@pytest.mark.parametrize('version, webmail, admin, expected', [
    ('2024.06', 'roundcube', True, '/webmail'),
    ('2024.06', 'snappymail', False, '/webmail'),
    ('2024.06', 'none', True, '/admin'),
    ('2024.06', 'none', False, ''),
    ('1.9', 'roundcube', True, '/webmail'),
    ('1.9', 'rainloop', False, '/webmail'),
    ('1.9', 'none', True, ''),
    ('1.9', 'none', False, ''),
])
def test_webroot_redirect_is_what_mailus_setup_writes(tmp_path, version, webmail, admin, expected):
    # Mailu's setup/flavors/compose/mailu.env at 1.9.50 and 2024.06.57.
    result, files = render(tmp_path, {'mailu_stack_version': version, 'mailu_stack_webmail': webmail,
                                      'mailu_stack_admin_enabled': admin}, files=('mailu.env',))
    assert result.returncode == 0, result.stdout
    lines = env_lines(files['mailu.env'])
    assert lines['WEBROOT_REDIRECT'] == expected
    assert lines['WEB_WEBMAIL'] == ('' if version == '1.9' and webmail == 'none' else '/webmail')


# --- Item 3: a release and its images belong together ----------------------------------------

@pytest.mark.parametrize('version, tag, expected', [
    ('1.9', '', '1.9.50'),
    ('2024.06', '', '2024.06.57'),
    ('1.9', '1.9', '1.9'),
    ('1.9', '1.9.42', '1.9.42'),
    ('2024.06', '2024.06.13', '2024.06.13'),
])
def test_the_release_decides_the_image_tag(tmp_path, version, tag, expected):
    result, files = render(tmp_path, {'mailu_stack_version': version, 'mailu_stack_image_tag': tag},
                           files=('compose.env',))
    assert result.returncode == 0, result.stdout
    assert env_lines(files['compose.env'])['MAILU_VERSION'] == expected


@pytest.mark.parametrize('version, tag', [
    ('1.9', '2024.06.57'), ('2024.06', '1.9.50'), ('2024.06', '2024.6'), ('1.9', '1.90'), ('2024.06', 'latest')])
def test_a_tag_of_another_release_is_refused_by_name(tmp_path, version, tag):
    result, files = render(tmp_path, {'mailu_stack_version': version, 'mailu_stack_image_tag': tag})
    assert result.returncode != 0
    assert 'mailu_stack_image_tag %s is not a tag of Mailu %s' % (tag, version) in result.stdout
    assert not files


# --- Item 4: nothing that arrives from the gateway relays ------------------------------------

def test_postfix_trusts_the_mailu_network_but_not_its_gateway(tmp_path):
    result, files = render(tmp_path, {'mailu_stack_relaynets': ['203.0.113.10/32', '2001:db8::10/128']},
                           files=('postfix.cf',))
    assert result.returncode == 0, result.stdout
    settings = {k.strip(): v.strip() for k, v in env_lines(files['postfix.cf']).items()}
    assert settings['mynetworks'].split() == [
        '127.0.0.1/32', '203.0.113.10/32', '[2001:db8::10]/128', '!192.168.203.1', '192.168.203.0/24']
    assert settings['smtpd_authorized_xclient_hosts'].split() == ['!192.168.203.1', '192.168.203.0/24']


def test_publishing_on_ipv6_is_refused_with_the_reason(tmp_path):
    result, _files = render(tmp_path, {'mailu_stack_bind_address6': '2001:db8::1'})
    assert result.returncode != 0
    assert 'mailu_stack_bind_address6' in result.stdout and 'open relay' in result.stdout


# --- Item 8: the defaults new users get are the deployment's ---------------------------------

@pytest.mark.parametrize('version', ['1.9', '2024.06'])
def test_the_new_user_defaults_are_written_for_mailu(tmp_path, version):
    result, files = render(tmp_path, {'mailu_stack_version': version, 'mailu_stack_default_quota': 5000000000,
                                      'mailu_stack_default_spam_threshold': 60}, files=('mailu.env',))
    assert result.returncode == 0, result.stdout
    lines = env_lines(files['mailu.env'])
    assert lines['DEFAULT_QUOTA'] == '5000000000'
    # 1.9 has no such setting: its ORM always gives 80.
    assert lines.get('DEFAULT_SPAM_THRESHOLD') == ('60' if version == '2024.06' else None)


# --- DKIM: the selector Mailu signs with is the one the keys are named after -----------------

@pytest.mark.parametrize('selector, expected', [('dkim', None), ('mail2026', 'mail2026')])
def test_the_dkim_selector_is_written_when_not_mailus_default(tmp_path, selector, expected):
    result, files = render(tmp_path, {'mailu_stack_dkim_selector': selector}, files=('mailu.env',))
    assert result.returncode == 0, result.stdout
    assert env_lines(files['mailu.env']).get('DKIM_SELECTOR') == expected


@pytest.mark.parametrize('selector', ['../x', 'a b', 'dkim.', ''])
def test_a_dkim_selector_that_is_no_dns_name_is_refused(tmp_path, selector):
    result, files = render(tmp_path, {'mailu_stack_dkim_selector': selector}, files=('mailu.env',))
    assert result.returncode != 0 and 'mailu_stack_dkim_selector' in result.stdout, result.stdout
    assert not files
