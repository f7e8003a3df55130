"""The certificate handoff engine: validation, Certbot lineages, atomic install, reload and rollback.

Certificates are made here with cryptography: a root CA, an intermediate and leaves, RSA
and EC.  Front is a fake here; tests/integration/test_mailu_certificate.py reloads a real one.
The certificates come from tests/pki.py.
"""

import datetime
import fcntl
import json
import os
import stat
import subprocess
import sys
import time
from types import SimpleNamespace

import docker
import pytest
from cryptography.hazmat.primitives import serialization

from ansible_collections.nantral.mailu.plugins.module_utils import mailu_certificate as engine
from ansible_collections.nantral.mailu.plugins.module_utils.mailu_certificate import (
    FrontError,
    InstallError,
    ReloadError,
    SourceError,
    ValidationError,
)
from pki import DAY, HOSTS, NOW, Pki, lineage, make_cert, new_key, pem, pem_key, tree, write_pair


@pytest.fixture(scope='module')
def pki():
    return Pki()


@pytest.fixture
def certs(tmp_path):
    path = tmp_path / 'certs'
    path.mkdir()
    return path


def problems(chain, key, hostnames=tuple(HOSTS), min_days_valid=7):
    return engine.validate(chain, key, hostnames, min_days_valid)


# ---------------------------------------------------------------- validation

@pytest.mark.parametrize('ca_kind, leaf_kind', [('ec', 'ec'), ('rsa', 'rsa'), ('ec', 'rsa'), ('rsa', 'ec')])
def test_valid_chains(ca_kind, leaf_kind):
    chain, key = Pki(ca_kind, slot=20).leaf(kind=leaf_kind)
    assert problems(chain, key) == []
    assert problems(chain + [Pki(ca_kind, slot=20).root], key) == []


def test_self_signed_leaf_alone_is_accepted():
    key = new_key()
    assert problems([make_cert('mail.example.org', key, names=HOSTS)], key) == []


@pytest.mark.parametrize('kind', ['ec', 'rsa'])
def test_key_mismatch(pki, kind):
    chain, _key = pki.leaf(kind=kind)
    other = new_key(kind, slot=1)
    found = problems(chain, other)
    assert len(found) == 1
    assert found[0].startswith('the private key (%s) does not match the certificate CN=mail.example.org ('
                               % engine.key_type(other))


def test_chain_out_of_order(pki):
    chain, key = pki.leaf()
    found = problems([chain[0], pki.root, pki.inter], key)
    assert found[0] == ('the chain is out of order: certificate 1 (CN=mail.example.org) is issued by '
                        'CN=Nantral Test Intermediate, but certificate 2 is CN=Nantral Test Root')
    assert problems([pki.inter, chain[0]], key)[0].startswith('the private key')


def test_leaf_without_its_issuer(pki):
    chain, key = pki.leaf()
    assert problems(chain[:1], key) == [
        'the certificate file holds only the leaf CN=mail.example.org: front needs the full chain, with its '
        'issuer CN=Nantral Test Intermediate (Certbot: fullchain.pem, not cert.pem)']


def test_signature_checked(pki):
    """An intermediate with the right name but another key did not sign the leaf."""
    chain, key = pki.leaf()
    impostor = make_cert('Nantral Test Intermediate', new_key(slot=2), pki.root, pki.root_key, ca=True)
    assert problems([chain[0], impostor], key) == [
        'certificate 1 (CN=mail.example.org) is not signed by the key of certificate 2 '
        '(CN=Nantral Test Intermediate)']


def test_rsa_signature_checked():
    pki = Pki('rsa', slot=20)
    chain, key = pki.leaf(kind='rsa')
    impostor = make_cert('Nantral Test Intermediate', new_key('rsa', 3), pki.root, pki.root_key, ca=True)
    assert 'is not signed by the key of certificate 2' in problems([chain[0], impostor], key)[0]


def test_expired(pki):
    chain, key = pki.leaf(not_before=NOW - 100 * DAY, not_after=NOW - 10 * DAY)
    expected = (NOW - 10 * DAY).strftime('%Y-%m-%dT%H:%M:%SZ')
    assert problems(chain, key) == ['the certificate CN=mail.example.org expired on %s' % expected]


def test_not_yet_valid(pki):
    chain, key = pki.leaf(not_before=NOW + 2 * DAY)
    expected = (NOW + 2 * DAY).strftime('%Y-%m-%dT%H:%M:%SZ')
    assert problems(chain, key) == ['the certificate CN=mail.example.org is not valid yet: valid from %s' % expected]


def test_expires_too_soon(pki):
    chain, key = pki.leaf(not_after=NOW + 3 * DAY + datetime.timedelta(hours=1))
    found = problems(chain, key)
    assert len(found) == 1
    assert found[0] == ('the certificate CN=mail.example.org expires on %s, in 3.0 days, less than '
                        'min_days_valid (7)' % engine._when(engine.not_after(chain[0])))
    assert problems(chain, key, min_days_valid=3) == []
    assert problems(chain, key, min_days_valid=0) == []


