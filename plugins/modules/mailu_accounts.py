#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, Nantral Platform sysadmin team
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: mailu_accounts
short_description: Declare Mailu's domains, users and aliases at once
version_added: 0.1.0
description:
  - The declarative, bulk form of M(nantral.mailu.mailu_domain), M(nantral.mailu.mailu_user) and
    M(nantral.mailu.mailu_alias), with the same options per object, in one call and one transaction.
  - Built for thousands of accounts. The current state is read once, compared in memory and written
    in batches.
  - With O(purge), what is not listed is removed, kind by kind, among the objects the collection
    manages; objects people made in Mailu's web admin are kept and reported in RV(unmanaged).
author:
  - Nantral Platform sysadmin team (@nantral-platform)
extends_documentation_fragment:
  - nantral.mailu.connection
  - nantral.mailu.connection.passwords
  - nantral.mailu.connection.new_users
  - nantral.mailu.attributes
options:
  domains:
    description: Mail domains, as M(nantral.mailu.mailu_domain) takes them.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The domain name; stored lower-cased, in punycode.
        type: str
        required: true
      state:
        description:
          - Whether the domain exists. A domain with users is removed only with O(domains[].force=true),
            or when its users are removed in the same run.
        type: str
        default: present
        choices: [present, absent]
      force:
        description: With O(domains[].state=absent), also remove the domain's users.
        type: bool
        default: false
      max_users:
        description: Most users in Mailu's UI; V(-1) for no limit (new domains).
        type: int
      max_aliases:
        description: Most aliases in Mailu's UI; V(-1) for no limit (new domains).
        type: int
      max_quota:
        description: Largest user quota in Mailu's UI, bytes or a size such as V(1G) (whole bytes); V(0) for no cap (new domains).
        type: raw
      signup_enabled:
        description: Whether visitors may sign up in this domain. New domains get V(false).
        type: bool
      comment:
        description: Free text shown in the admin UI.
        type: str
      alternatives:
        description: The complete list of alternative names of the domain. Left out, they are not managed.
        type: list
        elements: str
      managers:
        description: The complete list of users that manage the domain. Left out, they are not managed.
        type: list
        elements: str
  users:
    description: Mail accounts, as M(nantral.mailu.mailu_user) takes them.
    type: list
    elements: dict
    default: []
    suboptions:
      email:
        description:
          - The address of the account; its domain must exist or be listed in O(domains).
          - Stored lower-cased, local part included, as Mailu's C(config-import) stores it; a stored local
            part with upper case is lower-cased once, reported as a change.
        type: str
        required: true
      state:
        description: Whether the user exists. Removal takes its app tokens, fetched accounts and manager rights.
        type: str
        default: present
        choices: [present, absent]
      password:
        description:
          - The password in plain text, stored as a hash. Needed, or O(users[].password_hash), to create a user.
          - At most 4096 characters, the most passlib (and so Mailu's login) takes.
        type: str
      password_hash:
        description:
          - A pre-computed hash in any form Mailu's login accepts, stored without a C({SCHEME}) prefix of
            Mailu 1.8, as Mailu's C(config-import) stores it. It must be complete; the settings and salt without
            the checksum (such as C($6$rounds=5000$salt$)) are refused.
          - With O(update_password=always), only a C($bcrypt-sha256$v=2,t=2b,r=N$...) hash with N = O(hash_rounds)
            is accepted, since Mailu replaces any other at the first login.
        type: str
      quota:
        description:
          - Mailbox quota, bytes or a size such as V(1G), V(500M), V(2GiB); V(0) for no limit. New users get O(default_quota).
          - It must come to a whole number of bytes (V(1.5G) does, V(0.4) and V(1.5) do not and are refused).
        type: raw
      global_admin:
        description: Whether the user administers the whole Mailu. New users get V(false).
        type: bool
      enabled:
        description: Whether the user may log in at all. New users get V(true).
        type: bool
      enable_imap:
        description: Whether IMAP logins are allowed. New users get V(true).
        type: bool
      enable_pop:
        description: Whether POP3 logins are allowed. New users get V(true).
        type: bool
      allow_spoofing:
        description: Whether the user may send as any address. Mailu 2.0 and later. New users get V(false).
        type: bool
      change_pw_next_login:
        description: Whether the web UI forces a password change at the next login. Mailu 2024.06. New users get V(false).
        type: bool
      displayed_name:
        description: The name shown in the web UI and webmail.
        type: str
      comment:
        description: Free text shown in the admin UI.
        type: str
      forward_enabled:
        description: Whether incoming mail is forwarded. New users get V(false).
        type: bool
      forward_destination:
        description: Addresses mail is forwarded to.
        type: list
        elements: str
      forward_keep:
        description: Whether forwarded mail is also kept. New users get V(true).
        type: bool
      reply_enabled:
        description: Whether the auto-reply is active. New users get V(false).
        type: bool
      reply_subject:
        description: Subject of the auto-reply.
        type: str
      reply_body:
        description: Body of the auto-reply.
        type: str
      reply_startdate:
        description: First day of the auto-reply, exactly C(YYYY-MM-DD).
        type: str
      reply_enddate:
        description:
          - Last day of the auto-reply, exactly C(YYYY-MM-DD); not before the declared, or else stored, O(users[].reply_startdate).
        type: str
      spam_enabled:
        description: Whether spam goes to the Junk folder. New users get V(true).
        type: bool
      spam_mark_as_read:
        description: Whether spam is marked as read. Mailu 2.0 and later. New users get V(true).
        type: bool
      spam_threshold:
        description: Spam score (0 to 100) from which mail counts as spam. New users get O(default_spam_threshold).
        type: int
  aliases:
    description: Aliases, as M(nantral.mailu.mailu_alias) takes them.
    type: list
    elements: dict
    default: []
    suboptions:
      email:
        description:
          - The alias address; its domain must exist or be listed in O(domains).
          - Stored lower-cased, local part included, as Mailu's C(config-import) stores it.
        type: str
        required: true
      state:
        description: Whether the alias exists.
        type: str
        default: present
        choices: [present, absent]
      destination:
        description: Addresses the alias delivers to; required to create an alias.
        type: list
        elements: str
      wildcard:
        description: Whether the local part is an SQL C(LIKE) pattern. New aliases get V(false).
        type: bool
      comment:
        description: Free text shown in the admin UI.
        type: str
  purge:
    description:
      - Kinds of objects whose unlisted members are removed, in every domain of the database, among
        the objects the collection manages.
      - The collection manages what it created and what a run of its modules declared present (an
        account made in Mailu's web admin becomes managed once the inventory lists it). It keeps this
        bookkeeping in its own table C(nantral_mailu_managed) in Mailu's database, created at the first
        run that needs it (Mailu's migrations leave tables they do not know alone). A row deleted and
        made again in Mailu's admin on another day is not the managed one.
      - Unlisted objects the collection does not manage, such as mailboxes the team creates in Mailu's
        web admin, are never removed by O(purge); they are returned in RV(unmanaged).
      - V(domains) removes unlisted domains; one that still has users fails unless V(users) is purged
        too, and one that still has users or aliases that stay (not managed) fails in any case.
      - A purge that looks like a mistake in the inventory is refused, changing nothing, with a message
        listing every object it would have removed; see O(purge_limit). In check mode it is refused too.
      - Objects listed with O(users[].state=absent) and the like are removed in any case, and do not
        count against O(purge_limit).
    type: list
    elements: str
    choices: [domains, users, aliases]
    default: []
  purge_limit:
    description:
      - The most objects O(purge) may remove in one run, all kinds together (the users and aliases of a
        purged domain included). More fails, changing nothing, listing them.
      - Whatever the limit, O(purge) of a kind that declares no object of that kind present (an empty
        list, such as a misspelt variable that renders to V([])) is refused if it would remove anything.
      - V(-1) turns both safeguards off. To remove many objects on purpose, raise the limit for that run,
        or list them with O(users[].state=absent).
    type: int
    default: 10
notes:
  - The module's arguments are never written to the managed host's system log or journal (AnsibleModule's
    C(Invoked with ...) line), where thousands of accounts would end up otherwise. Secrets are masked in
    the result as in any module, and the task's own C(no_log) hides the result from the controller's output.
seealso:
  - module: nantral.mailu.mailu_domain
  - module: nantral.mailu.mailu_user
  - module: nantral.mailu.mailu_alias
  - module: nantral.mailu.mailu_info
'''

EXAMPLES = r'''
- name: The platform's accounts, exactly as in the inventory
  nantral.mailu.mailu_accounts:
    login_host: 127.0.0.1
    login_password: "{{ mailu_db_password }}"
    domains:
      - name: example.org
        alternatives: [example.net]
        managers: [group-manager@example.org]
    users:
      - email: admin@example.org
        password: "{{ vault_admin_password }}"
        global_admin: true
      - email: group-manager@example.org
        password_hash: "{{ vault_group_manager_hash }}"
      - email: no-reply@example.org
        password: "{{ vault_no_reply_password }}"
        quota: 100M
    aliases:
      - email: contact@example.org
        destination: [admin@example.org, group-manager@example.org]
    purge: [users, aliases]

- name: Remove the 40 accounts of a closed association, on purpose (more than purge_limit)
  nantral.mailu.mailu_accounts:
    login_password: "{{ mailu_db_password }}"
    users: "{{ mailu_users }}"
    purge: [users]
    purge_limit: 40

- name: Set the connection once for the whole play
  hosts: mail
  module_defaults:
    group/nantral.mailu.mailu:
      login_host: 127.0.0.1
      login_password: "{{ mailu_db_password }}"
      wait_for_schema: 120
  tasks:
    - name: Accounts from the inventory
      nantral.mailu.mailu_accounts:
        domains: "{{ mailu_domains }}"
        users: "{{ mailu_users }}"
        aliases: "{{ mailu_aliases }}"
'''

RETURN = r'''
domains:
  description: Names of the domains created, updated and removed (in check mode, that would be).
  returned: always
  type: dict
  contains:
    created:
      description: Created domains.
      type: list
      elements: str
      returned: always
    updated:
      description: Domains with a changed column, alternative name or manager.
      type: list
      elements: str
      returned: always
    removed:
      description: Removed domains.
      type: list
      elements: str
      returned: always
  sample: {created: [example.org], updated: [], removed: []}
users:
  description: Addresses of the users created, updated and removed.
  returned: always
  type: dict
  contains:
    created:
      description: Created users.
      type: list
      elements: str
      returned: always
    updated:
      description: Users with a changed column or password.
      type: list
      elements: str
      returned: always
    removed:
      description: Removed users.
      type: list
      elements: str
      returned: always
  sample: {created: [admin@example.org], updated: [], removed: [old@example.org]}
aliases:
  description: Addresses of the aliases created, updated and removed.
  returned: always
  type: dict
  contains:
    created:
      description: Created aliases.
      type: list
      elements: str
      returned: always
    updated:
      description: Aliases with a changed column.
      type: list
      elements: str
      returned: always
    removed:
      description: Removed aliases.
      type: list
      elements: str
      returned: always
  sample: {created: [contact@example.org], updated: [], removed: []}
unmanaged:
  description:
    - Per kind in O(purge), the unlisted objects that were kept because the collection does not manage
      them (made in Mailu's web admin, say), that is the drift between the inventory and the database. Empty lists
      for the kinds not purged.
  returned: always
  type: dict
  contains:
    domains:
      description: Unlisted domains kept.
      type: list
      elements: str
      returned: always
    users:
      description: Unlisted users kept.
      type: list
      elements: str
      returned: always
    aliases:
      description: Unlisted aliases kept.
      type: list
      elements: str
      returned: always
  sample: {domains: [], users: [bob@example.org], aliases: []}
unconfirmed:
  description:
    - When the connection was lost while committing, what the run had sent (created, updated and
      removed, per kind), whether or not PostgreSQL applied it. Run the task again to converge.
  returned: failure
  type: dict
  sample: {domains: {created: [], updated: [], removed: []}, users: {created: [a@example.org], updated: [], removed: []}}
queries:
  description: The SQL statements run, without their values, each with its row count.
  returned: always
  type: list
  elements: str
  sample: ['COPY "user" (email, created_at, localpart, ...) FROM STDIN -- 3 row(s)']
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

from ansible_collections.nantral.mailu.plugins.module_utils.mailu_accounts import KINDS, accounts_argument_spec
from ansible_collections.nantral.mailu.plugins.module_utils.mailu_db import connection_argument_spec
from ansible_collections.nantral.mailu.plugins.module_utils.mailu_module import (
    QuietModule,
    check_requirements,
    exit_json,
    run_accounts,
    schema_info,
)


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(accounts_argument_spec())
    # Thousands of accounts would flood the host's syslog/journal, so this module's
    # invocation is never logged there.
    module = QuietModule(argument_spec=argument_spec, supports_check_mode=True)
    check_requirements(module)
    declared = dict((kind, module.params[kind]) for kind in KINDS)
    plan, queries, release = run_accounts(module, declared, purge=module.params['purge'])
    result = dict(changed=plan.changed, queries=queries, schema=schema_info(release), unmanaged=plan.unmanaged,
                  **plan.report)
    if module._diff:
        result['diff'] = dict(before=dict((k, v) for k, v in plan.before.items() if v),
                              after=dict((k, v) for k, v in plan.after.items() if v))
    exit_json(module, **result)


if __name__ == '__main__':
    main()
