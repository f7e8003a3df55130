"""Pure input conversion: sizes, domain names, addresses and address lists, dates, bounds."""

import datetime

import pytest

from ansible_collections.nantral.mailu.plugins.module_utils import mailu_input
from ansible_collections.nantral.mailu.plugins.module_utils.mailu_input import InputError, MailuError


def size(value):
    return mailu_input.size(value, 'user', 'alice@example.org', 'quota')


@pytest.mark.parametrize('value, expected', [
    (0, 0),
    (12345, 12345),
    ('12345', 12345),
    (' 7 ', 7),
    ('100B', 100),
    ('1K', 1000), ('1k', 1000), ('1KB', 1000), ('1KiB', 1024),
    ('1M', 10 ** 6), ('500M', 5 * 10 ** 8), ('10 MB', 10 ** 7), ('1MiB', 2 ** 20),
    ('1G', 10 ** 9), ('1 GB', 10 ** 9), ('1g', 10 ** 9), ('2GiB', 2147483648), ('2gib', 2147483648),
    ('1T', 10 ** 12), ('1TiB', 2 ** 40),
    ('1.5G', 1500000000), ('0.5GiB', 2 ** 29), ('2.25K', 2250), ('0.5K', 500),
    (2 ** 63 - 1, 2 ** 63 - 1),
])
def test_size(value, expected):
    assert size(value) == expected


@pytest.mark.parametrize('value', [
    True, False, -1, '-1', '-5G', 'lots', '', 'G', '1X', '1e3', '1,5G', '1.5.5G', 'iB', '1 G B', None, 2 ** 63,
])
def test_size_rejects(value):
    with pytest.raises(InputError) as info:
        size(value)
    error = info.value
    assert (error.kind, error.name, error.field) == ('user', 'alice@example.org', 'quota')
    assert str(error).startswith('user alice@example.org: quota ')
    assert isinstance(error, MailuError)


@pytest.mark.parametrize('value', [-1, '-5G'])
def test_size_says_negative(value):
    with pytest.raises(InputError, match='negative'):
        size(value)


def test_size_string_keeps_every_digit():
    assert size('9007199254740993') == 9007199254740993


@pytest.mark.parametrize('value, expected', [
    ('example.org', 'example.org'),
    ('EXAMPLE.Org', 'example.org'),
    ('example.org.', 'example.org'),
    ('  example.org ', 'example.org'),
    ('Bücher.example', 'xn--bcher-kva.example'),
    ('BÜCHER.example', 'xn--bcher-kva.example'),
    ('xn--bcher-kva.example', 'xn--bcher-kva.example'),
    ('mail-1.sub.example.org', 'mail-1.sub.example.org'),
    ('.'.join(['a' * 38, 'b' * 37, 'org']), '.'.join(['a' * 38, 'b' * 37, 'org'])),   # 80 characters
])
def test_domain_name(value, expected):
    assert mailu_input.domain_name(value, 'domain', value, 'name') == expected


@pytest.mark.parametrize('value', [
    '', '   ', None, 123, 'localhost', '-bad.org', 'bad-.org', 'a..b.org', 'exa mple.org', 'under_score.org',
    '*.example.org', 'a@b.org', '.'.join(['a' * 40, 'b' * 40, 'org']), 'x' * 64 + '.org',
])
def test_domain_name_rejects(value):
    with pytest.raises(InputError) as info:
        mailu_input.domain_name(value, 'domain', 'd', 'name')
    assert (info.value.kind, info.value.name, info.value.field) == ('domain', 'd', 'name')


@pytest.mark.parametrize('value, expected', [
    ('alice@example.org', ('alice', 'example.org', 'alice@example.org')),
    # The local part is lower-cased too, as Mailu's config-import stores it.
    ('John.Doe@Bücher.example', ('john.doe', 'xn--bcher-kva.example', 'john.doe@xn--bcher-kva.example')),
    ('O\'Brien+tag@EXAMPLE.org', ("o'brien+tag", 'example.org', "o'brien+tag@example.org")),
    (' alice@example.org ', ('alice', 'example.org', 'alice@example.org')),
    ('ünï@example.org', ('ünï', 'example.org', 'ünï@example.org')),
    ('ÜNÏ@example.org', ('ünï', 'example.org', 'ünï@example.org')),
])
def test_address(value, expected):
    localpart, domain, email = mailu_input.address(value, 'user', value, 'email')
    assert (localpart, domain, email) == expected
    assert email == '%s@%s' % (localpart, domain)