def test_expired_intermediate(pki):
    chain, key = pki.leaf()
    old = make_cert('Nantral Test Intermediate', pki.inter_key, pki.root, pki.root_key, ca=True,
                    not_before=NOW - 400 * DAY, not_after=NOW - DAY)
    assert problems([chain[0], old], key) == [
        'certificate 2 (CN=Nantral Test Intermediate) expired on %s' % (NOW - DAY).strftime('%Y-%m-%dT%H:%M:%SZ')]


def test_missing_hostnames(pki):
    chain, key = pki.leaf(['mail.example.org'])
    assert problems(chain, key, ['Mail.Example.org.', 'imap.example.org', 'smtp.example.org']) == [
        'the certificate CN=mail.example.org does not cover imap.example.org, smtp.example.org '
        '(its names: mail.example.org)']
    assert problems(chain, key, []) == []


def test_common_name_alone_covers_nothing(pki):
    chain, key = pki.leaf(names=())
    assert problems(chain, key, ['nameless']) == [
        'the certificate CN=nameless does not cover nameless (its names: none, it has no subjectAltName)']


def test_every_problem_at_once(pki):
    chain, _key = pki.leaf(['mail.example.org'], not_before=NOW - 100 * DAY, not_after=NOW - DAY)
    found = problems(chain, new_key(slot=1), ['webmail.example.org'])
    assert [p.split(' ')[1] for p in found] == ['private', 'certificate', 'certificate']
    assert 'expired' in found[1] and 'does not cover webmail.example.org' in found[2]


@pytest.mark.parametrize('pattern, hostname, expected', [
    ('mail.example.org', 'mail.example.org', True),
    ('MAIL.example.org', 'mail.EXAMPLE.org.', True),
    ('*.example.org', 'mail.example.org', True),
    ('*.example.org', 'example.org', False),
    ('*.example.org', 'a.b.example.org', False),
    ('*.example.org', '.example.org', False),
    ('*.org', 'example.org', False),
    ('mail.*.org', 'mail.example.org', False),
    ('m*.example.org', 'mail.example.org', False),
    ('*.*.example.org', 'a.b.example.org', False),
    ('*.example.org', '*.example.org', True),
    ('*.example.org', '*.Example.org', True),
    ('xn--bcher-kva.example', 'bücher.example', True),
    ('*.xn--bcher-kva.example', 'mail.Bücher.example', True),
])
def test_hostname_matches(pattern, hostname, expected):
    assert engine.hostname_matches(pattern, hostname) is expected


def test_wildcard_certificate(pki):
    chain, key = pki.leaf(['*.example.org', 'example.org'])
    assert problems(chain, key, ['example.org', 'mail.example.org', 'imap.example.org']) == []
    assert 'does not cover a.mail.example.org' in problems(chain, key, ['a.mail.example.org'])[0]
    assert problems(chain, key, ['*.example.org']) == []


# ---------------------------------------------------------------- reading the source

def test_lineage_symlinks_are_followed(pki, tmp_path):
    first, second = pki.leaf(), pki.leaf(slot=1)
    live = lineage(tmp_path / 'letsencrypt', 'mail.example.org', [first])
    assert os.readlink(os.path.join(live, 'fullchain.pem')) == '../../archive/mail.example.org/fullchain1.pem'
    source = engine.read_source(live)
    assert source.certificate_path == str(tmp_path / 'letsencrypt/archive/mail.example.org/fullchain1.pem')
    assert source.private_key_path == str(tmp_path / 'letsencrypt/archive/mail.example.org/privkey1.pem')
    assert source.chain == first[0]
    lineage(tmp_path / 'letsencrypt', 'mail.example.org', [first, second])
    renewed = engine.read_source(live)
    assert renewed.private_key_path.endswith('/privkey2.pem')
    assert renewed.chain == second[0] and engine.key_matches(renewed.key, second[0][0])


def test_lineage_dangling_symlink(pki, tmp_path):
    live = lineage(tmp_path, 'x', [pki.leaf()])
    os.unlink(tmp_path / 'archive/x/privkey1.pem')
    with pytest.raises(SourceError, match=r'privkey.pem points to \.\./\.\./archive/x/privkey1.pem, which is not a file'):
        engine.read_source(live)


def test_source_problems(pki, tmp_path):
    chain, key = pki.leaf()
    with pytest.raises(SourceError, match='the Certbot lineage .*/nowhere is not a directory'):
        engine.read_source(str(tmp_path / 'nowhere'))
    (tmp_path / 'empty.pem').write_bytes(b'nothing here\n')
    (tmp_path / 'key.pem').write_bytes(pem_key(key))
    with pytest.raises(SourceError, match='empty.pem holds no PEM certificate'):
        engine.read_source((tmp_path / 'empty.pem', tmp_path / 'key.pem'))
    (tmp_path / 'chain.pem').write_bytes(pem(*chain))
    with pytest.raises(SourceError, match='empty.pem holds no PEM private keys, not one'):
        engine.read_source((tmp_path / 'chain.pem', tmp_path / 'empty.pem'))
    (tmp_path / 'two.pem').write_bytes(pem_key(key) + pem_key(new_key(slot=1)))
    with pytest.raises(SourceError, match='two.pem holds 2 PEM private keys, not one'):
        engine.read_source((tmp_path / 'chain.pem', tmp_path / 'two.pem'))
    (tmp_path / 'locked.pem').write_bytes(
        pem_key(key, encryption=serialization.BestAvailableEncryption(b'secret')))
    with pytest.raises(SourceError, match='the private key in .*locked.pem is encrypted'):
        engine.read_source((tmp_path / 'chain.pem', tmp_path / 'locked.pem'))
    with pytest.raises(SourceError, match='cannot read|is not a file'):
        engine.read_source((tmp_path / 'chain.pem', tmp_path / 'missing.pem'))


