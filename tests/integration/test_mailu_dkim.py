"""mailu_dkim as Ansible runs it, on real files: the four steps, each release's owner and
PEM form, keys given by the inventory, refusals that write nothing, and no private
material in any result.

Every key file is checked the way Mailu's admin uses it: loaded with cryptography's
``load_pem_private_key(pem, password=None)`` (what 2024.06 does; 1.9's pyOpenSSL reads the
same PEM) and its public part compared with what the result says the DNS must publish.
"""

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ROOT = os.geteuid() == 0


def pem(key, form=serialization.PrivateFormat.PKCS8):
    return key.private_bytes(serialization.Encoding.PEM, form, serialization.NoEncryption()).decode('ascii')


def public_b64(key):
    spki = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return ''.join(spki.decode('ascii').splitlines()[1:-1])


@pytest.fixture(scope='module')
def keys():
    return [rsa.generate_private_key(public_exponent=65537, key_size=2048) for unused in range(3)]


@pytest.fixture
def dkim_dir(tmp_path):
    path = tmp_path / 'dkim'
    path.mkdir()
    return path


@pytest.fixture
def dkim(run, dkim_dir):
    """The module on ``dkim_dir``, owned by the test's own user unless told otherwise."""
    def call(check=False, diff=False, **options):
        options.setdefault('mailu_version', '2024.06')
        if not options.pop('as_release', False):
            options.setdefault('owner', os.getuid())
            options.setdefault('group', os.getgid())
        return run('mailu_dkim', check=check, diff=diff, dkim_dir=str(dkim_dir), **options)
    return call


def warnings(result):
    return [w['event']['msg'] if isinstance(w, dict) else w for w in result.get('warnings', [])]


def files(directory):
    """{name: bytes} of every entry, temporary files included."""
    return {name: (directory / name).read_bytes() for name in sorted(os.listdir(directory))}


def mailu_loads(path):
    """The key the admin signs with: PKCS#8 PEM, unencrypted, RSA 2048, e 65537."""
    data = path.read_bytes()
    key = serialization.load_pem_private_key(data, password=None)
    return data, key


def private_fragments(*pems):
    """Lines of a PEM's base64 that hold private material (the modulus at the start of a
    private key is public: a line of it may be part of the public key's base64)."""
    fragments = []
    for text in pems:
        try:
            public = public_b64(serialization.load_pem_private_key(text.encode(), password=None))
        except (TypeError, ValueError):
            public = ''
        fragments.extend(line for line in text.splitlines()
                         if line and not line.startswith('-----') and ':' not in line and line not in public)
    return fragments


def assert_no_private_material(result, *pems):
    result = dict(result)
    invocation = result.pop('invocation', {})
    for entry in invocation.get('module_args', {}).get('keys') or []:
        assert entry['private_key'] == 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER'
    text = json.dumps(result)
    assert 'PRIVATE' not in text
    # A private key the module tried to return would come back masked.
    assert '********' not in text and 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER' not in text
    for fragment in private_fragments(*pems):
        assert fragment not in text


# ---------------------------------------------------------------- generated keys

