"""What the mailu_stack role writes for Mailu, and what it refuses, rendered by the role's
own tasks (settings.yml, then its templates) with ansible-playbook on localhost. Nothing
is installed or started: the files go to a directory of the test's own."""

import urllib.parse

import pytest
from alembic.config import Config

from stackrender import render

# Every character a URI, a config parser, compose's env_file reader or a shell treats as syntax.
HOSTILE_PASSWORD = 'Db/pa%ss:w@rd%41 \'q\' "x" $HOME ${X} \\n #y'


def env_lines(text):
    return dict(line.split('=', 1) for line in text.splitlines() if line and not line.startswith('#'))


# --- Item 1: any database password, and Mailu's migrations still get their URI ------------------

def test_any_password_stays_out_of_the_uri_that_alembic_parses(tmp_path):
    result, files = render(tmp_path, {'mailu_stack_db_password': HOSTILE_PASSWORD})
    assert result.returncode == 0, result.stdout
    uri = env_lines(files['mailu.env'])['SQLALCHEMY_DATABASE_URI']
    assert uri == 'postgresql://mailu@192.168.203.1:5432/mailu'
    # What Mailu's core/admin/migrations/env.py does with it: it must not raise.
    config = Config()
    config.set_main_option('sqlalchemy.url', uri)
    assert config.get_main_option('sqlalchemy.url') == uri
    # The password goes to the admin alone, as libpq's PGPASSWORD, in compose's
    # double-quoted env_file form: \, " and $ escaped, nothing else.
    value = env_lines(files['database.env'])['PGPASSWORD']
    assert value.startswith('"') and value.endswith('"')
    unescaped = value[1:-1].replace('\\\\', '\0').replace('\\"', '"').replace('\\$', '$').replace('\0', '\\')
    assert unescaped == HOSTILE_PASSWORD
    assert HOSTILE_PASSWORD not in files['mailu.env']
    assert urllib.parse.quote(HOSTILE_PASSWORD, safe='') not in files['mailu.env']


def test_a_url_encoded_password_is_what_alembic_refuses():
    # The failure the role avoids, shown with the same Alembic call: why no password is in the URI.
    config = Config()
    with pytest.raises(ValueError, match='interpolation'):
        config.set_main_option('sqlalchemy.url', 'postgresql://mailu:%s@db/mailu'
                               % urllib.parse.quote(HOSTILE_PASSWORD, safe=''))


@pytest.mark.parametrize('variable, value', [
    ('mailu_stack_db_user', 'mail%u'),
    ('mailu_stack_db_name', 'mailu db'),
    ('mailu_stack_db_password', 'two\nlines'),
])
def test_names_and_passwords_that_cannot_be_passed_on_are_refused(tmp_path, variable, value):
    result, _files = render(tmp_path, {variable: value})
    assert result.returncode != 0
    assert variable in result.stdout


# --- Item 2: the web root points at a location front serves ----------------------------------

@pytest.mark.parametrize('version, webmail, admin, expected', [
    ('2024.06', 'roundcube', True, '/webmail'),
    ('2024.06', 'snappymail', False, '/webmail'),
    ('2024.06', 'none', True, '/admin'),
    ('2024.06', 'none', False, ''),
    ('1.9', 'roundcube', True, '/webmail'),
    ('1.9', 'rainloop', False, '/webmail'),
    ('1.9', 'none', True, ''),
    ('1.9', 'none', False, ''),
])
def test_webroot_redirect_is_what_mailus_setup_writes(tmp_path, version, webmail, admin, expected):
    # Mailu's setup/flavors/compose/mailu.env at 1.9.50 and 2024.06.57.
    result, files = render(tmp_path, {'mailu_stack_version': version, 'mailu_stack_webmail': webmail,
                                      'mailu_stack_admin_enabled': admin}, files=('mailu.env',))
    assert result.returncode == 0, result.stdout
    lines = env_lines(files['mailu.env'])
    assert lines['WEBROOT_REDIRECT'] == expected
    assert lines['WEB_WEBMAIL'] == ('' if version == '1.9' and webmail == 'none' else '/webmail')


