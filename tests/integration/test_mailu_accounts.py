"""mailu_accounts: the bulk, declarative module. Idempotence, check mode, diff, report,
purge, and all-or-nothing writes."""

import datetime

import pytest
from passlib.hash import bcrypt_sha256

from dbutil import HASH, VERSIONS, rows


def column(db, query):
    return sorted(row[0] for row in (tuple(r.values()) for r in rows(db, query)))


def declaration():
    return dict(
        domains=[dict(name='Example.org', alternatives=['example.net'], managers=['admin@example.org'],
                      max_quota='10G'),
                 dict(name='other.org')],
        users=[dict(email='Admin@example.org', password='Admin-Pass-1', global_admin=True),
               dict(email='john@example.org', password_hash=HASH, quota='2G'),
               dict(email='jane@other.org', password_hash=HASH, displayed_name='Jane')],
        aliases=[dict(email='contact@example.org', destination=['john@example.org', 'Admin@example.org'])],
        hash_rounds=4,
    )


@pytest.mark.parametrize('version', VERSIONS)
def test_four_steps_then_modification(mailu_db, run, db_snapshot, version):
    db = mailu_db(version)
    empty = db_snapshot(db)

    result = run('mailu_accounts', db, check=True, **declaration())
    assert result['changed'] is True
    assert result['users']['created'] == ['admin@example.org', 'jane@other.org', 'john@example.org']
    assert db_snapshot(db) == empty

    result = run('mailu_accounts', db, **declaration())
    assert result['changed'] is True
    assert result['domains'] == dict(created=['example.org', 'other.org'], updated=[], removed=[])
    assert result['users'] == dict(created=['admin@example.org', 'jane@other.org', 'john@example.org'],
                                   updated=[], removed=[])
    assert result['aliases'] == dict(created=['contact@example.org'], updated=[], removed=[])
    today = datetime.date.today()
    assert rows(db, 'SELECT name, max_quota_bytes, created_at FROM domain ORDER BY name') == [
        dict(name='example.org', max_quota_bytes=10000000000, created_at=today),
        dict(name='other.org', max_quota_bytes=0, created_at=today)]
    assert rows(db, 'SELECT name, domain_name FROM alternative') == [dict(name='example.net', domain_name='example.org')]
    assert rows(db, 'SELECT domain_name, user_email FROM manager') == [
        dict(domain_name='example.org', user_email='admin@example.org')]
    users = dict((r['email'], r) for r in rows(db, 'SELECT * FROM "user"'))
    assert sorted(users) == ['admin@example.org', 'jane@other.org', 'john@example.org']
    # Declared as Admin@: stored as Mailu's config-import stores it.
    assert users['admin@example.org']['localpart'] == 'admin'
    assert users['admin@example.org']['global_admin'] is True
    assert bcrypt_sha256.verify('Admin-Pass-1', users['admin@example.org']['password'])
    assert users['john@example.org']['password'] == HASH
    assert users['john@example.org']['quota_bytes'] == 2000000000
    assert users['jane@other.org']['displayed_name'] == 'Jane'
    assert all(u['created_at'] == today and u['updated_at'] is None for u in users.values())
    assert rows(db, 'SELECT destination FROM alias') == [dict(destination='Admin@example.org,john@example.org')]
    applied = db_snapshot(db)

    result = run('mailu_accounts', db, check=True, **declaration())
    assert result['changed'] is False
    result = run('mailu_accounts', db, **declaration())
    assert result['changed'] is False
    assert all(not any(result[kind].values()) for kind in ('domains', 'users', 'aliases'))
    assert db_snapshot(db) == applied

    changed = declaration()
    changed['users'][1]['quota'] = '3G'
    result = run('mailu_accounts', db, diff=True, **changed)
    assert result['changed'] is True
    assert result['users'] == dict(created=[], updated=['john@example.org'], removed=[])
    assert not any(result['domains'].values()) and not any(result['aliases'].values())
    before, after = result['diff']['before'], result['diff']['after']
    assert set(before) == set(after) == {'users'}
    assert set(before['users']) == set(after['users']) == {'john@example.org'}
    old, new = before['users']['john@example.org'], after['users']['john@example.org']
    assert (old['quota'], new['quota']) == (2000000000, 3000000000)
    assert {k for k in set(old) | set(new) if old.get(k) != new.get(k)} == {'quota'}
    john = rows(db, 'SELECT quota_bytes, updated_at FROM "user" WHERE email = %s', ('john@example.org',))
    assert john == [dict(quota_bytes=3000000000, updated_at=today)]
    others = rows(db, 'SELECT updated_at FROM "user" WHERE email <> %s', ('john@example.org',))
    assert others == [dict(updated_at=None), dict(updated_at=None)]