@pytest.mark.parametrize('release', ['1.9', '2024.06'])
def test_four_steps_generate_once(dkim, dkim_dir, release):
    checked = dkim(check=True, diff=True, domains=['example.org', 'Example.NET'], mailu_version=release)
    assert checked['changed'] is True and not checked.get('failed'), checked
    assert files(dkim_dir) == {}
    assert sorted(checked['domains']) == ['example.net', 'example.org']
    assert checked['diff']['before'] == {}
    assert checked['diff']['after']['example.org']['public_key'] == '(generated when applied)'
    assert checked['changes'] == [
        'example.net: a new RSA 2048 key written to %s/example.net.dkim.key' % dkim_dir,
        'example.org: a new RSA 2048 key written to %s/example.org.dkim.key' % dkim_dir]

    applied = dkim(diff=True, domains=['example.org', 'Example.NET'], mailu_version=release)
    assert applied['changed'] is True, applied
    assert sorted(files(dkim_dir)) == ['example.net.dkim.key', 'example.org.dkim.key']
    for name in ('example.org', 'example.net'):
        path = dkim_dir / ('%s.dkim.key' % name)
        data, key = mailu_loads(path)
        assert data.startswith(b'-----BEGIN PRIVATE KEY-----\n'), release
        assert isinstance(key, rsa.RSAPrivateKey)
        assert (key.key_size, key.private_numbers().public_numbers.e) == (2048, 65537)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        described = applied['domains'][name]
        assert described['public_key'] == public_b64(key)
        assert described['action'] == 'generated' and described['selector'] == 'dkim'
        assert applied['diff']['after'][name]['public_key'] == public_b64(key)
        assert_no_private_material(applied, data.decode())
    first = files(dkim_dir)

    again = dkim(check=True, diff=True, domains=['example.org', 'Example.NET'], mailu_version=release)
    assert again['changed'] is False and again['changes'] == [], again
    assert again['diff'] == {'before': {}, 'after': {}}
    assert {n: d['action'] for n, d in again['domains'].items()} == {'example.org': 'kept', 'example.net': 'kept'}

    last = dkim(domains=['example.org', 'Example.NET'], mailu_version=release)
    assert last['changed'] is False, last
    assert files(dkim_dir) == first
    assert last['domains']['example.org']['public_key'] == applied['domains']['example.org']['public_key']


@pytest.mark.skipif(not ROOT, reason='setting another owner needs root')
@pytest.mark.parametrize('release, owner', [('1.9', (0, 0)), ('2024.06', (1000, 1000))])
def test_each_release_s_admin_owns_its_keys(dkim, dkim_dir, release, owner):
    """1.9's admin runs as root; 2024.06's as uid 1000, which it gives /dkim only at its start."""
    result = dkim(domains=['example.org'], mailu_version=release, as_release=True)
    info = (dkim_dir / 'example.org.dkim.key').stat()
    assert (info.st_uid, info.st_gid) == owner
    assert (result['domains']['example.org']['owner'], result['domains']['example.org']['group']) == owner
    assert dkim(domains=['example.org'], mailu_version=release, as_release=True)['changed'] is False


@pytest.mark.skipif(not ROOT, reason='setting another owner needs root')
def test_a_key_the_running_2024_06_admin_could_not_read_is_repaired(dkim, dkim_dir, keys):
    path = dkim_dir / 'example.org.dkim.key'
    path.write_text(pem(keys[0]))
    os.chown(path, 0, 0)
    path.chmod(0o644)
    before = path.read_bytes()
    checked = dkim(check=True, diff=True, domains=['example.org'], as_release=True)
    assert checked['changed'] is True
    assert checked['changes'] == ['example.org: %s owner 0:0 mode 0644 set to 1000:1000 0600' % path]
    assert (checked['diff']['before']['example.org']['mode'], checked['diff']['after']['example.org']['mode']) == (
        '0644', '0600')
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    result = dkim(domains=['example.org'], as_release=True)
    assert result['domains']['example.org']['action'] == 'repaired'
    info = path.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (1000, 1000, 0o600)
    assert path.read_bytes() == before


def test_a_key_readable_by_others_is_made_0600_without_rewriting_it(dkim, dkim_dir, keys):
    path = dkim_dir / 'example.org.dkim.key'
    path.write_text(pem(keys[0], serialization.PrivateFormat.TraditionalOpenSSL))
    path.chmod(0o644)
    inode = path.stat().st_ino
    result = dkim(domains=['example.org'])
    assert result['changed'] is True and result['domains']['example.org']['action'] == 'repaired'
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # The installed key stays as it was written, traditional PEM included: both releases read it.
    assert path.stat().st_ino == inode
    assert path.read_text() == pem(keys[0], serialization.PrivateFormat.TraditionalOpenSSL)


def test_keys_are_never_readable_by_others_whatever_the_umask(dkim, dkim_dir):
    old = os.umask(0)
    try:
        dkim(domains=['example.org'])
    finally:
        os.umask(old)
    assert stat.S_IMODE((dkim_dir / 'example.org.dkim.key').stat().st_mode) == 0o600
    assert sorted(os.listdir(dkim_dir)) == ['example.org.dkim.key']  # no temporary file left


