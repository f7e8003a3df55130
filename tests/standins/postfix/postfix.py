"""Stand-in for Mailu's smtp (Postfix) container, for tests without a container registry.

A TEST STAND-IN (tests/standins/README.md), not Mailu. It runs Debian's real
Postfix with the part of Mailu's configuration that decides who may relay
(core/postfix/conf/main.cf and master.cf at the release's tag), and applies
/overrides the way Mailu's core/postfix/start.py does:

- mynetworks: 127.0.0.1/32, [::1]/128, SUBNET (2.x: [::1]/128 and SUBNET6 only
  when SUBNET6 is set) and RELAYNETS split on commas (IPv6 CIDRs of RELAYNETS
  put in brackets first, as start.py does);
- smtpd_authorized_xclient_hosts: 1.9 POD_ADDRESS_RANGE or SUBNET; 2.x SUBNET
  (and SUBNET6);
- smtpd_client_restrictions and smtpd_relay_restrictions in Mailu's order,
  permit_mynetworks first, reject_unauth_destination last;
- the only domain it is final destination for is DOMAIN (mail to it is accepted
  and discarded: there is no Dovecot behind this Postfix); it relays nothing else;
- logs to /dev/stdout (maillog_file, as 2.x main.cf does; 1.9 got there
  through rsyslog);
- /overrides/postfix.cf: each line that is not empty and does not start with
  "#" becomes `postconf -e "<line>"` run by a shell; /overrides/postfix.master:
  `postconf -Me "<line>"`; /overrides/*.map: copied to /etc/postfix, compiled
  with postmap (default_database_type lmdb, as in Mailu's Alpine images), then
  the copy is removed.

Port 25 is Mailu's "smtp inet" service. Port 10025 (authenticated submission
from front in Mailu) has no SASL here, so it relays nothing: only DOMAIN is
accepted there.
"""

import glob
import ipaddress
import os
import re
import shutil
import subprocess
import sys

FAMILY = os.environ.get('MAILU_STANDIN_FAMILY', '2024.06')
ETC = '/etc/postfix'


def env(key, default=''):
    return os.environ.get(key, default)


def log(message):
    sys.stdout.write('smtp[stand-in %s]: %s\n' % (FAMILY, message))
    sys.stdout.flush()


def bracket_v6(cidr):
    """SUBNET6 as 2.x main.cf writes it: [address]/length (brackets stripped first)."""
    address, _slash, length = cidr.replace('[', '').replace(']', '').partition('/')
    return '[%s]/%s' % (address, length)


def relaynets():
    """RELAYNETS after start.py's rewrite: an IPv6 address before "/" is put in brackets."""
    value = env('RELAYNETS')
    value = re.sub(r'([0-9a-fA-F]+:[0-9a-fA-F:]+)/', r'[\1]/', value)
    return ' '.join(value.split(',')) if value else ''


def mynetworks():
    subnet = env('SUBNET')
    if FAMILY == '1.9':
        words = ['127.0.0.1/32', '[::1]/128', subnet]
    else:
        words = ['127.0.0.1/32', subnet]
        if env('SUBNET6'):
            words += ['[::1]/128', bracket_v6(env('SUBNET6'))]
    return ' '.join(w for w in words + [relaynets()] if w)


def xclient_hosts():
    if FAMILY == '1.9':
        return env('POD_ADDRESS_RANGE') or env('SUBNET')
    hosts = env('SUBNET')
    if env('SUBNET6'):
        hosts += ',' + bracket_v6(env('SUBNET6'))
    return hosts


def main_cf():
    hostname = env('HOSTNAMES', 'mail.example.test').split(',')[0]
    lines = [
        '# Written by the Mailu smtp TEST STAND-IN (not Mailu): the relay-relevant',
        '# settings of Mailu %s core/postfix/conf/main.cf, on Debian Postfix.' % FAMILY,
        'compatibility_level = 3.6',
        # 2.x main.cf sets these two; 1.9's Postfix 3.6 behaved like "no" for both
        # (neither existed yet). Pipelining before the greeting is then allowed,
        # which 1.9's healthcheck (echo QUIT | nc) relies on.
        'smtpd_forbid_unauth_pipelining = no',
        'smtpd_forbid_bare_newline = %s' % ('no' if FAMILY == '1.9' else 'yes'),
        'mydomain = %s' % env('DOMAIN', 'example.test'),
        'myhostname = %s' % hostname,
        'myorigin = $mydomain',
        'maillog_file = /dev/stdout',
        'queue_directory = /queue',
        'message_size_limit = %s' % env('MESSAGE_SIZE_LIMIT', '50000000'),
        'mynetworks = %s' % mynetworks(),
        'alias_maps =',
        'alias_database =',
        'mydestination =',
        'relayhost =',
        'recipient_delimiter = %s' % env('RECIPIENT_DELIMITER', '+'),
        # Alpine's Postfix (Mailu's base) is built with lmdb as its default map type.
        'default_database_type = lmdb',
        'smtpd_banner = $myhostname ESMTP $mail_name',
        'biff = no',
        'smtpd_authorized_xclient_hosts = %s' % xclient_hosts(),
        # Mailu: podop answers which domains and mailboxes exist; here DOMAIN only,
        # every local part accepted, delivered to the discard transport.
        'virtual_alias_domains =',
        'virtual_mailbox_domains = %s' % env('DOMAIN', 'example.test'),
        'virtual_mailbox_maps =',
        'smtpd_reject_unlisted_recipient = no',
        'virtual_transport = discard:stand-in',
        'relay_domains =',
        # Mailu's maps that /overrides/*.map can fill (podop's part left out).
        'smtp_tls_policy_maps = lmdb:/etc/postfix/tls_policy.map',
    ]
    if FAMILY != '1.9':
        lines.append('transport_maps = lmdb:/etc/postfix/transport.map')
    lines += [
        'smtpd_delay_reject = yes',
        'smtpd_helo_required = yes',
        'smtpd_client_restrictions =',
        '  permit_mynetworks,',
    ]
    if FAMILY == '1.9':
        lines.append('  check_sender_access lmdb:/etc/postfix/standin-senderaccess,')
    lines += [
        '  reject_non_fqdn_sender,',
        '  reject_unknown_sender_domain,',
        '  reject_unknown_recipient_domain,',
        '  permit',
        'smtpd_relay_restrictions =',
        '  permit_mynetworks,',
        '  permit_sasl_authenticated,',
        '  reject_unauth_destination',
        'unverified_recipient_reject_reason = Address lookup failure',
        # Debian's chroot and TLS defaults are not Mailu's.
        'smtpd_tls_security_level =',
        'smtp_tls_security_level =',
        'inet_protocols = all',
    ]
    return '\n'.join(lines) + '\n'