# --- Item 3: a release and its images belong together ----------------------------------------

@pytest.mark.parametrize('version, tag, expected', [
    ('1.9', '', '1.9.50'),
    ('2024.06', '', '2024.06.57'),
    ('1.9', '1.9', '1.9'),
    ('1.9', '1.9.42', '1.9.42'),
    ('2024.06', '2024.06.13', '2024.06.13'),
])
def test_the_release_decides_the_image_tag(tmp_path, version, tag, expected):
    result, files = render(tmp_path, {'mailu_stack_version': version, 'mailu_stack_image_tag': tag},
                           files=('compose.env',))
    assert result.returncode == 0, result.stdout
    assert env_lines(files['compose.env'])['MAILU_VERSION'] == expected


@pytest.mark.parametrize('version, tag', [
    ('1.9', '2024.06.57'), ('2024.06', '1.9.50'), ('2024.06', '2024.6'), ('1.9', '1.90'), ('2024.06', 'latest')])
def test_a_tag_of_another_release_is_refused_by_name(tmp_path, version, tag):
    result, files = render(tmp_path, {'mailu_stack_version': version, 'mailu_stack_image_tag': tag})
    assert result.returncode != 0
    assert 'mailu_stack_image_tag %s is not a tag of Mailu %s' % (tag, version) in result.stdout
    assert not files


# --- Item 4: nothing that arrives from the gateway relays ------------------------------------

def test_postfix_trusts_the_mailu_network_but_not_its_gateway(tmp_path):
    result, files = render(tmp_path, {'mailu_stack_relaynets': ['203.0.113.10/32', '2001:db8::10/128']},
                           files=('postfix.cf',))
    assert result.returncode == 0, result.stdout
    settings = {k.strip(): v.strip() for k, v in env_lines(files['postfix.cf']).items()}
    assert settings['mynetworks'].split() == [
        '127.0.0.1/32', '203.0.113.10/32', '[2001:db8::10]/128', '!192.168.203.1', '192.168.203.0/24']
    assert settings['smtpd_authorized_xclient_hosts'].split() == ['!192.168.203.1', '192.168.203.0/24']


@pytest.mark.parametrize('version, loopback6', [('1.9', ['[::1]/128']), ('2024.06', [])])
def test_relay_from_host_trusts_the_gateway_for_relaying_only(tmp_path, version, loopback6):
    result, files = render(tmp_path, {'mailu_stack_version': version, 'mailu_stack_relay_from_host': True,
                                      'mailu_stack_relaynets': ['203.0.113.10']}, files=('postfix.cf',))
    assert result.returncode == 0, result.stdout
    settings = {k.strip(): v.strip() for k, v in env_lines(files['postfix.cf']).items()}
    assert settings['mynetworks'].split() == ['127.0.0.1/32'] + loopback6 + ['203.0.113.10', '192.168.203.0/24']
    assert settings['smtpd_authorized_xclient_hosts'].split() == ['!192.168.203.1', '192.168.203.0/24']


@pytest.mark.parametrize('version, relaynets, expected', [
    ('2024.06', [], ''),
    ('2024.06', ['203.0.113.10/32'], '203.0.113.10/32'),
    ('1.9', [], ''),
    # 1.9's rspamd takes RELAYNETS instead of its default local networks, which hold SUBNET.
    ('1.9', ['203.0.113.10/32'], '192.168.203.0/24,203.0.113.10/32'),
])
def test_relaynets_reach_rspamd_without_losing_mailus_network(tmp_path, version, relaynets, expected):
    result, files = render(tmp_path, {'mailu_stack_version': version, 'mailu_stack_relaynets': relaynets},
                           files=('mailu.env',))
    assert result.returncode == 0, result.stdout
    assert env_lines(files['mailu.env'])['RELAYNETS'] == expected


@pytest.mark.parametrize('nets', [
    ['203.0.113.10/32', '2001:db8::10/128', '198.51.100.7', '10.20.0.0/16', 'fd12:3456::/48', '172.16.5.0/24']])
