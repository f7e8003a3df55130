"""What a provisioned Mailu server looks like from the inside (testinfra)."""

import json
import os
import re

import pytest

# The release the scenario ran (molecule/default/group_vars/mailu.yml).
VERSION = os.environ.get('MOLECULE_MAILU_VERSION') or '2024.06'
ROOT = '/mailu'
PROJECT = 'mailu'
SERVICES = ['redis', 'front', 'resolver', 'admin', 'imap', 'smtp', 'antispam', 'fetchmail', 'webmail']
SUBNET = '192.168.203.0/24'
RESOLVER = '192.168.203.254'
SCHEMA_HEAD = {'1.9': '3b7eee912b41', '2024.06': '0ba45693748d'}[VERSION]
PUBLISHED = {'1.9': [25, 80, 110, 143, 443, 465, 587, 993, 995],
             '2024.06': [25, 80, 443, 465, 993, 995, 4190]}[VERSION]
ACCOUNTS = ['admin@nantral.test', 'contact@nantral.test', 'group-manager@nantral.test', 'no-reply@nantral.test']


def inspect(host, name):
    return json.loads(host.check_output('docker inspect %s', name))[0]


def psql(host, query):
    return host.check_output("runuser -u postgres -- psql -d mailu -tAc %s", query).splitlines()


@pytest.mark.parametrize('service', SERVICES)
def test_every_service_runs_healthy_on_the_mailu_network(host, service):
    container = inspect(host, '%s-%s-1' % (PROJECT, service))
    assert container['State']['Running']
    # Only images with a HEALTHCHECK have a health state (redis:alpine and 1.9's fetchmail have none).
    if (container['Config'].get('Healthcheck') or {}).get('Test', ['NONE'])[0] != 'NONE':
        assert container['State']['Health']['Status'] == 'healthy'
    else:
        assert 'Health' not in container['State']
    if service != 'webmail' or VERSION == '1.9':  # 2024.06 puts webmail on its own network only
        assert '%s_default' % PROJECT in container['NetworkSettings']['Networks']


def test_the_mailu_network_has_the_configured_subnet(host):
    network = json.loads(host.check_output('docker network inspect %s_default', PROJECT))[0]
    assert [c['Subnet'] for c in network['IPAM']['Config']] == [SUBNET]


def test_the_resolver_has_its_fixed_address(host):
    resolver = inspect(host, '%s-resolver-1' % PROJECT)
    assert resolver['NetworkSettings']['Networks']['%s_default' % PROJECT]['IPAddress'] == RESOLVER
    assert inspect(host, '%s-admin-1' % PROJECT)['HostConfig']['Dns'] == [RESOLVER]


def test_mailu_env_is_readable_by_root_only(host):
    env = host.file('%s/mailu.env' % ROOT)
    assert env.mode == 0o600 and env.user == 'root'
    lines = env.content_string.splitlines()
    assert 'SUBNET=%s' % SUBNET in lines
    assert [l for l in lines if re.match(r'^SECRET_KEY=[A-Z0-9]{16}$', l)], 'no generated SECRET_KEY'


def test_the_compose_env_pins_images_of_the_release(host):
    dotenv = host.file('%s/.env' % ROOT)
    assert dotenv.contains('^DOCKER_ORG=')
    tags = [line.split('=', 1)[1] for line in dotenv.content_string.splitlines() if line.startswith('MAILU_VERSION=')]
    assert len(tags) == 1 and re.fullmatch(r'%s(\.[0-9]+)?' % re.escape(VERSION), tags[0]), tags


def test_admin_reaches_the_database_with_the_rendered_settings(host):
    # The URI from mailu.env, as the admin container received it.
    check = ("import os\n"
             "try:\n    import psycopg as driver\nexcept ImportError:\n    import psycopg2 as driver\n"
             "c = driver.connect(os.environ['SQLALCHEMY_DATABASE_URI'])\n"
             "cur = c.cursor(); cur.execute('SELECT version_num FROM alembic_version'); print(cur.fetchone()[0])\n")
    out = host.check_output('docker exec -i %s-admin-1 python3 -c %s', PROJECT, check)
    assert out.strip() == SCHEMA_HEAD


