# -*- coding: utf-8 -*-
# Copyright (c) 2026, Nantral Platform sysadmin team
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The DNS records a Mailu server needs, and their check against live DNS.

What Mailu's admin shows on a domain's page (``Domain.dns_*`` in Mailu's models, per
release) is computed here once, labelled required, recommended or optional, then
completed with what careful mail servers publish besides: records for alternative
domains (Mailu shows none), ``v=spf1 -all`` and DMARC ``p=reject`` for domains that send
no mail, TLS-RPT, and MTA-STS when its policy is served.  The records come out as data
and as zone-file fragments, one per zone.

``check_live`` compares them with what DNS publishes: the MX, the DKIM key, the SPF
policy evaluated for the server's addresses (RFC 7208, bounded to its 10 lookups), the
DMARC record.  Pure functions except for the key files and the resolver passed in.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import traceback

from ansible_collections.nantral.mailu.plugins.module_utils import mailu_dkim
from ansible_collections.nantral.mailu.plugins.module_utils.mailu_dkim import CRYPTOGRAPHY_IMPORT_ERROR
from ansible_collections.nantral.mailu.plugins.module_utils.mailu_input import IDNA_IMPORT_ERROR, MailuError

try:
    import idna
except ImportError:
    pass  # IDNA_IMPORT_ERROR says so

DNSPYTHON_IMPORT_ERROR = None
try:
    import dns.exception
    import dns.resolver
except ImportError:
    DNSPYTHON_IMPORT_ERROR = traceback.format_exc()

__all__ = ['IDNA_IMPORT_ERROR', 'CRYPTOGRAPHY_IMPORT_ERROR', 'DNSPYTHON_IMPORT_ERROR']

RELEASES = ('1.9', '2024.06')
REQUIRED = 'required'
RECOMMENDED = 'recommended'
OPTIONAL = 'optional'
MAILU = 'mailu'
EXTRA = 'extra'

DEFAULT_SELECTOR = 'dkim'
DEFAULT_DKIM_DIR = '/mailu/dkim'
DEFAULT_TLS_FLAVOR = 'cert'
# Mailu 2024.06's code default of PORTS (configuration.py), which its setup also writes.
DEFAULT_PORTS = (25, 80, 443, 465, 993, 995, 4190)
MTA_STS_MODES = ('none', 'testing', 'enforce')
DEFAULT_MTA_STS_MAX_AGE = 604800

# Mailu's TTLs: 600 seconds for every record but TLSA (a day).
TTL = 600
TLSA_TTL = 86400
# Mailu cuts TXT values into 250-character strings (1.9's DKIM record, 2024.06's zone
# file); cutting at the same place keeps our lines equal to Mailu's.  DNS allows 255.
TXT_CHUNK = 250
TXT_STRING_MAX = 255
# The TLSA records Mailu shows for the letsencrypt flavours: Let's Encrypt's roots,
# DANE-TA(2) SPKI(1) SHA-256(1).
_ISRG_ROOT_X1 = '0b9fa5a59eed715c26c1020c711b4f6ec42d58b0015e14337a39dad301c5afc3'
_ISRG_ROOT_X2 = '762195c225586ee6c0237456e2107dc54f1efc21f61a792ebd515913cce68332'
_LETSENCRYPT_FLAVORS = ('letsencrypt', 'mail-letsencrypt')

# RFC 7208 section 4.6.4.
SPF_LOOKUP_LIMIT = 10
SPF_VOID_LIMIT = 2


class DnsError(MailuError):
    """A failure the module reports as its message."""


# --- Inputs ------------------------------------------------------------------------------------

def _ascii(name, what):
    """The A-label form of a domain name, lower-cased, without the final dot."""
    text = str(name).strip().rstrip('.').lower()
    try:
        return idna.encode(text, uts46=True).decode('ascii')
    except idna.IDNAError as exc:
        raise DnsError('%s: %r is not a valid domain name (%s)' % (what, name, exc))


