"""The front and smtp stand-ins behave like Mailu's on the points the deployment relies on.

tests/standins/README.md: front is a real nginx rendered like Mailu's
core/nginx/conf/nginx.conf (the web root, and port 25 through nginx's mail module
with XCLIENT, asking an auth_http endpoint which backend to use); smtp is Debian's
real Postfix with the relay settings of Mailu's core/postfix/conf/main.cf and the
/overrides handling of core/postfix/start.py. Both releases, 1.9 and 2024.06.

On a bridge network of the test's own, front and smtp run as in Mailu's compose
project; a client on this host talks SMTP to front's port 25 published on
127.0.0.1. Which address front sees for it depends on Docker (its userland proxy
and its NAT rules: the gateway of the network, inside SUBNET, for a loopback
client), so the test reads it from front's log and checks that Postfix refuses
to relay for that address unless it is trusted. Skipped only when no Docker
engine answers, outside CI.
"""

import ipaddress
import pathlib
import random
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import docker
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
IMAGE = 'localhost/nantral-standin/%s:%s'
BASE = 'localhost/nantral-mailu-test/debian:13'
PREFIX = 'b2-test-'
DOMAIN = 'example.test'
FOREIGN = 'someone@[192.0.2.1]'  # an address literal: no DNS needed to reach the relay check
LOCAL = 'postmaster@%s' % DOMAIN
VERSIONS = ['2024.06', '1.9']


def ensure_images(client, version):
    for image in ('nginx', 'postfix'):
        try:
            client.images.get(IMAGE % (image, version))
        except docker.errors.ImageNotFound:
            subprocess.run(['bash', str(REPO / 'scripts/build-images.sh'), version], check=True)
            return


class Stack:
    """A bridge network with a subnet of its own, and the containers started on it."""

    def __init__(self, client, version, tmp_path):
        self.client, self.version, self.tmp = client, version, tmp_path
        self.tag = PREFIX + uuid.uuid4().hex[:8]
        self.containers = []
        used = set()
        for net in client.networks.list():
            for config in (net.attrs.get('IPAM') or {}).get('Config') or []:
                if config.get('Subnet'):
                    used.add(ipaddress.ip_network(config['Subnet'], strict=False))
        for _attempt in range(50):
            candidate = ipaddress.ip_network('10.249.%d.0/24' % random.randrange(1, 255))
            if any(candidate.overlaps(other) for other in used):
                continue
            try:
                self.network = client.networks.create(
                    self.tag, driver='bridge',
                    ipam=docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=str(candidate))]))
            except docker.errors.APIError:
                continue
            self.subnet = candidate
            self.gateway = str(next(candidate.hosts()))
            return
        pytest.fail('no free 10.249.X.0/24 subnet for the test network')

    def env(self, **extra):
        env = dict(SUBNET=str(self.subnet), DOMAIN=DOMAIN, HOSTNAMES='mail.%s' % DOMAIN, TLS_FLAVOR='notls')
        if self.version == '1.9':
            env.update(HOST_SMTP=self.name('smtp'), HOST_ADMIN=self.name('admin'), HOST_WEBMAIL=self.name('webmail'))
        else:
            env.update(SMTP_ADDRESS=self.name('smtp'), ADMIN_ADDRESS=self.name('admin'),
                       WEBMAIL_ADDRESS=self.name('webmail'))
        env.update(extra)
        return env

    def name(self, service):
        return '%s-%s' % (self.tag, service)

    def run(self, image, service, **kwargs):
        """A container named after its service, on the test network only (front finds smtp
        and admin by these names, given as Mailu's address settings)."""
        container = self.client.containers.run(image, detach=True, name=self.name(service), network=self.tag,
                                               **kwargs)
        self.containers.append(container)
        return container

    def front(self, service='front', **env):
        container = self.run(IMAGE % ('nginx', self.version), service, environment=self.env(**env),
                             ports={'25/tcp': ('127.0.0.1', None), '80/tcp': ('127.0.0.1', None)})
        port = {}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            container.reload()
            try:
                port = dict((p, int(container.ports['%d/tcp' % p][0]['HostPort'])) for p in (25, 80))
                with socket.create_connection(('127.0.0.1', port[80]), timeout=2):
                    pass
                if 'start worker process' in logs(container):
                    break
            except (KeyError, TypeError, IndexError, OSError):
                pass
            time.sleep(0.3)
        else:
            pytest.fail('front did not start:\n%s' % logs(container))
        container.port = port
        return container

    def smtp(self, overrides=None, **env):
        volumes = {}
        if overrides is not None:
            directory = self.tmp / ('overrides-%s' % uuid.uuid4().hex[:6])
            directory.mkdir()
            for name, text in overrides.items():
                (directory / name).write_text(text)
            volumes = {str(directory): dict(bind='/overrides', mode='ro')}
        container = self.run(IMAGE % ('postfix', self.version), 'smtp', environment=self.env(**env), volumes=volumes)
        deadline = time.monotonic() + 30
        while 'daemon started' not in logs(container):
            container.reload()
            assert container.status in ('created', 'running'), logs(container)
            if time.monotonic() > deadline:
                pytest.fail('postfix did not start:\n%s' % logs(container))
            time.sleep(0.3)
        return container

    def remove(self, container):
        container.remove(force=True)
        self.containers.remove(container)

    def close(self):
        for container in self.containers:
            container.remove(force=True)
        self.network.remove()