def test_combined_file_key_not_copied_into_chain(pki, tmp_path, certs):
    """A certificate file that also holds the key: only the certificates reach cert.pem (world-readable)."""
    chain, key = pki.leaf()
    (tmp_path / 'combined.pem').write_bytes(pem_key(key) + b'Bag Attributes: noise\n' + pem(*chain))
    result = engine.handoff((tmp_path / 'combined.pem', tmp_path / 'combined.pem'), str(certs), HOSTS, front=None)
    assert result.changed
    assert (certs / 'cert.pem').read_bytes() == pem(*chain)
    assert b'PRIVATE' not in (certs / 'cert.pem').read_bytes()


# ---------------------------------------------------------------- installing

def handoff(source, certs, **options):
    options.setdefault('front', None)
    return engine.handoff(source, str(certs), HOSTS, **options)


def test_first_install(pki, tmp_path, certs):
    chain, key = pki.leaf()
    live = lineage(tmp_path / 'le', 'mail', [(chain, key)])
    result = handoff(live, certs)
    assert result.changed and result.changes == ['no pair was installed']
    assert result.before == {}
    assert result.installed == dict(
        fingerprint_sha256=engine.fingerprint(chain[0]), subject='CN=mail.example.org',
        issuer='CN=Nantral Test Intermediate', names=HOSTS, not_before=engine._when(engine.not_before(chain[0])),
        not_after=engine._when(engine.not_after(chain[0])), key_type='EC secp256r1', chain_length=2)
    assert result.diff() == dict(before={}, after=result.installed)
    files = tree(str(certs))
    assert files == {'cert.pem': ('file', 0o644, pem(*chain)), 'key.pem': ('file', 0o600, pem_key(key))}
    assert (result.cert_path, result.key_path) == (str(certs / 'cert.pem'), str(certs / 'key.pem'))


def test_idempotent_and_content_compared(pki, tmp_path, certs):
    chain, key = pki.leaf()
    cert_file, key_file = write_pair(tmp_path / 'src', chain, key)
    assert handoff((cert_file, key_file), certs).changed
    inode = os.stat(certs / 'cert.pem').st_ino
    os.utime(certs / 'cert.pem', (0, 0))  # mtimes do not count
    again = handoff((cert_file, key_file), certs)
    assert not again.changed and again.changes == []
    assert again.before == again.installed and again.installed['fingerprint_sha256'] == engine.fingerprint(chain[0])
    assert os.stat(certs / 'cert.pem').st_ino == inode
    # The same key in another encoding is the same served pair.
    (certs / 'key.pem').write_bytes(pem_key(key, serialization.PrivateFormat.TraditionalOpenSSL))
    assert not handoff((cert_file, key_file), certs).changed


def test_new_pair_keeps_previous(pki, tmp_path, certs):
    old, new = pki.leaf(), pki.leaf(slot=1)
    handoff(write_pair(tmp_path / 'a', *old), certs)
    result = handoff(write_pair(tmp_path / 'b', *new), certs)
    assert result.changed
    assert result.changes == ['certificate %s replaces %s' % (engine.fingerprint(new[0][0]),
                                                              engine.fingerprint(old[0][0]))]
    assert result.before['fingerprint_sha256'] == engine.fingerprint(old[0][0])
    assert result.installed['fingerprint_sha256'] == engine.fingerprint(new[0][0])
    assert tree(str(certs)) == {
        'cert.pem': ('file', 0o644, pem(*new[0])), 'key.pem': ('file', 0o600, pem_key(new[1])),
        'cert.pem.previous': ('file', 0o644, pem(*old[0])), 'key.pem.previous': ('file', 0o600, pem_key(old[1]))}
    assert handoff(write_pair(tmp_path / 'b', *new), certs).changed is False


def test_installed_key_not_matching(pki, tmp_path, certs):
    """Same chain installed, but another key beside it: front cannot use that, the pair is written again."""
    chain, key = pki.leaf()
    handoff(write_pair(tmp_path / 'a', chain, key), certs)
    (certs / 'key.pem').write_bytes(pem_key(new_key(slot=1)))
    result = handoff(write_pair(tmp_path / 'a', chain, key), certs)
    problem = '%s (EC secp256r1) does not match the certificate' % (certs / 'key.pem')
    assert result.before == dict(result.installed, problem=problem)
    assert result.changes == ['the installed pair is unusable: %s' % problem]
    assert (certs / 'key.pem').read_bytes() == pem_key(key)