def _existing(run, db):
    result = run('mailu_accounts', db,
                 domains=[dict(name='example.org'), dict(name='other.org', alternatives=['other.net']),
                          dict(name='empty.org')],
                 users=[dict(email=e, password_hash=HASH)
                        for e in ('a@example.org', 'b@example.org', 'c@other.org')],
                 aliases=[dict(email=e, destination=['a@example.org'])
                          for e in ('x@example.org', 'y@example.org', 'z@other.org')])
    assert result['changed'], result
    run('mailu_domain', db, name='example.org', managers=['b@example.org'])


@pytest.mark.parametrize('version', VERSIONS)
def test_purge_users_and_aliases_removes_only_unlisted_ones(mailu_db, run, db_snapshot, version):
    db = mailu_db(version)
    _existing(run, db)
    args = dict(users=[dict(email='a@example.org')], aliases=[dict(email='x@example.org')],
                purge=['users', 'aliases'])
    before = db_snapshot(db)
    result = run('mailu_accounts', db, check=True, **args)
    assert result['changed'] is True
    assert db_snapshot(db) == before

    result = run('mailu_accounts', db, **args)
    assert result['changed'] is True
    assert result['users'] == dict(created=[], updated=[], removed=['b@example.org', 'c@other.org'])
    assert result['aliases'] == dict(created=[], updated=[], removed=['y@example.org', 'z@other.org'])
    assert result['domains'] == dict(created=[], updated=[], removed=[])
    assert column(db, 'SELECT email FROM "user"') == ['a@example.org']
    assert column(db, 'SELECT email FROM alias') == ['x@example.org']
    assert column(db, 'SELECT name FROM domain') == ['empty.org', 'example.org', 'other.org']
    assert rows(db, 'SELECT * FROM manager') == []
    assert run('mailu_accounts', db, **args)['changed'] is False


def test_purge_domains_with_users_not_purged_fails(mailu_db, run, db_snapshot):
    db = mailu_db()
    _existing(run, db)
    before = db_snapshot(db)
    result = run('mailu_accounts', db, domains=[dict(name='example.org')], purge=['domains'])
    assert result.get('failed') is True
    assert 'domain other.org' in result['msg'] and 'c@other.org' in result['msg']
    assert db_snapshot(db) == before


def test_purge_domains_and_users_removes_unlisted_domains_with_their_rows(mailu_db, run):
    db = mailu_db()
    _existing(run, db)
    result = run('mailu_accounts', db, domains=[dict(name='example.org')],
                 users=[dict(email='a@example.org'), dict(email='b@example.org')], purge=['domains', 'users'])
    assert result['changed'] is True
    assert result['domains']['removed'] == ['empty.org', 'other.org']
    assert result['users']['removed'] == ['c@other.org']
    assert column(db, 'SELECT name FROM domain') == ['example.org']
    assert column(db, 'SELECT email FROM "user"') == ['a@example.org', 'b@example.org']
    assert column(db, 'SELECT email FROM alias') == ['x@example.org', 'y@example.org']
    assert rows(db, 'SELECT * FROM alternative') == []


def test_users_and_domain_created_in_one_run_in_any_order(mailu_db, run):
    db = mailu_db()
    result = run('mailu_accounts', db, users=[dict(email='a@new.org', password_hash=HASH)],
                 aliases=[dict(email='b@new.org', destination=['a@new.org'])],
                 domains=[dict(name='New.org', managers=['a@new.org'])])
    assert result['changed'] is True, result
    assert rows(db, 'SELECT domain_name, user_email FROM manager') == [dict(domain_name='new.org', user_email='a@new.org')]


def test_absent_objects_in_one_run(mailu_db, run):
    db = mailu_db()
    _existing(run, db)
    result = run('mailu_accounts', db, users=[dict(email='b@example.org', state='absent')],
                 aliases=[dict(email='y@example.org', state='absent')],
                 domains=[dict(name='empty.org', state='absent')])
    assert result['changed'] is True
    assert column(db, 'SELECT email FROM "user"') == ['a@example.org', 'c@other.org']
    assert column(db, 'SELECT email FROM alias') == ['x@example.org', 'z@other.org']
    assert column(db, 'SELECT name FROM domain') == ['example.org', 'other.org']
    assert rows(db, 'SELECT * FROM manager') == []
