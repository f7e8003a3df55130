"""mailu_user against real Mailu schemas: idempotence, check mode, diff, the row Mailu's
admin would write, options left unmanaged, and removal with the user's dependent rows."""

import datetime

import pytest
from passlib.hash import bcrypt_sha256

from dbutil import BUECHER, HASH, VERSIONS, execute, rows


def user_row(db, email):
    found = rows(db, 'SELECT * FROM "user" WHERE email = %s', (email,))
    return found[0] if found else None


def with_domains(run, mailu_db, version, *names):
    db = mailu_db(version)
    result = run('mailu_accounts', db, domains=[dict(name=n) for n in names])
    assert result['changed'], result
    return db


@pytest.mark.parametrize('version', VERSIONS)
def test_four_steps_then_modification(mailu_db, run, db_snapshot, version):
    db = with_domains(run, mailu_db, version, 'Bücher.example')
    args = dict(email='John.Doe@Bücher.example', password='Correct-Horse-1', hash_rounds=4,
                displayed_name='John', quota='2GiB', forward_destination=['b@x.org', 'A@x.org', 'b@x.org'],
                reply_startdate='2024-06-01', reply_enddate='2024-06-30', spam_threshold=70)
    before = db_snapshot(db)

    result = run('mailu_user', db, check=True, **args)
    assert result['changed'] is True
    assert db_snapshot(db) == before

    result = run('mailu_user', db, **args)
    assert result['changed'] is True
    email = 'john.doe@' + BUECHER
    # Stored as Mailu's config-import stores it: the local part lower-cased too.
    assert result['user']['email'] == email
    row = user_row(db, email)
    assert row is not None
    assert row['localpart'] == 'john.doe'
    assert row['domain_name'] == BUECHER
    assert row['email'] == ('%s@%s' % (row['localpart'], row['domain_name'])).lower()
    assert rows(db, 'SELECT count(*) AS n FROM "user" WHERE email = lower(localpart || \'@\' || domain_name)') == [
        dict(n=1)]
    assert row['created_at'] == datetime.date.today()
    assert row['updated_at'] is None
    assert row['quota_bytes'] == 2147483648
    assert row['displayed_name'] == 'John'
    assert row['forward_destination'] == 'A@x.org,b@x.org'
    assert row['reply_startdate'] == datetime.date(2024, 6, 1)
    assert row['reply_enddate'] == datetime.date(2024, 6, 30)
    assert row['spam_threshold'] == 70
    assert row['password'].startswith('$bcrypt-sha256$v=2,t=2b,r=4$')
    assert bcrypt_sha256.verify('Correct-Horse-1', row['password'])
    applied = db_snapshot(db)

    result = run('mailu_user', db, check=True, **args)
    assert result['changed'] is False
    result = run('mailu_user', db, **args)
    assert result['changed'] is False
    assert db_snapshot(db) == applied

    result = run('mailu_user', db, diff=True, email='John.Doe@bücher.EXAMPLE', displayed_name='John Doe')
    assert result['changed'] is True
    before, after = result['diff']['before'], result['diff']['after']
    assert (before['displayed_name'], after['displayed_name']) == ('John', 'John Doe')
    assert {k for k in set(before) | set(after) if before.get(k) != after.get(k)} == {'displayed_name'}
    row = user_row(db, email)
    assert row['displayed_name'] == 'John Doe'
    assert row['updated_at'] == datetime.date.today()
    assert row['password'] == applied['user'][0]['password']
    assert row['localpart'] == 'john.doe'
    assert row['quota_bytes'] == 2147483648


# Mailu's ORM defaults for the NOT NULL columns that have no DB default, and the others.
DEFAULTS = dict(quota_bytes=1000000000, quota_bytes_used=0, global_admin=False, enabled=True, enable_imap=True,
                enable_pop=True, forward_enabled=False, forward_destination='', forward_keep=True,
                reply_enabled=False, reply_subject=None, reply_body=None,
                reply_startdate=datetime.date(1900, 1, 1), reply_enddate=datetime.date(2999, 12, 31),
                displayed_name='', spam_enabled=True, spam_threshold=80, comment='', updated_at=None)
