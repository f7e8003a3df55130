"""The records of nantral.mailu.mailu_dns_records against the ones Mailu's own code computes
(tests/data/mailu_dns_reference.yml, whose header says how they were obtained), and the
zone-file fragments against dnspython's parser."""

import base64
import re
from pathlib import Path

import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.zone
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ansible_collections.nantral.mailu.plugins.module_utils import mailu_dns as engine

REFERENCE = yaml.safe_load((Path(__file__).resolve().parents[1] / 'data' / 'mailu_dns_reference.yml').read_text())
CASES = [(name, release) for name in sorted(REFERENCE) for release in sorted(REFERENCE[name]['releases'])]


def _config(mailu, release):
    return dict(release=release, domain=mailu['DOMAIN'], hostname=mailu['HOSTNAMES'][0],
                selector=mailu['DKIM_SELECTOR'], dmarc_rua=mailu['DMARC_RUA'], dmarc_ruf=mailu['DMARC_RUF'],
                tls_flavor=mailu['TLS_FLAVOR'], ports=mailu['PORTS'], tlsrpt_address='', mta_sts_mode='none')


def _ours(name, release):
    case = REFERENCE[name]
    mailu = case['config']
    shown = case['releases'][release]
    domains = engine.normalize_domains([d['name'] for d in mailu['domains']])
    keys = dict((d, r['dkim_publickey']) for d, r in shown.items() if r['dkim_publickey'])
    return engine.compute(_config(mailu, release), domains, keys)


def _mailu_lines(records):
    """Every line Mailu's domain page shows, in its order (TLSA before auto-configuration,
    as in its zone file)."""
    lines = [records[key] for key in ('dns_mx', 'dns_spf', 'dns_dkim', 'dns_dmarc', 'dns_dmarc_report') if records[key]]
    tlsa = records['dns_tlsa'] or []
    lines += [tlsa] if isinstance(tlsa, str) else tlsa
    return lines + records['dns_autoconfig']


def _parsed(line):
    """(owner, ttl, type, data) with TXT strings joined: the record DNS would hold."""
    owner, ttl, rclass, rtype, rdata = line.split(None, 4)
    assert rclass == 'IN'
    if rtype == 'TXT' and '\\' not in rdata:
        # 2024.06's page shows the DKIM value as one string longer than DNS allows, which
        # dnspython refuses: join the strings without it (Mailu's values hold no escapes).
        return owner.lower(), int(ttl), rtype, ''.join(re.findall(r'"([^"]*)"', rdata)).encode()
    parsed = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(rtype), rdata)
    data = b''.join(parsed.strings) if rtype == 'TXT' else parsed.to_text()
    return owner.lower(), int(ttl), rtype, data


@pytest.mark.parametrize('name, release', CASES)
def test_mailu_records_are_mailus(name, release):
    """What we label source=mailu is what Mailu shows, record for record, line for line."""
    ours = _ours(name, release)
    for domain, shown in REFERENCE[name]['releases'][release].items():
        lines = [r['line'] for r in ours if r['source'] == engine.MAILU and r['domain'] in (domain, None)]
        expected = _mailu_lines(shown)
        assert sorted(_parsed(line) for line in lines) == sorted(_parsed(line) for line in expected)
        if release == '1.9':
            assert sorted(lines) == sorted(expected)
        else:
            # The page shows DKIM in one string; its zone-file download cuts it at 250
            # characters as we do, and leaves the report authorisation out.
            download = shown['zonefile'].splitlines()
            assert sorted(line for line in lines if '._report._dmarc.' not in line) == sorted(download)
            assert shown['dns_dmarc_report'] in lines if shown['dns_dmarc_report'] else True


@pytest.mark.parametrize('name, release', CASES)
def test_labels(name, release):
    ours = _ours(name, release)
    labels = dict((r['type'], r['label']) for r in ours if r['type'] in ('MX', 'SRV', 'TLSA', 'CNAME'))
    assert labels['MX'] == engine.REQUIRED
    assert labels['SRV'] == engine.OPTIONAL
    for record in ours:
        if record['value'].startswith(('v=spf1', 'v=DKIM1', 'v=DMARC1; p=')):
            assert record['label'] == engine.REQUIRED, record
        if '._report._dmarc.' in record['name']:
            main = REFERENCE[name]['config']['DOMAIN']
            assert record['label'] == (engine.OPTIONAL if record['domain'] == main else engine.RECOMMENDED)


def _zone(text, origin):
    head = '$ORIGIN %s.\n$TTL 600\n@ SOA ns.%s. hostmaster.%s. 1 3600 600 86400 600\n@ NS ns.%s.\n' % ((origin,) * 4)
    return dns.zone.from_text(head + text, origin=origin + '.', relativize=False, check_origin=False)


@pytest.mark.parametrize('name, release', CASES)
def test_fragments_are_zone_files(name, release):
    ours = _ours(name, release)
    fragments = engine.zone_fragments(ours, release)
    assert set(fragments) == set(r['zone'] for r in ours)
    for zone, text in fragments.items():
        parsed = _zone(text, zone)
        in_zone = [r for r in ours if r['zone'] == zone]
        for record in in_zone:
            rdataset = parsed.find_rdataset(record['name'], record['type'])
            if record['type'] == 'TXT':
                values = [b''.join(rdata.strings).decode() for rdata in rdataset]
                assert record['value'] in values
                assert all(len(string) <= engine.TXT_STRING_MAX for rdata in rdataset for string in rdata.strings)


