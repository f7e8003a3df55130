"""mailu_alias against real Mailu schemas: idempotence, check mode, diff, the row Mailu's
admin would write, wildcards and removal."""

import datetime

import pytest

from dbutil import BUECHER, VERSIONS, execute, rows


def alias_row(db, email):
    found = rows(db, 'SELECT * FROM alias WHERE email = %s', (email,))
    return found[0] if found else None


def with_domain(run, mailu_db, version, name):
    db = mailu_db(version)
    assert run('mailu_domain', db, name=name)['changed']
    return db


@pytest.mark.parametrize('version', VERSIONS)
def test_four_steps_then_modification(mailu_db, run, db_snapshot, version):
    db = with_domain(run, mailu_db, version, 'Bücher.example')
    args = dict(email='Contact@Bücher.example', destination=['b@x.org', 'A@x.org', 'b@x.org'], comment='front desk')
    before = db_snapshot(db)

    result = run('mailu_alias', db, check=True, **args)
    assert result['changed'] is True
    assert db_snapshot(db) == before

    result = run('mailu_alias', db, **args)
    assert result['changed'] is True
    email = 'contact@' + BUECHER
    # Stored and shown as Mailu's config-import stores it: local part lower-cased.
    assert result['alias']['email'] == email
    assert alias_row(db, email) == dict(
        email=email, localpart='contact', domain_name=BUECHER, destination='A@x.org,b@x.org', wildcard=False,
        comment='front desk', created_at=datetime.date.today(), updated_at=None)
    applied = db_snapshot(db)

    result = run('mailu_alias', db, check=True, **args)
    assert result['changed'] is False
    result = run('mailu_alias', db, **args)
    assert result['changed'] is False
    assert db_snapshot(db) == applied

    result = run('mailu_alias', db, diff=True, email='Contact@Bücher.example', destination=['c@x.org'])
    assert result['changed'] is True
    before, after = result['diff']['before'], result['diff']['after']
    assert before['destination'] == ['A@x.org', 'b@x.org']
    assert after['destination'] == ['c@x.org']
    assert {k for k in set(before) | set(after) if before.get(k) != after.get(k)} == {'destination'}
    row = alias_row(db, email)
    assert row['destination'] == 'c@x.org'
    assert row['comment'] == 'front desk'
    assert row['updated_at'] == datetime.date.today()
    assert row['created_at'] == datetime.date.today()


def test_new_alias_defaults(mailu_db, run):
    db = with_domain(run, mailu_db, '1.9', 'example.org')
    run('mailu_alias', db, email='info@example.org', destination=['someone@remote.org'])
    row = alias_row(db, 'info@example.org')
    assert (row['wildcard'], row['comment'], row['updated_at']) == (False, '', None)


def test_wildcard_alias(mailu_db, run):
    db = with_domain(run, mailu_db, '2024.06', 'example.org')
    result = run('mailu_alias', db, email='info-%@example.org', wildcard=True, destination=['desk@example.org'])
    assert result['changed'] is True
    row = alias_row(db, 'info-%@example.org')
    assert (row['localpart'], row['wildcard']) == ('info-%', True)
    assert run('mailu_alias', db, email='info-%@example.org', wildcard=True,
               destination=['desk@example.org'])['changed'] is False


def test_wildcard_alias_updated_without_repeating_wildcard(mailu_db, run):
    db = with_domain(run, mailu_db, '2024.06', 'example.org')
    run('mailu_alias', db, email='info-%@example.org', wildcard=True, destination=['desk@example.org'])
    result = run('mailu_alias', db, email='info-%@example.org', destination=['other@example.org'])
    assert not result.get('failed'), result.get('msg')
    assert result['changed'] is True
    assert alias_row(db, 'info-%@example.org')['destination'] == 'other@example.org'