def logs(container):
    return container.logs().decode('utf-8', 'replace')


def logs_once(container, pattern, timeout=15):
    """The container's log once ``pattern`` is in it (or after ``timeout`` s): a line the server
    wrote reaches Docker's log a moment after the client has its answer, later on a busy machine."""
    deadline = time.monotonic() + timeout
    while True:
        text = logs(container)
        if re.search(pattern, text) or time.monotonic() > deadline:
            return text
        time.sleep(0.2)


@pytest.fixture(params=VERSIONS)
def stack(request, docker_client, tmp_path):
    ensure_images(docker_client, request.param)
    stack = Stack(docker_client, request.param, tmp_path)
    try:
        yield stack
    finally:
        stack.close()


def smtp_session(port, rcpt):
    """EHLO, MAIL FROM a local address, RCPT TO ``rcpt``: the RCPT reply line."""
    with socket.create_connection(('127.0.0.1', port), timeout=60) as sock:
        stream = sock.makefile('rb')

        def reply():
            lines = []
            while True:
                line = stream.readline().decode('utf-8', 'replace')
                lines.append(line.rstrip())
                if len(line) < 4 or line[3] != '-':
                    return lines

        assert reply()[0].startswith('220 ')
        answers = []
        for command in ('EHLO client.example.net', 'MAIL FROM:<sender@%s>' % DOMAIN, 'RCPT TO:<%s>' % rcpt, 'QUIT'):
            sock.sendall(command.encode() + b'\r\n')
            answers.append(reply()[-1])
        return answers[2]


def seen_by_front(front, before=0):
    """The client addresses front's mail module logged (``client A:P connected to``), once there are
    more than ``before`` of them (or after 15 s)."""
    deadline = time.monotonic() + 15
    while True:
        seen = re.findall(r'client ([0-9a-f.:]+?):\d+ connected to', logs(front))[before:]
        if seen or time.monotonic() > deadline:
            return seen
        time.sleep(0.2)


def trusted_by_mailu(address, subnet):
    return ipaddress.ip_address(address) in subnet or address == '127.0.0.1'


# --- port 25: front's mail module, XCLIENT, Postfix's relay check ----------------

