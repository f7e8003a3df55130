#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, Nantral Platform sysadmin team
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: mailu_domain
short_description: Manage one Mailu mail domain in Mailu's PostgreSQL database
version_added: 0.1.0
description:
  - Creates, updates or removes one Mailu domain by writing Mailu's own C(domain), C(alternative)
    and C(manager) tables, the way Mailu's admin would.
  - Options left out are not managed on an existing domain; a new domain gets Mailu's defaults.
  - A domain created this way has no DKIM key until one is generated in Mailu (the key is a file,
    not a database row).
author:
  - Nantral Platform sysadmin team (@nantral-platform)
extends_documentation_fragment:
  - nantral.mailu.connection
  - nantral.mailu.attributes
options:
  name:
    description:
      - The domain name. Stored lower-cased, internationalised names in punycode (C(xn--...)).
    type: str
    required: true
  state:
    description:
      - V(absent) removes the domain with its aliases, alternative names and manager rights.
      - A domain that still has users is only removed with O(force=true), which removes the users too
        (their app tokens and fetched accounts included). Mail and DKIM files stay on disk.
    type: str
    default: present
    choices: [present, absent]
  force:
    description:
      - With O(state=absent), also remove the domain's users.
    type: bool
    default: false
  max_users:
    description: Most users the domain may have in Mailu's UI; V(-1) for no limit (new domains).
    type: int
  max_aliases:
    description: Most aliases the domain may have in Mailu's UI; V(-1) for no limit (new domains).
    type: int
  max_quota:
    description:
      - Largest quota Mailu's UI lets a manager give a user of this domain, as bytes or a size such as
        V(1G) or V(2GiB). V(0) means no cap (new domains). It must come to a whole number of bytes, as
        O(nantral.mailu.mailu_user#module:quota) must.
    type: raw
  signup_enabled:
    description: Whether visitors may sign up for an account in this domain. New domains get V(false).
    type: bool
  comment:
    description: Free text shown in the admin UI.
    type: str
  alternatives:
    description:
      - Every alternative name of the domain (domain aliases) — the complete list. Names listed
        here and not in the database are added, names in the database and not listed are removed.
      - Left out, the alternative names are not managed.
    type: list
    elements: str
  managers:
    description:
      - Every user that manages this domain in Mailu's UI — the complete list of addresses. Each must
        be an existing user.
      - Left out, the managers are not managed.
    type: list
    elements: str
seealso:
  - module: nantral.mailu.mailu_accounts
  - module: nantral.mailu.mailu_user
'''

EXAMPLES = r'''
- name: The platform's mail domain, with its alternative name
  nantral.mailu.mailu_domain:
    login_host: 127.0.0.1
    login_password: "{{ mailu_db_password }}"
    name: example.org
    alternatives:
      - example.net
    max_quota: 5G

- name: Let the group manager manage the domain (the user must exist)
  nantral.mailu.mailu_domain:
    login_password: "{{ mailu_db_password }}"
    name: example.org
    managers:
      - group-manager@example.org

- name: Remove an old domain with all its users
  nantral.mailu.mailu_domain:
    login_password: "{{ mailu_db_password }}"
    name: old.example.org
    state: absent
    force: true
'''

RETURN = r'''
domain:
  description: The domain as it is after the run (in check mode, as it would be); empty when O(state=absent).
  returned: always
  type: dict
  sample:
    name: example.org
    max_users: -1
    max_aliases: -1
    max_quota: 5000000000
    signup_enabled: false
    comment: ""
    alternatives: [example.net]
    managers: [group-manager@example.org]
unconfirmed:
  description:
    - When the connection was lost while committing, what the run had sent (created, updated and
      removed, per kind), whether or not PostgreSQL applied it. Run the task again to converge.
  returned: failure
  type: dict
  sample: {domains: {created: [example.org], updated: [], removed: []}}
queries:
  description: The SQL statements run, without their values.
  returned: always
  type: list
  elements: str
  sample: ['COPY "domain" (name, created_at, max_users, ...) FROM STDIN -- 1 row(s)']
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

from ansible_collections.nantral.mailu.plugins.module_utils.mailu_accounts import domain_spec
from ansible_collections.nantral.mailu.plugins.module_utils.mailu_db import connection_argument_spec
from ansible_collections.nantral.mailu.plugins.module_utils.mailu_module import one_object


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(domain_spec())
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    one_object(module, 'domains', domain_spec())


if __name__ == '__main__':
    main()