def normalize_domains(domains, non_sending=(), alternatives_send_mail=False):
    """The domains as ``[{name, alternatives, sends_mail, alternatives_send_mail}]``.

    ``domains`` takes names, or dicts with ``name`` and ``alternatives`` (other keys, as
    in the accounts role's domains, are ignored); ``non_sending`` names the domains and
    alternatives that send no mail.
    """
    silent = set(_ascii(name, 'non_sending') for name in non_sending or ())
    result, seen = [], set()
    for item in domains or ():
        if isinstance(item, dict):
            if not item.get('name'):
                raise DnsError('domains: every domain needs a name, got %r' % (item,))
            name, alternatives = item['name'], item.get('alternatives') or []
        else:
            name, alternatives = item, []
        name = _ascii(name, 'domains')
        if name in seen:
            continue
        seen.add(name)
        alternatives = [_ascii(alt, 'alternatives of %s' % name) for alt in alternatives]
        result.append(dict(
            name=name,
            sends_mail=name not in silent,
            alternatives=[dict(name=alt, sends_mail=alternatives_send_mail and alt not in silent)
                          for alt in alternatives],
        ))
    known = set(d['name'] for d in result) | set(a['name'] for d in result for a in d['alternatives'])
    unknown = sorted(silent - known)
    if unknown:
        raise DnsError('non_sending names domains that are neither domains nor alternatives: %s' % ', '.join(unknown))
    return result


def dkim_key_path(dkim_dir, domain, selector):
    """Where Mailu keeps a domain's key: DKIM_PATH, ``{domain}.{selector}.key``."""
    return os.path.join(dkim_dir, mailu_dkim.key_filename(domain, selector))


def read_public_keys(dkim_dir, domains, selector):
    """``{domain: (path, base64 public key)}`` for the domains that have a key file."""
    keys = {}
    for domain in domains:
        path = dkim_key_path(dkim_dir, domain['name'], selector)
        try:
            with open(path, 'rb') as handle:
                pem = handle.read()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise DnsError('cannot read the DKIM key of %s: %s' % (domain['name'], exc))
        if not pem.strip():
            continue
        try:
            keys[domain['name']] = (path, mailu_dkim.public_key_b64(pem, path))
        except mailu_dkim.DkimError as exc:
            raise DnsError(str(exc))
    return keys


# --- Records -----------------------------------------------------------------------------------

def txt_strings(value):
    """``value`` cut into the quoted character-strings of a zone file's TXT record: at most
    TXT_CHUNK bytes each, with ``"`` and ``\\`` escaped and other bytes outside printable
    ASCII written ``\\DDD`` (RFC 1035 section 5.1)."""
    data = value.encode('utf-8')
    chunks = [data[start:start + TXT_CHUNK] for start in range(0, len(data), TXT_CHUNK)] or [b'']
    return ' '.join('"%s"' % ''.join(_escape_byte(byte) for byte in chunk) for chunk in chunks)


def _escape_byte(byte):
    if byte in (0x22, 0x5c):
        return '\\' + chr(byte)
    if 0x20 <= byte <= 0x7e:
        return chr(byte)
    return '\\%03d' % byte


def _record(domain, zone, name, rtype, value, label, source, purpose, ttl=TTL):
    rdata = txt_strings(value) if rtype == 'TXT' else value
    return dict(domain=domain, zone=zone, name=name + '.', ttl=ttl, type=rtype, value=value, label=label,
                source=source, purpose=purpose, line='%s. %d IN %s %s' % (name, ttl, rtype, rdata))


def _dmarc_value(config, policy_only=False):
    """Mailu's DMARC policy: reject, reports to DMARC_RUA and DMARC_RUF at DOMAIN, strict
    alignment."""
    if policy_only:
        return 'v=DMARC1; p=reject;'
    reports = ''.join(' %s=mailto:%s@%s;' % (tag, config[key], config['domain'])
                      for tag, key in (('rua', 'dmarc_rua'), ('ruf', 'dmarc_ruf')) if config.get(key))
    return 'v=DMARC1; p=reject;%s adkim=s; aspf=s' % reports


