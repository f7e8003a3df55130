"""purge removes only what the collection manages, and refuses what looks like a mistake
in the inventory (an empty list, more removals than purge_limit), changing nothing."""

import datetime

import pytest

from dbutil import HASH, VERSIONS, execute, rows


def emails(db, table):
    return sorted(r['email'] for r in rows(db, 'SELECT email FROM "%s"' % table))


def users(*names):
    return [dict(email='%s@example.org' % name, password_hash=HASH) for name in names]


def made_in_mailu_admin(db, email, created_at='current_date'):
    """A user as Mailu's web admin writes it (domains -> users -> add), without the collection."""
    localpart = email.split('@')[0]
    execute(db, 'INSERT INTO "user" (email, localpart, domain_name, password, created_at, quota_bytes, global_admin, '
                'enable_imap, enable_pop, forward_enabled, reply_enabled, displayed_name, spam_enabled, comment) '
                "VALUES (%%s, %%s, 'example.org', %%s, %s, 1000000000, false, true, true, false, false, '', true, '')"
                % created_at, (email, localpart, HASH))


@pytest.fixture
def accounts(mailu_db, run):
    """A database with users a, b and c and alias x@, all made by the collection."""
    db = mailu_db()
    result = run('mailu_accounts', db, domains=[dict(name='example.org')], users=users('a', 'b', 'c'),
                 aliases=[dict(email='x@example.org', destination=['a@example.org'])])
    assert result['changed'] is True, result
    return db


@pytest.mark.parametrize('check', [True, False])
def test_purge_with_an_empty_list_is_refused_listing_what_it_would_remove(accounts, run, db_snapshot, check):
    before = db_snapshot(accounts)
    # users: "{{ mailu_acounts_users | default([]) }}": a typo renders an empty list.
    result = run('mailu_accounts', accounts, check=check, diff=True, users=[], purge=['users'])
    assert result.get('failed') is True, result
    assert result['msg'].startswith('purge refused, nothing was changed: purge names users, but no user is declared')
    assert 'users a@example.org, b@example.org, c@example.org' in result['msg']
    assert db_snapshot(accounts) == before


def test_purge_of_an_empty_list_runs_with_purge_limit_minus_one(accounts, run):
    result = run('mailu_accounts', accounts, aliases=[], purge=['aliases'], purge_limit=-1)
    assert result['aliases']['removed'] == ['x@example.org']
    assert emails(accounts, 'alias') == []


def test_purge_over_the_limit_is_refused_unless_the_limit_allows_it(accounts, run, db_snapshot):
    result = run('mailu_accounts', accounts, users=users('a', 'b', 'c', *('u%d' % i for i in range(10))))
    assert len(result['users']['created']) == 10
    before = db_snapshot(accounts)
    args = dict(users=users('a'), purge=['users'])
    for check in (True, False):
        result = run('mailu_accounts', accounts, check=check, **args)
        assert result.get('failed') is True, result
        assert 'it would remove 12 object(s), more than purge_limit (10): users b@example.org, c@example.org, ' \
            in result['msg']
        assert 'u9@example.org' in result['msg']
        assert db_snapshot(accounts) == before
    result = run('mailu_accounts', accounts, check=True, diff=True, purge_limit=12, **args)
    assert result['changed'] is True and len(result['users']['removed']) == 12
    assert sorted(result['diff']['before']['users']) == result['users']['removed']
    assert db_snapshot(accounts) == before
    result = run('mailu_accounts', accounts, purge_limit=12, **args)
    assert len(result['users']['removed']) == 12
    assert emails(accounts, 'user') == ['a@example.org']


@pytest.mark.parametrize('version', VERSIONS)
def test_purge_keeps_accounts_made_in_mailu_admin_and_reports_them(mailu_db, run, db_snapshot, version):
    db = mailu_db(version)
    run('mailu_accounts', db, domains=[dict(name='example.org')], users=users('a', 'b'))
    made_in_mailu_admin(db, 'bob@example.org')
    execute(db, "INSERT INTO alias (email, localpart, domain_name, destination, created_at, comment) "
                "VALUES ('team@example.org', 'team', 'example.org', 'bob@example.org', current_date, '')")
    args = dict(users=users('a'), aliases=[], purge=['users', 'aliases'])
    result = run('mailu_accounts', db, check=True, diff=True, **args)
    assert result['users']['removed'] == ['b@example.org']
    assert result['unmanaged'] == dict(domains=[], users=['bob@example.org'], aliases=['team@example.org'])
    assert set(result['diff']['before']['users']) == {'b@example.org'}
    result = run('mailu_accounts', db, **args)
    assert result['users'] == dict(created=[], updated=[], removed=['b@example.org'])
    assert result['unmanaged'] == dict(domains=[], users=['bob@example.org'], aliases=['team@example.org'])
    assert emails(db, 'user') == ['a@example.org', 'bob@example.org']
    assert emails(db, 'alias') == ['team@example.org']
    applied = db_snapshot(db)
    result = run('mailu_accounts', db, **args)
    assert result['changed'] is False
    assert db_snapshot(db) == applied


def test_an_account_the_inventory_declares_is_managed_from_then_on(mailu_db, run):
    db = mailu_db()
    run('mailu_accounts', db, domains=[dict(name='example.org')], users=users('a'))
    made_in_mailu_admin(db, 'bob@example.org')
    # Declared as it is: nothing in Mailu's tables changes ...
    result = run('mailu_accounts', db, users=[dict(email='bob@example.org')] + users('a'), purge=['users'])
    assert result['changed'] is False and result['unmanaged']['users'] == []
    # ... and once left out of the inventory, purge removes it.
    result = run('mailu_accounts', db, users=users('a'), purge=['users'])
    assert result['users']['removed'] == ['bob@example.org']


def test_an_account_made_again_in_mailu_admin_is_not_the_one_the_collection_made(accounts, run):
    # Mailu's admin removed c@ and made a new c@ on another day.
    yesterday = datetime.date.today() - datetime.timedelta(days=1)
    execute(accounts, 'UPDATE "user" SET created_at = %s WHERE email = %s', (yesterday, 'c@example.org'))
    result = run('mailu_accounts', accounts, users=users('a', 'b'), purge=['users'])
    assert result['changed'] is False
    assert result['unmanaged']['users'] == ['c@example.org']


def test_purged_domain_holding_an_account_made_in_mailu_admin_is_refused(accounts, run, db_snapshot):
    run('mailu_accounts', accounts, domains=[dict(name='other.org')])
    execute(accounts, "INSERT INTO alias (email, localpart, domain_name, destination, created_at, comment) "
                      "VALUES ('team@other.org', 'team', 'other.org', 'a@example.org', current_date, '')")
    before = db_snapshot(accounts)
    result = run('mailu_accounts', accounts, domains=[dict(name='example.org')], purge=['domains'])
    assert result.get('failed') is True, result
    assert 'domain other.org: name is not listed, so purge would remove it, but it still has 1 user(s) or ' \
           'alias(es) that stay (team@other.org)' in result['msg']
    assert db_snapshot(accounts) == before


def test_removed_objects_are_no_longer_managed(accounts, run):
    run('mailu_user', accounts, email='c@example.org', state='absent')
    assert rows(accounts, "SELECT name FROM nantral_mailu_managed WHERE kind = 'users' ORDER BY name") == [
        dict(name='a@example.org'), dict(name='b@example.org')]
