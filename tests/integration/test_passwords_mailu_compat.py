"""Passwords written by the modules are what Mailu's own login accepts and keeps, and
update_password behaves as documented. The CryptContext below is built the way Mailu's
admin builds it (1.9 and 2024.06): every registered handler but scrypt and the plaintext
ones, bcrypt_sha256 by default at CREDENTIAL_ROUNDS (12), deprecated='auto'."""

import json

import psycopg
import pytest
from passlib.context import CryptContext
from passlib.hash import bcrypt, bcrypt_sha256, des_crypt, md5_crypt, pbkdf2_sha512, sha256_crypt, sha512_crypt
from passlib.registry import list_crypt_handlers

from dbutil import VERSIONS

PASSWORD = 'Tr0ub4dor&3-Mailu'
WRONG = 'Not-The-Password-9'


@pytest.fixture(scope='module')
def mailu_context():
    schemes = [name for name in list_crypt_handlers() if name != 'scrypt' and not name.endswith('plaintext')]
    return CryptContext(schemes=schemes, default='bcrypt_sha256', bcrypt_sha256__rounds=12, deprecated='auto')


def stored_password(db, email):
    with psycopg.connect(db['conninfo']) as conn:
        found = conn.execute('SELECT password FROM "user" WHERE email = %s', (email,)).fetchall()
    return found[0][0] if found else None


def set_password(db, email, value):
    with psycopg.connect(db['conninfo']) as conn:
        conn.execute('UPDATE "user" SET password = %s WHERE email = %s', (value, email))


def with_user(run, mailu_db, version='2024.06'):
    """A database with alice@example.org, whose password the test then sets by SQL."""
    db = mailu_db(version)
    result = run('mailu_accounts', db, domains=[dict(name='example.org')],
                 users=[dict(email='alice@example.org', password='initial-pass')], hash_rounds=4)
    assert result['changed'], result
    return db


@pytest.mark.parametrize('version', VERSIONS)
def test_new_password_is_what_mailu_writes_and_keeps(mailu_db, run, mailu_context, version):
    db = mailu_db(version)
    run('mailu_domain', db, name='example.org')
    result = run('mailu_user', db, email='alice@example.org', password=PASSWORD)   # default: 12 rounds
    assert result['changed'] is True
    stored = stored_password(db, 'alice@example.org')
    assert stored.startswith('$bcrypt-sha256$v=2,t=2b,r=12$')
    assert not stored.startswith('{')
    assert len(stored.split('$')) == 5      # the shape Mailu's credential cache relies on
    assert mailu_context.identify(stored) == 'bcrypt_sha256'
    assert mailu_context.verify(PASSWORD, stored) is True
    assert mailu_context.verify(WRONG, stored) is False
    assert mailu_context.needs_update(stored) is False


def test_other_hash_rounds_verify_but_mailu_would_rewrite_them(mailu_db, run, mailu_context):
    db = with_user(run, mailu_db)
    stored = stored_password(db, 'alice@example.org')
    assert stored.startswith('$bcrypt-sha256$v=2,t=2b,r=4$')
    assert mailu_context.verify('initial-pass', stored) is True
    assert mailu_context.needs_update(stored) is True


@pytest.mark.parametrize('legacy', ['blf-crypt', 'sha512-crypt', 'bare-sha512-crypt'])
def test_always_with_the_right_password_keeps_a_legacy_hash(mailu_db, run, db_snapshot, legacy):
    db = with_user(run, mailu_db)
    existing = {
        'blf-crypt': '{BLF-CRYPT}' + bcrypt.using(rounds=4).hash(PASSWORD),
        'sha512-crypt': '{SHA512-CRYPT}' + sha512_crypt.using(rounds=1000).hash(PASSWORD),
        'bare-sha512-crypt': sha512_crypt.using(rounds=1000).hash(PASSWORD),
    }[legacy]
    assert existing.startswith(('{BLF-CRYPT}$2b$', '{SHA512-CRYPT}$6$', '$6$'))
    set_password(db, 'alice@example.org', existing)
    before = db_snapshot(db)
    for check in (True, False):
        result = run('mailu_user', db, check=check, email='alice@example.org', password=PASSWORD,
                     update_password='always', hash_rounds=4)
        assert result['changed'] is False
    assert stored_password(db, 'alice@example.org') == existing
    assert db_snapshot(db) == before


