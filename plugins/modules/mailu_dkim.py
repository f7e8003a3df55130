#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, Nantral Platform sysadmin team
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: mailu_dkim
short_description: Give every Mailu domain its DKIM key, generated once or from the inventory
version_added: 0.1.0
description:
  - Makes every domain have the DKIM key Mailu's admin reads, and rspamd signs with, the file
    C(<dkim_dir>/<domain>.<selector>.key), the domain in lower case and Unicode, as Mailu names it.
  - A domain without a key file gets the key given in O(keys), or a new RSA 2048 key (public exponent 65537),
    written as Mailu writes its keys (unencrypted PKCS#8 PEM, in 1.9 as in 2024.06).
  - An installed key is kept, whatever its PEM form, and never regenerated. A key given in O(keys) whose public
    key differs from the installed one replaces it only with O(keys[].replace=true); otherwise the module fails,
    naming the domain and both keys' fingerprints, so that a moved server keeps the key its DNS publishes.
  - Every key file ends owned by the user the release's admin runs as (root in 1.9; uid and gid 1000 in 2024.06,
    whose admin changes the directory to that owner only when it starts) and in mode V(0600).
  - Each key is written to a new temporary file (O_EXCL, O_NOFOLLOW, mode V(0600) from the start) in the same
    directory, flushed to disk, then renamed over the old one. A key file that is a symlink or not a regular file is
    refused, never followed.
  - Every domain is checked before the first write; a refusal names every domain at fault and writes nothing.
  - Alternative domains need no key of their own, and get none, the domain's key signs for them (2024.06; 1.9 signs
    no alternative). A domain's key file stays when the domain is removed, as with Mailu's own removal.
author:
  - Nantral Platform sysadmin team (@nantral-platform)
extends_documentation_fragment:
  - nantral.mailu.attributes
attributes:
  check_mode:
    details:
      - The key files are read and compared; nothing is written, and no key is generated (its public key shows as
        V((generated when applied))).
  diff_mode:
    details:
      - Before and after of each changed key file, public key (base64, as the DKIM record publishes it), fingerprint,
        size, owner and mode, never private material.
options:
  domains:
    description:
      - The domains that must have a key. Each is a domain name, or a dict in the form of M(nantral.mailu.mailu_accounts)'
        O(nantral.mailu.mailu_accounts#module:domains) (its C(name) and C(state) are read, other keys are ignored),
        so that the accounts' list can be passed as it is.
      - Domains with C(state=absent) are skipped; their key file, if any, stays.
    type: list
    elements: raw
    default: []
  keys:
    description:
      - Keys given by the inventory (from a vault), for a server moved from elsewhere that must keep the key its DNS
        publishes. Their domains must have a key too, whether or not O(domains) lists them.
    type: list
    elements: dict
    default: []
    suboptions:
      domain:
        description: The domain's name.
        type: str
        required: true
      private_key:
        description:
          - The key, an unencrypted RSA private key of 1024 to 4096 bits in PEM form, PKCS#8 (C(BEGIN PRIVATE KEY)) or
            traditional (C(BEGIN RSA PRIVATE KEY)), as Mailu's C(config-export --secrets) shows it. It is written in
            PKCS#8 form. A key under 2048 bits draws a warning.
        type: str
        required: true
      replace:
        description:
          - Whether this key replaces an installed key with another public key, or an installed file that is no key.
          - Replacing a key breaks the signatures checked against the published record until the new one is
            published.
        type: bool
        default: false
  selector:
    description:
      - Mailu's C(DKIM_SELECTOR); part of the file name and of the record C(<selector>._domainkey.<domain>).
    type: str
    default: dkim
  dkim_dir:
    description:
      - The host directory mounted as C(/dkim) in Mailu's admin container. It must exist.
    type: path
    default: /mailu/dkim
  mailu_version:
    description:
      - Mailu's release line, which decides who must own the keys (see O(owner)).
    type: str
    choices: ['1.9', '2024.06']
    required: true
  owner:
    description:
      - The uid the key files belong to; by default the one the release's admin runs as (V(0) for 1.9,
        V(1000) for 2024.06).
    type: int
  group:
    description:
      - The gid the key files belong to; by default the admin's (V(0) for 1.9, V(1000) for 2024.06).
    type: int
requirements:
  - cryptography and idna (Debian's C(python3-cryptography) and C(python3-idna)) on the host that runs the module.
notes:
  - While it works, the module holds an exclusive lock (C(flock)) on O(dkim_dir), so that two runs never interleave.
  - Private keys never appear in the result, the diff or the module's logged arguments (O(keys[].private_key) is
    C(no_log)).
  - Mailu's admin reads a key file at each signing request; no restart is needed.
  - This module takes no database connection; it does not belong to the C(nantral.mailu.mailu) action group.