def _autoconfig(config, domain, zone):
    """Mailu's client auto-configuration records (RFC 6186, and 2024.06's additions)."""
    hostname = config['hostname']
    notls = config['tls_flavor'] == 'notls'
    records = []
    if config['release'] == '1.9':
        protocols = [('submission', 587, 1), ('imap', 143, 1), ('pop3', 110, 1)]
        if not notls:
            protocols += [('imaps', 993, 1), ('pop3s', 995, 1)]
        published = set(port for _proto, port, _prio in protocols)
    else:
        protocols = [('imap', 143, 20), ('pop3', 110, 20), ('submission', 587, 20)]
        if not notls:
            protocols += [('autodiscover', 443, 10), ('submissions', 465, 10), ('imaps', 993, 10), ('pop3s', 995, 10)]
        # 2024.06 counts 465 and 993 as open whatever PORTS says.
        published = set(config['ports']) | {465, 993}
    for proto, port, priority in protocols:
        if port in published:
            value, purpose = '%d 1 %d %s.' % (priority, port, hostname), '%s clients find the server' % proto
        else:
            value, purpose = '0 0 0 .', '%s is not offered (port %d is closed)' % (proto, port)
        records.append(_record(domain, zone, '_%s._tcp.%s' % (proto, domain), 'SRV', value, OPTIONAL, MAILU, purpose))
    if config['release'] != '1.9':
        for prefix in ('autoconfig', 'autodiscover'):
            records.append(_record(domain, zone, '%s.%s' % (prefix, domain), 'CNAME', hostname + '.', OPTIONAL, MAILU,
                                   'mail clients fetch their settings from the server'))
    return records


def _sending(config, domain, zone, public_key, mailu_shows):
    """SPF, DKIM, DMARC and the DMARC report authorisation of a domain that sends mail."""
    hostname, selector, main = config['hostname'], config['selector'], config['domain']
    source = MAILU if mailu_shows else EXTRA
    records = [_record(domain, zone, domain, 'TXT', 'v=spf1 mx a:%s ~all' % hostname, REQUIRED, source,
                       'SPF: the server may send mail from %s' % domain)]
    if public_key is None:
        return records
    records.append(_record(domain, zone, '%s._domainkey.%s' % (selector, domain), 'TXT',
                           'v=DKIM1; k=rsa; p=%s' % public_key, REQUIRED, source,
                           'DKIM: receivers verify the server\'s signature'))
    records.append(_record(domain, zone, '_dmarc.%s' % domain, 'TXT', _dmarc_value(config), REQUIRED, source,
                           'DMARC: receivers reject mail from %s that fails SPF and DKIM' % domain))
    if config.get('dmarc_rua') or config.get('dmarc_ruf') or mailu_shows:
        # Receivers send DMARC reports to another domain only if it agrees (RFC 7489 7.1).
        label = OPTIONAL if domain == main else RECOMMENDED
        value = 'v=DMARC1' if config['release'] == '1.9' else 'v=DMARC1;'
        records.append(_record(domain, main, '%s._report._dmarc.%s' % (domain, main), 'TXT', value, label, source,
                               '%s accepts DMARC reports about %s' % (main, domain)))
    return records


def _not_sending(config, domain, zone, mailu_shows):
    """SPF and DMARC that say: nothing sent from this domain is genuine."""
    purpose = '%s sends no mail: receivers reject whatever claims to come from it' % domain
    note = ' (instead of Mailu\'s)' if mailu_shows else ''
    return [_record(domain, zone, domain, 'TXT', 'v=spf1 -all', RECOMMENDED, EXTRA, 'SPF' + note + ': ' + purpose),
            _record(domain, zone, '_dmarc.%s' % domain, 'TXT', _dmarc_value(config, policy_only=True), RECOMMENDED, EXTRA,
                    'DMARC' + note + ': ' + purpose)]


def _transport_security(config, domain, zone):
    """TLS-RPT, and MTA-STS when its policy is served."""
    if config['tls_flavor'] == 'notls':
        return []
    records = []
    if config.get('mta_sts_mode', 'none') != 'none':
        records.append(_record(domain, zone, '_mta-sts.%s' % domain, 'TXT', 'v=STSv1; id=%s' % mta_sts_id(config),
                               RECOMMENDED, EXTRA, 'MTA-STS: senders require TLS to %s (policy mode %s)'
                               % (config['hostname'], config['mta_sts_mode'])))
        records.append(_record(domain, zone, 'mta-sts.%s' % domain, 'CNAME', config['hostname'] + '.', RECOMMENDED, EXTRA,
                               'MTA-STS: the policy is served at https://mta-sts.%s/.well-known/mta-sts.txt' % domain))
    if config.get('tlsrpt_address'):
        records.append(_record(domain, zone, '_smtp._tls.%s' % domain, 'TXT',
                               'v=TLSRPTv1; rua=mailto:%s' % config['tlsrpt_address'], RECOMMENDED, EXTRA,
                               'TLS-RPT: senders report TLS failures to %s' % config['tlsrpt_address']))
    return records