def test_exact_hosts_and_private_networks_may_relay(tmp_path, nets):
    result, files = render(tmp_path, {'mailu_stack_relaynets': nets}, files=('postfix.cf',))
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize('net, force, reason', [
    ('0.0.0.0/0', False, 'is every address'),
    ('0.0.0.0/0', True, 'is every address'),
    ('::/0', True, 'is every address'),
    ('203.0.113.0/24', False, 'public network of 256 addresses'),
    ('2001:db8::/64', False, 'public network of'),
    ('100.64.0.0/10', False, 'public network of'),
    ('192.168.0.0/16', False, "holds the Mailu network's gateway 192.168.203.1"),
    ('192.168.203.1/32', True, "holds the Mailu network's gateway"),
    ('mail.example.org', False, 'is not a network'),
    ('203.0.113.10/24', False, 'is not a network'),
    ('203.0.113.10,203.0.113.11', False, 'is not a network'),
    ('203.0.113.10/33', False, 'is not a network'),
])
def test_relay_networks_that_open_the_relay_are_refused_with_the_reason(tmp_path, net, force, reason):
    result, files = render(tmp_path, {'mailu_stack_relaynets': ['203.0.113.10/32', net],
                                      'mailu_stack_relaynets_force': force})
    assert result.returncode != 0
    assert 'mailu_stack_relaynets entry %s' % net in result.stdout and reason in result.stdout, result.stdout
    assert not files


def test_force_accepts_a_public_network(tmp_path):
    result, files = render(tmp_path, {'mailu_stack_relaynets': ['203.0.113.0/28'], 'mailu_stack_relaynets_force': True},
                           files=('postfix.cf',))
    assert result.returncode == 0, result.stdout
    assert '203.0.113.0/28 !192.168.203.1' in files['postfix.cf']


def test_publishing_on_ipv6_is_refused_with_the_reason(tmp_path):
    result, _files = render(tmp_path, {'mailu_stack_bind_address6': '2001:db8::1'})
    assert result.returncode != 0
    assert 'mailu_stack_bind_address6' in result.stdout and 'open relay' in result.stdout


# --- Item 8: the defaults new users get are the deployment's ---------------------------------

@pytest.mark.parametrize('version', ['1.9', '2024.06'])
def test_the_new_user_defaults_are_written_for_mailu(tmp_path, version):
    result, files = render(tmp_path, {'mailu_stack_version': version, 'mailu_stack_default_quota': 5000000000,
                                      'mailu_stack_default_spam_threshold': 60}, files=('mailu.env',))
    assert result.returncode == 0, result.stdout
    lines = env_lines(files['mailu.env'])
    assert lines['DEFAULT_QUOTA'] == '5000000000'
    # 1.9 has no such setting: its ORM always gives 80.
    assert lines.get('DEFAULT_SPAM_THRESHOLD') == ('60' if version == '2024.06' else None)


# --- DKIM: the selector Mailu signs with is the one the keys are named after -----------------

@pytest.mark.parametrize('selector, expected', [('dkim', None), ('mail2026', 'mail2026')])
def test_the_dkim_selector_is_written_when_not_mailus_default(tmp_path, selector, expected):
    result, files = render(tmp_path, {'mailu_stack_dkim_selector': selector}, files=('mailu.env',))
    assert result.returncode == 0, result.stdout
    assert env_lines(files['mailu.env']).get('DKIM_SELECTOR') == expected


@pytest.mark.parametrize('selector', ['../x', 'a b', 'dkim.', ''])
def test_a_dkim_selector_that_is_no_dns_name_is_refused(tmp_path, selector):
    result, files = render(tmp_path, {'mailu_stack_dkim_selector': selector}, files=('mailu.env',))
    assert result.returncode != 0 and 'mailu_stack_dkim_selector' in result.stdout, result.stdout
    assert not files


# --- Polite delivery: domains delivered at a pace of their own -------------------------------

def settings_of(text):
    return dict((part.strip() for part in line.split('=', 1))
                for line in text.splitlines() if line and not line.startswith('#'))