def test_the_database_password_reaches_the_admin_alone(host):
    # Not in the URI (Alembic's config parser takes a %-escape for interpolation and the
    # schema is never created): libpq's PGPASSWORD, from a root-only file, for the admin only.
    env = host.file('%s/mailu.env' % ROOT).content_string
    assert 'SQLALCHEMY_DATABASE_URI=postgresql://mailu@192.168.203.1:5432/mailu' in env.splitlines()
    assert not [line for line in env.splitlines() if line.startswith('PGPASSWORD=') or 'pass:w@rd' in line]
    database_env = host.file('%s/database.env' % ROOT)
    assert database_env.mode == 0o600 and database_env.user == 'root'
    admin_env = inspect(host, '%s-admin-1' % PROJECT)['Config']['Env']
    assert 'PGPASSWORD=molecule Db/pass:w@rd%41 \'q\' "x" $HOME #y' in admin_env
    for service in ('front', 'smtp', 'imap'):
        assert not [v for v in inspect(host, '%s-%s-1' % (PROJECT, service))['Config']['Env'] if 'PGPASSWORD' in v]


def test_the_schema_head_is_in_alembic_version(host):
    assert psql(host, 'SELECT version_num FROM alembic_version') == [SCHEMA_HEAD]


def test_the_inventory_accounts_are_in_postgresql(host):
    assert psql(host, 'SELECT email FROM "user" ORDER BY email') == ACCOUNTS
    assert psql(host, "SELECT global_admin FROM \"user\" WHERE email = 'admin@nantral.test'") == ['t']
    assert psql(host, 'SELECT domain_name, user_email FROM manager') == ['nantral.test|group-manager@nantral.test']
    prefix = '$bcrypt-sha256$v=2,t=2b,r=12$'
    assert psql(host, "SELECT left(password, %d) FROM \"user\" WHERE email = 'contact@nantral.test'" % len(prefix)) == [
        prefix]


def test_the_domain_has_a_dkim_key_mailu_s_admin_reads(host):
    """RSA 2048, PKCS#8 as Mailu writes it, 0600, owned by the release's admin user, and
    readable inside the admin container by the user its main process runs as."""
    key = host.file('%s/dkim/nantral.test.dkim.key' % ROOT)
    assert key.is_file and not key.is_symlink and key.mode == 0o600
    assert (key.uid, key.gid) == {'1.9': (0, 0), '2024.06': (1000, 1000)}[VERSION]
    assert key.content_string.startswith('-----BEGIN PRIVATE KEY-----\n')
    load = ("import sys\nfrom cryptography.hazmat.primitives import serialization\n"
            "k = serialization.load_pem_private_key(open(sys.argv[1], 'rb').read(), password=None)\n"
            "print(type(k).__name__, k.key_size, k.private_numbers().public_numbers.e)\n")
    assert host.check_output('python3 -c %s %s', load, key.path).split()[1:] == ['2048', '65537']
    admin = '%s-admin-1' % PROJECT
    uid = host.check_output('docker exec %s stat -c %%u:%%g /proc/1', admin).strip()
    digest = "import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], 'rb').read()).hexdigest())"
    inside = host.check_output('docker exec -u %s %s python3 -c %s /dkim/nantral.test.dkim.key', uid, admin, digest)
    assert inside.strip() == host.check_output('sha256sum %s', key.path).split()[0]


@pytest.mark.parametrize('port', PUBLISHED)
def test_front_publishes_its_ports(host, port):
    assert host.socket('tcp://0.0.0.0:%d' % port).is_listening


def test_front_serves_https_with_the_certificate_in_certs(host):
    served = host.check_output(
        'echo | openssl s_client -connect 127.0.0.1:443 -servername mail.nantral.test 2>/dev/null '
        '| openssl x509 -noout -fingerprint -sha256')
    installed = host.check_output('openssl x509 -in %s/certs/cert.pem -noout -fingerprint -sha256', ROOT)
    assert served == installed


LINEAGE = '/etc/letsencrypt/live/mail.nantral.test'
HOOK = '/etc/letsencrypt/renewal-hooks/deploy/50-nantral-mailu-front'


def test_the_certbot_deploy_hook_is_installed_with_its_engine(host):
    hook = host.file(HOOK)
    assert hook.is_file and hook.mode == 0o755 and hook.user == 'root'
    assert hook.contains(LINEAGE)
    assert host.file('/usr/local/lib/nantral-mailu/mailu_certificate.py').is_file