@pytest.mark.parametrize('existing', ['bcrypt', 'sha512_crypt'])
def test_always_with_a_wrong_password_writes_a_new_hash(mailu_db, run, mailu_context, existing):
    db = with_user(run, mailu_db)
    old = (bcrypt.using(rounds=4).hash(WRONG) if existing == 'bcrypt'
           else sha512_crypt.using(rounds=1000).hash(WRONG))
    set_password(db, 'alice@example.org', old)
    result = run('mailu_user', db, diff=True, email='alice@example.org', password=PASSWORD,
                 update_password='always', hash_rounds=4)
    assert result['changed'] is True
    assert (result['diff']['before']['password'], result['diff']['after']['password']) == ('(hash set)', '(new hash)')
    new = stored_password(db, 'alice@example.org')
    assert new != old
    assert new.startswith('$bcrypt-sha256$v=2,t=2b,r=4$')
    assert mailu_context.verify(PASSWORD, new) is True
    assert mailu_context.verify(WRONG, new) is False
    # Now it verifies: a second run leaves it alone.
    assert run('mailu_user', db, email='alice@example.org', password=PASSWORD, update_password='always',
               hash_rounds=4)['changed'] is False
    assert stored_password(db, 'alice@example.org') == new


def test_always_in_accounts_touches_only_users_whose_password_does_not_verify(mailu_db, run, mailu_context):
    db = mailu_db()
    run('mailu_domain', db, name='example.org')
    keep = sha512_crypt.using(rounds=1000).hash('Keep-Pass-1')
    change = sha512_crypt.using(rounds=1000).hash('Old-Pass-2')
    run('mailu_accounts', db, users=[dict(email='keep@example.org', password_hash=keep),
                                     dict(email='change@example.org', password_hash=change)])
    result = run('mailu_accounts', db, update_password='always', hash_rounds=4,
                 users=[dict(email='keep@example.org', password='Keep-Pass-1'),
                        dict(email='change@example.org', password='New-Pass-2')])
    assert result['users']['updated'] == ['change@example.org']
    assert stored_password(db, 'keep@example.org') == keep
    assert mailu_context.verify('New-Pass-2', stored_password(db, 'change@example.org')) is True


def test_on_create_never_touches_an_existing_password(mailu_db, run, db_snapshot):
    db = with_user(run, mailu_db)
    existing = stored_password(db, 'alice@example.org')
    before = db_snapshot(db)
    for args in (dict(password=WRONG), dict(password=WRONG, update_password='on_create'),
                 dict(password_hash=sha512_crypt.using(rounds=1000).hash(WRONG))):
        result = run('mailu_user', db, email='alice@example.org', hash_rounds=4, **args)
        assert result['changed'] is False, args
    assert stored_password(db, 'alice@example.org') == existing
    assert db_snapshot(db) == before


# Each {SCHEME} prefix Mailu's config-import strips (core/admin/mailu/schemas.py, PasswordField,
# 1.9 and 2024.06), with a hash of the scheme Mailu <= 1.8 wrote under it.
PREFIXED = {
    '{PBKDF2}': lambda: pbkdf2_sha512.using(rounds=1000).hash(PASSWORD),
    '{BLF-CRYPT}': lambda: bcrypt.using(rounds=4).hash(PASSWORD),
    '{SHA512-CRYPT}': lambda: sha512_crypt.using(rounds=1000).hash(PASSWORD),
    '{SHA256-CRYPT}': lambda: sha256_crypt.using(rounds=1000).hash(PASSWORD),
    '{MD5-CRYPT}': lambda: md5_crypt.hash(PASSWORD),
    '{CRYPT}': lambda: des_crypt.hash(PASSWORD[:8]),
}


@pytest.mark.parametrize('version', VERSIONS)
@pytest.mark.parametrize('prefix', sorted(PREFIXED))
def test_password_hash_prefix_is_stripped_as_mailu_import_does(mailu_db, run, db_snapshot, mailu_context,
                                                               version, prefix):
    """Issue 7, item 7: stored as config-import stores it, without the prefix."""
    db = mailu_db(version)
    run('mailu_domain', db, name='example.org')
    bare = PREFIXED[prefix]()
    args = dict(email='alice@example.org', password_hash=prefix + bare)
    empty = db_snapshot(db)
    assert run('mailu_user', db, check=True, **args)['changed'] is True
    assert db_snapshot(db) == empty
    assert run('mailu_user', db, **args)['changed'] is True
    assert stored_password(db, 'alice@example.org') == bare
    assert mailu_context.verify(PASSWORD if prefix != '{CRYPT}' else PASSWORD[:8], bare) is True
    applied = db_snapshot(db)
    for check in (True, False):
        assert run('mailu_user', db, check=check, **args)['changed'] is False
    assert db_snapshot(db) == applied