def test_lock_held_by_another_handoff(pki, tmp_path, certs, monkeypatch):
    monkeypatch.setattr(engine, 'LOCK_TIMEOUT', 0.3)
    fd = os.open(certs, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(InstallError, match='another handoff has held .* for 0 s; nothing was changed'):
            handoff(write_pair(tmp_path / 'a', *pki.leaf()), certs)
    finally:
        os.close(fd)
    assert os.listdir(certs) == []
    assert handoff(write_pair(tmp_path / 'a', *pki.leaf()), certs).changed


def test_without_previous(pki, tmp_path, certs):
    handoff(write_pair(tmp_path / 'a', *pki.leaf()), certs)
    handoff(write_pair(tmp_path / 'b', *pki.leaf(slot=1)), certs, keep_previous=False)
    assert sorted(os.listdir(certs)) == ['cert.pem', 'key.pem']


def test_custom_file_names(pki, tmp_path, certs):
    chain, key = pki.leaf()
    result = handoff(write_pair(tmp_path / 'a', chain, key), certs, cert_filename='chain.pem',
                     key_filename='private.pem')
    assert sorted(os.listdir(certs)) == ['chain.pem', 'private.pem']
    assert result.key_path == str(certs / 'private.pem')
    for bad in ('../cert.pem', '/etc/cert.pem', ''):
        with pytest.raises(engine.CertificateError, match='cert_filename must be a file name relative'):
            handoff(write_pair(tmp_path / 'a', chain, key), certs, cert_filename=bad)


def test_check_mode_writes_nothing(pki, tmp_path, certs):
    handoff(write_pair(tmp_path / 'a', *pki.leaf()), certs)
    before = tree(str(certs))
    new = pki.leaf(slot=1)
    front = FakeFront()
    result = handoff(write_pair(tmp_path / 'b', *new), certs, check_mode=True, front=front)
    assert result.changed and result.installed['fingerprint_sha256'] == engine.fingerprint(new[0][0])
    assert result.reloaded == [] and front.calls == []
    assert tree(str(certs)) == before


def test_symlinks_replaced_by_real_files(pki, tmp_path, certs):
    """Certbot's live/ symlinks copied into the certs directory: replaced by real files."""
    chain, key = pki.leaf()
    live = lineage(tmp_path / 'le', 'mail', [(chain, key)])
    os.symlink(os.path.join(live, 'fullchain.pem'), certs / 'cert.pem')
    os.symlink(os.path.join(live, 'privkey.pem'), certs / 'key.pem')
    result = handoff(live, certs)
    assert result.changes == ['cert.pem was a symlink to %s/fullchain.pem' % live,
                              'key.pem was a symlink to %s/privkey.pem' % live]
    assert result.before == result.installed
    assert tree(str(certs)) == {'cert.pem': ('file', 0o644, pem(*chain)), 'key.pem': ('file', 0o600, pem_key(key))}


def test_key_mode_repaired(pki, tmp_path, certs):
    source = write_pair(tmp_path / 'a', *pki.leaf())
    handoff(source, certs)
    os.chmod(certs / 'key.pem', 0o644)
    result = handoff(source, certs)
    assert result.changes == ['key.pem had mode 0644']
    assert stat.S_IMODE(os.stat(certs / 'key.pem').st_mode) == 0o600
    assert not os.path.exists(certs / 'key.pem.previous')


def test_unusable_installed_pair_replaced(pki, tmp_path, certs):
    (certs / 'cert.pem').write_bytes(b'garbage')
    (certs / 'key.pem').write_bytes(b'garbage')
    result = handoff(write_pair(tmp_path / 'a', *pki.leaf()), certs)
    assert result.before == {'problem': '%s holds no PEM certificate' % (certs / 'cert.pem')}
    assert result.changes == ['the installed pair is unusable: %s' % result.before['problem']]
    assert (certs / 'cert.pem.previous').read_bytes() == b'garbage'


def test_refusal_leaves_everything(pki, tmp_path, certs):
    handoff(write_pair(tmp_path / 'a', *pki.leaf()), certs)
    before = tree(str(certs))
    expired = pki.leaf(slot=1, not_before=NOW - 100 * DAY, not_after=NOW - DAY)
    source = write_pair(tmp_path / 'b', *expired)
    with pytest.raises(ValidationError) as info:
        handoff(source, certs, front=FakeFront())
    assert str(info.value).startswith('refusing the certificate from %s, the installed pair is left as it is: '
                                      'the certificate CN=mail.example.org expired on ' % source[0])
    assert tree(str(certs)) == before


def test_missing_certs_dir(pki, tmp_path):
    with pytest.raises(InstallError, match='the certs directory .*/absent does not exist; nothing was changed'):
        handoff(write_pair(tmp_path / 'a', *pki.leaf()), tmp_path / 'absent')


@pytest.mark.parametrize('failing_call', [1, 2, 3, 4])
def test_failure_midway_puts_files_back(pki, tmp_path, certs, monkeypatch, failing_call):
    """The n-th rename fails (of: cert.pem.previous, key.pem.previous, key.pem, cert.pem)."""
    handoff(write_pair(tmp_path / 'a', *pki.leaf()), certs)
    handoff(write_pair(tmp_path / 'b', *pki.leaf(slot=1)), certs)
    before = tree(str(certs))
    real_replace, calls = os.replace, []

    def replace(src, dst, **dir_fds):
        calls.append(dst)
        if len(calls) == failing_call:
            raise OSError(28, 'No space left on device')
        return real_replace(src, dst, **dir_fds)

    monkeypatch.setattr(engine.os, 'replace', replace)
    front = FakeFront()
    with pytest.raises(InstallError) as info:
        handoff(write_pair(tmp_path / 'c', *pki.leaf(slot=2)), certs, front=front)
    assert str(info.value) == ('cannot install the new pair in %s: [Errno 28] No space left on device; '
                               'the files already replaced were put back' % certs)
    order = ['cert.pem.previous', 'key.pem.previous', 'key.pem', 'cert.pem']
    assert [os.path.basename(c) for c in calls[:failing_call]] == order[:failing_call]
    # Then what had been replaced is put back, last first.
    assert [os.path.basename(c) for c in calls[failing_call:]] == order[:failing_call - 1][::-1]
    assert tree(str(certs)) == before  # no temporary file left either
    assert [c for c in front.calls if c[1][0] == 'nginx'] == []


# ---------------------------------------------------------------- reloading (fake front)

class FakeFront:
    """Front as handoff() uses it: find() and run().  ``exits`` maps a command to the exit
    codes of its successive runs (0 once they run out)."""

    def __init__(self, containers=(('mailu-front-1', 'running'),), doveadm=True, exits=None, find_error=None):
        self.containers = [SimpleNamespace(name=n, status=s) for n, s in containers]
        self.doveadm = doveadm
        self.exits = dict((k, list(v)) for k, v in (exits or {}).items())
        self.find_error = find_error
        self.calls = []

    def describe(self):
        return 'the fake front'

    def find(self):
        if self.find_error:
            raise self.find_error
        return self.containers

    def run(self, container, argv):
        argv = tuple(argv)
        self.calls.append((container.name, argv))
        if argv[:2] == ('sh', '-c'):
            return (0, '/usr/bin/doveadm') if self.doveadm else (127, '')
        codes = self.exits.get(' '.join(argv))
        code = codes.pop(0) if codes else 0
        return code, '' if code == 0 else 'nginx: [emerg] simulated failure'


def reloads(front):
    return [' '.join(argv) for _name, argv in front.calls if argv[0] != 'sh']


@pytest.mark.parametrize('doveadm, setting, expected', [
    (True, None, ['nginx -s reload', 'doveadm reload']),
    (False, None, ['nginx -s reload']),
    (True, False, ['nginx -s reload']),
    (False, True, ['nginx -s reload', 'doveadm reload']),
])
def test_reload_commands(pki, tmp_path, certs, doveadm, setting, expected):
    front = FakeFront(doveadm=doveadm)
    result = handoff(write_pair(tmp_path / 'a', *pki.leaf()), certs, front=front, reload_doveadm=setting)
    assert reloads(front) == expected
    assert result.reloaded == ['mailu-front-1: %s' % c for c in expected]
    assert result.warnings == []


def test_no_reload_without_change(pki, tmp_path, certs):
    source = write_pair(tmp_path / 'a', *pki.leaf())
    handoff(source, certs)
    front = FakeFront(find_error=FrontError('must not be asked'))
    assert handoff(source, certs, front=front).reloaded == []


def test_front_absent_or_stopped(pki, tmp_path, certs):
    front = FakeFront(containers=())
    result = handoff(write_pair(tmp_path / 'a', *pki.leaf()), certs, front=front)
    assert result.changed and result.reloaded == []
    assert result.warnings == ['no front container found (the fake front): the new pair is installed, and front '
                               'will read it when it starts']
    front = FakeFront(containers=[('mailu-front-1', 'exited')])
    result = handoff(write_pair(tmp_path / 'b', *pki.leaf(slot=1)), certs, front=front)
    assert result.changed and front.calls == []
    assert result.warnings == ['front container mailu-front-1 is exited: it will read the new pair when it starts']


def test_docker_unreachable_changes_nothing(pki, tmp_path, certs):
    handoff(write_pair(tmp_path / 'a', *pki.leaf()), certs)
    before = tree(str(certs))
    front = FakeFront(find_error=FrontError('cannot reach the Docker engine'))
    with pytest.raises(FrontError):
        handoff(write_pair(tmp_path / 'b', *pki.leaf(slot=1)), certs, front=front)
    assert tree(str(certs)) == before


def test_failed_reload_puts_previous_pair_back(pki, tmp_path, certs):
    old = pki.leaf()
    handoff(write_pair(tmp_path / 'a', *old), certs)
    handoff(write_pair(tmp_path / 'a', *old), certs)
    (certs / 'cert.pem.previous').write_bytes(b'an older one')
    before = tree(str(certs))
    front = FakeFront(exits={'doveadm reload': [1]})
    with pytest.raises(ReloadError) as info:
        handoff(write_pair(tmp_path / 'b', *pki.leaf(slot=1)), certs, front=front)
    assert str(info.value) == ('reloading front failed: `doveadm reload` in mailu-front-1 exited with 1: nginx: '
                               '[emerg] simulated failure; the previous files were put back and front was '
                               'reloaded with them')
    assert tree(str(certs)) == before  # .previous files included
    assert reloads(front) == ['nginx -s reload', 'doveadm reload', 'nginx -s reload', 'doveadm reload']
    result = info.value.result
    assert result.changed is False
    assert result.installed['fingerprint_sha256'] == engine.fingerprint(old[0][0])


def test_failed_reload_twice(pki, tmp_path, certs):
    handoff(write_pair(tmp_path / 'a', *pki.leaf()), certs)
    before = tree(str(certs))
    front = FakeFront(exits={'nginx -s reload': [1, 2]})
    with pytest.raises(ReloadError) as info:
        handoff(write_pair(tmp_path / 'b', *pki.leaf(slot=1)), certs, front=front)
    assert str(info.value).endswith(
        'the previous files were put back, but reloading front with them failed too: `nginx -s reload` in '
        'mailu-front-1 exited with 2: nginx: [emerg] simulated failure')
    assert tree(str(certs)) == before
    assert reloads(front) == ['nginx -s reload', 'nginx -s reload']


def test_failed_first_reload_removes_new_files(pki, tmp_path, certs):
    front = FakeFront(exits={'nginx -s reload': [1]})
    with pytest.raises(ReloadError, match='the new files were removed and front was reloaded$'):
        handoff(write_pair(tmp_path / 'a', *pki.leaf()), certs, front=front)
    assert os.listdir(certs) == []


def test_docker_front_lookup(monkeypatch):
    """By name first, then by the Compose labels of the project's front service."""
    class Containers:
        def __init__(self):
            self.asked = []

        def get(self, name):
            self.asked.append(('get', name))
            raise docker.errors.NotFound('no such container')

        def list(self, **filters):
            self.asked.append(('list', filters))
            return ['found']

    containers = Containers()
    monkeypatch.setattr(docker, 'from_env', lambda: SimpleNamespace(containers=containers))
    assert engine.DockerFront('front-x', 'stack').find() == ['found']
    assert containers.asked == [('get', 'front-x'), ('list', dict(all=True, filters={'label': [
        'com.docker.compose.project=stack', 'com.docker.compose.service=front']}))]


def test_docker_unreachable_is_front_error(monkeypatch):
    front = engine.DockerFront(docker_host='unix:///nonexistent/docker.sock')
    with pytest.raises(FrontError, match='nothing was changed'):
        front.find()


# ---------------------------------------------------------------- outside Ansible

def test_no_key_material_in_results(pki, tmp_path, certs):
    chain, key = pki.leaf()
    result = handoff(write_pair(tmp_path / 'a', chain, key), certs)
    text = json.dumps([result.as_dict(), result.diff()])
    body = b''.join(pem_key(key).splitlines()[1:-1]).decode('ascii')
    assert body[:40] not in text and 'PRIVATE' not in text


def test_standalone_without_ansible(pki, tmp_path, certs):
    """The hook runs the file with python3 alone: no Ansible import, and a command line."""
    path = engine.__file__
    code = ('import importlib.util, sys; spec = importlib.util.spec_from_file_location("e", %r); '
            'm = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); '
            'print(sorted(n for n in sys.modules if n.split(".")[0] in ("ansible", "ansible_collections", "docker")))'
            % path)
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == '[]'
    live = lineage(tmp_path / 'le', 'mail', [pki.leaf()])
    command = [sys.executable, path, '--lineage', live, '--certs-dir', str(certs), '--no-reload',
               '--hostname', 'mail.example.org']
    checked = subprocess.run(command + ['--check'], capture_output=True, text=True, check=True)
    assert json.loads(checked.stdout)['changed'] is True and os.listdir(certs) == []
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    assert json.loads(done.stdout)['installed']['names'] == HOSTS
    refused = subprocess.run(command[:-1] + ['webmail.example.org'], capture_output=True, text=True, check=False)
    assert refused.returncode == 1
    assert refused.stderr.startswith('mailu_certificate: refusing the certificate from %s' % live)
    assert 'does not cover webmail.example.org' in refused.stderr


# ---------------------------------------------------------------- issue 8, items 7 to 10

@pytest.mark.parametrize('cert_filename, key_filename', [
    ('cert.pem', 'cert.pem'), ('key.pem', './key.pem'), ('sub//pair.pem', 'sub/pair.pem'),
    ('key.pem.previous', 'key.pem'), ('cert.pem', 'cert.pem.previous')])
@pytest.mark.parametrize('check_mode', [True, False])
def test_same_file_for_chain_and_key_refused(pki, tmp_path, certs, cert_filename, key_filename, check_mode):
    """Item 7: one file for both would lose the key (0644 chain written last), and change at every run."""
    (certs / 'sub').mkdir()
    with pytest.raises(engine.CertificateError) as info:
        handoff(write_pair(tmp_path / 'a', *pki.leaf()), certs, cert_filename=cert_filename,
                key_filename=key_filename, check_mode=check_mode, front=FakeFront())
    assert ' name the same file ' in str(info.value) and str(info.value).endswith('nothing was changed')
    assert str(info.value).startswith(('cert_filename and key_filename', 'key_filename and cert_filename',
                                       'cert_filename and key_filename.previous',
                                       'key_filename and cert_filename.previous'))
    assert os.listdir(certs) == ['sub'] and os.listdir(certs / 'sub') == []


@pytest.mark.parametrize('old_cert_mode', [0o644, 0o600])
def test_previous_of_a_combined_file_never_readable_by_others(pki, tmp_path, certs, old_cert_mode):
    """Item 8: an installed cert.pem that holds the key too (a combined file) is kept as
    cert.pem.previous in mode 0600; and a chain that was 0600 stays 0600."""
    old, new = pki.leaf(), pki.leaf(slot=1)
    handoff(write_pair(tmp_path / 'a', *old), certs)
    (certs / 'cert.pem').write_bytes(pem(*old[0]) + pem_key(old[1]))
    os.chmod(certs / 'cert.pem', old_cert_mode)
    handoff(write_pair(tmp_path / 'b', *new), certs)
    kind, mode, content = tree(str(certs))['cert.pem.previous']
    assert b'PRIVATE KEY' in content and (kind, mode) == ('file', 0o600)
    assert tree(str(certs))['key.pem.previous'][1] == 0o600
    assert tree(str(certs))['cert.pem'] == ('file', 0o644, pem(*new[0]))


def test_previous_chain_mode(pki, tmp_path, certs):
    """A plain chain stays readable by others; a key in another label, text with PRIVATE, no
    certificate at all (garbage): not."""
    chain = pem(*pki.leaf()[0])
    key = pem_key(pki.leaf()[1])
    assert not engine.holds_private_key(chain)
    assert not engine.holds_private_key(b'Bag Attributes\n' + chain + b'\n')
    for data in (chain + key, key, b'garbage', b'', chain.replace(b'CERTIFICATE', b'EC PRIVATE KEY', 2),
                 chain + b'-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n',
                 chain + b'-----BEGIN ENCRYPTED STUFF-----\nAAAA\n-----END ENCRYPTED STUFF-----\n'):
        assert engine.holds_private_key(data), data[:60]


@pytest.mark.parametrize('which', ['cert_filename', 'key_filename'])
@pytest.mark.parametrize('check_mode', [True, False])
def test_no_write_through_a_symlinked_directory(pki, tmp_path, certs, which, check_mode):
    """Item 9: sub is a symlink out of the certs directory: nothing is written there, not
    even a temporary or .previous file, and the handoff is refused."""
    outside = tmp_path / 'outside'
    outside.mkdir()
    (outside / 'victim.pem').write_bytes(b'precious')
    os.symlink(outside, certs / 'sub')
    before, outside_before = tree(str(certs)), tree(str(outside))
    with pytest.raises(InstallError) as info:
        handoff(write_pair(tmp_path / 'a', *pki.leaf()), certs, check_mode=check_mode, front=FakeFront(),
                **{which: 'sub/victim.pem'})
    assert str(info.value) == ('%s is not a directory of %s (a symlink, perhaps): the certificate files are only '
                               'written inside the certs directory; nothing was changed' % (certs / 'sub', certs))
    assert tree(str(certs)) == before and tree(str(outside)) == outside_before


def test_symlink_deeper_in_a_subdirectory(pki, tmp_path, certs):
    """A real subdirectory works; a symlink further down is refused the same way."""
    outside = tmp_path / 'outside'
    outside.mkdir()
    (certs / 'tls').mkdir()
    os.symlink(outside, certs / 'tls' / 'deeper')
    source = write_pair(tmp_path / 'a', *pki.leaf())
    result = handoff(source, certs, cert_filename='tls/chain.pem', key_filename='tls/key.pem')
    assert result.changed and sorted(os.listdir(certs / 'tls')) == ['chain.pem', 'deeper', 'key.pem']
    assert result.cert_path == str(certs / 'tls' / 'chain.pem')
    with pytest.raises(InstallError, match='deeper is not a directory of'):
        handoff(source, certs, cert_filename='tls/deeper/chain.pem', key_filename='tls/key.pem')
    assert os.listdir(outside) == []


def test_entries_that_are_symlinks_out_are_replaced_not_followed(pki, tmp_path, certs):
    """cert.pem, key.pem and their .previous pointing out of the certs directory: the links are
    replaced by real files, the files they point to stay as they were."""
    outside = tmp_path / 'outside'
    outside.mkdir()
    old = pki.leaf()
    handoff(write_pair(tmp_path / 'a', *old), certs)
    for name in ('cert.pem.previous', 'key.pem.previous'):
        (outside / name).write_bytes(b'precious')
        os.symlink(outside / name, certs / name)
    result = handoff(write_pair(tmp_path / 'b', *pki.leaf(slot=1)), certs)
    assert result.changed
    assert tree(str(outside)) == {'cert.pem.previous': ('file', 0o644, b'precious'),
                                  'key.pem.previous': ('file', 0o644, b'precious')}
    files = tree(str(certs))
    assert files['cert.pem.previous'] == ('file', 0o644, pem(*old[0]))
    assert files['key.pem.previous'] == ('file', 0o600, pem_key(old[1]))


def test_temporary_files_are_new_files(pki, tmp_path, certs, monkeypatch):
    """A temporary name already taken (a symlink planted there) is never written through."""
    outside = tmp_path / 'outside'
    outside.mkdir()
    monkeypatch.setattr(engine.secrets, 'token_hex', lambda n: 'fixed')
    os.symlink(outside / 'planted', certs / '.key.pem.fixed.tmp')
    with pytest.raises(InstallError, match='File exists'):
        handoff(write_pair(tmp_path / 'a', *pki.leaf()), certs)
    assert os.listdir(outside) == []
    assert sorted(os.listdir(certs)) == ['.key.pem.fixed.tmp']


class CountingBytes:
    """Bytes that count how many bytes ``find``, ``rfind`` and slicing cover."""

    def __init__(self, data):
        self.data, self.covered = data, 0

    def __len__(self):
        return len(self.data)

    def find(self, sub, start=0, end=None):
        end = len(self.data) if end is None else end
        found = self.data.find(sub, start, end)
        self.covered += (found + len(sub) if found >= 0 else end) - start
        return found

    def rfind(self, sub, start=0, end=None):
        end = len(self.data) if end is None else end
        found = self.data.rfind(sub, start, end)
        self.covered += end - (found if found >= 0 else start)
        return found

    def __getitem__(self, index):
        part = self.data[index]
        self.covered += len(part)
        return part

    def upper(self):
        self.covered += len(self.data)
        return self.data.upper()


def hostile_inputs(size):
    begin = b'-----BEGIN CERTIFICATE-----\n'
    return {
        'BEGIN lines only': begin * (size // len(begin)),
        'BEGIN lines then one END': begin * (size // len(begin)) + b'-----END CERTIFICATE-----\n',
        'mismatched pairs': (b'-----BEGIN CERTIFICATE-----\nAAAA\n-----END X509 CRL-----\n') * (size // 52),
        'END lines only': b'-----END CERTIFICATE-----\n' * (size // 26),
        'dashes': b'-' * size,
    }


@pytest.mark.parametrize('case', sorted(hostile_inputs(100)))
def test_pem_scan_is_linear(case):
    """Item 10: the scan covers each byte a bounded number of times, whatever the input."""
    for size in (1 << 16, 5 << 20):
        data = CountingBytes(hostile_inputs(size)[case])
        engine._pem_blocks(data, lambda label: True)
        assert data.covered <= 8 * len(data) + 1000, (size, data.covered)  # quadratic: ~len²/50


def test_pem_scan_finds_the_same_blocks(pki):
    chain, key = pki.leaf()
    text = b'noise\n' + pem(*chain) + b'-----BEGIN CERTIFICATE-----\nunterminated\n' + pem_key(key) + pem(pki.root)
    assert engine._pem_blocks(text, lambda label: True) == [
        pem(chain[0]).rstrip(b'\n'), pem(chain[1]).rstrip(b'\n'), pem_key(key).rstrip(b'\n'), pem(pki.root).rstrip(b'\n')]
    assert engine.load_chain(text, 'x') == chain + [pki.root]
    crlf = pem(*chain).replace(b'\n', b'\r\n')
    assert engine.load_chain(crlf, 'x') == chain


@pytest.mark.parametrize('case', sorted(hostile_inputs(100)))
def test_hostile_input_handled_quickly(pki, tmp_path, certs, case):
    """Item 10, end to end: 5 MB of hostile input refused in well under 2 s, by the size limit
    for a source file, and by the scan itself for an installed file of that size."""
    data = hostile_inputs(5 << 20)[case]
    started = time.monotonic()
    with pytest.raises(SourceError):
        engine.load_chain(data, 'hostile.pem')
    assert time.monotonic() - started < 2
    (tmp_path / 'hostile.pem').write_bytes(data)
    key = tmp_path / 'key.pem'
    key.write_bytes(pem_key(pki.leaf()[1]))
    started = time.monotonic()
    with pytest.raises(SourceError, match='larger than 1048576 bytes: not a certificate or key file'):
        handoff((tmp_path / 'hostile.pem', key), certs)
    (certs / 'cert.pem').write_bytes(data)
    assert handoff(write_pair(tmp_path / 'good', *pki.leaf()), certs).changes[0].startswith(
        'the installed pair is unusable')
    assert time.monotonic() - started < 2