def test_the_selector_names_the_file(dkim, dkim_dir):
    result = dkim(domains=['example.org'], selector='mail2026')
    assert sorted(os.listdir(dkim_dir)) == ['example.org.mail2026.key']
    assert result['domains']['example.org']['selector'] == 'mail2026'


def test_accounts_domains_as_they_are_alternatives_and_absent_ones_get_no_key(dkim, dkim_dir):
    """2024.06 signs an alternative with its domain's key, 1.9 does not sign it: no file of its own."""
    (dkim_dir / 'gone.org.dkim.key').write_text('kept as Mailu keeps it')
    result = dkim(domains=[
        {'name': 'example.org', 'alternatives': ['example.net'], 'managers': ['a@example.org']},
        {'name': 'gone.org', 'state': 'absent'},
        {'name': 'école.fr', 'state': 'present'},
    ])
    assert sorted(result['domains']) == ['example.org', 'xn--cole-9oa.fr']
    assert sorted(os.listdir(dkim_dir)) == ['example.org.dkim.key', 'gone.org.dkim.key', 'école.fr.dkim.key']
    assert (dkim_dir / 'gone.org.dkim.key').read_text() == 'kept as Mailu keeps it'


# ---------------------------------------------------------------- keys from the inventory

def test_a_given_key_is_installed_where_none_is(dkim, dkim_dir, keys):
    given = pem(keys[0], serialization.PrivateFormat.TraditionalOpenSSL)
    checked = dkim(check=True, diff=True, keys=[{'domain': 'example.org', 'private_key': given}])
    assert checked['changed'] is True and files(dkim_dir) == {}
    assert checked['diff']['after']['example.org']['public_key'] == public_b64(keys[0])
    assert_no_private_material(checked, given)

    result = dkim(diff=True, keys=[{'domain': 'example.org', 'private_key': given}])
    assert result['domains']['example.org']['action'] == 'created'
    data, key = mailu_loads(dkim_dir / 'example.org.dkim.key')
    assert data.decode() == pem(keys[0])  # the form Mailu writes
    assert public_b64(key) == public_b64(keys[0]) == result['domains']['example.org']['public_key']
    assert_no_private_material(result, given, data.decode())

    assert dkim(keys=[{'domain': 'example.org', 'private_key': given}])['changed'] is False


def test_the_given_key_already_installed_changes_nothing(dkim, dkim_dir, keys):
    path = dkim_dir / 'example.org.dkim.key'
    path.write_text(pem(keys[0]))
    path.chmod(0o600)
    given = pem(keys[0], serialization.PrivateFormat.TraditionalOpenSSL)
    result = dkim(diff=True, domains=['example.org'], keys=[{'domain': 'example.org', 'private_key': given}])
    assert result['changed'] is False and result['domains']['example.org']['action'] == 'kept'
    assert path.read_text() == pem(keys[0])


def test_another_given_key_is_refused_naming_the_domain_and_nothing_is_written(dkim, dkim_dir, keys):
    path = dkim_dir / 'example.org.dkim.key'
    path.write_text(pem(keys[0]))
    path.chmod(0o600)
    before = files(dkim_dir)
    given = pem(keys[1])
    for check in (True, False):
        result = dkim(check=check, domains=['new.example'], keys=[{'domain': 'example.org', 'private_key': given}])
        assert result.get('failed') is True, result
        assert result['msg'].startswith('example.org: the given key (SHA256:')
        assert 'is not the installed one' in result['msg'] and 'replace: true' in result['msg']
        assert result['msg'].endswith('no key was written')
        assert_no_private_material(result, given, pem(keys[0]))
        # new.example would have had a key: all or nothing.
        assert files(dkim_dir) == before


