#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, Nantral Platform sysadmin team
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: mailu_dns_records
short_description: The DNS records of Mailu's domains, as Mailu shows them and as careful mail servers complete them
version_added: 0.2.0
description:
  - Computes, for each domain, the records Mailu's admin shows on the domain's page for the release (MX, SPF, DKIM when
    the domain has a key, DMARC and the DMARC report authorisation, the client auto-configuration SRV records, 2024.06's
    C(autoconfig)/C(autodiscover) CNAMEs and extra SRV records, and TLSA for the letsencrypt flavours), each labelled
    V(required), V(recommended) or V(optional).
  - Adds what Mailu does not show, labelled as such (RV(records[].source=extra)) - an MX for each alternative domain;
    C(v=spf1 -all) and DMARC C(p=reject) for the domains in O(non_sending) and, unless O(alternatives_send_mail), for
    alternative domains; TLS-RPT when O(tlsrpt_address) is set; MTA-STS when O(mta_sts_mode) is not V(none).
  - Reads each domain's DKIM key from O(dkim_dir) where Mailu keeps it (C({domain}.{selector}.key)); only the public
    key leaves the host.
  - Returns the records as data and as zone-file fragments, one per zone, with absolute names and TXT values cut into
    quoted strings of at most 250 bytes (as Mailu cuts them; DNS allows 255).
  - With O(check_live=true), compares the records with what DNS publishes and names each mismatch - an MX that does not
    point at the server, a DKIM record whose C(p=) is not the key's, an SPF policy that does not give C(pass) for the
    server's addresses (C(fail) for domains that send no mail), a missing DMARC record.
author:
  - Nantral Platform sysadmin team (@nantral-platform)
extends_documentation_fragment:
  - nantral.mailu.attributes.INFO_MODULE
