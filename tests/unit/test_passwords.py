"""Hashes the way Mailu writes and verifies them, and the process pool that spreads the work."""

import os

import pytest
from passlib.hash import bcrypt, bcrypt_sha256, ldap_salted_sha1, md5_crypt, pbkdf2_sha512, sha256_crypt, sha512_crypt
from passlib.registry import list_crypt_handlers

from ansible_collections.nantral.mailu.plugins.module_utils import mailu_passwords

PASSWORD = 'Correct-Horse-Battery'
ARGON2 = '$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$' + 'A' * 43


def test_hash_format():
    digest = mailu_passwords.hash_password((PASSWORD, 4))
    assert digest.startswith('$bcrypt-sha256$v=2,t=2b,r=4$')
    assert not digest.startswith('{')
    parts = digest.split('$')
    assert len(parts) == 5 and len(parts[3]) == 22 and len(parts[4]) == 31
    assert bcrypt_sha256.verify(PASSWORD, digest)
    assert mailu_passwords.hash_password((PASSWORD, 4)) != digest      # fresh salt each time


def test_hash_rounds_are_honoured():
    assert mailu_passwords.hash_password((PASSWORD, 5)).startswith('$bcrypt-sha256$v=2,t=2b,r=5$')


def test_long_and_non_ascii_passwords_hash_and_verify():
    # bcrypt alone stops at 72 bytes; bcrypt_sha256 must not.
    long_password = 'é' * 60 + PASSWORD
    digest = mailu_passwords.hash_password((long_password, 4))
    assert mailu_passwords.verify_password((long_password, digest)) is True
    assert mailu_passwords.verify_password((long_password[:-1], digest)) is False


VERIFIABLE = {
    'bcrypt_sha256 v2, other rounds': lambda p: bcrypt_sha256.using(rounds=5).hash(p),
    'bcrypt_sha256 v1': lambda p: bcrypt_sha256.using(version=1, rounds=4).hash(p),
    '{BLF-CRYPT} bcrypt': lambda p: '{BLF-CRYPT}' + bcrypt.using(rounds=4).hash(p),
    '$2b$ bcrypt': lambda p: bcrypt.using(rounds=4).hash(p),
    '$2y$ bcrypt': lambda p: bcrypt.using(rounds=4, ident='2y').hash(p),
    '$6$ sha512_crypt': lambda p: sha512_crypt.using(rounds=1000).hash(p),
    '{SHA512-CRYPT}$6$': lambda p: '{SHA512-CRYPT}' + sha512_crypt.using(rounds=1000).hash(p),
    '{SHA256-CRYPT}$5$': lambda p: '{SHA256-CRYPT}' + sha256_crypt.using(rounds=1000).hash(p),
    '{MD5-CRYPT}$1$': lambda p: '{MD5-CRYPT}' + md5_crypt.hash(p),
    '{PBKDF2}pbkdf2_sha512': lambda p: '{PBKDF2}' + pbkdf2_sha512.using(rounds=1000).hash(p),
    '{SSHA}': ldap_salted_sha1.hash,
}


@pytest.mark.parametrize('kind', sorted(VERIFIABLE))
def test_verify_accepts_what_mailu_accepts(kind):
    stored = VERIFIABLE[kind](PASSWORD)
    assert mailu_passwords.verify_password((PASSWORD, stored)) is True
    assert mailu_passwords.verify_password(('wrong-' + PASSWORD, stored)) is False
    assert mailu_passwords.check_hash(stored) is None


@pytest.mark.parametrize('stored', ['', 'plain', PASSWORD, '$bcrypt-sha256$garbage', '{PLAIN}' + PASSWORD])
def test_verify_never_raises_and_refuses_what_cannot_verify(stored):
    assert mailu_passwords.verify_password((PASSWORD, stored)) is False


def test_verify_of_an_argon2_stored_hash_is_false():
    assert mailu_passwords.verify_password((PASSWORD, ARGON2)) is False


def test_verify_refuses_an_empty_password():
    stored = bcrypt_sha256.using(rounds=4).hash('x')
    assert mailu_passwords.verify_password(('', stored)) is False
    assert mailu_passwords.verify_password((None, stored)) is False


@pytest.mark.parametrize('stored, scheme', [
    (bcrypt_sha256.using(rounds=4).hash('x'), 'bcrypt_sha256'),
    ('{BLF-CRYPT}' + bcrypt.using(rounds=4).hash('x'), 'bcrypt'),
    ('{SHA512-CRYPT}' + sha512_crypt.using(rounds=1000).hash('x'), 'sha512_crypt'),
    (sha512_crypt.using(rounds=1000).hash('x'), 'sha512_crypt'),
    (ARGON2, 'argon2'),
    # passlib 1.7.4 (Debian's, and Mailu's own) has unix_fallback, which identifies any
    # string; libpass dropped it.  check_hash refuses both (test below).
    ('plain text', 'unix_fallback' if 'unix_fallback' in list_crypt_handlers() else None),
], ids=['bcrypt_sha256', 'blf-crypt', 'sha512-crypt-prefixed', 'sha512-crypt', 'argon2', 'plain-text'])
def test_hash_scheme(stored, scheme):
    assert mailu_passwords.hash_scheme(stored) == scheme