def test_txt_strings_split_and_escape():
    value = 'v=DKIM1; k=rsa; p=' + 'A' * 600 + ' "quoted" back\\slash caf\u00e9'
    text = engine.txt_strings(value)
    rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TXT, text)
    assert b''.join(rdata.strings) == value.encode('utf-8')
    assert [len(s) for s in rdata.strings][:-1] == [engine.TXT_CHUNK] * (len(rdata.strings) - 1)
    assert '\\"quoted\\"' in text and 'back\\\\slash' in text and 'caf\\195\\169' in text


def test_non_sending_and_alternatives():
    config = dict(_config(REFERENCE['example']['config'], '2024.06'), tlsrpt_address='admin@nantral.example')
    domains = engine.normalize_domains(
        [{'name': 'nantral.example', 'alternatives': ['nantral.example.net'], 'managers': ['x@nantral.example']},
         'quiet.example'], non_sending=['quiet.example'])
    records = engine.compute(config, domains, {'nantral.example': 'KEY'})
    by = dict(((r['name'], r['type'], r['value'][:8]), r) for r in records)
    assert by[('quiet.example.', 'TXT', 'v=spf1 -')]['value'] == 'v=spf1 -all'
    assert by[('_dmarc.quiet.example.', 'TXT', 'v=DMARC1')]['value'] == 'v=DMARC1; p=reject;'
    assert not [r for r in records if r['name'] == 'quiet.example.' and r['value'].startswith('v=spf1 mx')]
    assert by[('nantral.example.net.', 'MX', '10 mail.')]['source'] == engine.EXTRA
    assert by[('nantral.example.net.', 'TXT', 'v=spf1 -')]['label'] == engine.RECOMMENDED
    assert by[('_smtp._tls.nantral.example.', 'TXT', 'v=TLSRPT')]['value'] == 'v=TLSRPTv1; rua=mailto:admin@nantral.example'
    assert not [r for r in records if r['name'].startswith('_mta-sts.')]
    # Alternatives that send: 2024.06 signs their mail with their domain's key, 1.9 does not sign it.
    for release, dkim in (('2024.06', True), ('1.9', False)):
        sending = engine.normalize_domains([{'name': 'nantral.example', 'alternatives': ['nantral.example.net']}],
                                           alternatives_send_mail=True)
        records = engine.compute(dict(config, release=release), sending, {'nantral.example': 'KEY'})
        names = set(r['name'] for r in records)
        assert ('dkim._domainkey.nantral.example.net.' in names) is dkim
        assert ('nantral.example.net._report._dmarc.nantral.example.' in names) is dkim


def test_mta_sts_only_when_asked_and_with_tls():
    config = dict(_config(REFERENCE['example']['config'], '2024.06'), mta_sts_mode='enforce')
    domains = engine.normalize_domains(['nantral.example'])
    records = engine.compute(config, domains, {})
    sts = [r for r in records if r['name'] == '_mta-sts.nantral.example.'][0]
    assert sts['value'] == 'v=STSv1; id=%s' % engine.mta_sts_id(config)
    assert 'mode: enforce\r\nmx: mail.nantral.example\r\n' in engine.mta_sts_policy(config)
    assert engine.mta_sts_id(dict(config, mta_sts_mode='testing')) != engine.mta_sts_id(config)
    assert not [r for r in engine.compute(dict(config, tls_flavor='notls'), domains, {}) if 'mta-sts' in r['name']]


@pytest.mark.parametrize('pem_format', [serialization.PrivateFormat.TraditionalOpenSSL, serialization.PrivateFormat.PKCS8])
def test_key_files_as_mailu_names_them(tmp_path, pem_format):
    """1.9 writes traditional PEM, 2024.06 PKCS#8; the file is named after the domain's
    Unicode form, as Mailu's IdnaDomain hands the name to DKIM_PATH."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, pem_format, serialization.NoEncryption())
    (tmp_path / 'b\u00fccher.example.dkim.key').write_bytes(pem)
    (tmp_path / 'empty.example.dkim.key').write_bytes(b'')
    domains = engine.normalize_domains(['B\u00fccher.example', 'empty.example', 'none.example'])
    keys = engine.read_public_keys(str(tmp_path), domains, 'dkim')
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert list(keys) == ['xn--bcher-kva.example']
    assert keys['xn--bcher-kva.example'][1] == base64.b64encode(der).decode()


def test_bad_key_file_is_named(tmp_path):
    (tmp_path / 'example.org.dkim.key').write_text('not a key')
    with pytest.raises(engine.DnsError, match='example.org.dkim.key is not a PEM private key'):
        engine.read_public_keys(str(tmp_path), engine.normalize_domains(['example.org']), 'dkim')


def test_non_sending_must_be_known():
    with pytest.raises(engine.DnsError, match='other.example'):
        engine.normalize_domains(['example.org'], non_sending=['other.example'])
