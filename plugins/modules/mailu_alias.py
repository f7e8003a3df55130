#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, Nantral Platform sysadmin team
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: mailu_alias
short_description: Manage one Mailu alias in Mailu's PostgreSQL database
version_added: 0.1.0
description:
  - Creates, updates or removes one Mailu alias by writing Mailu's own C(alias) table, the way
    Mailu's admin would.
  - Options left out are not managed on an existing alias.
author:
  - Nantral Platform sysadmin team (@nantral-platform)
extends_documentation_fragment:
  - nantral.mailu.connection
  - nantral.mailu.attributes
options:
  email:
    description:
      - The alias address, C(localpart@domain). The domain must exist, and no user may have the same address.
      - With O(wildcard=true) the local part is an SQL C(LIKE) pattern (C(%) and C(_)).
      - Stored lower-cased, local part included, as Mailu's C(config-import) stores it. A stored local part
        with upper case is lower-cased once, reported as a change, when the alias is declared present.
      - Spaces and line breaks around the address are ignored; a space or control character (such as a
        newline) inside it is refused.
    type: str
    required: true
  state:
    description: Whether the alias exists.
    type: str
    default: present
    choices: [present, absent]
  destination:
    description:
      - Addresses the alias delivers to; required to create an alias. Stored sorted and without
        duplicates, as Mailu does.
      - Spaces around an address are ignored; a space or control character inside one is refused.
    type: list
    elements: str
  wildcard:
    description: Whether the local part is a pattern. New aliases get V(false).
    type: bool
  comment:
    description: Free text shown in the admin UI.
    type: str
seealso:
  - module: nantral.mailu.mailu_accounts
'''

EXAMPLES = r'''
- name: Mail to contact@ reaches the whole board
  nantral.mailu.mailu_alias:
    login_host: 127.0.0.1
    login_password: "{{ mailu_db_password }}"
    email: contact@example.org
    destination:
      - president@example.org
      - secretary@example.org

- name: Catch every address that starts with "info-"
  nantral.mailu.mailu_alias:
    login_password: "{{ mailu_db_password }}"
    email: info-%@example.org
    wildcard: true
    destination: [secretary@example.org]
'''

RETURN = r'''
alias:
  description: The alias as it is after the run (in check mode, as it would be); empty when O(state=absent).
  returned: always
  type: dict
  sample:
    email: contact@example.org
    destination: [president@example.org, secretary@example.org]
    wildcard: false
    comment: ""
unconfirmed:
  description:
    - When the connection was lost while committing, what the run had sent (created, updated and
      removed, per kind), whether or not PostgreSQL applied it. Run the task again to converge.
  returned: failure
  type: dict
  sample: {aliases: {created: [contact@example.org], updated: [], removed: []}}
queries:
  description: The SQL statements run, without their values.
  returned: always
  type: list
  elements: str
  sample: ['UPDATE "alias" SET destination = %s, updated_at = %s WHERE email = %s -- 1 row(s)']
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
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nantral.mailu.plugins.module_utils.mailu_accounts import alias_spec
from ansible_collections.nantral.mailu.plugins.module_utils.mailu_db import connection_argument_spec
from ansible_collections.nantral.mailu.plugins.module_utils.mailu_module import one_object


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(alias_spec())
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    one_object(module, 'aliases', alias_spec())


if __name__ == '__main__':
    main()