def mta_sts_policy(config):
    """The MTA-STS policy file (RFC 8461 section 3.2); the same for every domain."""
    max_age = config.get('mta_sts_max_age') or DEFAULT_MTA_STS_MAX_AGE
    return 'version: STSv1\r\nmode: %s\r\nmx: %s\r\nmax_age: %d\r\n' % (config['mta_sts_mode'], config['hostname'], max_age)


def mta_sts_id(config):
    """Changes whenever the policy does, so that senders fetch it again."""
    return hashlib.sha256(mta_sts_policy(config).encode('ascii')).hexdigest()[:20]


def _zone_of(name, zones):
    """The longest of ``zones`` that holds ``name``, or ``name`` itself."""
    candidates = [zone for zone in zones if name == zone or name.endswith('.' + zone)]
    return max(candidates, key=len) if candidates else name


def compute(config, domains, public_keys):
    """Every record, in the order of Mailu's zone file, then the extras.

    ``config``: release, domain (Mailu's DOMAIN), hostname (the first of HOSTNAMES),
    selector, dmarc_rua, dmarc_ruf, tls_flavor, ports, tlsrpt_address, mta_sts_mode,
    mta_sts_max_age; ``domains`` from normalize_domains; ``public_keys`` maps domains to
    their base64 public key.
    """
    if config['release'] not in RELEASES:
        raise DnsError('release must be one of %s, not %r' % (', '.join(RELEASES), config['release']))
    hostname = config['hostname']
    zones = set(d['name'] for d in domains) | set(a['name'] for d in domains for a in d['alternatives'])
    records = []
    for domain in domains:
        name = domain['name']
        key = public_keys.get(name)
        records.append(_record(name, name, name, 'MX', '10 %s.' % hostname, REQUIRED, MAILU,
                               'mail for %s is delivered to %s' % (name, hostname)))
        if domain['sends_mail']:
            records += _sending(config, name, name, key, mailu_shows=True)
        else:
            records += _not_sending(config, name, name, mailu_shows=True)
        records += _autoconfig(config, name, name)
        records += _transport_security(config, name, name)
        for alternative in domain['alternatives']:
            alt = alternative['name']
            records.append(_record(alt, alt, alt, 'MX', '10 %s.' % hostname, REQUIRED, EXTRA,
                                   'mail for %s (an alternative name of %s) is delivered to %s' % (alt, name, hostname)))
            if alternative['sends_mail']:
                # 2024.06 signs an alternative's mail with its domain's key; 1.9 does not sign it.
                alt_key = key if config['release'] != '1.9' else None
                records += _sending(config, alt, alt, alt_key, mailu_shows=False)
            else:
                records += _not_sending(config, alt, alt, mailu_shows=False)
            records += _transport_security(config, alt, alt)
    if config['tls_flavor'] in _LETSENCRYPT_FLAVORS:
        roots = [_ISRG_ROOT_X1] if config['release'] == '1.9' else [_ISRG_ROOT_X1, _ISRG_ROOT_X2]
        zone = _zone_of(hostname, zones)
        for digest in roots:
            records.append(_record(None, zone, '_25._tcp.%s' % hostname, 'TLSA', '2 1 1 %s' % digest, OPTIONAL, MAILU,
                                   'DANE: senders that validate DNSSEC require Let\'s Encrypt\'s certificate', ttl=TLSA_TTL))
    return records


def zone_fragments(records, release):
    """``{zone: text}``: each zone's records as a zone-file fragment, absolute names, with a
    comment saying what each record is for and how much it matters."""
    fragments = {}
    for record in records:
        text = fragments.setdefault(record['zone'], [
            '; DNS records of %s for Mailu %s, written by nantral.mailu.mailu_dns_records.' % (record['zone'], release),
            '; Names are absolute: paste into the zone of %s.' % record['zone'],
        ])
        text.append('; %s%s: %s' % (record['label'], ', as Mailu shows it' if record['source'] == MAILU else '',
                                    record['purpose']))
        text.append(record['line'])
    return dict((zone, '\n'.join(lines) + '\n') for zone, lines in fragments.items())


