"""Bad input and bad databases: the module fails with a message that says what is wrong
and where, and the database is exactly as before."""

import socket
import threading
import time

import psycopg
import pytest

from dbutil import HASH

# The shape passlib's argon2 handler identifies; no backend is needed to recognise it.
ARGON2 = '$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$' + 'A' * 43


@pytest.fixture
def db(mailu_db, run):
    """A 2024.06 database with a domain, a user and an alias in it."""
    params = mailu_db('2024.06')
    result = run('mailu_accounts', params, domains=[dict(name='example.org')],
                 users=[dict(email='alice@example.org', password_hash=HASH)],
                 aliases=[dict(email='contact@example.org', destination=['alice@example.org'])])
    assert result['changed'], result
    return params


def refused(run, db_snapshot, db, module, fragments, **args):
    """Run ``module``; it must fail, name every fragment, and change nothing."""
    before = db_snapshot(db)
    result = run(module, db, **args)
    assert result.get('failed') is True, result
    for fragment in fragments:
        assert fragment in result['msg'], (fragment, result['msg'])
    assert db_snapshot(db) == before
    return result


@pytest.mark.parametrize('email', ['not-an-address', 'a b@example.org', 'a@b@example.org', '@example.org'])
def test_invalid_user_address(run, db_snapshot, db, email):
    refused(run, db_snapshot, db, 'mailu_user', ['user %s' % email, 'email'], email=email, password_hash=HASH)


@pytest.mark.parametrize('email', ['not-an-address', 'a b@example.org'])
def test_invalid_alias_address(run, db_snapshot, db, email):
    refused(run, db_snapshot, db, 'mailu_alias', ['alias %s' % email, 'email'], email=email,
            destination=['alice@example.org'])


def test_user_in_unknown_domain(run, db_snapshot, db):
    refused(run, db_snapshot, db, 'mailu_user', ['user bob@unknown.org', 'email', 'unknown.org'],
            email='bob@unknown.org', password_hash=HASH)


def test_alias_in_unknown_domain(run, db_snapshot, db):
    refused(run, db_snapshot, db, 'mailu_alias', ['alias info@unknown.org', 'email', 'unknown.org'],
            email='info@unknown.org', destination=['alice@example.org'])


def test_displayed_name_longer_than_its_column(run, db_snapshot, db):
    refused(run, db_snapshot, db, 'mailu_user', ['user alice@example.org', 'displayed_name', '160'],
            email='alice@example.org', displayed_name='n' * 161)


def test_displayed_name_of_exactly_160_characters_is_accepted(run, db):
    assert run('mailu_user', db, email='alice@example.org', displayed_name='n' * 160)['changed'] is True


@pytest.mark.parametrize('module, key', [('mailu_user', 'email'), ('mailu_alias', 'email'),
                                         ('mailu_domain', 'name')])
def test_comment_longer_than_its_column(run, db_snapshot, db, module, key):
    obj = {'mailu_user': 'user alice@example.org', 'mailu_alias': 'alias contact@example.org',
           'mailu_domain': 'domain example.org'}[module]
    value = {'email': obj.split()[1], 'name': 'example.org'}[key]
    refused(run, db_snapshot, db, module, [obj, 'comment', '255'], comment='c' * 256, **{key: value})


def test_domain_name_longer_than_its_column(run, db_snapshot, db):
    name = '.'.join(['a' * 40, 'b' * 40, 'org'])   # 85 characters, every label valid
    refused(run, db_snapshot, db, 'mailu_domain', [name, 'name', '80'], name=name)


@pytest.mark.parametrize('quota', [-1, '-5G'])
def test_negative_quota(run, db_snapshot, db, quota):
    refused(run, db_snapshot, db, 'mailu_user', ['user alice@example.org', 'quota', 'negative'],
            email='alice@example.org', quota=quota)


def test_quota_that_is_not_a_size(run, db_snapshot, db):
    refused(run, db_snapshot, db, 'mailu_user', ['user alice@example.org', 'quota', 'lots'],
            email='alice@example.org', quota='lots')