DEFAULTS_2024 = dict(spam_mark_as_read=True, allow_spoofing=False, change_pw_next_login=False)


@pytest.mark.parametrize('version', VERSIONS)
def test_new_user_gets_mailu_orm_defaults(mailu_db, run, version):
    db = with_domains(run, mailu_db, version, 'example.org')
    result = run('mailu_user', db, email='alice@example.org', password_hash=HASH)
    assert result['changed'] is True
    row = user_row(db, 'alice@example.org')
    expected = dict(DEFAULTS, email='alice@example.org', localpart='alice', domain_name='example.org',
                    password=HASH, created_at=datetime.date.today())
    if version == '2024.06':
        expected.update(DEFAULTS_2024)
    assert row == expected


def test_spam_mark_as_read_follows_the_orm_not_the_db_default(mailu_db, run):
    """The 2.x DB default is false, Mailu's admin writes true: a row written with only
    the columns the DB requires would get false."""
    db = with_domains(run, mailu_db, '2024.06', 'example.org')
    execute(db, 'INSERT INTO "user" (email, localpart, domain_name, password, created_at, quota_bytes, '
                'global_admin, enable_imap, enable_pop, forward_enabled, reply_enabled, displayed_name, '
                "spam_enabled) VALUES ('raw@example.org', 'raw', 'example.org', %s, current_date, 1, false, "
                "true, true, false, false, '', true)", (HASH,))
    run('mailu_user', db, email='module@example.org', password_hash=HASH)
    flags = dict((r['email'], r['spam_mark_as_read'])
                 for r in rows(db, 'SELECT email, spam_mark_as_read FROM "user"'))
    assert flags == {'raw@example.org': False, 'module@example.org': True}


@pytest.mark.parametrize('quota, stored', [('1G', 1000000000), ('2GiB', 2147483648), ('500M', 500000000),
                                           (0, 0), (123456, 123456), ('1.5G', 1500000000)])
def test_quota_sizes(mailu_db, run, quota, stored):
    db = with_domains(run, mailu_db, '2024.06', 'example.org')
    result = run('mailu_user', db, email='alice@example.org', password_hash=HASH, quota=quota)
    assert result['changed'] is True
    assert result['user']['quota'] == stored
    assert user_row(db, 'alice@example.org')['quota_bytes'] == stored
    assert run('mailu_user', db, email='alice@example.org', quota=quota)['changed'] is False


def test_options_left_out_are_not_managed(mailu_db, run):
    db = with_domains(run, mailu_db, '2024.06', 'example.org')
    run('mailu_user', db, email='alice@example.org', password_hash=HASH, global_admin=True, enable_pop=False,
        displayed_name='Alice', forward_enabled=True, forward_destination=['a@remote.org'],
        comment='board', reply_subject='Away', reply_body='Back soon', allow_spoofing=True)
    before = user_row(db, 'alice@example.org')
    result = run('mailu_user', db, email='alice@example.org', quota='5G')
    assert result['changed'] is True
    after = user_row(db, 'alice@example.org')
    assert after['quota_bytes'] == 5000000000
    changed = {k for k in after if after[k] != before[k]}
    assert changed == {'quota_bytes', 'updated_at'}
    assert after['global_admin'] is True and after['enable_pop'] is False
    assert after['reply_body'] == 'Back soon'


