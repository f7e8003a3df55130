#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, Nantral Platform sysadmin team
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: mailu_info
short_description: Read Mailu's schema version, domains, users and aliases
version_added: 0.1.0
description:
  - Reads Mailu's PostgreSQL database without changing it.
  - The lists use the option names of M(nantral.mailu.mailu_accounts), so they can be fed back to
    it, for instance to rebuild a server (with O(password_hashes=true)).
author:
  - Nantral Platform sysadmin team (@nantral-platform)
extends_documentation_fragment:
  - nantral.mailu.connection
  - nantral.mailu.attributes.info_module
options:
  domains:
    description: Only these domains and their users and aliases. Empty for all of them.
    type: list
    elements: str
    default: []
  password_hashes:
    description: Whether users come with their stored hash, as C(password_hash).
    type: bool
    default: false
requirements:
  - idna (Debian's C(python3-idna)), on the host that runs the module.
seealso:
  - module: nantral.mailu.mailu_accounts
'''

EXAMPLES = r'''
- name: Read the accounts, with hashes, for a backup of the inventory
  nantral.mailu.mailu_info:
    login_host: 127.0.0.1
    login_password: "{{ mailu_db_password }}"
    password_hashes: true
  register: mailu
  no_log: true

- name: Check the schema Mailu's admin created
  nantral.mailu.mailu_info:
    login_password: "{{ mailu_db_password }}"
    wait_for_schema: 120
  register: mailu_schema
  failed_when: mailu_schema.schema.release != "2024.06"
'''

RETURN = r'''
schema:
  description: Mailu's schema found in the database.
  returned: always
  type: dict
  contains:
    release:
      description: Mailu release line, V(1.9), V(2.0) or V(2024.06).
      type: str
      returned: always
    revision:
      description: Alembic head revision.
      type: str
      returned: always
  sample: {release: "2024.06", revision: 0ba45693748d}
domains:
  description: The domains, sorted by name, with the options of M(nantral.mailu.mailu_domain).
  returned: always
  type: list
  elements: dict
  sample:
    - name: example.org
      max_users: -1
      max_aliases: -1
      max_quota: 0
      signup_enabled: false
      comment: ""
      alternatives: [example.net]
      managers: [group-manager@example.org]
users:
  description:
    - The users, sorted by address, with the options of M(nantral.mailu.mailu_user); C(quota) in bytes.
    - C(password_hash) only with O(password_hashes=true).
  returned: always
  type: list
  elements: dict
  sample:
    - email: admin@example.org
      quota: 1000000000
      global_admin: true
      enabled: true
      forward_destination: []
      reply_startdate: "1900-01-01"
aliases:
  description: The aliases, sorted by address, with the options of M(nantral.mailu.mailu_alias).
  returned: always
  type: list
  elements: dict
  sample:
    - email: contact@example.org
      destination: [admin@example.org]
      wildcard: false
      comment: ""
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nantral.mailu.plugins.module_utils import mailu_input
from ansible_collections.nantral.mailu.plugins.module_utils.mailu_accounts import State
from ansible_collections.nantral.mailu.plugins.module_utils import mailu_db
from ansible_collections.nantral.mailu.plugins.module_utils.mailu_db import connection_argument_spec
from ansible_collections.nantral.mailu.plugins.module_utils.mailu_input import MailuError
from ansible_collections.nantral.mailu.plugins.module_utils.mailu_module import check_requirements, connect, schema_info


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(
        domains=dict(type='list', elements='str', default=[]),
        password_hashes=dict(type='bool', default=False, no_log=False),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    check_requirements(module, passwords=False)
    try:
        wanted = set(mailu_input.domain_name(d, 'option', 'domains', 'item') for d in module.params['domains'])
    except MailuError as exc:
        module.fail_json(msg=str(exc))
    conn, release = connect(module, 'mailu_info')
    try:
        with conn.cursor() as cur:
            state = State(cur, release, wanted or None)
        conn.rollback()
    except mailu_db.psycopg.Error as exc:
        module.fail_json(msg='Mailu database error: %s' % str(exc).strip())
    finally:
        conn.close()

    domains = [dict(name=name, **state.view('domains', name)) for name in sorted(state.domains)]
    users = []
    for email in sorted(state.users):
        item = state.view('users', email)
        if module.params['password_hashes']:
            item['password_hash'] = state.users[email]['password']
        users.append(item)
    aliases = [state.view('aliases', email) for email in sorted(state.aliases)]
    module.exit_json(changed=False, schema=schema_info(release), domains=domains, users=users, aliases=aliases)


if __name__ == '__main__':
    main()