@pytest.mark.parametrize('version', ['1.9', '2024.06'])
def test_each_pace_gets_a_transport_with_its_limits_where_the_queue_manager_reads_them(tmp_path, version):
    limits = {'School.Example': {'delay': 5, 'recipients': 20}, 'other.example': {'delay': 5, 'recipients': 20},
              'big.example': {'concurrency': 3}}
    result, files = render(tmp_path, {'mailu_stack_version': version, 'mailu_stack_delivery_limits': limits},
                           files=('postfix.cf', 'postfix.master', 'transport.map'))
    assert result.returncode == 0, result.stdout
    settings = settings_of(files['postfix.cf'])
    assert {k: v for k, v in settings.items() if k.startswith('slow_')} == {
        'slow_c1_d5_r20_destination_concurrency_limit': '1',
        'slow_c1_d5_r20_destination_rate_delay': '5s',
        'slow_c1_d5_r20_destination_recipient_limit': '20',
        'slow_c3_d0_r50_destination_concurrency_limit': '3',
        'slow_c3_d0_r50_destination_rate_delay': '0s',
        'slow_c3_d0_r50_destination_recipient_limit': '50',
    }
    # 2024.06's main.cf already looks in transport.map; 1.9's looks in podop alone.
    assert settings.get('transport_maps') == (
        'lmdb:/etc/postfix/transport.map, socketmap:unix:/tmp/podop.socket:transport' if version == '1.9' else None)
    assert settings_of(files['postfix.master']) == {
        'slow_c1_d5_r20/unix': 'slow_c1_d5_r20 unix - - n - - smtp -o syslog_name=postfix-slow_c1_d5_r20',
        'slow_c3_d0_r50/unix': 'slow_c3_d0_r50 unix - - n - - smtp -o syslog_name=postfix-slow_c3_d0_r50',
    }
    assert [line for line in files['transport.map'].splitlines() if not line.startswith('#')] == [
        'big.example slow_c3_d0_r50:', 'other.example slow_c1_d5_r20:', 'school.example slow_c1_d5_r20:']
    # start.py hands each line to a shell inside double quotes.
    for name in ('postfix.cf', 'postfix.master'):
        assert not [line for line in files[name].splitlines()
                    if not line.startswith('#') and ('$' in line or '"' in line or '`' in line or '\\' in line)]


def test_limited_domains_keep_the_relayhost(tmp_path):
    result, files = render(tmp_path, {'mailu_stack_relayhost': '[smtp.example.net]:587',
                                      'mailu_stack_delivery_limits': {'school.example': {'delay': 2}}},
                           files=('transport.map',))
    assert result.returncode == 0, result.stdout
    assert 'school.example slow_c1_d2_r50:[smtp.example.net]:587' in files['transport.map'].splitlines()


def test_no_limits_write_no_transport(tmp_path):
    result, files = render(tmp_path, {'mailu_stack_version': '1.9'},
                           files=('postfix.cf', 'postfix.master', 'transport.map'))
    assert result.returncode == 0, result.stdout
    assert 'transport_maps' not in settings_of(files['postfix.cf'])
    assert not settings_of(files['postfix.master'])
    assert not [line for line in files['transport.map'].splitlines() if not line.startswith('#')]


@pytest.mark.parametrize('limits', [
    {'school.example': {'recipients': 1}},
    {'school.example': {'concurrency': 0}},
    {'school.example': {'delay': -1}},
    {'school.example': {'delay': '5s'}},
    {'school.example': {'speed': 3}},
    {'school.example': 5},
    {'école.example': {}},
    {'example.org': {'delay': 5}},
    {'not a domain': {}},
])
def test_limits_postfix_cannot_keep_per_domain_are_refused(tmp_path, limits):
    result, files = render(tmp_path, {'mailu_stack_delivery_limits': limits})
    assert result.returncode != 0
    assert 'mailu_stack_delivery_limits entry %s' % next(iter(limits)) in result.stdout, result.stdout
    assert not files
