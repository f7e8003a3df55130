# -*- coding: utf-8 -*-
# Copyright (c) 2026, Nantral Platform sysadmin team
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment(object):

    # The connection to Mailu's PostgreSQL database and the schema guard, shared by
    # every module of the collection.
    DOCUMENTATION = r'''
options:
  login_host:
    description:
      - Host name or address of the PostgreSQL server that holds Mailu's database.
    type: str
    default: localhost
  login_port:
    description:
      - TCP port of the PostgreSQL server.
    type: int
    default: 5432
  login_user:
    description:
      - Role to connect as. It needs C(SELECT), C(INSERT), C(UPDATE) and C(DELETE) on Mailu's tables,
        and once C(CREATE) in the C(public) schema for the collection's own table C(nantral_mailu_managed)
        (what the collection manages, see O(nantral.mailu.mailu_accounts#module:purge)); the role Mailu itself
        uses (the owner of its database) has them.
    type: str
    default: mailu
  login_password:
    description:
      - Password of O(login_user). When omitted, libpq's usual sources apply (C(PGPASSWORD), C(~/.pgpass)).
    type: str
  login_db:
    description:
      - Name of Mailu's database.
    type: str
    default: mailu
  login_unix_socket:
    description:
      - Directory of the server's Unix socket. When set, it is used instead of O(login_host).
    type: str
  ssl_mode:
    description:
      - libpq's C(sslmode) for the connection.
    type: str
    default: prefer
    choices: [allow, disable, prefer, require, verify-ca, verify-full]
  ca_cert:
    description:
      - CA certificate(s) the server's certificate is checked against (libpq's C(sslrootcert)).
    type: path
  connect_timeout:
    description:
      - Seconds to wait for the connection to be made.
    type: int
    default: 10
  wait_for_schema:
    description:
      - Seconds to wait for the server to answer and for Mailu's schema to reach a supported
        Alembic head. Mailu's admin container creates and migrates the schema each time it starts.
      - With V(0) (the default) the module fails at once when the server cannot be reached, the
        schema is missing, or its revision is not one this collection supports.
      - Supported heads are C(3b7eee912b41) (Mailu 1.9), C(7ac252f2bbbf) (Mailu 2.0) and
        C(0ba45693748d) (Mailu 2024.06).
    type: int
    default: 0
  lock_timeout:
    description:
      - Seconds a module that changes accounts waits for another writer to finish. Every run that
        writes takes one PostgreSQL advisory lock (C(pg_advisory_xact_lock(7953759863327255553)) in
        Mailu's database) before it reads the state it plans from, so two playbooks, or a playbook
        and a cron job, run one after the other and the second one plans from what the first one
        committed.
      - When the wait runs out the module fails, changing nothing, with a message naming the session
        that holds the lock (its PostgreSQL pid, C(application_name), user and address). The
        modules' sessions are named C(nantral.mailu.<module> pid <pid> <user>@<host>).
      - Check mode and M(nantral.mailu.mailu_info) do not take the lock; check mode waits at most this
        long for a row another session is writing.
      - V(0) fails at once when another writer holds the lock.
    type: int
    default: 120
requirements:
  - psycopg >= 3.1 (Debian's C(python3-psycopg)) on the host that runs the module.
notes:
  - The module runs on the host it is delegated to, which must reach the database. Use
    C(module_defaults) with the group C(group/nantral.mailu.mailu) to set the connection once.
  - Every run is one transaction. In check mode the same statements run and are rolled back.
  - Mailu's own admin (web UI, API, CLI) writes the same tables without taking the lock. Just before
    committing, a run re-reads what could clash with the rows it creates (a user and an alias with
    one address, a domain that is also an alternative name or a relayed domain) and fails, changing
    nothing, if Mailu's admin committed such a row meanwhile. A row the admin commits in the
    milliseconds between that check and the commit cannot be seen; Mailu's admin has the same gap
    between its own requests.
  - If the connection is lost while committing, whether the run's changes were applied is unknown;
    the module fails with a message saying so, and lists what it had sent as C(unconfirmed).
    Run it again; it converges.
'''

    # Hashing requirements, for the modules that write or verify passwords.
    PASSWORDS = r'''
options:
  hash_rounds:
    description:
      - bcrypt rounds of new password hashes. Keep it equal to Mailu's C(CREDENTIAL_ROUNDS)
        (default 12), or Mailu rewrites the hash at the user's first login.
    type: int
    default: 12
  update_password:
    description:
      - V(on_create) sets passwords only for users being created.
      - V(always) also checks existing users. A plain-text password is verified against the stored
        hash the way Mailu's login does (any hash format Mailu accepts) and a new hash is written only
        when it does not verify, so hashes that Mailu rewrote at login are left alone. A pre-computed
        hash is written when it differs from the stored string.
      - V(always) refuses a pre-computed hash that Mailu's login replaces, that is any hash but
        C($bcrypt-sha256$v=2,t=2b,r=N$...) with N = O(hash_rounds) (Mailu's C(CREDENTIAL_ROUNDS)), since
        after the user's first login every run would write the old hash back. The error names the
        user; give its plain-text password instead, a bcrypt_sha256 hash with O(hash_rounds) rounds,
        or use V(on_create).
    type: str
    default: on_create
    choices: [always, on_create]
requirements:
  - passlib 1.7.4 (Debian's C(python3-passlib), with bcrypt < 5) or libpass, on the host that runs the module.
  - idna (Debian's C(python3-idna)), on the host that runs the module.
notes:
  - New hashes are in the form Mailu writes itself, passlib C(bcrypt_sha256) version 2 with no
    C({SCHEME}) prefix. Hashing many plain-text passwords uses every core of the host.
'''

    # What new users get from the deployment's settings: mailu_user and mailu_accounts.
    NEW_USERS = r'''
options:
  default_quota:
    description:
      - The quota of a user created without a quota of its own, as bytes or a size such as V(1G) (a whole
        number of bytes, as for a user's quota). Set it to
        Mailu's C(DEFAULT_QUOTA) setting (C(mailu.env)), so that the collection's new users get what
        Mailu's admin gives its own.
      - It is capped at the domain's maximum user quota when the domain has one, as Mailu's form for a
        new user is (Mailu 2024.06; Mailu 1.9 and 2.0 apply C(DEFAULT_QUOTA) to sign-ups and start
        their form at 1G, which cannot exceed the cap either).
      - Existing users are never changed by it.
    type: raw
    default: 1000000000
  default_spam_threshold:
    description:
      - The spam threshold (0 to 100) of a user created without a spam threshold of its own. Set it to
        Mailu's C(DEFAULT_SPAM_THRESHOLD) setting, which Mailu 2.0 and later give their new users.
      - Mailu 1.9 has no such setting and always writes V(80), so on a Mailu 1.9 database any other
        value is refused (nothing is changed) rather than silently ignored; give the threshold per user
        there.
      - Existing users are never changed by it.
    type: int
    default: 80
'''