def test_boolean_and_text_changes_are_written(mailu_db, run):
    db = with_domains(run, mailu_db, '2024.06', 'example.org')
    run('mailu_user', db, email='alice@example.org', password_hash=HASH)
    result = run('mailu_user', db, diff=True, email='alice@example.org', enabled=False, spam_mark_as_read=False,
                 change_pw_next_login=True, forward_destination=['z@remote.org', 'Y@remote.org'])
    assert result['changed'] is True
    before, after = result['diff']['before'], result['diff']['after']
    assert {k for k in after if before[k] != after[k]} == {
        'enabled', 'spam_mark_as_read', 'change_pw_next_login', 'forward_destination'}
    assert after['forward_destination'] == ['Y@remote.org', 'z@remote.org']
    row = user_row(db, 'alice@example.org')
    assert (row['enabled'], row['spam_mark_as_read'], row['change_pw_next_login']) == (False, False, True)
    assert row['forward_destination'] == 'Y@remote.org,z@remote.org'


@pytest.mark.parametrize('version', VERSIONS)
def test_absent_removes_tokens_fetches_and_manager_rights_first(mailu_db, run, db_snapshot, version):
    db = with_domains(run, mailu_db, version, 'example.org', 'other.org')
    run('mailu_accounts', db, users=[dict(email='alice@example.org', password_hash=HASH),
                                     dict(email='bob@example.org', password_hash=HASH)])
    run('mailu_domain', db, name='example.org', managers=['alice@example.org', 'bob@example.org'])
    run('mailu_domain', db, name='other.org', managers=['alice@example.org'])
    for email in ('alice@example.org', 'bob@example.org'):
        execute(db, "INSERT INTO token (user_email, password, created_at) VALUES (%s, 'x', current_date)", (email,))
        execute(db, 'INSERT INTO "fetch" (user_email, protocol, host, port, tls, username, password, created_at) '
                    "VALUES (%s, 'pop3', 'pop.remote.org', 995, true, 'u', 'p', current_date)", (email,))
    before = db_snapshot(db)

    result = run('mailu_user', db, check=True, email='Alice@example.org', state='absent')
    assert result['changed'] is True
    assert db_snapshot(db) == before

    result = run('mailu_user', db, diff=True, email='Alice@example.org', state='absent')
    assert result['changed'] is True
    assert result['user'] == {}
    assert result['diff']['after'] == {}
    assert result['diff']['before']['quota'] == 1000000000
    assert user_row(db, 'alice@example.org') is None
    assert [r['user_email'] for r in rows(db, 'SELECT user_email FROM token')] == ['bob@example.org']
    assert [r['user_email'] for r in rows(db, 'SELECT user_email FROM "fetch"')] == ['bob@example.org']
    assert rows(db, 'SELECT domain_name, user_email FROM manager') == [
        dict(domain_name='example.org', user_email='bob@example.org')]
    assert [r['name'] for r in rows(db, 'SELECT name FROM domain ORDER BY name')] == ['example.org', 'other.org']

    after = db_snapshot(db)
    assert run('mailu_user', db, email='alice@example.org', state='absent')['changed'] is False
    assert db_snapshot(db) == after


def test_user_address_used_by_an_alias_is_refused(mailu_db, run, db_snapshot):
    db = with_domains(run, mailu_db, '2024.06', 'example.org')
    run('mailu_alias', db, email='contact@example.org', destination=['a@remote.org'])
    before = db_snapshot(db)
    result = run('mailu_user', db, email='Contact@example.org', password_hash=HASH)
    assert result.get('failed') is True
    assert 'contact@example.org' in result['msg'] and 'alias' in result['msg']
    assert db_snapshot(db) == before


def mailu_has_email(db, domain, localpart):
    """Mailu's Domain.has_email: the lower-cased local part against the stored ones."""
    found = rows(db, 'SELECT localpart FROM "user" WHERE domain_name = %s UNION ALL '
                     'SELECT localpart FROM alias WHERE domain_name = %s', (domain, domain))
    return any(r['localpart'] == localpart.lower() for r in found)