def test_port_25_relay_denied_unless_trusted(stack):
    smtp = stack.smtp()
    front = stack.front(WEBMAIL='none')

    # Mailu's settings as they are: whatever front saw is passed on with XCLIENT.
    answer = smtp_session(front.port[25], FOREIGN)
    seen = seen_by_front(front)
    assert len(seen) == 1, logs(front)
    client = seen[0]
    smtp_log = logs_once(smtp, r'disconnect from')
    front_ip = front.attrs['NetworkSettings']['Networks'][stack.tag]['IPAddress']
    # Postfix's connection comes from front; the client it judges is the XCLIENT address.
    assert re.search(r'connect from \S*\[%s\]' % re.escape(front_ip), smtp_log), smtp_log
    if trusted_by_mailu(client, stack.subnet):
        # E.g. Docker's userland proxy (127.0.0.1) or its masquerading: the gateway, inside SUBNET.
        assert answer.startswith('250 '), answer
        assert re.search(r'client=\S*\[%s\]' % re.escape(client), smtp_log), smtp_log
    else:
        assert answer.startswith('554 5.7.1 ') and answer.endswith('Relay access denied'), answer
        assert re.search(r'reject: RCPT from \S*\[%s\]: 554 5\.7\.1 <%s>: Relay access denied'
                         % (re.escape(client), re.escape(FOREIGN)), smtp_log), smtp_log
    stack.remove(smtp)

    # That address excluded from mynetworks (an override, `!address` before SUBNET):
    # the real 554 from Postfix, and mail for the local domain still accepted.
    override = 'mynetworks = 127.0.0.1/32 !%s %s\n' % (client, stack.subnet)
    smtp = stack.smtp(overrides={'postfix.cf': override})
    assert smtp.exec_run(['postconf', '-h', 'mynetworks']).output.decode().strip() == override.split(' = ')[1].strip()
    answer = smtp_session(front.port[25], FOREIGN)
    assert answer.startswith('554 5.7.1 ') and answer.endswith('Relay access denied'), answer
    assert seen_by_front(front, 1) == [client]
    smtp_log = logs_once(smtp, r'disconnect from')
    assert re.search(r'NOQUEUE: reject: RCPT from \S*\[%s\]: 554 5\.7\.1 <%s>: Relay access denied'
                     % (re.escape(client), re.escape(FOREIGN)), smtp_log), smtp_log
    assert smtp_session(front.port[25], LOCAL).startswith('250 ')
    stack.remove(smtp)

    # Trusted through RELAYNETS (Mailu's way): relayed without authentication.
    smtp = stack.smtp(RELAYNETS='%s/32' % client)
    assert smtp_session(front.port[25], FOREIGN).startswith('250 ')
    smtp_log = logs_once(smtp, r'disconnect from')
    assert re.search(r'client=\S*\[%s\]' % re.escape(client), smtp_log), smtp_log


def test_untrusted_xclient_address_is_refused_relay(stack):
    """A client front sees outside mynetworks: Postfix's real 554, logged with that address."""
    # Make every address but front's own (and localhost) untrusted: SUBNET stays the
    # network's (XCLIENT is allowed from it), mynetworks is narrowed by an override.
    smtp = stack.smtp(overrides={'postfix.cf': 'mynetworks = 127.0.0.1/32\n'})
    front = stack.front(WEBMAIL='none')
    answer = smtp_session(front.port[25], FOREIGN)
    client = seen_by_front(front)[0]
    assert answer == '554 5.7.1 <%s>: Relay access denied' % FOREIGN
    smtp_log = logs_once(smtp, r'disconnect from')
    assert re.search(r'NOQUEUE: reject: RCPT from \S*\[%s\]: 554 5\.7\.1' % re.escape(client), smtp_log), smtp_log


# --- Postfix overrides, as Mailu's start.py applies them --------------------------

def test_postfix_overrides_applied_like_start_py(stack):
    smtp = stack.smtp(overrides={
        'postfix.cf': '# a comment\ndelay_warning_time = 7h\n\nmaximal_queue_lifetime = 2d\n',
        'postfix.master': 'b2slow/unix = b2slow unix - - n - - smtp -o syslog_name=postfix-b2slow\n',
        'b2test.map': 'example.org b2slow:\n',
    })

    def postconf(*args):
        result = smtp.exec_run(['postconf'] + list(args))
        assert result.exit_code == 0, result.output
        return result.output.decode().strip()

    assert postconf('delay_warning_time') == 'delay_warning_time = 7h'
    assert postconf('maximal_queue_lifetime') == 'maximal_queue_lifetime = 2d'
    assert postconf('-M', 'b2slow/unix').split() == 'b2slow unix - - n - - smtp -o syslog_name=postfix-b2slow'.split()
    # The map is compiled (lmdb, as on Mailu's Alpine) and its copy removed.
    listing = smtp.exec_run(['ls', '/etc/postfix']).output.decode().split()
    assert 'b2test.map.lmdb' in listing and 'b2test.map' not in listing
    query = smtp.exec_run(['postmap', '-q', 'example.org', 'lmdb:/etc/postfix/b2test.map'])
    assert query.output.decode().strip() == 'b2slow:'
    # The relay settings of main.cf.
    assert postconf('-h', 'smtpd_authorized_xclient_hosts') == str(stack.subnet)
    expected = ('127.0.0.1/32 [::1]/128 %s' if stack.version == '1.9' else '127.0.0.1/32 %s') % stack.subnet
    assert postconf('-h', 'mynetworks') == expected
    assert postconf('-h', 'smtpd_relay_restrictions').replace(',', ' ').split() == [
        'permit_mynetworks', 'permit_sasl_authenticated', 'reject_unauth_destination']
    assert postconf('-h', 'smtpd_client_restrictions').replace(',', ' ').split()[0] == 'permit_mynetworks'


