"""The DKIM engine's pure functions: file names, public keys and the record's value.

The expected values are computed here independently of the engine, the way Mailu's admin
computes them (core/admin/mailu/dkim.py, strip_key): the public key as an SPKI PEM, its
lines joined, the armour cut off.
"""

import base64
import os
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ansible_collections.nantral.mailu.plugins.module_utils import mailu_dkim as engine
from ansible_collections.nantral.mailu.plugins.module_utils.mailu_dkim import DkimError


@pytest.fixture(scope='module')
def key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pkcs8(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def traditional(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def mailu_public(pem):
    """What Mailu's admin shows as p=: the SPKI PEM of the loaded key without armour or newlines."""
    loaded = serialization.load_pem_private_key(pem, password=None)
    spki = loaded.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    return spki.decode('ascii').replace('-----BEGIN PUBLIC KEY-----', '').replace(
        '-----END PUBLIC KEY-----', '').replace('\n', '')


@pytest.mark.parametrize('form', [pkcs8, traditional], ids=['pkcs8', 'traditional'])
@pytest.mark.parametrize('as_text', [False, True], ids=['bytes', 'str'])
def test_public_key_is_mailus_p_value(key, form, as_text):
    pem = form(key)
    given = pem.decode('ascii') if as_text else pem
    assert engine.public_key_b64(given) == mailu_public(pem)
    assert base64.b64decode(engine.public_key_b64(given)) == key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_dns_value_is_mailus_record_value(key):
    assert engine.dns_value(pkcs8(key)) == 'v=DKIM1; k=rsa; p=' + mailu_public(pkcs8(key))


def test_a_key_from_a_vault_without_its_final_newline_loads(key):
    assert engine.public_key_b64(pkcs8(key).decode('ascii').strip()) == mailu_public(pkcs8(key))


@pytest.mark.parametrize('domain, selector, expected', [
    ('example.org', 'dkim', 'example.org.dkim.key'),
    ('Example.ORG.', 'dkim', 'example.org.dkim.key'),
    # Mailu's admin formats DKIM_PATH with the name read back from the database: Unicode.
    ('école.fr', 'dkim', 'école.fr.dkim.key'),
    ('xn--cole-9oa.fr', 'dkim', 'école.fr.dkim.key'),
    ('example.org', 'mail2026', 'example.org.mail2026.key'),
    ('example.org', 's1.mailu', 'example.org.s1.mailu.key'),
])
def test_key_filename_is_mailus(domain, selector, expected):
    assert engine.key_filename(domain, selector) == expected


@pytest.mark.parametrize('selector', ['', '../x', 'a/b', 'dkim.', '.dkim', 'sp ace', '-dkim', 'dk\nim', 7])
def test_a_selector_that_is_no_dns_label_is_refused(selector):
    with pytest.raises(DkimError, match='selector must be DNS labels'):
        engine.key_filename('example.org', selector)


def test_a_domain_that_is_no_domain_is_refused():
    with pytest.raises(DkimError, match='not a valid domain name'):
        engine.key_filename('../../etc', 'dkim')


def test_an_encrypted_key_is_refused_without_quoting_it(key):
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.BestAvailableEncryption(b'secret'))
    with pytest.raises(DkimError, match='encrypted') as raised:
        engine.public_key_b64(pem)
    assert pem.decode().splitlines()[1] not in str(raised.value)


def test_an_ec_key_is_refused():
    pem = pkcs8(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(DkimError, match='not an RSA key'):
        engine.public_key_b64(pem)


@pytest.mark.parametrize('pem', [b'', b'hello', b'-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n'])
def test_what_is_no_key_is_refused(pem):
    with pytest.raises(DkimError, match='is not a PEM private key'):
        engine.public_key_b64(pem)


def test_a_huge_input_is_refused_before_parsing():
    with pytest.raises(DkimError, match='too large'):
        engine.public_key_b64(b'A' * (engine.MAX_KEY_BYTES + 1))


def test_read_public_key(tmp_path, key):
    assert engine.read_public_key(str(tmp_path), 'example.org') is None
    (tmp_path / 'example.org.dkim.key').write_bytes(traditional(key))
    assert engine.read_public_key(str(tmp_path), 'EXAMPLE.org') == mailu_public(pkcs8(key))
    assert engine.read_public_key(str(tmp_path), 'example.org', 'other') is None


def test_read_public_key_does_not_follow_a_symlink(tmp_path, key):
    outside = tmp_path / 'outside.pem'
    outside.write_bytes(pkcs8(key))
    (tmp_path / 'dkim').mkdir()
    os.symlink(str(outside), str(tmp_path / 'dkim' / 'example.org.dkim.key'))
    with pytest.raises(DkimError, match='not a regular file'):
        engine.read_public_key(str(tmp_path / 'dkim'), 'example.org')


def test_a_generated_key_is_what_mailu_generates():
    key = engine.generate_key()
    pem = engine.pem_for_mailu(key)
    assert pem.startswith(b'-----BEGIN PRIVATE KEY-----\n')
    loaded = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(loaded, rsa.RSAPrivateKey)
    assert (loaded.key_size, loaded.private_numbers().public_numbers.e) == (2048, 65537)


def test_the_pem_mailu_writes_is_what_openssl_reads_as_pkcs8(key, tmp_path):
    """openssl's own reader agrees (the 1.9 admin reads keys through OpenSSL)."""
    path = tmp_path / 'k.pem'
    path.write_bytes(engine.pem_for_mailu(key))
    out = subprocess.run(['openssl', 'pkey', '-in', str(path), '-pubout'], check=True, capture_output=True).stdout
    assert out.decode().replace('-----BEGIN PUBLIC KEY-----', '').replace(
        '-----END PUBLIC KEY-----', '').replace('\n', '') == mailu_public(pkcs8(key))