@pytest.mark.parametrize('version', VERSIONS)
def test_local_part_is_stored_lower_cased_and_every_spelling_is_one_account(mailu_db, run, db_snapshot, version):
    """Issue 7, item 6: stored as Mailu's config-import stores it, found by Mailu's lookups,
    and John.Doe@ / JOHN.DOE@ / john.doe@ are the same account (no flip-flop)."""
    db = with_domains(run, mailu_db, version, 'example.org')
    args = dict(email='John.Doe@example.org', password_hash=HASH, displayed_name='John')
    before = db_snapshot(db)
    result = run('mailu_user', db, check=True, **args)
    assert result['changed'] is True
    assert db_snapshot(db) == before
    result = run('mailu_user', db, **args)
    assert result['changed'] is True
    assert result['user']['email'] == 'john.doe@example.org'
    row = user_row(db, 'john.doe@example.org')
    assert (row['email'], row['localpart'], row['domain_name']) == ('john.doe@example.org', 'john.doe', 'example.org')
    assert mailu_has_email(db, 'example.org', 'John.Doe') and mailu_has_email(db, 'example.org', 'john.doe')
    applied = db_snapshot(db)
    for spelling in ('John.Doe', 'JOHN.DOE', 'john.doe', 'John.Doe'):
        for check in (True, False):
            result = run('mailu_user', db, check=check, diff=True, email=spelling + '@Example.ORG', displayed_name='John')
            assert result['changed'] is False, spelling
            assert result['user']['email'] == 'john.doe@example.org'
    assert db_snapshot(db) == applied
    result = run('mailu_accounts', db, users=[dict(email='JOHN.DOE@example.org', displayed_name='John')])
    assert result['changed'] is False
    assert db_snapshot(db) == applied


@pytest.mark.parametrize('version', VERSIONS)
def test_legacy_upper_case_local_part_is_normalised_once(mailu_db, run, db_snapshot, version):
    """Issue 7, item 6: a row whose local part has upper case (Mailu's web UI, or this
    collection before 0.2) is lower-cased once, reported as a change with its diff."""
    db = with_domains(run, mailu_db, version, 'example.org')
    execute(db, 'INSERT INTO "user" (email, localpart, domain_name, password, created_at, quota_bytes, '
                'global_admin, enable_imap, enable_pop, forward_enabled, reply_enabled, displayed_name, '
                "spam_enabled) VALUES ('john.doe@example.org', 'John.Doe', 'example.org', %s, '2024-01-02', 5, "
                "false, true, true, false, false, 'John', true)", (HASH,))
    assert not mailu_has_email(db, 'example.org', 'john.doe')      # what the issue is about
    before = db_snapshot(db)
    args = dict(email='John.Doe@example.org', displayed_name='John')

    result = run('mailu_user', db, check=True, diff=True, **args)
    assert result['changed'] is True
    assert db_snapshot(db) == before

    result = run('mailu_user', db, diff=True, **args)
    assert result['changed'] is True
    old, new = result['diff']['before'], result['diff']['after']
    assert (old['email'], new['email']) == ('John.Doe@example.org', 'john.doe@example.org')
    assert {k for k in set(old) | set(new) if old.get(k) != new.get(k)} == {'email'}
    row = user_row(db, 'john.doe@example.org')
    assert (row['email'], row['localpart']) == ('john.doe@example.org', 'john.doe')
    assert row['updated_at'] == datetime.date.today()
    assert (row['password'], row['quota_bytes'], row['created_at']) == (HASH, 5, datetime.date(2024, 1, 2))
    assert mailu_has_email(db, 'example.org', 'john.doe')
    after = db_snapshot(db)

    for check in (True, False):
        assert run('mailu_user', db, check=check, **args)['changed'] is False
    assert db_snapshot(db) == after


