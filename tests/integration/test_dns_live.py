"""mailu_dns_records' live check against a real DNS server: Knot (Debian's knot package,
installed by scripts/bootstrap.sh), started by the test on 127.0.0.1, serving a zone
written from the module's own fragment, one that publishes the same records differently
(SPF through an include), and one that publishes them wrong."""

import shutil
import socket
import subprocess
import time

import dns.message
import dns.query
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ansible_collections.nantral.mailu.plugins.module_utils import mailu_dns as engine

SERVER = '127.0.0.10'
HEAD = '''$ORIGIN {zone}.
$TTL 600
@ SOA ns.{zone}. hostmaster.{zone}. 1 3600 600 86400 600
@ NS ns.{zone}.
ns A 127.0.0.1
'''


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _key(path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return engine.read_public_keys(str(path.parent), engine.normalize_domains([path.name.split('.dkim.')[0]]), 'dkim')


class Knot:
    """knotd serving ``zones`` ({name: text}) on 127.0.0.1:port until stop()."""

    def __init__(self, directory, zones):
        knotd = shutil.which('knotd') or '/usr/sbin/knotd'
        self.port = _free_port()
        for name, text in zones.items():
            (directory / ('%s.zone' % name)).write_text(text)
        conf = directory / 'knot.conf'
        conf.write_text('\n'.join([
            'server:', '  listen: 127.0.0.1@%d' % self.port, '  rundir: %s' % directory,
            'database:', '  storage: %s' % directory,
            'log:', '  - target: stderr', '    any: info',
            'template:', '  - id: default', '    storage: %s' % directory, '    file: "%s.zone"',
            '    zonefile-sync: -1', '    journal-content: none',
            'zone:'] + ['  - domain: %s' % name for name in zones]) + '\n')
        self.log = directory / 'knotd.log'
        with self.log.open('w') as log:
            self.process = subprocess.Popen([knotd, '-c', str(conf)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        for name in zones:
            while not self._serves(name):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError('knotd did not serve %s: %s' % (name, self.log.read_text()))
                time.sleep(0.1)

    def _serves(self, zone):
        try:
            answer = dns.query.udp(dns.message.make_query(zone, 'SOA'), '127.0.0.1', port=self.port, timeout=0.5)
        except (OSError, dns.exception.Timeout):
            return False
        return bool(answer.answer)

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def published(tmp_path, run):
    """The module's records for three domains; Knot publishes nantral.example from the
    module's own fragment, clubs.example differently but rightly, bad.example wrongly."""
    keys = tmp_path / 'dkim'
    keys.mkdir()
    for domain in ('nantral.example', 'clubs.example', 'bad.example'):
        _key(keys / ('%s.dkim.key' % domain))
    params = dict(release='2024.06', domain='nantral.example', hostnames=['mail.nantral.example'],
                  domains=['nantral.example', 'clubs.example', 'bad.example'], dkim_dir=str(keys),
                  dmarc_rua='admin', dmarc_ruf='admin')
    computed = run('mailu_dns_records', **params)
    clubs = dict((r['name'], r) for r in computed['records'] if r['zone'] == 'clubs.example')
    other_key = _key(tmp_path / 'other.example.dkim.key')['other.example'][1]
    zones = {
        'nantral.example': HEAD.format(zone='nantral.example') + computed['zones']['nantral.example']
        + 'mail A %s\n_spf TXT "v=spf1 ip4:127.0.0.0/24 -all"\n' % SERVER,
        'clubs.example': HEAD.format(zone='clubs.example') + '\n'.join([
            '@ MX 20 mail.nantral.example.',
            '@ TXT "v=spf1 include:_spf.nantral.example -all"',
            clubs['dkim._domainkey.clubs.example.']['line'], clubs['_dmarc.clubs.example.']['line']]) + '\n',
        'bad.example': HEAD.format(zone='bad.example') + '\n'.join([
            '@ MX 10 mx.elsewhere.example.',
            '@ TXT "v=spf1 ip4:192.0.2.0/24 ~all"',
            'dkim._domainkey TXT %s' % engine.txt_strings('v=DKIM1; k=rsa; p=%s' % other_key)]) + '\n',
    }
    knot = Knot(tmp_path, zones)
    yield dict(params, check_live=True, nameservers=['127.0.0.1'], nameserver_port=knot.port, timeout=2.0)
    knot.stop()


def _mismatches(result, domain):
    return [m for m in result['mismatches'] if m.startswith(domain + ':')]


def test_matching_zones_have_no_mismatch(run, published):
    result = run('mailu_dns_records', **published)
    assert result['server_addresses'] == [SERVER]
    assert not _mismatches(result, 'nantral.example')
    assert not _mismatches(result, 'clubs.example')
    assert result['changed'] is False


def test_each_mismatch_is_named(run, published):
    result = run('mailu_dns_records', **published)
    found = _mismatches(result, 'bad.example')
    assert len(found) == 4, found
    mx, spf, dkim, dmarc = found
    assert 'MX points at mx.elsewhere.example (10), not at mail.nantral.example' in mx
    assert 'does not allow the server\'s address 127.0.0.10: softfail' in spf
    assert 'the DKIM record at dkim._domainkey.bad.example publishes p=' in dkim and 'bad.example.dkim.key' in dkim
    assert 'no DMARC record at _dmarc.bad.example' in dmarc
    # Each mismatch is also a warning (ansible-core 2.19 wraps them in WarningSummary dicts;
    # in-process runs also carry earlier tests' warnings).
    warnings = [w['event']['msg'] if isinstance(w, dict) else w for w in result['warnings']]
    assert set(result['mismatches']) <= set(warnings)


def test_given_addresses_and_a_server_that_spf_refuses(run, published):
    result = run('mailu_dns_records', **dict(published, server_addresses=['198.51.100.7']))
    assert result['server_addresses'] == ['198.51.100.7']
    spf = [m for m in result['mismatches'] if 'SPF' in m]
    assert [m.split(':')[0] for m in spf] == ['nantral.example', 'clubs.example', 'bad.example']
    assert 'clubs.example: SPF "v=spf1 include:_spf.nantral.example -all" does not allow' in spf[1]


def test_silent_server(run, published):
    """A server that does not answer is named, not taken for a mismatch of the records."""
    result = run('mailu_dns_records', **dict(published, nameserver_port=_free_port(), timeout=0.3,
                                             domains=['nantral.example']))
    assert result['mismatches']
    assert all('could not be' in m for m in result['mismatches']), result['mismatches']