def test_negative_max_quota_of_a_domain(run, db_snapshot, db):
    refused(run, db_snapshot, db, 'mailu_domain', ['domain example.org', 'max_quota', 'negative'],
            name='example.org', max_quota='-1G')


def test_alias_destination_that_is_not_an_address(run, db_snapshot, db):
    refused(run, db_snapshot, db, 'mailu_alias', ['alias contact@example.org', 'destination', 'nobody'],
            email='contact@example.org', destination=['alice@example.org', 'nobody'])


def test_forward_destination_that_is_not_an_address(run, db_snapshot, db):
    refused(run, db_snapshot, db, 'mailu_user', ['user alice@example.org', 'forward_destination'],
            email='alice@example.org', forward_destination=['no address'])


def test_alias_destination_empty(run, db_snapshot, db):
    refused(run, db_snapshot, db, 'mailu_alias', ['alias contact@example.org', 'destination'],
            email='contact@example.org', destination=[])


def test_alias_destination_longer_than_its_column(run, db_snapshot, db):
    destination = ['user%03d@remote-domain.example' % i for i in range(40)]   # > 1023 once joined
    refused(run, db_snapshot, db, 'mailu_alias', ['alias contact@example.org', 'destination', '1023'],
            email='contact@example.org', destination=destination)


def test_spam_threshold_above_100(run, db_snapshot, db):
    refused(run, db_snapshot, db, 'mailu_user', ['user alice@example.org', 'spam_threshold', '101'],
            email='alice@example.org', spam_threshold=101)


@pytest.mark.parametrize('module', ['mailu_user', 'mailu_accounts'])
@pytest.mark.parametrize('value, problem', [(-1, 'must not be negative'), ('-5G', 'must not be negative'),
                                            ('lots', 'must be a size')])
def test_default_quota_that_is_not_a_size(run, db_snapshot, db, module, value, problem):
    user = dict(email='new@example.org', password_hash=HASH)
    args = user if module == 'mailu_user' else dict(users=[user])
    refused(run, db_snapshot, db, module, ['option default_quota', problem], default_quota=value, **args)


@pytest.mark.parametrize('module', ['mailu_user', 'mailu_accounts'])
@pytest.mark.parametrize('value', [-1, 101])
def test_default_spam_threshold_out_of_range(run, db_snapshot, db, module, value):
    user = dict(email='new@example.org', password_hash=HASH)
    args = user if module == 'mailu_user' else dict(users=[user])
    refused(run, db_snapshot, db, module, ['option default_spam_threshold', 'between 0 and 100'],
            default_spam_threshold=value, **args)


def test_max_users_below_minus_one(run, db_snapshot, db):
    refused(run, db_snapshot, db, 'mailu_domain', ['domain example.org', 'max_users', '-2'],
            name='example.org', max_users=-2)


def test_reply_startdate_not_a_date(run, db_snapshot, db):
    refused(run, db_snapshot, db, 'mailu_user', ['user alice@example.org', 'reply_startdate', 'tomorrow'],
            email='alice@example.org', reply_startdate='tomorrow')


def test_removing_a_domain_that_has_users(run, db_snapshot, db):
    refused(run, db_snapshot, db, 'mailu_domain', ['domain example.org', 'state', 'alice@example.org'],
            name='example.org', state='absent')


def test_2x_only_option_on_a_19_schema(mailu_db, run, db_snapshot):
    db = mailu_db('1.9')
    run('mailu_accounts', db, domains=[dict(name='example.org')],
        users=[dict(email='alice@example.org', password_hash=HASH)])
    for module_args in (dict(email='alice@example.org', allow_spoofing=True),
                        dict(email='new@example.org', password_hash=HASH, spam_mark_as_read=False)):
        field = [k for k in module_args if k not in ('email', 'password_hash')][0]
        refused(run, db_snapshot, db, 'mailu_user', ['user %s' % module_args['email'], field, '2.0', '1.9'],
                **module_args)


def test_password_and_password_hash_are_mutually_exclusive(run, db_snapshot, db):
    refused(run, db_snapshot, db, 'mailu_user', ['password', 'password_hash', 'mutually exclusive'],
            email='alice@example.org', password='Some-Pass-1', password_hash=HASH)