def test_front_has_the_lineage_certificate_as_real_files(host):
    cert = host.file('%s/certs/cert.pem' % ROOT)
    key = host.file('%s/certs/key.pem' % ROOT)
    assert cert.is_file and not cert.is_symlink
    assert key.is_file and not key.is_symlink and key.mode == 0o600
    # The full chain, byte for byte: what Certbot's live/ symlink points at.
    assert cert.content == host.file('%s/fullchain.pem' % LINEAGE).content
    assert host.file('%s/certs/cert.pem.previous' % ROOT).is_file
    assert host.file('%s/certs/key.pem.previous' % ROOT).mode == 0o600


def test_the_web_root_leads_to_the_webmail(host):
    # Front turns WEBROOT_REDIRECT into a try_files: a target it does not serve answers 500.
    fetch = ("import ssl, urllib.request\n"
             "ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE\n"
             "req = urllib.request.Request('https://127.0.0.1/', headers={'Host': 'webmail.nantral.test'})\n"
             "try:\n    print(urllib.request.urlopen(req, context=ctx, timeout=10).status)\n"
             "except urllib.error.HTTPError as exc:\n    print(exc.code)\n")
    assert host.check_output('python3 -c %s', fetch) == '200'
    assert 'WEBROOT_REDIRECT=/webmail' in host.file('%s/mailu.env' % ROOT).content_string.splitlines()


def test_docker_runs_without_its_userland_proxy(host):
    daemon = json.loads(host.file('/etc/docker/daemon.json').content_string)
    assert daemon['userland-proxy'] is False
    assert host.run('pgrep -x docker-proxy').rc == 1


# A client of port 25 must be seen by Postfix with its own address; whatever arrives from
# the network's gateway (this host, or anything Docker NATs or proxies) is never trusted.
SMTP_PROBE = """
import smtplib, sys
host, port = sys.argv[1], int(sys.argv[2])
with smtplib.SMTP(host, port, timeout=20) as smtp:
    smtp.ehlo('probe.example')
    smtp.mail('probe@example.com')
    code, text = smtp.rcpt('victim@relay-target.example')
    print(code)
"""
GATEWAY = '192.168.203.1'
CLIENT_NS, CLIENT_HOST_SIDE, CLIENT_ADDRESS = 'relayprobe', '198.18.25.1', '198.18.25.2'


@pytest.fixture(scope='module')
def outside_client(host):
    """A client in a network namespace of its own, reaching this host over a veth pair:
    what a machine on the Internet is to the server. Addresses from the benchmarking range."""
    host.run('ip netns del %s', CLIENT_NS)
    host.run('ip link del %s-h', CLIENT_NS)
    for command in (
            'ip netns add %s' % CLIENT_NS,
            'ip link add %s-h type veth peer name %s-c' % (CLIENT_NS, CLIENT_NS),
            'ip link set %s-c netns %s' % (CLIENT_NS, CLIENT_NS),
            'ip addr add %s/24 dev %s-h' % (CLIENT_HOST_SIDE, CLIENT_NS),
            'ip link set %s-h up' % CLIENT_NS,
            'ip netns exec %s ip addr add %s/24 dev %s-c' % (CLIENT_NS, CLIENT_ADDRESS, CLIENT_NS),
            'ip netns exec %s ip link set %s-c up' % (CLIENT_NS, CLIENT_NS),
            'ip netns exec %s ip link set lo up' % CLIENT_NS):
        host.check_output(command)
    yield 'ip netns exec %s ' % CLIENT_NS
    host.run('ip netns del %s', CLIENT_NS)
    host.run('ip link del %s-h', CLIENT_NS)


def smtp_log_since(host, since):
    return host.check_output('docker logs --since %s %s-smtp-1 2>&1', since, PROJECT)


def rcpt_from(host, prefix, target):
    since = host.check_output('date -u +%Y-%m-%dT%H:%M:%S')
    code = host.check_output(prefix + 'python3 -c %s %s 25', SMTP_PROBE, target)
    return int(code), smtp_log_since(host, since)