@pytest.mark.parametrize('stored', ['plain-text-password', PASSWORD, '{PLAIN}secret', '', '*', '!'])
def test_check_hash_rejects_plaintext(stored):
    problem = mailu_passwords.check_hash(stored)
    assert problem and 'not a password hash' in problem


def test_check_hash_rejects_argon2():
    problem = mailu_passwords.check_hash(ARGON2)
    assert problem and 'argon2' in problem


def test_strip_legacy_prefix():
    assert mailu_passwords.strip_legacy_prefix('{BLF-CRYPT}$2b$x') == '$2b$x'
    assert mailu_passwords.strip_legacy_prefix('{SHA512-CRYPT}$6$x') == '$6$x'
    assert mailu_passwords.strip_legacy_prefix('$6$x') == '$6$x'
    assert mailu_passwords.strip_legacy_prefix('{PLAIN}x') == '{PLAIN}x'


def square_in(job):
    return os.getpid(), job * job


def test_parallel_map_runs_in_worker_processes_in_order(monkeypatch):
    monkeypatch.setattr(mailu_passwords, '_cores', lambda: 3)
    results = mailu_passwords.parallel_map(square_in, [3, 1, 2])
    assert [value for pid, value in results] == [9, 1, 4]
    assert all(pid != os.getpid() for pid, value in results)


def test_parallel_map_gives_the_same_results_as_a_loop(monkeypatch):
    monkeypatch.setattr(mailu_passwords, '_cores', lambda: 3)
    stored = bcrypt_sha256.using(rounds=4).hash(PASSWORD)
    jobs = [(PASSWORD, stored), ('wrong', stored), (PASSWORD, sha512_crypt.using(rounds=1000).hash(PASSWORD))]
    expected = [mailu_passwords.verify_password(job) for job in jobs]
    assert expected == [True, False, True]
    assert mailu_passwords.parallel_map(mailu_passwords.verify_password, jobs) == expected

    digests = mailu_passwords.parallel_map(mailu_passwords.hash_password, [('one', 4), ('two', 4), ('three', 4)])
    assert [bcrypt_sha256.verify(p, d) for p, d in zip(('one', 'two', 'three'), digests)] == [True, True, True]


def test_parallel_map_of_one_job_or_none_stays_in_process():
    assert mailu_passwords.parallel_map(square_in, [5]) == [(os.getpid(), 25)]
    assert mailu_passwords.parallel_map(square_in, []) == []


# -- A hash without its checksum, a password passlib refuses (issue 8, item 6) --------------

@pytest.mark.parametrize('stored', [
    '$6$rounds=5000$salt$', '$6$salt$', '$6$salt', '$5$rounds=5000$salt$', '$1$salt$', '{MD5-CRYPT}$1$salt',
    '{SHA512-CRYPT}$6$rounds=5000$salt$', '$2b$12$' + 'a' * 21 + 'e', '{BLF-CRYPT}$2b$12$' + 'a' * 21 + 'e',
    '$pbkdf2-sha512$25000$c2FsdA$', '$apr1$salt', '$sha1$1000$salt', '$P$H8uLuGObC',
])
def test_check_hash_rejects_a_configuration_without_checksum(stored):
    """passlib parses a salt and settings without the digest, which no password matches."""
    problem = mailu_passwords.check_hash(stored)
    assert problem and 'checksum' in problem


@pytest.mark.parametrize('kind', sorted(VERIFIABLE))
def test_check_hash_still_accepts_complete_hashes(kind):
    assert mailu_passwords.check_hash(VERIFIABLE[kind](PASSWORD)) is None


@pytest.mark.parametrize('plain, problem', [
    ('', 'must not be empty'), ('x' * 4097, 'longer than 4096'), ('é' * 4097, 'longer than 4096'),
])
def test_check_password_refuses(plain, problem):
    assert problem in mailu_passwords.check_password(plain)


@pytest.mark.parametrize('plain', ['x', 'x' * 4096, 'é' * 4096])
def test_check_password_accepts_what_passlib_hashes(plain):
    assert mailu_passwords.check_password(plain) is None
    assert mailu_passwords.verify_password((plain, mailu_passwords.hash_password((plain, 4)))) is True