def test_password_hash_without_a_known_prefix_is_stored_as_given(mailu_db, run):
    db = mailu_db()
    run('mailu_domain', db, name='example.org')
    value = bcrypt_sha256.using(rounds=5).hash(PASSWORD)
    assert run('mailu_user', db, email='alice@example.org', password_hash=value)['changed'] is True
    assert stored_password(db, 'alice@example.org') == value


def mailu_login(db, email, password, rounds):
    """What Mailu's User.check_password does on a successful login: verify, and write
    back the hash passlib says is outdated (CREDENTIAL_ROUNDS = rounds)."""
    schemes = [name for name in list_crypt_handlers() if name != 'scrypt' and not name.endswith('plaintext')]
    context = CryptContext(schemes=schemes, default='bcrypt_sha256', bcrypt_sha256__rounds=rounds, deprecated='auto')
    stored = stored_password(db, email)
    for prefix in PREFIXED:
        if stored.startswith(prefix):
            stored = stored[len(prefix):]
    ok, new = context.verify_and_update(password, stored)
    assert ok
    if new:
        set_password(db, email, new)
    return new


@pytest.mark.parametrize('module', ['mailu_user', 'mailu_accounts'])
@pytest.mark.parametrize('kind', ['{BLF-CRYPT}', '$2b$', '{SHA512-CRYPT}', '$6$', 'bcrypt_sha256-other-rounds',
                                  'bcrypt_sha256-v1'])
def test_always_refuses_a_hash_mailu_rewrites_at_login(mailu_db, run, db_snapshot, module, kind):
    """Issue 7, item 7: with update_password=always such a hash would be written back on every
    run after the user's first login; it is refused with a message naming the user and what
    to do, for a new user as for an existing one, and nothing is written."""
    db = mailu_db()
    run('mailu_domain', db, name='example.org')
    run('mailu_user', db, email='bob@example.org', password='Bob-Pass-1', hash_rounds=4)
    value = {
        '{BLF-CRYPT}': lambda: '{BLF-CRYPT}' + bcrypt.using(rounds=4).hash(PASSWORD),
        '$2b$': lambda: bcrypt.using(rounds=4).hash(PASSWORD),
        '{SHA512-CRYPT}': lambda: '{SHA512-CRYPT}' + sha512_crypt.using(rounds=1000).hash(PASSWORD),
        '$6$': lambda: sha512_crypt.using(rounds=1000).hash(PASSWORD),
        'bcrypt_sha256-other-rounds': lambda: bcrypt_sha256.using(rounds=5).hash(PASSWORD),
        'bcrypt_sha256-v1': lambda: bcrypt_sha256.using(rounds=4, version=1).hash(PASSWORD),
    }[kind]()
    before = db_snapshot(db)
    for email in ('alice@example.org', 'bob@example.org'):
        user = dict(email=email, password_hash=value)
        args = dict(update_password='always', hash_rounds=4)
        if module == 'mailu_user':
            args.update(user)
        else:
            args['users'] = [dict(email='carol@example.org', password='Carol-Pass-1'), user]
        result = run(module, db, **args)
        assert result.get('failed') is True, result
        msg = result['msg']
        assert msg.startswith('user %s: password_hash is ' % email)
        for words in ('first login', 'update_password=always', 'password', '$bcrypt-sha256$v=2,t=2b,r=4$',
                      'update_password=on_create'):
            assert words in msg
        assert value not in msg
        assert db_snapshot(db) == before