def test_password_and_password_hash_in_accounts_names_the_user(run, db_snapshot, db):
    refused(run, db_snapshot, db, 'mailu_accounts', ['password', 'password_hash', 'bob@example.org'],
            users=[dict(email='alice@example.org'),
                   dict(email='bob@example.org', password='Some-Pass-1', password_hash=HASH)])


@pytest.mark.parametrize('value', ['plain-text-password', '{PLAIN}secret', '', '*', '!'])
def test_password_hash_that_is_not_a_hash(run, db_snapshot, db, value):
    refused(run, db_snapshot, db, 'mailu_user', ['user bob@example.org', 'password_hash'],
            email='bob@example.org', password_hash=value)


@pytest.mark.parametrize('value', ['$bcrypt-sha256$garbage', '$2b$12$short', '{SSHA}'])
def test_malformed_hash_with_a_known_prefix(run, db_snapshot, db, value):
    refused(run, db_snapshot, db, 'mailu_user', ['user bob@example.org', 'password_hash'],
            email='bob@example.org', password_hash=value)


def test_argon2_password_hash(run, db_snapshot, db):
    refused(run, db_snapshot, db, 'mailu_user', ['user bob@example.org', 'password_hash', 'argon2'],
            email='bob@example.org', password_hash=ARGON2)


def _closed_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_unreachable_database(run, db_snapshot, db):
    unreachable = dict(db, login_host='127.0.0.1', login_port=_closed_port())
    before = db_snapshot(db)
    started = time.monotonic()
    result = run('mailu_domain', unreachable, name='example.net')
    assert result.get('failed') is True
    assert 'cannot connect' in result['msg']
    assert str(unreachable['login_port']) in result['msg']
    assert time.monotonic() - started < 5
    assert db_snapshot(db) == before


def test_unsupported_schema_revision(run, db_snapshot, db):
    with psycopg.connect(db['conninfo']) as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'deadbeef0000'")
    refused(run, db_snapshot, db, 'mailu_domain', ['unsupported', 'deadbeef0000'], name='example.net')
    refused(run, db_snapshot, db, 'mailu_info', ['unsupported', 'deadbeef0000'])


def test_missing_schema(run, db_snapshot, db):
    with psycopg.connect(db['conninfo']) as conn:
        conn.execute('DROP TABLE alembic_version')
    refused(run, db_snapshot, db, 'mailu_user', ['no Mailu schema', 'alembic_version'],
            email='bob@example.org', password_hash=HASH)


def test_same_user_listed_twice(run, db_snapshot, db):
    refused(run, db_snapshot, db, 'mailu_accounts', ['user bob@example.org', 'twice'],
            users=[dict(email='bob@example.org', password_hash=HASH),
                   dict(email='Bob@Example.org', password_hash=HASH, quota='2G')])


def test_one_bad_user_among_good_ones_writes_nothing(run, db_snapshot, db):
    users = [dict(email='u%d@example.org' % i, password_hash=HASH) for i in range(5)]
    users.insert(3, dict(email='bad@example.org', password_hash=HASH, quota='lots'))
    refused(run, db_snapshot, db, 'mailu_accounts', ['user bad@example.org', 'quota'],
            domains=[dict(name='new.org')], users=users,
            aliases=[dict(email='info@new.org', destination=['u1@example.org'])])


def test_database_error_while_writing_rolls_back_everything(run, db_snapshot, db):
    """A row the database itself refuses, after the domain, alternative and other users
    were written in the same run: the whole run is rolled back."""
    with psycopg.connect(db['conninfo']) as conn:
        conn.execute('ALTER TABLE "user" ADD CONSTRAINT test_refuses CHECK (localpart <> %s)' % "'explode'")
    users = [dict(email='u%d@new.org' % i, password_hash=HASH) for i in range(3)]
    users.append(dict(email='explode@new.org', password_hash=HASH))
    refused(run, db_snapshot, db, 'mailu_accounts', ['database error', 'nothing was changed', 'test_refuses'],
            domains=[dict(name='new.org', alternatives=['new.net'])], users=users,
            aliases=[dict(email='contact@example.org', destination=['u1@new.org'])])