seealso:
  - module: nantral.mailu.mailu_accounts
'''

EXAMPLES = r'''
- name: Every domain of the accounts gets its DKIM key (generated once)
  nantral.mailu.mailu_dkim:
    domains: "{{ mailu_accounts_domains }}"
    mailu_version: "2024.06"

- name: Keep the key this domain's DNS already publishes (server moved from elsewhere)
  nantral.mailu.mailu_dkim:
    domains: [example.org]
    keys:
      - domain: example.org
        private_key: "{{ vault_dkim_example_org }}"
    mailu_version: "1.9"
  register: dkim

- name: Show the DKIM record's value
  ansible.builtin.debug:
    msg: "dkim._domainkey.example.org TXT v=DKIM1; k=rsa; p={{ dkim.domains['example.org'].public_key }}"
'''

RETURN = r'''
domains:
  description:
    - Every domain's key after the run (in check mode, as it would be), by domain name (lower case, punycode).
  returned: always
  type: dict
  contains:
    path:
      description: The key file on the host.
      type: str
      returned: always
    selector:
      description: The selector.
      type: str
      returned: always
    public_key:
      description:
        - The base64 DER SubjectPublicKeyInfo, the C(p=) of the DKIM record.
        - V((generated when applied)) in check mode for a key not generated yet.
      type: str
      returned: always
    fingerprint:
      description: C(SHA256:) and the hex SHA-256 of the DER public key.
      type: str
      returned: always
    bits:
      description: The RSA key's size.
      type: int
      returned: always
    owner:
      description: The file's uid.
      type: int
      returned: always
    group:
      description: The file's gid.
      type: int
      returned: always
    mode:
      description: The file's mode, in octal.
      type: str
      returned: always
    action:
      description:
        - V(kept), V(generated) (a new key), V(created) (the given key, where none was), V(replaced) (the given key
          over another), or V(repaired) (owner or mode set).
      type: str
      returned: always
  sample:
    example.org:
      path: /mailu/dkim/example.org.dkim.key
      selector: dkim
      public_key: MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA...
      fingerprint: "SHA256:4f0c..."
      bits: 2048
      owner: 1000
      group: 1000
      mode: "0600"
      action: generated
changes:
  description: One line per domain whose key file was (or, in check mode, would be) written or repaired.
  returned: always
  type: list
  elements: str
  sample: ["example.org: a new RSA 2048 key written to /mailu/dkim/example.org.dkim.key"]
'''

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.nantral.mailu.plugins.module_utils import mailu_dkim as engine


def main():
    module = AnsibleModule(
        argument_spec=dict(
            domains=dict(type='list', elements='raw', default=[]),
            keys=dict(type='list', elements='dict', default=[], no_log=False, options=dict(
                domain=dict(type='str', required=True),
                private_key=dict(type='str', required=True, no_log=True),
                replace=dict(type='bool', default=False),
            )),
            selector=dict(type='str', default=engine.DEFAULT_SELECTOR),
            dkim_dir=dict(type='path', default=engine.DEFAULT_DKIM_DIR),
            mailu_version=dict(type='str', required=True, choices=sorted(engine.RELEASE_OWNERS)),
            owner=dict(type='int'),
            group=dict(type='int'),
        ),
        supports_check_mode=True,
    )
    params = module.params
    for error, library in ((engine.CRYPTOGRAPHY_IMPORT_ERROR, 'cryptography'), (engine.IDNA_IMPORT_ERROR, 'idna')):
        if error:
            module.fail_json(msg=missing_required_lib(library), exception=error)
    owner, group = engine.RELEASE_OWNERS[params['mailu_version']]
    try:
        result = engine.ensure_keys(
            dkim_dir=params['dkim_dir'],
            domains=params['domains'],
            keys=params['keys'],
            selector=params['selector'],
            owner=owner if params['owner'] is None else params['owner'],
            group=group if params['group'] is None else params['group'],
            check_mode=module.check_mode)
    except engine.DkimError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg='writing the DKIM keys in %s failed: %s' % (params['dkim_dir'], exc))
    for warning in result.pop('warnings'):
        module.warn(warning)
    diff = result.pop('diff')
    if module._diff:
        result['diff'] = diff
    module.exit_json(**result)


if __name__ == '__main__':
    main()
