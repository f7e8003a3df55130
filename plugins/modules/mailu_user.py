#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, Nantral Platform sysadmin team
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: mailu_user
short_description: Manage one Mailu user in Mailu's PostgreSQL database
version_added: 0.1.0
description:
  - Creates, updates or removes one Mailu mail account by writing Mailu's own C(user) table,
    the way Mailu's admin would.
  - Options left out are not managed on an existing user; a new user gets Mailu's defaults.
  - For many users at once, use M(nantral.mailu.mailu_accounts), which also takes domains and aliases.
author:
  - Nantral Platform sysadmin team (@nantral-platform)
extends_documentation_fragment:
  - nantral.mailu.connection
  - nantral.mailu.connection.passwords
  - nantral.mailu.connection.new_users
  - nantral.mailu.attributes
options:
  email:
    description:
      - The address of the account, C(localpart@domain). The domain must exist
        (M(nantral.mailu.mailu_domain)).
      - It is stored lower-cased, local part included, with the domain in punycode, as Mailu's
        C(config-import) stores it, since Mailu's own lookups only find lower-case local parts.
        V(John.Doe@example.org) and V(john.doe@example.org) are the same account.
      - Spaces and line breaks around the address are ignored; a space or control character (such as a
        newline) inside it is refused.
      - A stored local part with upper case (written by Mailu's web UI or an older version of this
        collection) is lower-cased once, reported as a change, when the user is declared present.
    type: str
    required: true
  state:
    description:
      - V(absent) removes the user with its app tokens, fetched accounts and manager rights. Its
        mail stays on disk, as with Mailu's own removal.
    type: str
    default: present
    choices: [present, absent]
  password:
    description:
      - The password in plain text; it is stored as a hash. Needed, or O(password_hash), to create a user.
      - At most 4096 characters, the most passlib (and so Mailu's login) takes; an empty or longer one is refused.
    type: str
  password_hash:
    description:
      - A pre-computed hash in any form Mailu's login accepts, such as C($bcrypt-sha256$...),
        C({BLF-CRYPT}$2b$...), C($2b$...), C({SHA512-CRYPT}$6$...), C($6$...), C($pbkdf2-sha512$...) and the
        other passlib formats.
      - A hash must be complete. The settings and salt alone, without the checksum (such as
        C($6$rounds=5000$salt$)), are refused, since no password would ever match them.
      - It is stored as Mailu's C(config-import) stores it, without a C({SCHEME}) prefix of Mailu 1.8
        (C({PBKDF2}), C({BLF-CRYPT}), C({SHA512-CRYPT}), C({SHA256-CRYPT}), C({MD5-CRYPT}), C({CRYPT})).
      - Mailu replaces any hash but bcrypt_sha256 at C(CREDENTIAL_ROUNDS) at the user's first login, so
        with O(update_password=always) only a C($bcrypt-sha256$v=2,t=2b,r=N$...) hash with N = O(hash_rounds)
        is accepted.
    type: str
  quota:
    description:
      - Mailbox quota, as bytes or a size such as V(1G), V(500M) (powers of 1000, as Mailu counts) or
        V(2GiB) (powers of 1024). V(0) means no limit. New users get O(default_quota).
      - The size must come to a whole number of bytes. V(1.5G) is 1500000000 bytes; V(0.4) or V(1.0001K)
        is refused rather than rounded (V(0.4) rounded to V(0), which is no limit at all). A number is
        taken as it is when it is whole, such as V(1500000000.0) from Jinja arithmetic; V(1.5) is refused.
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
    description: Whether Mailu's web UI forces a password change at the next login. Mailu 2024.06. New users get V(false).
    type: bool
  displayed_name:
    description: The name shown in the web UI and webmail. New users get an empty name.
    type: str
  comment:
    description: Free text shown in the admin UI.
    type: str
  forward_enabled:
    description: Whether incoming mail is forwarded to O(forward_destination). New users get V(false).
    type: bool
  forward_destination:
    description:
      - Addresses mail is forwarded to. Stored sorted and without duplicates, as Mailu does.
      - Spaces around an address are ignored; a space or control character inside one is refused.
    type: list
    elements: str
  forward_keep:
    description: Whether a copy of forwarded mail is kept in the mailbox. New users get V(true).
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
    description:
      - First day of the auto-reply, exactly C(YYYY-MM-DD) (other ISO 8601 forms such as C(20240601) are
        refused). New users get V(1900-01-01).
    type: str
  reply_enddate:
    description:
      - Last day of the auto-reply, exactly C(YYYY-MM-DD). New users get V(2999-12-31).
      - It may not be before O(reply_startdate), the one declared or else the one stored (a reply that ends
        before it starts is never sent); the same day for both is a one-day reply.
    type: str
  spam_enabled:
    description: Whether spam filtering moves spam to the Junk folder. New users get V(true).
    type: bool
  spam_mark_as_read:
    description: Whether spam is marked as read. Mailu 2.0 and later. New users get V(true), as Mailu's admin writes.
    type: bool
  spam_threshold:
    description: Spam score (0 to 100) from which mail counts as spam. New users get O(default_spam_threshold).
    type: int
seealso:
  - module: nantral.mailu.mailu_accounts
  - module: nantral.mailu.mailu_domain
'''

EXAMPLES = r'''
- name: Create the platform's sender account
  nantral.mailu.mailu_user:
    login_host: 127.0.0.1
    login_password: "{{ mailu_db_password }}"
    email: no-reply@example.org
    password: "{{ vault_no_reply_password }}"
    quota: 500M
    displayed_name: Nantral platform

- name: Keep the admin's password as in the vault, even after the admin changed it
  nantral.mailu.mailu_user:
    login_password: "{{ mailu_db_password }}"
    email: admin@example.org
    password: "{{ vault_admin_password }}"
    update_password: always
    global_admin: true

- name: New users get the quota and spam threshold of Mailu's own settings
  nantral.mailu.mailu_user:
    login_password: "{{ mailu_db_password }}"
    email: member@example.org
    password: "{{ vault_member_password }}"
    default_quota: "{{ mailu_default_quota }}"
    default_spam_threshold: "{{ mailu_default_spam_threshold }}"

- name: Create a user from a hash exported from another server
  nantral.mailu.mailu_user:
    login_password: "{{ mailu_db_password }}"
    email: contact@example.org
    password_hash: "{{ vault_contact_hash }}"

- name: Remove a user (its mail stays on disk)
  nantral.mailu.mailu_user:
    login_password: "{{ mailu_db_password }}"
    email: old-member@example.org
    state: absent
'''

RETURN = r'''
user:
  description:
    - The user as it is after the run (in check mode, as it would be), without its password hash.
      Empty when O(state=absent).
  returned: always
  type: dict
  sample:
    email: no-reply@example.org
    quota: 500000000
    enabled: true
    displayed_name: Nantral platform
    forward_destination: []
    reply_startdate: "1900-01-01"
    spam_threshold: 80
unconfirmed:
  description:
    - When the connection was lost while committing, what the run had sent (created, updated and
      removed, per kind), whether or not PostgreSQL applied it. Run the task again to converge.
  returned: failure
  type: dict
  sample: {users: {created: [no-reply@example.org], updated: [], removed: []}}
queries:
  description: The SQL statements run, without their values.
  returned: always
  type: list
  elements: str
  sample: ['COPY "user" (email, created_at, localpart, ...) FROM STDIN -- 1 row(s)']
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

from ansible_collections.nantral.mailu.plugins.module_utils.mailu_accounts import (
    new_user_spec,
    password_policy_spec,
    user_spec,
)
from ansible_collections.nantral.mailu.plugins.module_utils.mailu_db import connection_argument_spec
from ansible_collections.nantral.mailu.plugins.module_utils.mailu_module import one_object


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(password_policy_spec())
    argument_spec.update(new_user_spec())
    argument_spec.update(user_spec())
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    one_object(module, 'users', user_spec())


if __name__ == '__main__':
    main()