def test_another_given_key_replaces_with_replace_true(dkim, dkim_dir, keys):
    path = dkim_dir / 'example.org.dkim.key'
    path.write_text(pem(keys[0]))
    path.chmod(0o600)
    entry = {'domain': 'example.org', 'private_key': pem(keys[1]), 'replace': True}
    checked = dkim(check=True, diff=True, keys=[entry])
    assert checked['changed'] is True
    assert checked['diff']['before']['example.org']['public_key'] == public_b64(keys[0])
    assert checked['diff']['after']['example.org']['public_key'] == public_b64(keys[1])
    assert re.fullmatch(r'example\.org: key SHA256:[0-9a-f]{64} replaced by the given key SHA256:[0-9a-f]{64} in .*',
                        checked['changes'][0])
    assert path.read_text() == pem(keys[0])
    assert_no_private_material(checked, pem(keys[0]), pem(keys[1]))

    result = dkim(diff=True, keys=[entry])
    assert result['domains']['example.org']['action'] == 'replaced'
    assert public_b64(mailu_loads(path)[1]) == public_b64(keys[1])
    assert_no_private_material(result, pem(keys[0]), pem(keys[1]))
    # replace: true is no reason to write again.
    assert dkim(keys=[entry])['changed'] is False


def test_an_installed_file_that_is_no_key_is_refused_unless_replaced(dkim, dkim_dir, keys):
    path = dkim_dir / 'example.org.dkim.key'
    path.write_text('not a key\n')
    result = dkim(domains=['example.org'])
    assert result.get('failed') is True
    assert 'example.org: %s is not a PEM private key' % path in result['msg']
    assert path.read_text() == 'not a key\n'
    refused = dkim(domains=['example.org'], keys=[{'domain': 'example.org', 'private_key': pem(keys[2])}])
    assert refused.get('failed') is True and path.read_text() == 'not a key\n'
    result = dkim(diff=True, keys=[{'domain': 'example.org', 'private_key': pem(keys[2]), 'replace': True}])
    assert result['domains']['example.org']['action'] == 'replaced'
    assert result['diff']['before']['example.org']['public_key'] == '(unreadable)'
    assert public_b64(mailu_loads(path)[1]) == public_b64(keys[2])


def test_a_symlink_in_place_of_a_key_is_refused_and_its_target_untouched(dkim, dkim_dir, tmp_path, keys):
    target = tmp_path / 'elsewhere'
    target.write_text('precious\n')
    os.symlink(str(target), str(dkim_dir / 'example.org.dkim.key'))
    for entry in ([], [{'domain': 'example.org', 'private_key': pem(keys[0]), 'replace': True}]):
        result = dkim(domains=['example.org'], keys=entry)
        assert result.get('failed') is True
        assert 'is not a regular file (a symlink, perhaps)' in result['msg']
        assert target.read_text() == 'precious\n'
        assert os.path.islink(dkim_dir / 'example.org.dkim.key')


# ---------------------------------------------------------------- bad input

def _openssl_key(bits):
    out = subprocess.run(['openssl', 'genrsa', str(bits)], check=True, capture_output=True).stdout
    return out.decode()


@pytest.mark.parametrize('private_key, message', [
    ('garbage', 'is not a PEM private key'),
    ('-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n', 'is encrypted'),
    (None, 'has 512 bits; DKIM keys have 1024 to 4096'),
])
def test_a_bad_given_key_is_refused_naming_the_domain(dkim, dkim_dir, private_key, message):
    private_key = private_key or _openssl_key(512)
    result = dkim(keys=[{'domain': 'example.org', 'private_key': private_key}])
    assert result.get('failed') is True
    assert result['msg'].startswith('keys: the private_key of example.org') and message in result['msg']
    assert files(dkim_dir) == {}
    assert_no_private_material(result, private_key)


def test_a_1024_bit_key_is_accepted_with_a_warning(dkim, dkim_dir):
    given = _openssl_key(1024)
    result = dkim(keys=[{'domain': 'example.org', 'private_key': given}])
    assert result['changed'] is True
    assert any('example.org: the given key has 1024 bits' in w for w in warnings(result)), result['warnings']
    assert mailu_loads(dkim_dir / 'example.org.dkim.key')[1].key_size == 1024


def test_a_domain_given_twice_is_refused(dkim, keys):
    entry = {'domain': 'example.org', 'private_key': pem(keys[0])}
    result = dkim(keys=[entry, dict(entry, domain='EXAMPLE.org')])
    assert result.get('failed') is True and result['msg'] == 'keys: example.org is given twice'