options:
  release:
    description: Mailu's release line; the records differ between them.
    type: str
    choices: ['1.9', '2024.06']
    required: true
  domain:
    description: Mailu's main domain (C(DOMAIN)); DMARC reports go there.
    type: str
    required: true
  hostnames:
    description: Mailu's C(HOSTNAMES); the first is the server's name, the one MX records point at.
    type: list
    elements: str
    required: true
  domains:
    description:
      - Mailu's domains, as names or as dicts with C(name) and C(alternatives) (the accounts role's
        C(mailu_accounts_domains) as it is; other keys are ignored).
    type: list
    elements: raw
    default: []
  non_sending:
    description: Domains and alternatives that send no mail; they get C(v=spf1 -all) and DMARC C(p=reject), and no DKIM record.
    type: list
    elements: str
    default: []
  alternatives_send_mail:
    description:
      - Whether mail is sent from alternative domains' addresses. If not, alternatives get C(v=spf1 -all) and DMARC
        C(p=reject). If so, they get SPF, DMARC and, on 2024.06 (which signs their mail with their domain's key), DKIM.
    type: bool
    default: false
  dkim_dir:
    description: Mailu's DKIM directory on the host (mounted as C(/dkim) in the admin container).
    type: path
    default: /mailu/dkim
  dkim_selector:
    description: Mailu's C(DKIM_SELECTOR).
    type: str
    default: dkim
  dmarc_rua:
    description: Mailu's C(DMARC_RUA), a local part at O(domain); empty for none.
    type: str
  dmarc_ruf:
    description: Mailu's C(DMARC_RUF), a local part at O(domain); empty for none.
    type: str
  tls_flavor:
    description: Mailu's C(TLS_FLAVOR).
    type: str
    choices: [cert, mail, letsencrypt, mail-letsencrypt, notls]
    default: cert
  ports:
    description: Mailu 2024.06's C(PORTS), the ports front publishes; closed ones get an C(SRV 0 0 0 .) record.
    type: list
    elements: int
    default: [25, 80, 443, 465, 993, 995, 4190]
  tlsrpt_address:
    description: Address that receives TLS-RPT reports (RFC 8460); empty for no TLS-RPT record.
    type: str
  mta_sts_mode:
    description:
      - MTA-STS policy mode (RFC 8461); V(none) publishes no MTA-STS record.
      - Set it only when the policy of RV(mta_sts_policy) is served at C(https://mta-sts.<domain>/.well-known/mta-sts.txt)
        with a certificate valid for that name; Mailu's front does not serve it.
    type: str
    choices: [none, testing, enforce]
    default: none
  mta_sts_max_age:
    description: C(max_age) of the MTA-STS policy, in seconds.
    type: int
    default: 604800
  check_live:
    description: Compare the records with what DNS publishes.
    type: bool
    default: false
  nameservers:
    description: Addresses of the DNS servers to ask with O(check_live); empty for the host's resolvers.
    type: list
    elements: str
    default: []
  nameserver_port:
    description: Port of O(nameservers).
    type: int
    default: 53
  server_addresses:
    description:
      - The addresses the server sends mail from, which SPF must allow; empty for the addresses of the first of
        O(hostnames) in DNS.
    type: list
    elements: str
    default: []
  timeout:
    description: Seconds to wait for each DNS answer.
    type: float
    default: 5
requirements:
  - cryptography (Debian's C(python3-cryptography)) and idna (C(python3-idna)) on the host.
  - dnspython (C(python3-dnspython)) on the host, with O(check_live=true).
notes:
  - The module changes nothing; write RV(zones) to files with M(ansible.builtin.copy), as the role
    M(nantral.mailu.mailu_dns) does.
  - SPF is evaluated as RFC 7208 says, at most 10 DNS-querying terms and 2 void lookups, except for macros (reported
    as not evaluated) and C(ptr) (never matches).
seealso:
  - module: nantral.mailu.mailu_domain
'''

EXAMPLES = r'''
- name: Compute the records of the inventory's domains
  nantral.mailu.mailu_dns_records:
    release: "2024.06"
    domain: example.org
    hostnames: [mail.example.org]
    domains:
      - name: example.org
        alternatives: [example.net]
      - lists.example.org
    non_sending: [lists.example.org]
    dmarc_rua: admin
    dmarc_ruf: admin
    tlsrpt_address: admin@example.org
  register: dns

- name: Check them against public DNS
  nantral.mailu.mailu_dns_records:
    release: "2024.06"
    domain: example.org
    hostnames: [mail.example.org]
    domains: [example.org]
    check_live: true
    server_addresses: [203.0.113.10]
  register: live
  failed_when: live.mismatches | length > 0
'''

RETURN = r'''
records:
  description: Every record, in the order of Mailu's zone file, then the extras.
  returned: always
  type: list
  elements: dict
  contains:
    domain:
      description: The domain or alternative the record is for; null for the server's own TLSA records.
      type: str
    zone:
      description: The zone the record belongs in (the DMARC report authorisation belongs in O(domain)'s).
      type: str
    name:
      description: Absolute owner name.
      type: str
    ttl:
      description: TTL, as Mailu gives it.
      type: int
    type:
      description: Record type.
      type: str
    value:
      description: The record's data; for TXT, the text itself, not cut into strings.
      type: str
    label:
      description: V(required), V(recommended) or V(optional).
      type: str
    source:
      description: V(mailu) for a record Mailu's admin shows, V(extra) for one it does not.
      type: str
    purpose:
      description: What the record does.
      type: str
    line:
      description: The record as a zone-file line.
      type: str
  sample:
    - domain: example.org
      zone: example.org
      name: example.org.
      ttl: 600
      type: MX
      value: 10 mail.example.org.
      label: required
      source: mailu
      purpose: mail for example.org is delivered to mail.example.org
      line: example.org. 600 IN MX 10 mail.example.org.
zones:
  description: Zone-file fragments, by zone.
  returned: always
  type: dict
  sample: {example.org: "; DNS records of example.org ...\nexample.org. 600 IN MX 10 mail.example.org.\n"}
summary:
  description: One line per record, label first.
  returned: always
  type: list
  elements: str
dkim_keys:
  description: The key file read for each domain that has one.
  returned: always
  type: dict
  sample: {example.org: /mailu/dkim/example.org.dkim.key}
mta_sts_policy:
  description: The MTA-STS policy file to serve, with O(mta_sts_mode) not V(none); empty otherwise.
  returned: always
  type: str
mismatches:
  description: With O(check_live), one sentence per record that DNS does not publish as computed.
  returned: always
  type: list
  elements: str
  sample: ["example.org: MX points at mx.example.net (10), not at mail.example.org"]
server_addresses:
  description: With O(check_live), the addresses SPF was evaluated for.
  returned: always
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.nantral.mailu.plugins.module_utils import mailu_dns as engine


def main():
    module = AnsibleModule(
        argument_spec=dict(
            release=dict(type='str', required=True, choices=list(engine.RELEASES)),
            domain=dict(type='str', required=True),
            hostnames=dict(type='list', elements='str', required=True),
            domains=dict(type='list', elements='raw', default=[]),
            non_sending=dict(type='list', elements='str', default=[]),
            alternatives_send_mail=dict(type='bool', default=False),
            dkim_dir=dict(type='path', default=engine.DEFAULT_DKIM_DIR),
            dkim_selector=dict(type='str', default=engine.DEFAULT_SELECTOR),
            dmarc_rua=dict(type='str'),
            dmarc_ruf=dict(type='str'),
            tls_flavor=dict(type='str', default=engine.DEFAULT_TLS_FLAVOR,
                            choices=['cert', 'mail', 'letsencrypt', 'mail-letsencrypt', 'notls']),
            ports=dict(type='list', elements='int', default=list(engine.DEFAULT_PORTS)),
            tlsrpt_address=dict(type='str'),
            mta_sts_mode=dict(type='str', default='none', choices=list(engine.MTA_STS_MODES)),
            mta_sts_max_age=dict(type='int', default=engine.DEFAULT_MTA_STS_MAX_AGE),
            check_live=dict(type='bool', default=False),
            nameservers=dict(type='list', elements='str', default=[]),
            nameserver_port=dict(type='int', default=53),
            server_addresses=dict(type='list', elements='str', default=[]),
            timeout=dict(type='float', default=5.0),
        ),
        supports_check_mode=True,
    )
    params = module.params
    for name, error in (('idna', engine.IDNA_IMPORT_ERROR), ('cryptography', engine.CRYPTOGRAPHY_IMPORT_ERROR)):
        if error:
            module.fail_json(msg=missing_required_lib(name), exception=error)
    if params['check_live'] and engine.DNSPYTHON_IMPORT_ERROR:
        module.fail_json(msg=missing_required_lib('dnspython'), exception=engine.DNSPYTHON_IMPORT_ERROR)
    if not params['hostnames']:
        module.fail_json(msg='hostnames is empty: give Mailu\'s HOSTNAMES')
    try:
        result = engine.report(params)
    except engine.DnsError as exc:
        module.fail_json(msg=str(exc))
    for mismatch in result['mismatches']:
        module.warn(mismatch)
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