def summary(records):
    """One line per record: label, type, name, value."""
    return ['%-11s %-5s %s %s' % (r['label'], r['type'], r['name'], r['value']) for r in records]


# --- Live DNS ----------------------------------------------------------------------------------

def make_resolver(nameservers=None, port=53, timeout=5.0):
    """dnspython's resolver: the host's (/etc/resolv.conf), or the given servers."""
    if nameservers:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = list(nameservers)
        resolver.port = port
    else:
        resolver = dns.resolver.Resolver()
    resolver.lifetime = timeout
    resolver.timeout = timeout
    return resolver


class _Lookup(object):
    """Queries through one resolver; None for a name without such records, DnsError when
    DNS does not answer."""

    def __init__(self, resolver):
        self.resolver = resolver

    def __call__(self, name, rtype):
        try:
            return list(self.resolver.resolve(name, rtype, search=False))
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        except dns.exception.DNSException as exc:
            raise DnsError('DNS did not answer for %s %s: %s' % (name, rtype, exc or type(exc).__name__))

    def txt(self, name):
        return [b''.join(rdata.strings).decode('utf-8', 'replace') for rdata in self(name, 'TXT') or []]

    def addresses(self, name, families=(4, 6)):
        found = []
        for family in families:
            found += [ipaddress.ip_address(rdata.address) for rdata in self(name, 'A' if family == 4 else 'AAAA') or []]
        return found


class _SpfEvaluation(object):
    """check_host() of RFC 7208 for one address, without macros and ``ptr`` (which the
    RFC advises against), bounded to its 10 DNS-querying terms and 2 void lookups."""

    def __init__(self, lookup, ip):
        self.lookup = lookup
        self.ip = ip
        self.lookups = 0
        self.voids = 0

    def _count(self):
        self.lookups += 1
        if self.lookups > SPF_LOOKUP_LIMIT:
            raise _SpfResult('permerror', 'more than %d DNS lookups' % SPF_LOOKUP_LIMIT)

    def _query(self, name, rtype):
        answer = self.lookup(name, rtype)
        if not answer:
            self.voids += 1
            if self.voids > SPF_VOID_LIMIT:
                raise _SpfResult('permerror', 'more than %d lookups found nothing' % SPF_VOID_LIMIT)
        return answer or []

    def check(self, domain):
        """(result, the SPF record, why)."""
        policies = [txt for txt in self.lookup.txt(domain) if txt.lower() == 'v=spf1' or txt.lower().startswith('v=spf1 ')]
        if not policies:
            return 'none', None, 'no SPF record at %s' % domain
        if len(policies) > 1:
            return 'permerror', policies[0], '%d SPF records at %s' % (len(policies), domain)
        try:
            result, reason = self._evaluate(domain, policies[0])
            return result, policies[0], reason
        except _SpfResult as outcome:
            return outcome.result, policies[0], outcome.reason

    def _evaluate(self, domain, policy):
        redirect = None
        for term in policy.split()[1:]:
            if '%' in term:
                raise _SpfResult('unknown', 'macros are not evaluated (%s)' % term)
            name, sep, value = term.partition('=')
            if sep and ':' not in name and '/' not in name:
                if name.lower() == 'redirect':
                    redirect = value
                continue
            qualifier = term[0] if term[0] in '+-~?' else '+'
            mechanism = term.lstrip('+-~?')
            if self._matches(domain, mechanism):
                return ({'+': 'pass', '-': 'fail', '~': 'softfail', '?': 'neutral'}[qualifier],
                        '%s matches in %s' % (term, domain))
        if redirect:
            self._count()
            result, _policy, reason = self.check(redirect)
            return ('permerror' if result == 'none' else result), 'redirect=%s: %s' % (redirect, reason)
        return 'neutral', 'nothing matches in %s' % domain

    def _matches(self, domain, mechanism):
        kind, _sep, argument = mechanism.partition(':')
        kind = kind.lower()
        if '/' in kind:
            kind, _sep, cidr = kind.partition('/')
            argument = argument + '/' + cidr if argument else '/' + cidr
        if kind == 'all':
            return True
        if kind in ('ip4', 'ip6'):
            try:
                return self.ip in ipaddress.ip_network(argument, strict=False)
            except ValueError:
                raise _SpfResult('permerror', 'bad %s' % mechanism)
        if kind == 'include':
            self._count()
            result, _policy, reason = self.check(argument)
            if result in ('temperror', 'unknown'):
                raise _SpfResult(result, 'include:%s: %s' % (argument, reason))
            if result in ('permerror', 'none'):
                raise _SpfResult('permerror', 'include:%s: %s' % (argument, reason))
            return result == 'pass'
        if kind in ('a', 'mx'):
            self._count()
            target, cidr4, cidr6 = _domain_and_cidrs(argument, domain)
            hosts = [target]
            if kind == 'mx':
                hosts = [str(rdata.exchange).rstrip('.') for rdata in self._query(target, 'MX')][:10]
            prefix = cidr4 if self.ip.version == 4 else cidr6
            for host in hosts:
                for rdata in self._query(host, 'A' if self.ip.version == 4 else 'AAAA'):
                    if self.ip in ipaddress.ip_network('%s/%d' % (rdata.address, prefix), strict=False):
                        return True
            return False
        if kind == 'exists':
            self._count()
            return bool(self._query(argument, 'A'))
        if kind == 'ptr':
            self._count()
            return False
        raise _SpfResult('permerror', 'unknown mechanism %s' % mechanism)