@pytest.mark.parametrize('value', [
    'not-an-address', 'a b@example.org', 'a@b@example.org', '@example.org', 'alice@', 'a,b@example.org',
    'alice@localhost', 'al"ice@example.org', 'x' * 81 + '@example.org', '%@example.org', None, 42,
])
def test_address_rejects(value):
    with pytest.raises(InputError) as info:
        mailu_input.address(value, 'user', 'u', 'email')
    assert (info.value.kind, info.value.field) == ('user', 'email')


def test_address_wildcard_allows_a_pattern():
    assert mailu_input.address('Info-%@example.org', 'alias', 'a', 'email', wildcard=True) == (
        'info-%', 'example.org', 'info-%@example.org')
    with pytest.raises(InputError):
        mailu_input.address('Info-%@example.org', 'alias', 'a', 'email')


def test_address_of_80_character_local_part_is_accepted():
    assert mailu_input.address('x' * 80 + '@example.org', 'user', 'u', 'email')[0] == 'x' * 80


@pytest.mark.parametrize('values, expected', [
    (['b@x.org', 'A@x.org', 'b@x.org'], 'A@x.org,b@x.org'),
    ([' b@x.org', 'b@x.org '], 'b@x.org'),
    (['B@x.org', 'b@x.org'], 'B@x.org,b@x.org'),       # case kept, so both stay
    (['only@x.org'], 'only@x.org'),
    ([], ''),
    (None, ''),
])
def test_address_list(values, expected):
    assert mailu_input.address_list(values, 'alias', 'a@x.org', 'destination', 1023) == expected


@pytest.mark.parametrize('values', [['nope'], ['a@x.org', 'a b@x.org'], ['a,b@x.org'], ['a@x.org,b@x.org'],
                                    ['a@bad_domain.org'], [None]])
def test_address_list_rejects(values):
    with pytest.raises(InputError) as info:
        mailu_input.address_list(values, 'alias', 'a@x.org', 'destination', 1023)
    assert (info.value.name, info.value.field) == ('a@x.org', 'destination')


def test_address_list_length_is_checked_once_joined():
    values = ['a@x.org', 'b@x.org']              # 15 characters once joined
    assert mailu_input.address_list(values, 'user', 'u', 'forward_destination', 15) == 'a@x.org,b@x.org'
    with pytest.raises(InputError, match='14'):
        mailu_input.address_list(values, 'user', 'u', 'forward_destination', 14)


def test_date():
    assert mailu_input.date('2024-06-01', 'user', 'u', 'reply_startdate') == datetime.date(2024, 6, 1)
    assert mailu_input.date(datetime.date(2024, 6, 1), 'user', 'u', 'reply_startdate') == datetime.date(2024, 6, 1)
    for bad in ('tomorrow', '2024-02-30', '01/06/2024', ''):
        with pytest.raises(InputError, match='reply_startdate'):
            mailu_input.date(bad, 'user', 'u', 'reply_startdate')


def test_text_length():
    assert mailu_input.text('x' * 160, 'user', 'u', 'displayed_name', 160) == 'x' * 160
    assert mailu_input.text(None, 'user', 'u', 'displayed_name', 160) is None
    assert mailu_input.text('x' * 5000, 'user', 'u', 'reply_body', None) == 'x' * 5000
    with pytest.raises(InputError, match='160'):
        mailu_input.text('x' * 161, 'user', 'u', 'displayed_name', 160)


def test_integer_bounds():
    assert mailu_input.integer(-1, 'domain', 'd', 'max_users', -1) == -1
    assert mailu_input.integer(100, 'user', 'u', 'spam_threshold', 0, 100) == 100
    with pytest.raises(InputError, match='max_users'):
        mailu_input.integer(-2, 'domain', 'd', 'max_users', -1)
    with pytest.raises(InputError, match='between 0 and 100'):
        mailu_input.integer(101, 'user', 'u', 'spam_threshold', 0, 100)