@pytest.mark.parametrize('version', VERSIONS)
def test_new_users_get_the_deployments_default_quota_and_spam_threshold(mailu_db, run, db_snapshot, version):
    """Issue 7, item 8: DEFAULT_QUOTA / DEFAULT_SPAM_THRESHOLD of the deployment, for new users
    only, under an explicit value; Mailu 1.9 has no DEFAULT_SPAM_THRESHOLD (always 80)."""
    db = with_domains(run, mailu_db, version, 'example.org')
    threshold = 65 if version == '2024.06' else 80
    defaults = dict(default_quota='3G', default_spam_threshold=threshold)
    args = dict(email='alice@example.org', password_hash=HASH, **defaults)
    empty = db_snapshot(db)
    assert run('mailu_user', db, check=True, **args)['changed'] is True
    assert db_snapshot(db) == empty
    result = run('mailu_user', db, **args)
    assert result['changed'] is True
    assert (result['user']['quota'], result['user']['spam_threshold']) == (3000000000, threshold)
    row = user_row(db, 'alice@example.org')
    assert (row['quota_bytes'], row['spam_threshold']) == (3000000000, threshold)
    applied = db_snapshot(db)
    for check in (True, False):
        assert run('mailu_user', db, check=check, **args)['changed'] is False
    assert db_snapshot(db) == applied
    # Other settings later never touch an existing user.
    for check in (True, False):
        assert run('mailu_user', db, check=check, email='alice@example.org', default_quota='5G')['changed'] is False
    assert db_snapshot(db) == applied
    # An explicit value wins.
    run('mailu_user', db, email='bob@example.org', password_hash=HASH, quota='1G', spam_threshold=90, **defaults)
    row = user_row(db, 'bob@example.org')
    assert (row['quota_bytes'], row['spam_threshold']) == (1000000000, 90)
    # mailu_accounts takes the same options.
    run('mailu_accounts', db, users=[dict(email='carol@example.org', password_hash=HASH)], **defaults)
    row = user_row(db, 'carol@example.org')
    assert (row['quota_bytes'], row['spam_threshold']) == (3000000000, threshold)


def test_default_quota_is_capped_at_the_domains_max_quota(mailu_db, run):
    """As Mailu's form for a new user: DEFAULT_QUOTA, at most the domain's max_quota_bytes."""
    db = mailu_db('2024.06')
    run('mailu_accounts', db, domains=[dict(name='small.org', max_quota='500M'), dict(name='big.org', max_quota='10G')])
    run('mailu_accounts', db, default_quota='2G', users=[dict(email='a@small.org', password_hash=HASH),
                                                         dict(email='a@big.org', password_hash=HASH)])
    assert user_row(db, 'a@small.org')['quota_bytes'] == 500000000
    assert user_row(db, 'a@big.org')['quota_bytes'] == 2000000000
    # The domain's cap as declared in the same run.
    run('mailu_accounts', db, default_quota='2G', domains=[dict(name='new.org', max_quota='1G')],
        users=[dict(email='a@new.org', password_hash=HASH)])
    assert user_row(db, 'a@new.org')['quota_bytes'] == 1000000000


def test_default_spam_threshold_other_than_80_is_refused_on_mailu_1_9(mailu_db, run, db_snapshot):
    db = with_domains(run, mailu_db, '1.9', 'example.org')
    before = db_snapshot(db)
    for module, args in (('mailu_user', dict(email='alice@example.org', password_hash=HASH)),
                         ('mailu_accounts', dict(users=[dict(email='alice@example.org', password_hash=HASH)]))):
        result = run(module, db, default_spam_threshold=70, **args)
        assert result.get('failed') is True
        assert result['msg'].startswith('option default_spam_threshold: value is 70')
        assert 'Mailu 1.9' in result['msg'] and 'DEFAULT_SPAM_THRESHOLD' in result['msg']
        assert db_snapshot(db) == before
    assert run('mailu_user', db, email='alice@example.org', password_hash=HASH, default_spam_threshold=80,
               spam_threshold=70)['changed'] is True
    assert user_row(db, 'alice@example.org')['spam_threshold'] == 70