class _SpfResult(Exception):
    def __init__(self, result, reason):
        super(_SpfResult, self).__init__(reason)
        self.result = result
        self.reason = reason


def _domain_and_cidrs(argument, default):
    """``domain/cidr4//cidr6`` of an a or mx mechanism."""
    name, _sep, cidrs = argument.partition('/')
    cidr4, _sep, cidr6 = ('/' + cidrs).partition('//')
    return name or default, int(cidr4.strip('/') or 32), int(cidr6 or 128)


def spf_result(lookup, ip, domain):
    """(result, record, why) of the SPF policy of ``domain`` for address ``ip``."""
    return _SpfEvaluation(lookup, ipaddress.ip_address(ip)).check(domain)


def _dkim_tags(text):
    tags = {}
    for part in text.split(';'):
        name, sep, value = part.partition('=')
        if sep:
            tags[name.strip().lower()] = ''.join(value.split())
    return tags


def _short(key):
    return '%s...%s' % (key[:12], key[-12:]) if len(key) > 30 else key


def check_live(records, lookup, hostnames, server_addresses=None, key_paths=None):
    """``(mismatches, addresses)``: one sentence per record DNS does not publish as
    computed, and the server addresses SPF was evaluated for."""
    key_paths = key_paths or {}
    hostname = hostnames[0]
    accepted = set(h.lower().rstrip('.') for h in hostnames)
    mismatches = []
    if server_addresses:
        addresses = [ipaddress.ip_address(a) for a in server_addresses]
    else:
        try:
            addresses = lookup.addresses(hostname)
        except DnsError as exc:
            addresses = []
            mismatches.append('the addresses of %s could not be resolved: %s' % (hostname, exc))
        if not addresses and not mismatches:
            mismatches.append('%s has no A or AAAA record: SPF cannot be checked against the server\'s addresses'
                              % hostname)
    for record in records:
        try:
            if record['type'] == 'MX':
                mismatches += _check_mx(lookup, record, accepted, hostname)
            elif record['type'] == 'TXT' and record['value'].startswith('v=spf1'):
                mismatches += _check_spf(lookup, record, addresses)
            elif record['type'] == 'TXT' and record['value'].startswith('v=DKIM1'):
                mismatches += _check_dkim(lookup, record, key_paths.get(record['domain']))
            elif record['type'] == 'TXT' and record['name'].startswith('_dmarc.'):
                mismatches += _check_dmarc(lookup, record)
        except DnsError as exc:
            mismatches.append('%s: %s could not be checked: %s' % (record['domain'], record['name'], exc))
    return mismatches, [str(a) for a in addresses]


def _check_mx(lookup, record, accepted, hostname):
    domain = record['domain']
    answer = lookup(domain, 'MX') or []
    targets = sorted((rdata.preference, str(rdata.exchange).rstrip('.').lower()) for rdata in answer)
    if not targets:
        return ['%s: no MX record; expected %s' % (domain, record['line'])]
    if not any(target in accepted for _pref, target in targets):
        return ['%s: MX points at %s, not at %s' % (domain, ', '.join('%s (%d)' % (t, p) for p, t in targets), hostname)]
    return []


