"""The Postfix overrides the mailu_stack role renders, applied to a real Postfix (Debian's)
the way Mailu's smtp container applies them at start (core/postfix/start.py): a shell runs
``postconf -e "LINE"`` per line of postfix.cf and ``postconf -Me "LINE"`` per line of
postfix.master, and postmap compiles each map. Then real mail and real relay checks.

The instance is the test's own (config and queue directories under tmp_path, listening on
127.0.0.1 only). What differs from Mailu's smtp, on purpose: no podop (the maps it serves are
left out), the transport map at the instance's path instead of /etc/postfix, and XCLIENT
accepted from 127.0.0.1 so that the test can speak as any client address. The relay host
both kinds of domain go to is the test's sink SMTP server on loopback (no DNS).
"""

import shutil
import smtplib
import socket
import subprocess
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

import pytest

from stackrender import render

aiosmtpd = pytest.importorskip('aiosmtpd.controller')

POSTFIX_BINARIES = ('postconf', 'postmap', 'postfix')
pytestmark = pytest.mark.skipif(
    any(shutil.which(tool) is None for tool in POSTFIX_BINARIES) or not Path('/etc/postfix/master.cf').is_file(),
    reason="Debian's postfix package is not installed (scripts/bootstrap.sh installs it)")

STRICT, OTHER = 'school.example', 'other.example'
LIMITS = {'concurrency': 1, 'delay': 1, 'recipients': 20}
MESSAGES = 50
HOLD = 0.2  # seconds the sink takes per message: deliveries that may overlap do


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def lines(text):
    """What start.py hands to postconf: every line but comments and blank ones."""
    return [line for line in text.strip().split('\n') if line and not line.startswith('#')]


class Postfix:
    """A Postfix instance of the test's own, configured like Mailu's smtp where it matters."""

    def __init__(self, root, port):
        self.conf = root / 'etc'
        self.queue = root / 'queue'
        self.data = root / 'data'
        self.log = root / 'maillog'
        self.port = port
        for path in (self.conf, self.queue, self.data):
            path.mkdir(parents=True)
        shutil.chown(self.data, 'postfix')
        (self.conf / 'main.cf').write_text('\n'.join([
            'compatibility_level = 3.6',
            'queue_directory = %s' % self.queue,
            'data_directory = %s' % self.data,
            'maillog_file = %s' % self.log,
            'maillog_file_prefixes = %s' % root,
            'inet_interfaces = 127.0.0.1',
            'inet_protocols = all',  # XCLIENT ADDR parses IPv6 only then; it listens on 127.0.0.1 alone
            'myhostname = smtp.mailu.test',
            'mydestination =',
            'relay_domains =',
            'local_recipient_maps =',
            # Mailu's image compiles maps with postmap's default: lmdb (its main.cf reads lmdb:).
            'default_database_type = lmdb',
            # Mailu's relay decision on port 25 (core/postfix/conf/main.cf), without SASL.
            'smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination',
            'smtpd_client_restrictions =',
            'smtp_dns_support_level = disabled',
            '']))
        shutil.copy('/etc/postfix/master.cf', self.conf / 'master.cf')
        # Debian chroots its daemons; Mailu's do not, and this queue directory is no chroot.
        self.postconf('-F', '*/*/chroot = n')
        self.postconf('-MX', 'smtp/inet')
        self.postconf('-Me', '127.0.0.1:%d/inet = 127.0.0.1:%d inet n - n - - smtpd' % (port, port))

    def postconf(self, *args):
        return subprocess.run(['postconf', '-c', str(self.conf)] + list(args),
                              capture_output=True, text=True, check=True).stdout.strip()

    def apply_mailu_overrides(self, files):
        """What Mailu's start.py does with /overrides, through a shell like os.system."""
        for option, name in (('-e', 'postfix.cf'), ('-Me', 'postfix.master')):
            for line in lines(files[name].read_text()):
                result = subprocess.run('postconf -c %s %s "%s"' % (self.conf, option, line), shell=True,
                                        capture_output=True, text=True, check=False)
                assert result.returncode == 0 and not result.stderr, (line, result.stderr)
        shutil.copy(files['transport.map'], self.conf / 'transport.map')
        subprocess.run(['postmap', '-c', str(self.conf), str(self.conf / 'transport.map')], check=True)
        (self.conf / 'transport.map').unlink()

    def start(self):
        subprocess.run(['postfix', '-c', str(self.conf), 'check'], check=True, capture_output=True)
        started = subprocess.run(['postfix', '-c', str(self.conf), 'start'], capture_output=True, text=True, check=False)
        assert started.returncode == 0, started.stderr + self.logs()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with smtplib.SMTP('127.0.0.1', self.port, timeout=5):
                    return
            except OSError:
                time.sleep(0.2)
        raise AssertionError('the test Postfix does not answer: %s' % self.logs())

    def stop(self):
        subprocess.run(['postfix', '-c', str(self.conf), 'stop'], check=False, capture_output=True)

    def logs(self):
        return self.log.read_text() if self.log.exists() else ''