def test_smtp_healthcheck_is_mailus(stack, docker_client):
    image = docker_client.images.get(IMAGE % ('postfix', stack.version))
    check = image.attrs['Config']['Healthcheck']
    if stack.version == '1.9':
        assert check == {'Test': ['CMD-SHELL', 'echo QUIT|nc localhost 25|grep "220 .* ESMTP Postfix"'],
                         'StartPeriod': 350 * 10**9}
    else:
        assert check == {'Test': ['CMD-SHELL', '! /usr/libexec/postfix/master -t'], 'StartPeriod': 30 * 10**9}
    smtp = stack.smtp()
    test = check['Test'][1]
    assert smtp.exec_run(['sh', '-c', test]).exit_code == 0
    front = docker_client.images.get(IMAGE % ('nginx', stack.version)).attrs['Config']['Healthcheck']
    if stack.version == '1.9':
        assert front == {'Test': ['CMD-SHELL', 'curl -k -f -L http://localhost/health || exit 1']}
    else:
        assert front['StartPeriod'] == 60 * 10**9 and 'kill -0 `cat /run/dovecot/master.pid`' in front['Test'][1]


# --- front's web root -------------------------------------------------------------

def get(port, path='/'):
    """(status, Location) of a GET that is not followed."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        response = opener.open('http://127.0.0.1:%d%s' % (port, path), timeout=10)
        return response.status, response.headers.get('Location')
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get('Location')


def test_webroot_redirect_to_a_location_not_served_is_500(stack):
    front = stack.front(WEBMAIL='none', ADMIN='false', WEBROOT_REDIRECT='/webmail')
    assert get(front.port[80]) == (500, None)
    cycle = 'rewrite or internal redirection cycle while internally redirecting to "/webmail'
    assert cycle in logs_once(front, re.escape(cycle))


def test_webroot_redirect_to_the_webmail(stack):
    front = stack.front(WEBMAIL='roundcube', ADMIN='true', WEBROOT_REDIRECT='/webmail', WEB_WEBMAIL='/webmail',
                        WEB_ADMIN='/admin')
    # try_files sends / to /webmail (2.x: /webmail?homepage), whose location adds the slash.
    expected = '/webmail/' if stack.version == '1.9' else '/webmail/?homepage'
    assert get(front.port[80]) == (301, expected)


def test_webroot_redirect_to_the_admin_without_webmail(stack):
    """2024.06's setup writes /admin when there is no webmail and the admin is exposed."""
    admin_port = 80 if stack.version == '1.9' else 8080
    admin = stack.run(BASE, 'admin', command=['python3', '-m', 'http.server', str(admin_port)])
    front = stack.front(WEBMAIL='none', ADMIN='true', WEBROOT_REDIRECT='/admin', WEB_ADMIN='/admin')
    deadline = time.monotonic() + 20
    while True:
        status, _location = get(front.port[80])
        found = re.search(r'"GET (/admin\S*) HTTP', logs(admin))
        if found or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert found, (status, logs(admin), logs(front))
    assert found.group(1) == ('/admin' if stack.version == '1.9' else '/admin?homepage')
    # ADMIN not true: no admin location, so the same redirect cycles.
    off = stack.front('front-off', WEBMAIL='none', ADMIN='false', WEBROOT_REDIRECT='/admin', WEB_ADMIN='/admin')
    assert get(off.port[80]) == (500, None)


@pytest.mark.parametrize('redirect, status', [('', 404), ('none', 403)])
def test_webroot_without_redirect(stack, redirect, status):
    """Empty: try_files $uri =404. `none`: no location / at all (the static root has no index)."""
    front = stack.front(WEBMAIL='none', ADMIN='true', WEBROOT_REDIRECT=redirect)
    assert get(front.port[80])[0] == status