def _check_spf(lookup, record, addresses):
    domain = record['domain']
    wanted = 'fail' if record['value'] == 'v=spf1 -all' else 'pass'
    problems = []
    for address in addresses:
        result, policy, reason = _SpfEvaluation(lookup, address).check(domain)
        if result == wanted:
            continue
        if policy is None:
            problems.append('%s: no SPF record; expected "%s"' % (domain, record['value']))
            break
        if wanted == 'pass':
            problems.append('%s: SPF "%s" does not allow the server\'s address %s: %s (%s)'
                            % (domain, policy, address, result, reason))
        else:
            problems.append('%s sends no mail, but SPF "%s" gives %s, not fail, for %s (%s)'
                            % (domain, policy, result, address, reason))
    return problems


def _check_dkim(lookup, record, path):
    name = record['name'].rstrip('.')
    wanted = _dkim_tags(record['value'])['p']
    published = [_dkim_tags(txt) for txt in lookup.txt(name)]
    published = [tags for tags in published if 'p' in tags]
    source = path or 'the key file'
    if not published:
        return ['%s: no DKIM record at %s; expected p=%s (%s)' % (record['domain'], name, _short(wanted), source)]
    if len(published) > 1:
        return ['%s: %d DKIM records at %s; publish only the one with p=%s'
                % (record['domain'], len(published), name, _short(wanted))]
    if published[0]['p'] != wanted:
        return ['%s: the DKIM record at %s publishes p=%s, not the key of %s (p=%s)'
                % (record['domain'], name, _short(published[0]['p']) or '(empty: revoked)', source, _short(wanted))]
    return []


def _check_dmarc(lookup, record):
    name = record['name'].rstrip('.')
    published = [txt for txt in lookup.txt(name) if txt.replace(' ', '').lower().startswith('v=dmarc1')]
    if not published:
        return ['%s: no DMARC record at %s; expected "%s"' % (record['domain'], name, record['value'])]
    if len(published) > 1:
        return ['%s: %d DMARC records at %s (receivers then ignore DMARC)' % (record['domain'], len(published), name)]
    return []


def live_lookup(resolver):
    return _Lookup(resolver)


# --- The module's work -------------------------------------------------------------------------

def report(params):
    """What M(nantral.mailu.mailu_dns_records) returns, from its parameters."""
    hostnames = [_ascii(name, 'hostnames') for name in params['hostnames']]
    config = dict(
        release=params['release'],
        domain=_ascii(params['domain'], 'domain'),
        hostname=hostnames[0],
        selector=params['dkim_selector'],
        dmarc_rua=params.get('dmarc_rua') or '',
        dmarc_ruf=params.get('dmarc_ruf') or '',
        tls_flavor=params['tls_flavor'],
        ports=params['ports'],
        tlsrpt_address=params.get('tlsrpt_address') or '',
        mta_sts_mode=params['mta_sts_mode'],
        mta_sts_max_age=params['mta_sts_max_age'],
    )
    domains = normalize_domains(params['domains'], params['non_sending'], params['alternatives_send_mail'])
    keys = read_public_keys(params['dkim_dir'], domains, config['selector'])
    records = compute(config, domains, dict((name, key) for name, (_path, key) in keys.items()))
    key_paths = dict((name, path) for name, (path, _key) in keys.items())
    mismatches, addresses = [], []
    if params['check_live']:
        try:
            server_addresses = [str(ipaddress.ip_address(a)) for a in params['server_addresses']]
        except ValueError as exc:
            raise DnsError('server_addresses: %s' % exc)
        resolver = make_resolver(params['nameservers'], params['nameserver_port'], params['timeout'])
        mismatches, addresses = check_live(records, live_lookup(resolver), hostnames, server_addresses, key_paths)
    return dict(
        records=records,
        zones=zone_fragments(records, config['release']),
        summary=summary(records),
        dkim_keys=key_paths,
        mta_sts_policy=mta_sts_policy(config) if config['mta_sts_mode'] != 'none' else '',
        mismatches=mismatches,
        server_addresses=addresses,
    )