def test_alias_address_used_by_a_user_is_refused(mailu_db, run, db_snapshot):
    db = with_domain(run, mailu_db, '2024.06', 'example.org')
    run('mailu_user', db, email='alice@example.org',
        password_hash='$bcrypt-sha256$v=2,t=2b,r=4$ICZM1fz5QBmWryf3P/Ok6.$gUJ3YZ5GBAeKW7dhQ3CqZEA4PRK.W4i')
    before = db_snapshot(db)
    result = run('mailu_alias', db, email='Alice@example.org', destination=['x@remote.org'])
    assert result.get('failed') is True
    assert 'alias alice@example.org' in result['msg'] and 'user' in result['msg']
    assert db_snapshot(db) == before


def test_destination_is_required_to_create(mailu_db, run, db_snapshot):
    db = with_domain(run, mailu_db, '2024.06', 'example.org')
    before = db_snapshot(db)
    result = run('mailu_alias', db, email='info@example.org', comment='no destination')
    assert result.get('failed') is True
    assert 'info@example.org' in result['msg'] and 'destination' in result['msg']
    assert db_snapshot(db) == before


@pytest.mark.parametrize('version', VERSIONS)
def test_absent(mailu_db, run, db_snapshot, version):
    db = with_domain(run, mailu_db, version, 'example.org')
    run('mailu_alias', db, email='a@example.org', destination=['x@remote.org'])
    run('mailu_alias', db, email='b@example.org', destination=['x@remote.org'])
    before = db_snapshot(db)

    result = run('mailu_alias', db, check=True, email='A@example.org', state='absent')
    assert result['changed'] is True
    assert db_snapshot(db) == before

    result = run('mailu_alias', db, diff=True, email='A@example.org', state='absent')
    assert result['changed'] is True
    assert result['diff']['before']['destination'] == ['x@remote.org']
    assert result['diff']['after'] == {}
    assert [r['email'] for r in rows(db, 'SELECT email FROM alias')] == ['b@example.org']
    assert run('mailu_alias', db, email='a@example.org', state='absent')['changed'] is False


@pytest.mark.parametrize('version', VERSIONS)
def test_local_part_is_stored_lower_cased_and_every_spelling_is_one_alias(mailu_db, run, db_snapshot, version):
    """Issue 7, item 6, for aliases: Mailu's config-import lower-cases their local part too."""
    db = with_domain(run, mailu_db, version, 'example.org')
    result = run('mailu_alias', db, email='Info@example.org', destination=['x@remote.org'])
    assert result['changed'] is True
    assert result['alias']['email'] == 'info@example.org'
    assert alias_row(db, 'info@example.org')['localpart'] == 'info'
    applied = db_snapshot(db)
    for spelling in ('Info', 'INFO', 'info'):
        for check in (True, False):
            assert run('mailu_alias', db, check=check, email=spelling + '@example.org',
                       destination=['x@remote.org'])['changed'] is False
    assert db_snapshot(db) == applied


@pytest.mark.parametrize('version', VERSIONS)
def test_legacy_upper_case_alias_local_part_is_normalised_once(mailu_db, run, db_snapshot, version):
    db = with_domain(run, mailu_db, version, 'example.org')
    execute(db, "INSERT INTO alias (email, localpart, domain_name, destination, created_at, comment) "
                "VALUES ('info@example.org', 'Info', 'example.org', 'x@remote.org', '2024-01-02', '')")
    before = db_snapshot(db)
    result = run('mailu_alias', db, check=True, email='Info@example.org')
    assert result['changed'] is True
    assert db_snapshot(db) == before
    result = run('mailu_alias', db, diff=True, email='Info@example.org')
    assert result['changed'] is True
    old, new = result['diff']['before'], result['diff']['after']
    assert (old['email'], new['email']) == ('Info@example.org', 'info@example.org')
    assert {k for k in set(old) | set(new) if old.get(k) != new.get(k)} == {'email'}
    row = alias_row(db, 'info@example.org')
    assert (row['localpart'], row['destination'], row['updated_at']) == ('info', 'x@remote.org', datetime.date.today())
    after = db_snapshot(db)
    for check in (True, False):
        assert run('mailu_alias', db, check=check, email='Info@example.org')['changed'] is False
    assert db_snapshot(db) == after