def test_a_missing_directory_is_refused(run, tmp_path):
    result = run('mailu_dkim', dkim_dir=str(tmp_path / 'nowhere'), domains=['example.org'], mailu_version='1.9',
                 owner=os.getuid(), group=os.getgid())
    assert result.get('failed') is True
    assert result['msg'].startswith('cannot open the DKIM directory %s' % (tmp_path / 'nowhere'))


def test_check_mode_before_the_directory_exists_plans_every_key(run, tmp_path):
    result = run('mailu_dkim', check=True, dkim_dir=str(tmp_path / 'nowhere'), domains=['example.org'],
                 mailu_version='2024.06')
    assert result['changed'] is True and result['domains']['example.org']['action'] == 'generated'
    assert any('%s does not exist yet' % (tmp_path / 'nowhere') in w for w in warnings(result))
    assert not (tmp_path / 'nowhere').exists()


@pytest.mark.parametrize('options, message', [
    (dict(selector='../dkim'), 'selector must be DNS labels'),
    (dict(domains=['not a domain']), 'must not contain spaces'),
    (dict(domains=[{'alternatives': ['x.org']}]), 'every entry needs a name'),
])
def test_bad_options_are_refused(dkim, dkim_dir, options, message):
    result = dkim(**options)
    assert result.get('failed') is True and message in result['msg'], result
    assert files(dkim_dir) == {}


# ---------------------------------------------------------------- the role, through ansible-playbook

@pytest.mark.skipif(not ROOT, reason="the role gives the keys to the release's admin user: needs root")
def test_the_role_shows_public_keys_only_and_a_rerun_changes_nothing(tmp_path, keys):
    """The role's key task as a playbook runs it (its package task aside), at -vvv with
    --diff: the given and the generated keys' private parts appear nowhere."""
    dkim_dir = tmp_path / 'dkim'
    dkim_dir.mkdir()
    given = pem(keys[0], serialization.PrivateFormat.TraditionalOpenSSL)
    variables = {
        'mailu_dkim_dir': str(dkim_dir),
        'mailu_dkim_mailu_version': '2024.06',
        # As the accounts role has them; the alternative gets no key.
        'mailu_accounts_domains': [{'name': 'example.org', 'alternatives': ['example.com']}, {'name': 'example.net'}],
        'mailu_dkim_keys': [{'domain': 'example.net', 'private_key': given}],
    }
    playbook = tmp_path / 'play.yml'
    playbook.write_text(
        '- hosts: localhost\n'
        '  gather_facts: false\n'
        '  tasks:\n'
        '    - ansible.builtin.include_role:\n'
        '        name: nantral.mailu.mailu_dkim\n'
        '        tasks_from: keys.yml\n'
        '    - ansible.builtin.debug:\n'
        '        msg: "P={{ mailu_dkim_result.domains[\'example.net\'].public_key }}"\n')
    env = dict(os.environ, ANSIBLE_LOCALHOST_WARNING='false', ANSIBLE_PYTHON_INTERPRETER=sys.executable,
               ANSIBLE_NOCOLOR='1', ANSIBLE_STDOUT_CALLBACK='default')

    def play(*options):
        out = subprocess.run([str(Path(sys.executable).parent / 'ansible-playbook'), '-i', 'localhost,', '-c', 'local',
                              '-vvv', '--diff', '-e', json.dumps(variables), str(playbook)] + list(options),
                             env=env, capture_output=True, text=True, check=False)
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout + out.stderr

    checked = play('--check')
    assert os.listdir(dkim_dir) == []
    assert 'P=%s' % public_b64(keys[0]) in checked
    assert '(generated when applied)' in checked

    applied = play()
    assert sorted(os.listdir(dkim_dir)) == ['example.net.dkim.key', 'example.org.dkim.key']
    generated = (dkim_dir / 'example.org.dkim.key').read_text()
    assert public_b64(serialization.load_pem_private_key(generated.encode(), password=None)) in applied
    assert re.search(r'changed=1\b', applied)

    again = play()
    assert re.search(r'changed=0\b', again)
    for output in (checked, applied, again):
        assert 'PRIVATE KEY' not in output
        for fragment in private_fragments(given, generated):
            assert fragment not in output
    info = (dkim_dir / 'example.org.dkim.key').stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (1000, 1000, 0o600)