class Sink:
    """The SMTP server every delivery reaches: when each message's transaction ran, and to whom."""

    def __init__(self):
        self.deliveries = []  # (recipient domain, MAIL FROM time, end of DATA time)

    async def handle_MAIL(self, server, session, envelope, address, options):  # noqa: N802 (aiosmtpd's name)
        session.mail_started = time.monotonic()
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return '250 OK'

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        import asyncio  # pylint: disable=import-outside-toplevel
        await asyncio.sleep(HOLD)
        domains = {rcpt.rsplit('@', 1)[1] for rcpt in envelope.rcpt_tos}
        assert len(domains) == 1
        self.deliveries.append((domains.pop(), session.mail_started, time.monotonic()))
        return '250 OK'

    def of(self, domain):
        return sorted((start, end) for name, start, end in self.deliveries if name == domain)


@pytest.fixture
def sink():
    handler = Sink()
    controller = aiosmtpd.Controller(handler, hostname='127.0.0.1', port=free_port())
    controller.start()
    yield handler, controller.port
    controller.stop()


@pytest.fixture
def postfix():
    # Not under tmp_path: Postfix's daemons run as the postfix user, who cannot enter root's 0700 one.
    root = Path(tempfile.mkdtemp(prefix='nantral-postfix-'))
    root.chmod(0o755)
    instances = []

    def make(files):
        instance = Postfix(root / ('instance%d' % len(instances)), free_port())
        instances.append(instance)
        instance.apply_mailu_overrides(files)
        return instance
    yield make
    for instance in instances:
        instance.stop()
    shutil.rmtree(root, ignore_errors=True)


def rendered(tmp_path, variables):
    result, files = render(tmp_path, variables, files=('postfix.cf', 'postfix.master', 'transport.map'))
    assert result.returncode == 0, result.stdout
    return {name: tmp_path / 'out' / name for name in files}, files


def most_at_once(intervals):
    events = sorted([(start, 1) for start, end in intervals] + [(end, -1) for start, end in intervals])
    current = peak = 0
    for _moment, step in events:
        current += step
        peak = max(peak, current)
    return peak


@pytest.mark.parametrize('version', ['1.9', '2024.06'])
def test_the_overrides_are_accepted_as_mailu_applies_them(tmp_path, postfix, version):
    paths, texts = rendered(tmp_path, {'mailu_stack_version': version, 'mailu_stack_relaynets': ['203.0.113.10/32'],
                                       'mailu_stack_delivery_limits': {STRICT: LIMITS}})
    instance = postfix(paths)
    # postconf stored each line as written: no shell expansion, nothing lost.
    for line in lines(texts['postfix.cf']):
        name, value = (part.strip() for part in line.split('=', 1))
        assert instance.postconf('-h', name) == value
    assert instance.postconf('-M', 'slow_c1_d1_r20/unix').split() == [
        'slow_c1_d1_r20', 'unix', '-', '-', 'n', '-', '-', 'smtp', '-o', 'syslog_name=postfix-slow_c1_d1_r20']
    # Postfix knows the transport's limits as its own parameters (no "unused parameter").
    assert instance.postconf('-h', 'slow_c1_d1_r20_destination_rate_delay') == '1s'
    query = subprocess.run(['postmap', '-c', str(instance.conf), '-q', STRICT, 'lmdb:%s/transport.map' % instance.conf],
                           capture_output=True, text=True, check=True)
    assert query.stdout.strip() == 'slow_c1_d1_r20:'
    check = subprocess.run(['postfix', '-c', str(instance.conf), 'check'], capture_output=True, text=True, check=False)
    assert check.returncode == 0 and 'unused parameter' not in check.stderr, check.stderr