def master_cf():
    return '\n'.join([
        '# Written by the Mailu smtp TEST STAND-IN (not Mailu), after Mailu\'s master.cf.',
        'smtp      inet  n       -       n       -       -       smtpd',
        # Mailu: SASL via front (XCLIENT LOGIN) and permit_sasl_authenticated. Here:
        # no SASL and no permit_mynetworks, so nothing relays through 10025.
        '10025     inet  n       -       n       -       -       smtpd',
        '  -o smtpd_client_restrictions=permit',
        '  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject_unauth_destination',
        'pickup    unix  n       -       n       60      1       pickup',
        'cleanup   unix  n       -       n       -       0       cleanup',
        'qmgr      unix  n       -       n       300     1       qmgr',
        'tlsmgr    unix  -       -       n       1000?   1       tlsmgr',
        'rewrite   unix  -       -       n       -       -       trivial-rewrite',
        'bounce    unix  -       -       n       -       0       bounce',
        'defer     unix  -       -       n       -       0       bounce',
        'trace     unix  -       -       n       -       0       bounce',
        'verify    unix  -       -       n       -       1       verify',
        'flush     unix  n       -       n       1000?   0       flush',
        'proxymap  unix  -       -       n       -       -       proxymap',
        'smtp      unix  -       -       n       -       -       smtp',
        'relay     unix  -       -       n       -       -       smtp',
        'error     unix  -       -       n       -       -       error',
        'retry     unix  -       -       n       -       -       error',
        'discard   unix  -       -       n       -       -       discard',
        'lmtp      unix  -       -       n       -       -       lmtp',
        'anvil     unix  -       -       n       -       1       anvil',
        'scache    unix  -       -       n       -       1       scache',
        'postlog   unix-dgram n  -       n       -       1       postlogd',
    ]) + '\n'


def valid_line(line):
    # start.py's test: not a comment at column 0, not empty (nothing is stripped).
    return not line.startswith('#') and line != ''


def sh(command):
    """Like os.system: the line goes through a shell, its failure is ignored."""
    return subprocess.call(command, shell=True)


def apply_overrides():
    if os.path.exists('/overrides/postfix.cf'):
        with open('/overrides/postfix.cf', encoding='utf-8') as handle:
            for line in handle.read().strip().split('\n'):
                if valid_line(line):
                    sh('postconf -e "%s"' % line)
    if os.path.exists('/overrides/postfix.master'):
        with open('/overrides/postfix.master', encoding='utf-8') as handle:
            for line in handle.read().strip().split('\n'):
                if valid_line(line):
                    sh('postconf -Me "%s"' % line)
    for source in glob.glob('/overrides/*.map'):
        target = os.path.join(ETC, os.path.basename(source))
        shutil.copyfile(source, target)
        sh('postmap %s' % target)
        os.remove(target)
    policies = ['tls_policy'] if FAMILY == '1.9' else ['tls_policy', 'transport']
    for policy in policies:
        if not os.path.exists('%s/%s.map.lmdb' % (ETC, policy)):
            open('%s/%s.map' % (ETC, policy), 'a').close()
            sh('postmap %s/%s.map' % (ETC, policy))


def main():
    if not env('SUBNET'):
        log('SUBNET is not set: mynetworks holds only localhost')
    else:
        ipaddress.ip_network(env('SUBNET'), strict=False)
    with open(os.path.join(ETC, 'main.cf'), 'w', encoding='utf-8') as handle:
        handle.write(main_cf())
    with open(os.path.join(ETC, 'master.cf'), 'w', encoding='utf-8') as handle:
        handle.write(master_cf())
    if FAMILY == '1.9':
        # 1.9 main.cf checks ${podop}senderaccess here; an empty map stands in for it.
        open(os.path.join(ETC, 'standin-senderaccess'), 'a').close()
        sh('postmap lmdb:%s/standin-senderaccess' % ETC)
    apply_overrides()
    os.makedirs('/queue/pid', exist_ok=True)
    if FAMILY != '1.9':
        sh('flock -n /queue/pid/master.pid rm /queue/pid/master.pid')
    sh('postfix set-permissions >/dev/null 2>&1; postfix check')
    log('mynetworks = %s' % subprocess.run(['postconf', '-h', 'mynetworks'], capture_output=True,
                                           text=True, check=False).stdout.strip())
    sys.stdout.flush()
    os.execvp('postfix', ['postfix', 'start-fg'])


if __name__ == '__main__':
    main()