@pytest.mark.parametrize('version', VERSIONS)
def test_always_with_a_hash_mailu_keeps_reports_no_change_after_a_login(mailu_db, run, db_snapshot, version):
    """Issue 7, item 7: the hash update_password=always accepts is the one Mailu's login keeps,
    so a run after a login changes nothing."""
    db = mailu_db(version)
    run('mailu_domain', db, name='example.org')
    value = bcrypt_sha256.using(rounds=4).hash(PASSWORD)
    args = dict(email='alice@example.org', password_hash=value, update_password='always', hash_rounds=4)
    assert run('mailu_user', db, check=True, **args)['changed'] is True
    assert run('mailu_user', db, **args)['changed'] is True
    assert mailu_login(db, 'alice@example.org', PASSWORD, rounds=4) is None
    applied = db_snapshot(db)
    for check in (True, False):
        assert run('mailu_user', db, check=check, **args)['changed'] is False
    assert db_snapshot(db) == applied
    # The plain password is the way to declare it in any other form: after a login that
    # rewrote a legacy hash, it still verifies and nothing is written.
    set_password(db, 'alice@example.org', '{SHA512-CRYPT}' + sha512_crypt.using(rounds=1000).hash(PASSWORD))
    assert mailu_login(db, 'alice@example.org', PASSWORD, rounds=4) is not None
    relogged = db_snapshot(db)
    for check in (True, False):
        assert run('mailu_user', db, check=check, email='alice@example.org', password=PASSWORD,
                   update_password='always', hash_rounds=4)['changed'] is False
    assert db_snapshot(db) == relogged


def test_always_with_a_new_mailu_hash_replaces_the_stored_one(mailu_db, run, mailu_context):
    db = with_user(run, mailu_db)
    other = bcrypt_sha256.using(rounds=4).hash(WRONG)
    result = run('mailu_user', db, diff=True, email='alice@example.org', password_hash=other,
                 update_password='always', hash_rounds=4)
    assert result['changed'] is True
    assert (result['diff']['before']['password'], result['diff']['after']['password']) == ('(hash set)', '(new hash)')
    assert stored_password(db, 'alice@example.org') == other
    assert mailu_context.verify(WRONG, other) is True
    assert run('mailu_user', db, email='alice@example.org', password_hash=other, update_password='always',
               hash_rounds=4)['changed'] is False


def test_creation_without_password_or_hash_fails(mailu_db, run, db_snapshot):
    db = mailu_db()
    run('mailu_domain', db, name='example.org')
    before = db_snapshot(db)
    for module, args in (('mailu_user', dict(email='alice@example.org', quota='1G')),
                         ('mailu_accounts', dict(users=[dict(email='alice@example.org')]))):
        result = run(module, db, **args)
        assert result.get('failed') is True
        assert 'user alice@example.org' in result['msg'] and 'password' in result['msg']
    assert db_snapshot(db) == before


@pytest.mark.parametrize('diff', [False, True])
def test_password_never_appears_in_the_result(mailu_db, run, diff):
    db = mailu_db()
    run('mailu_domain', db, name='example.org')
    results = []
    for check in (True, False):
        results.append(run('mailu_user', db, check=check, diff=diff, email='alice@example.org', password=PASSWORD,
                           hash_rounds=4))
    hashed = stored_password(db, 'alice@example.org')
    results.append(run('mailu_user', db, diff=diff, email='alice@example.org', password=WRONG,
                       update_password='always', hash_rounds=4))
    rehashed = stored_password(db, 'alice@example.org')
    results.append(run('mailu_accounts', db, diff=diff, update_password='always', hash_rounds=4,
                       users=[dict(email='alice@example.org', password=PASSWORD),
                              dict(email='bob@example.org', password=PASSWORD + '-bob')]))
    results.append(run('mailu_user', db, diff=diff, email='carol@unknown.org', password=PASSWORD))
    assert [r.get('changed') for r in results] == [True, True, True, True, None]
    assert results[-1]['failed'] is True
    if diff:
        assert all('diff' in r for r in results[:-1])
    for result in results:
        text = json.dumps(result)
        for secret in (PASSWORD, WRONG, PASSWORD + '-bob', hashed, rehashed):
            assert secret not in text


def test_always_replaces_a_stored_hash_mailu_cannot_verify(mailu_db, run, mailu_context):
    db = with_user(run, mailu_db)
    set_password(db, 'alice@example.org', '$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$' + 'A' * 43)
    result = run('mailu_user', db, email='alice@example.org', password=PASSWORD, update_password='always',
                 hash_rounds=4)
    assert result['changed'] is True
    assert mailu_context.verify(PASSWORD, stored_password(db, 'alice@example.org')) is True