def test_an_outside_client_is_seen_with_its_own_address_and_may_not_relay(host, outside_client):
    code, log = rcpt_from(host, outside_client, CLIENT_HOST_SIDE)
    assert code == 554, log
    assert '[%s]' % CLIENT_ADDRESS in log and 'Relay access denied' in log
    assert '[%s]' % GATEWAY not in log


@pytest.mark.parametrize('target', ['127.0.0.1', 'host-address'])
def test_a_client_on_this_host_arrives_from_the_gateway_and_may_not_relay(host, target):
    # Docker masquerades connections from the host itself: they come from the gateway,
    # which the collection leaves out of the networks Postfix trusts.
    if target == 'host-address':
        target = host.check_output("ip -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1 | head -n 1")
    code, log = rcpt_from(host, '', target)
    assert code == 554, log
    assert 'Relay access denied' in log


def test_mailu_containers_still_relay_without_authentication(host):
    # The other side of the same setting: Mailu's own network stays trusted.
    code = host.check_output('docker exec -i %s-admin-1 python3 -c %s smtp 25', PROJECT, SMTP_PROBE)
    assert int(code) == 250


BACKUP_UNITS = ['nantral-mailu-backup', 'nantral-mailu-backup-forget', 'nantral-mailu-backup-check']
BACKUP_PASSWORD = 'molecule restic pass:w@rd \'q\' "x" $HOME #y'


@pytest.mark.parametrize('unit', BACKUP_UNITS)
def test_the_backup_timers_are_enabled_and_waiting(host, unit):
    timer = host.service('%s.timer' % unit)
    assert timer.is_enabled and timer.is_running


@pytest.mark.parametrize('name', ['config.json', 'password', 'pgpass'])
def test_the_backup_settings_are_readable_by_root_only(host, name):
    settings = host.file('/etc/nantral-mailu/backup/%s' % name)
    assert settings.is_file and settings.mode == 0o600 and settings.user == 'root' and settings.group == 'root'
    assert host.file('/etc/nantral-mailu/backup').mode == 0o700
    assert host.file('/var/lib/nantral-mailu/backup').mode == 0o700


def test_the_backup_password_is_in_its_file_and_nowhere_else(host):
    assert host.file('/etc/nantral-mailu/backup/password').content_string.strip() == BACKUP_PASSWORD
    for unit in BACKUP_UNITS:
        for kind in ('service', 'timer'):
            text = host.file('/etc/systemd/system/%s.%s' % (unit, kind)).content_string
            assert 'pass:w@rd' not in text and 'Environment' not in text, (unit, kind)
    assert 'pass:w@rd' not in host.file('/etc/nantral-mailu/backup/config.json').content_string


def test_the_database_login_of_the_dump_escapes_the_password(host):
    line = host.file('/etc/nantral-mailu/backup/pgpass').content_string.strip()
    assert line == '127.0.0.1:5432:mailu:mailu:molecule Db/pass\\:w@rd%41 \'q\' "x" $HOME #y'


def test_the_backup_of_the_side_effect_step_is_fresh_and_its_service_did_not_fail(host):
    """side_effect.yml ran playbooks/backup.yml once: `systemctl start nantral-mailu-backup.service`."""
    assert host.run('systemctl is-failed --quiet nantral-mailu-backup.service').rc != 0
    status = host.run('nantral-mailu-backup status --json')
    assert status.rc == 0, status.stdout + status.stderr
    report = json.loads(status.stdout)
    assert report['repository'] == 'ok' and report['fresh'] and not report['problems'], report
    assert report['newest_snapshot']['age_hours'] < 1
    last = json.loads(host.file('/var/lib/nantral-mailu/backup/last-backup.json').content_string)
    assert last['result'] == 'ok' and last['snapshot']
    assert last['counts']['%s/dkim' % ROOT] >= 1 and last['counts']['%s/mailu.env' % ROOT] == 1
    # Mail was paused for the pass that read the files, and is running again.
    assert 0 < last['pause_seconds'] < 60
    for service in ('smtp', 'imap'):
        assert inspect(host, '%s-%s-1' % (PROJECT, service))['State']['Status'] == 'running'
    marker = json.loads(host.file('/var/lib/nantral-mailu/backup/repository.json').content_string)
    assert marker['repository'] == '/var/backups/nantral-mailu-restic' and marker['initialised_here'] is True