def test_a_strict_domain_gets_its_pace_and_another_domain_does_not(tmp_path, postfix, sink):
    handler, sink_port = sink
    relayhost = '[127.0.0.1]:%d' % sink_port
    paths, _texts = rendered(tmp_path, {'mailu_stack_relayhost': relayhost,
                                        'mailu_stack_delivery_limits': {STRICT: LIMITS}})
    instance = postfix(paths)
    # Mailu's relayhost, and 2024.06's transport_maps without podop, at the instance's path.
    instance.postconf('-e', 'relayhost = %s' % relayhost,
                      'transport_maps = lmdb:%s/transport.map' % instance.conf)
    instance.start()
    with smtplib.SMTP('127.0.0.1', instance.port, timeout=30) as client:
        for number in range(MESSAGES):
            for domain in (STRICT, OTHER):
                message = EmailMessage()
                message['From'] = 'no-reply@nantral.example'
                message['To'] = 'user%d@%s' % (number, domain)
                message['Subject'] = 'message %d' % number
                message.set_content('polite delivery test\n')
                client.send_message(message)
    deadline = time.monotonic() + MESSAGES * (LIMITS['delay'] + HOLD) + 30
    while len(handler.deliveries) < 2 * MESSAGES and time.monotonic() < deadline:
        time.sleep(0.5)
    strict, other = handler.of(STRICT), handler.of(OTHER)
    assert len(strict) == MESSAGES and len(other) == MESSAGES, instance.logs()[-3000:]
    assert 'postfix-slow_c1_d1_r20/smtp' in instance.logs()

    assert most_at_once(strict) == LIMITS['concurrency']
    # The queue manager waits the delay after each delivery before it starts the next one. Its
    # timer counts whole seconds, so one wait may end up to a second early; over the run the
    # pace is kept: 50 deliveries take at least 49 delays.
    starts = [start for start, end in strict]
    gaps = ['%.3f' % (later - earlier) for earlier, later in zip(starts, starts[1:])]
    assert min(float(gap) for gap in gaps) >= LIMITS['delay'] - 1 + HOLD, gaps
    assert starts[-1] - starts[0] >= (MESSAGES - 1) * LIMITS['delay'], gaps
    # The other domain goes on at Postfix's usual pace, many at once.
    assert most_at_once(other) > LIMITS['concurrency'] + 1
    assert max(end for start, end in other) < max(end for start, end in strict)


@pytest.mark.parametrize('from_host', [False, True])
def test_postfix_relays_for_the_rendered_networks_only(tmp_path, postfix, from_host):
    paths, _texts = rendered(tmp_path, {'mailu_stack_relaynets': ['203.0.113.10/32', '2001:db8::10/128'],
                                        'mailu_stack_relay_from_host': from_host})
    instance = postfix(paths)
    # The test speaks as any client through XCLIENT, as front does for Mailu.
    instance.postconf('-e', 'smtpd_authorized_xclient_hosts = 127.0.0.1')
    instance.start()
    expected = {
        '203.0.113.10': 250,   # RELAYNETS
        '203.0.113.11': 554,   # its neighbour
        'IPV6:2001:db8::10': 250,
        '192.168.203.7': 250,  # a container on Mailu's network (Django joined to it)
        '192.168.203.1': 250 if from_host else 554,  # the gateway: this host and what Docker NATs
        '198.51.100.20': 554,  # anyone else
    }
    seen = {}
    for address in expected:
        with smtplib.SMTP('127.0.0.1', instance.port, timeout=20) as client:
            client.ehlo('probe.example')
            code, text = client.docmd('XCLIENT', 'ADDR=%s NAME=[UNAVAILABLE]' % address)
            assert code == 220, text
            client.ehlo('probe.example')
            client.mail('no-reply@nantral.example')
            seen[address] = client.rcpt('someone@elsewhere.example')[0]
    assert seen == expected