# -- Control characters (issue 8, item 3) ---------------------------------------------------
# Python's ``$`` also matches before a final newline, so ``nl\n`` passed a ``^...$`` check.
CONTROLLED = ['nl\n', 'nl\r', 'n\tl', 'nl\x0b', 'nl\x00', 'nl\x1f', 'nl\x7f', 'nl\x85', 'nl\u2028']


@pytest.mark.parametrize('localpart', CONTROLLED)
@pytest.mark.parametrize('wildcard', [False, True])
def test_address_rejects_a_control_character_in_the_local_part(localpart, wildcard):
    value = localpart + '@example.org'
    with pytest.raises(InputError) as info:
        mailu_input.address(value, 'user', value, 'email', wildcard=wildcard)
    assert (info.value.kind, info.value.field) == ('user', 'email')
    assert repr(value) in str(info.value)


@pytest.mark.parametrize('value', ['nl@\nexample.org', 'nl@ example.org', 'nl @example.org', 'nl@example.org\n.',
                                   'nl@exam\tple.org', 'nl@example.org\x00'])
def test_address_rejects_whitespace_or_control_characters_around_the_domain(value):
    with pytest.raises(InputError):
        mailu_input.address(value, 'user', 'u', 'email')


@pytest.mark.parametrize('item', [c + '@example.org' for c in CONTROLLED] + [
    'nl@ example.org', 'nl@exam\x0bple.org', 'nl@example.org\x00', 'nl @example.org'])
def test_address_list_rejects_control_characters(item):
    with pytest.raises(InputError) as info:
        mailu_input.address_list(['ok@example.org', item], 'alias', 'a@x.org', 'destination', 1023)
    assert (info.value.name, info.value.field) == ('a@x.org', 'destination')


@pytest.mark.parametrize('value', ['exam\nple.org', 'example.org\x00', 'exa\x7fmple.org', 'example.\x0borg'])
def test_domain_name_rejects_control_characters(value):
    with pytest.raises(InputError) as info:
        mailu_input.domain_name(value, 'domain', 'd', 'alternatives')
    assert info.value.field == 'alternatives'


def test_surrounding_whitespace_is_still_ignored():
    """A YAML block scalar ends in a newline: around the whole value it is not part of it."""
    assert mailu_input.address('alice@example.org\n', 'user', 'u', 'email')[2] == 'alice@example.org'
    assert mailu_input.address_list([' alice@example.org\n'], 'alias', 'a', 'destination', 1023) == 'alice@example.org'
    assert mailu_input.domain_name('example.org\n', 'domain', 'd', 'name') == 'example.org'


# -- Sizes are whole bytes, dates are YYYY-MM-DD (issue 8, item 6) --------------------------

@pytest.mark.parametrize('value', ['0.4', '1.5', '0.5B', '1.0001K', '0.0000000001G', 0.4, 1.5, 1e-3,
                                   float('nan'), float('inf'), '\u0663'])
def test_size_refuses_what_is_not_a_whole_number_of_bytes(value):
    """'0.4' used to be stored as 0, which Mailu reads as no limit, and 1.5 as 2."""
    with pytest.raises(InputError) as info:
        size(value)
    assert (info.value.kind, info.value.name, info.value.field) == ('user', 'alice@example.org', 'quota')


def test_size_says_why_a_fraction_is_refused():
    with pytest.raises(InputError, match=r"whole number of bytes, got '0\.4' \(0\.4 bytes\)"):
        size('0.4')


@pytest.mark.parametrize('value, expected', [
    (2.0, 2), (1500000000.0, 1500000000), (1.5 * 10 ** 9, 1500000000), (0.0, 0), ('1.50G', 1500000000),
    ('0.001K', 1),
])
def test_size_accepts_a_whole_number_of_bytes_from_a_fraction_or_a_float(value, expected):
    result = size(value)
    assert result == expected and isinstance(result, int) and not isinstance(result, bool)


@pytest.mark.parametrize('value', ['20240601', '2024-W22-6', '2024-153', '2024-06-01T00:00', '2024-06-01 12:00',
                                   '+2024-06-01', '2024-6-1', '\u0662024-06-01'])
def test_date_must_be_yyyy_mm_dd(value):
    with pytest.raises(InputError, match='YYYY-MM-DD') as info:
        mailu_input.date(value, 'user', 'u', 'reply_enddate')
    assert info.value.field == 'reply_enddate'