def test_one_user_in_an_unknown_domain_among_good_ones_writes_nothing(run, db_snapshot, db):
    users = [dict(email='u%d@example.org' % i, password_hash=HASH) for i in range(3)]
    users.append(dict(email='stray@unknown.org', password_hash=HASH))
    refused(run, db_snapshot, db, 'mailu_accounts', ['user stray@unknown.org', 'email'], users=users)


# -- wait_for_schema ----------------------------------------------------------------------

def _create_schema_later(conninfo, delay, head):
    def work():
        time.sleep(delay)
        with psycopg.connect(conninfo) as conn:
            conn.execute('CREATE TABLE alembic_version (version_num varchar(32) NOT NULL, '
                         'CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))')
            conn.execute('INSERT INTO alembic_version VALUES (%s)', (head,))
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def test_wait_for_schema_until_mailu_creates_it(run, db):
    with psycopg.connect(db['conninfo']) as conn:
        conn.execute('DROP TABLE alembic_version')
    thread = _create_schema_later(db['conninfo'], 2, '0ba45693748d')
    started = time.monotonic()
    result = run('mailu_domain', db, name='example.net', wait_for_schema=10)
    elapsed = time.monotonic() - started
    thread.join()
    assert not result.get('failed'), result.get('msg')
    assert result['changed'] is True
    assert result['schema'] == dict(release='2024.06', revision='0ba45693748d')
    assert 1.5 <= elapsed < 9
    with psycopg.connect(db['conninfo']) as conn:
        assert conn.execute("SELECT count(*) FROM domain WHERE name = 'example.net'").fetchone() == (1,)


def test_wait_for_schema_gives_up(run, db_snapshot, db):
    with psycopg.connect(db['conninfo']) as conn:
        conn.execute('DROP TABLE alembic_version')
    started = time.monotonic()
    refused(run, db_snapshot, db, 'mailu_domain', ['no Mailu schema', 'waited'],
            name='example.net', wait_for_schema=1)
    assert 0.9 <= time.monotonic() - started < 5


# -- Control characters in addresses and names (issue 8, item 3) ----------------------------

@pytest.mark.parametrize('module, args, fragments', [
    ('mailu_user', dict(email='nl\n@example.org', password_hash=HASH), ['email', 'control characters']),
    ('mailu_user', dict(email='alice@example.org', forward_destination=['nl\n@remote.org']),
     ['user alice@example.org', 'forward_destination', 'control characters']),
    ('mailu_alias', dict(email='nl\n@example.org', destination=['alice@example.org']), ['email', 'control characters']),
    ('mailu_alias', dict(email='pat%\n@example.org', wildcard=True, destination=['alice@example.org']), ['email', 'control characters']),
    ('mailu_alias', dict(email='contact@example.org', destination=['alice@example.org', 'nl\n@remote.org']),
     ['alias contact@example.org', 'destination', 'control characters']),
    ('mailu_domain', dict(name='example.org', managers=['alice\n@example.org']), ['domain example.org', 'managers', 'control characters']),
    ('mailu_domain', dict(name='example.org', alternatives=['example.net\x00']), ['domain example.org', 'alternatives']),
    ('mailu_accounts', dict(users=[dict(email='nl\n@example.org', password_hash=HASH)]), ['email', 'control characters']),
    ('mailu_accounts', dict(aliases=[dict(email='x@example.org', destination=['a@ remote.org'])]),
     ['alias x@example.org', 'destination', 'control characters']),
])
def test_control_character_in_an_address_is_refused(run, db_snapshot, db, module, args, fragments):
    refused(run, db_snapshot, db, module, fragments, **args)


# -- Sizes, hashes, passwords and dates (issue 8, item 6) ------------------------------------

@pytest.mark.parametrize('quota', ['0.4', 1.5, '1.0001K'])
def test_quota_that_is_not_a_whole_number_of_bytes(run, db_snapshot, db, quota):
    """'0.4' was stored as 0, which Mailu reads as no limit at all."""
    refused(run, db_snapshot, db, 'mailu_user', ['user alice@example.org', 'quota', 'whole number of bytes'],
            email='alice@example.org', quota=quota)


