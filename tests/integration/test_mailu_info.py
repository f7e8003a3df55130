"""mailu_info: what it reads, that it writes nothing, and that its lists feed mailu_accounts."""

import psycopg
import pytest
from passlib.hash import sha512_crypt

from dbutil import HASH, VERSIONS

HEADS = {'1.9': '3b7eee912b41', '2024.06': '0ba45693748d'}
LEGACY_HASH = '{SHA512-CRYPT}' + sha512_crypt.using(rounds=1000).hash('legacy')


def setup_accounts(run, db):
    result = run('mailu_accounts', db,
                 domains=[dict(name='Bücher.example', alternatives=['books.example'], max_users=50,
                               max_quota='5G', comment='books'),
                          dict(name='example.org', managers=['John.Doe@example.org', 'reader@xn--bcher-kva.example'])],
                 users=[dict(email='John.Doe@example.org', password_hash=HASH, quota='2G', displayed_name='John',
                             forward_enabled=True, forward_destination=['b@x.org', 'A@x.org'],
                             reply_startdate='2024-06-01', spam_threshold=60),
                        dict(email='reader@Bücher.example', password_hash=LEGACY_HASH, enable_pop=False)],
                 aliases=[dict(email='contact@example.org', destination=['john.doe@example.org'], comment='desk')])
    assert result['changed'], result


@pytest.mark.parametrize('version', VERSIONS)
def test_info_reads_schema_domains_users_aliases(mailu_db, run, db_snapshot, version):
    db = mailu_db(version)
    setup_accounts(run, db)
    before = db_snapshot(db)
    info = run('mailu_info', db)
    assert db_snapshot(db) == before
    assert info['changed'] is False
    assert info['schema'] == dict(release=version, revision=HEADS[version])

    assert [d['name'] for d in info['domains']] == ['example.org', 'xn--bcher-kva.example']
    books = info['domains'][1]
    assert books['alternatives'] == ['books.example']
    assert (books['max_users'], books['max_quota'], books['comment']) == (50, 5000000000, 'books')
    assert info['domains'][0]['managers'] == ['john.doe@example.org', 'reader@xn--bcher-kva.example']

    users = dict((u['email'], u) for u in info['users'])
    # Declared as John.Doe@: stored, and so shown, as Mailu's config-import stores it.
    assert sorted(users) == ['john.doe@example.org', 'reader@xn--bcher-kva.example']
    john = users['john.doe@example.org']
    assert (john['quota'], john['displayed_name'], john['spam_threshold']) == (2000000000, 'John', 60)
    assert john['forward_destination'] == ['A@x.org', 'b@x.org']
    assert john['reply_startdate'] == '2024-06-01'
    assert users['reader@xn--bcher-kva.example']['enable_pop'] is False
    assert all('password_hash' not in u and 'password' not in u for u in info['users'])
    assert ('spam_mark_as_read' in john) == (version != '1.9')
    assert info['aliases'] == [dict(email='contact@example.org', destination=['john.doe@example.org'],
                                    wildcard=False, comment='desk')]


def test_password_hashes_on_request(mailu_db, run):
    db = mailu_db()
    setup_accounts(run, db)
    info = run('mailu_info', db, password_hashes=True)
    hashes = dict((u['email'], u['password_hash']) for u in info['users'])
    # The {SHA512-CRYPT} prefix was stripped on the way in, as Mailu's config-import does.
    assert hashes == {'john.doe@example.org': HASH,
                      'reader@xn--bcher-kva.example': LEGACY_HASH[len('{SHA512-CRYPT}'):]}


def test_domain_filter(mailu_db, run):
    db = mailu_db()
    setup_accounts(run, db)
    info = run('mailu_info', db, domains=['Bücher.EXAMPLE'])
    assert [d['name'] for d in info['domains']] == ['xn--bcher-kva.example']
    assert [u['email'] for u in info['users']] == ['reader@xn--bcher-kva.example']
    assert info['aliases'] == []


@pytest.mark.parametrize('version', VERSIONS)
def test_info_fed_back_to_accounts_changes_nothing(mailu_db, run, db_snapshot, version):
    db = mailu_db(version)
    setup_accounts(run, db)
    info = run('mailu_info', db, password_hashes=True)
    before = db_snapshot(db)
    result = run('mailu_accounts', db, domains=info['domains'], users=info['users'],
                 aliases=info['aliases'], purge=['domains', 'users', 'aliases'])
    assert not result.get('failed'), result.get('msg')
    assert result['changed'] is False
    assert db_snapshot(db) == before
    # reader's sha512_crypt hash is one Mailu replaces at the first login: update_password=always
    # refuses it (see test_passwords_mailu_compat), and changes nothing.
    result = run('mailu_accounts', db, update_password='always', hash_rounds=4, domains=info['domains'],
                 users=info['users'], aliases=info['aliases'], purge=['domains', 'users', 'aliases'])
    assert result.get('failed') is True
    assert 'user reader@xn--bcher-kva.example: password_hash' in result['msg']
    assert db_snapshot(db) == before
    # Without it, every hash compares equal to what is stored.
    users = [u for u in info['users'] if u['email'].startswith('john.doe@')]
    result = run('mailu_accounts', db, update_password='always', hash_rounds=4, users=users)
    assert not result.get('failed'), result.get('msg')
    assert result['changed'] is False
    assert db_snapshot(db) == before


def test_info_of_a_legacy_upper_case_alias_fed_back_normalises_it_once(mailu_db, run, db_snapshot):
    db = mailu_db()
    run('mailu_domain', db, name='example.org')
    # As Mailu's web UI writes it: the local part in its case, the key lower-cased.
    with psycopg.connect(db['conninfo']) as conn:
        conn.execute("INSERT INTO alias (email, localpart, domain_name, destination, created_at, comment) "
                     "VALUES ('info@example.org', 'Info', 'example.org', 'someone@remote.org', current_date, '')")
    info = run('mailu_info', db)
    assert [a['email'] for a in info['aliases']] == ['Info@example.org']
    result = run('mailu_accounts', db, aliases=info['aliases'])
    assert result['changed'] is True
    assert result['aliases']['updated'] == ['info@example.org']
    with psycopg.connect(db['conninfo']) as conn:
        assert conn.execute('SELECT localpart FROM alias').fetchall() == [('info',)]
    before = db_snapshot(db)
    for aliases in (info['aliases'], run('mailu_info', db)['aliases']):
        assert run('mailu_accounts', db, aliases=aliases)['changed'] is False
    assert db_snapshot(db) == before