def test_max_quota_and_default_quota_that_are_not_whole_bytes(run, db_snapshot, db):
    refused(run, db_snapshot, db, 'mailu_domain', ['domain example.org', 'max_quota', 'whole number of bytes'],
            name='example.org', max_quota='0.4')
    refused(run, db_snapshot, db, 'mailu_accounts', ['option default_quota', 'whole number of bytes'],
            default_quota=0.5, users=[dict(email='new@example.org', password_hash=HASH)])


def test_quota_as_a_whole_float_is_accepted(run, db):
    """Jinja arithmetic such as {{ 1.5 * 1000**3 }} gives a float."""
    result = run('mailu_user', db, email='alice@example.org', quota=1.5 * 10 ** 9)
    assert result['changed'] is True and result['user']['quota'] == 1500000000
    assert run('mailu_user', db, email='alice@example.org', quota='1.5G')['changed'] is False


@pytest.mark.parametrize('value', ['$6$rounds=5000$salt$', '$2b$12$' + 'a' * 21 + 'e', '{SHA512-CRYPT}$6$salt'])
def test_password_hash_without_checksum(run, db_snapshot, db, value):
    refused(run, db_snapshot, db, 'mailu_user', ['user bob@example.org', 'password_hash', 'checksum'],
            email='bob@example.org', password_hash=value)


@pytest.mark.parametrize('module, args', [
    ('mailu_user', dict(email='bob@example.org')),
    ('mailu_user', dict(email='alice@example.org', update_password='always')),
    ('mailu_accounts', dict(users=[dict(email='alice@example.org'), dict(email='bob@example.org')])),
])
def test_password_longer_than_passlib_takes(run, db_snapshot, db, module, args):
    """It ended in passlib's PasswordSizeError, which named neither the user nor the field."""
    long_password = 'p' * 4097
    if module == 'mailu_accounts':
        args['users'][1]['password'] = long_password
    else:
        args['password'] = long_password
    result = refused(run, db_snapshot, db, module, ['user %s' % ('alice' if 'alice' in args.get('email', '') else 'bob'),
                                                    'password', '4096'], **args)
    assert long_password not in result['msg']


@pytest.mark.parametrize('field', ['reply_startdate', 'reply_enddate'])
@pytest.mark.parametrize('value', ['20240601', '2024-W22-6', '2024-06-01T00:00'])
def test_reply_date_in_another_iso_form(run, db_snapshot, db, field, value):
    refused(run, db_snapshot, db, 'mailu_user', ['user alice@example.org', field, 'YYYY-MM-DD'],
            email='alice@example.org', **{field: value})


def test_reply_enddate_before_reply_startdate(run, db_snapshot, db):
    refused(run, db_snapshot, db, 'mailu_user', ['user alice@example.org', 'reply_enddate', '2024-05-31', '2024-06-01'],
            email='alice@example.org', reply_startdate='2024-06-01', reply_enddate='2024-05-31')


def test_reply_enddate_before_the_stored_reply_startdate(run, db_snapshot, db):
    assert run('mailu_user', db, email='alice@example.org', reply_startdate='2024-06-01')['changed'] is True
    refused(run, db_snapshot, db, 'mailu_user', ['user alice@example.org', 'reply_enddate', '2024-06-01'],
            email='alice@example.org', reply_enddate='2024-05-31')
    refused(run, db_snapshot, db, 'mailu_accounts', ['user bob@example.org', 'reply_startdate', '2999-12-31'],
            users=[dict(email='alice@example.org', reply_enddate='2999-12-31'),
                   dict(email='bob@example.org', password_hash=HASH, reply_startdate='3000-01-01')])


def test_reply_of_one_day_is_accepted(run, db):
    result = run('mailu_user', db, email='alice@example.org', reply_startdate='2024-06-01', reply_enddate='2024-06-01')
    assert result['changed'] is True
    assert (result['user']['reply_startdate'], result['user']['reply_enddate']) == ('2024-06-01', '2024-06-01')
