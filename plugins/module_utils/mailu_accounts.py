# -*- coding: utf-8 -*-
# Copyright (c) 2026, Nantral Platform sysadmin team
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The accounts engine: declared domains, users and aliases -> Mailu's tables.

One read of the current state, an in-memory plan (validation, diff, the rows to write),
then batched writes in the caller's transaction.  Every module of the collection that
changes accounts goes through ``Planner``; ``mailu_domain``/``mailu_user``/``mailu_alias``
are the one-object case of ``mailu_accounts``.
"""

from __future__ import annotations

import datetime

from ansible_collections.nantral.mailu.plugins.module_utils import mailu_db
from ansible_collections.nantral.mailu.plugins.module_utils import mailu_input as inp
from ansible_collections.nantral.mailu.plugins.module_utils.mailu_input import InputError, MailuError
from ansible_collections.nantral.mailu.plugins.module_utils.mailu_passwords import (
    check_hash,
    check_password,
    hash_password,
    hash_scheme,
    parallel_map,
    rewritten_at_login,
    strip_legacy_prefix,
    verify_password,
)
from ansible_collections.nantral.mailu.plugins.module_utils.mailu_schema import (
    ALIAS,
    ALTERNATIVE,
    DEFAULT_CREDENTIAL_ROUNDS,
    DEFAULT_QUOTA,
    DEFAULT_SPAM_THRESHOLD,
    DOMAIN,
    PASSWORD_LENGTH,
    USER,
    release_at_least,
)

KINDS = ('domains', 'users', 'aliases')
# Most objects one purge may remove unless the run says otherwise (purge_limit).
DEFAULT_PURGE_LIMIT = 10
# The collection's own bookkeeping in Mailu's database: the domains, users and aliases it
# created or was declared to manage, each with the created_at of the row it manages (a
# row deleted and created again in Mailu's admin, on another day, is not the same row).
# purge only removes these; Mailu's migrations never touch a table they do not know.
MANAGED_TABLE = 'nantral_mailu_managed'
_MANAGED_DDL = (
    'CREATE TABLE IF NOT EXISTS %s (kind varchar(16) NOT NULL, name varchar(255) NOT NULL, '
    'created_at date NOT NULL, CONSTRAINT %s_pkey PRIMARY KEY (kind, name))' % (MANAGED_TABLE, MANAGED_TABLE))
# What a diff shows for a password: never the hash itself.
PASSWORD_SET = '(hash set)'
PASSWORD_NEW = '(new hash)'


# --------------------------------------------------------------------------------------
# Argument specs: one definition, used by the one-object modules at the top level and by
# mailu_accounts as list suboptions.

def domain_spec():
    return dict(
        name=dict(type='str', required=True),
        state=dict(type='str', default='present', choices=['present', 'absent']),
        max_users=dict(type='int'),
        max_aliases=dict(type='int'),
        max_quota=dict(type='raw'),
        signup_enabled=dict(type='bool'),
        comment=dict(type='str'),
        alternatives=dict(type='list', elements='str'),
        managers=dict(type='list', elements='str'),
        force=dict(type='bool', default=False),
    )


def user_spec():
    spec = dict(
        email=dict(type='str', required=True),
        state=dict(type='str', default='present', choices=['present', 'absent']),
        password=dict(type='str', no_log=True),
        password_hash=dict(type='str', no_log=True),
        quota=dict(type='raw'),
        forward_destination=dict(type='list', elements='str'),
        reply_startdate=dict(type='str'),
        reply_enddate=dict(type='str'),
        spam_threshold=dict(type='int'),
        displayed_name=dict(type='str'),
        reply_subject=dict(type='str'),
        reply_body=dict(type='str'),
        comment=dict(type='str'),
    )
    for col in USER.columns('2024.06'):
        if col.kind == 'bool':
            spec[col.option] = dict(type='bool')
    return spec


def alias_spec():
    return dict(
        email=dict(type='str', required=True),
        state=dict(type='str', default='present', choices=['present', 'absent']),
        destination=dict(type='list', elements='str'),
        wildcard=dict(type='bool'),
        comment=dict(type='str'),
    )


def password_policy_spec():
    return dict(
        update_password=dict(type='str', default='on_create', choices=['always', 'on_create'], no_log=False),
        hash_rounds=dict(type='int', default=DEFAULT_CREDENTIAL_ROUNDS),
    )


def new_user_spec():
    """The deployment's settings that give new users their values (mailu.env)."""
    return dict(
        default_quota=dict(type='raw', default=DEFAULT_QUOTA.default),
        default_spam_threshold=dict(type='int', default=DEFAULT_SPAM_THRESHOLD.default),
    )


def accounts_argument_spec():
    """mailu_accounts' options, connection excluded."""
    spec = password_policy_spec()
    spec.update(new_user_spec())
    spec.update(
        domains=dict(type='list', elements='dict', default=[], options=domain_spec()),
        users=dict(type='list', elements='dict', default=[], options=user_spec()),
        aliases=dict(type='list', elements='dict', default=[], options=alias_spec()),
        purge=dict(type='list', elements='str', default=[], choices=list(KINDS)),
        purge_limit=dict(type='int', default=DEFAULT_PURGE_LIMIT),
    )
    return spec


# Bounds Mailu's own forms enforce; -1 means unlimited for the domain limits.
_BOUNDS = {'max_users': (-1, None), 'max_aliases': (-1, None), 'spam_threshold': (0, 100)}
_DERIVED = ('localpart', 'domain_name')


# --------------------------------------------------------------------------------------
# Values: input -> stored, stored -> shown.

def _stored_value(col, value, kind, name):
    if col.kind == 'bytes':
        return inp.size(value, kind, name, col.option)
    if col.kind == 'list':
        if col.name == 'destination' and not value:
            raise InputError(kind, name, col.option, 'must list at least one address')
        return inp.address_list(value, kind, name, col.option, col.length)
    if col.kind == 'date':
        return inp.date(value, kind, name, col.option)
    if col.kind == 'int' and col.name in _BOUNDS:
        return inp.integer(value, kind, name, col.option, *_BOUNDS[col.name])
    if col.kind in ('str', 'text'):
        return inp.text(value, kind, name, col.option, col.length)
    return value


def shown(col, value):
    """A stored value as modules show it: lists as lists, dates as ISO strings."""
    if col.kind == 'list':
        return [item for item in (value or '').split(',') if item]
    if col.kind == 'date' and value is not None:
        return value.isoformat()
    return value


def view(table, release, row):
    """A row as modules show it; users and aliases with their address as stored
    (local part in its case), domains without their name (the caller's key)."""
    shown_row = {}
    if table.key == 'email':
        shown_row['email'] = '%s@%s' % (row['localpart'], row['domain_name'])
    shown_row.update((col.option, shown(col, row[col.name])) for col in table.columns(release)
                     if col.name not in _DERIVED)
    return shown_row


class Declared(object):
    """One object as declared: ``fields`` holds the stored form of the given columns."""

    def __init__(self, kind, key, state, fields, **extra):
        self.kind = kind
        self.key = key
        self.state = state
        self.fields = fields
        self.alternatives = extra.get('alternatives')
        self.managers = extra.get('managers')
        self.force = extra.get('force', False)
        self.password = extra.get('password')
        self.password_hash = extra.get('password_hash')


def _fields(table, release, item, kind, name):
    fields = {}
    for col in table.columns('2024.06'):
        if col.name in _DERIVED or item.get(col.option) is None:
            continue
        if not release_at_least(release, col.since):
            raise InputError(kind, name, col.option, 'needs Mailu %s or later; this database is Mailu %s' % (col.since, release))
        fields[col.name] = _stored_value(col, item[col.option], kind, name)
    return fields


def parse_domain(item, release):
    name = inp.domain_name(item['name'], 'domain', item['name'], 'name')
    extra = dict(force=item.get('force') or False)
    if item.get('alternatives') is not None:
        extra['alternatives'] = set(inp.domain_name(alt, 'domain', name, 'alternatives') for alt in item['alternatives'])
    if item.get('managers') is not None:
        extra['managers'] = set(inp.address(m, 'domain', name, 'managers')[2] for m in item['managers'])
    return Declared('domains', name, item.get('state') or 'present', _fields(DOMAIN, release, item, 'domain', name), **extra)


def parse_user(item, release):
    localpart, domain, email = inp.address(item['email'], 'user', item['email'], 'email')
    fields = _fields(USER, release, item, 'user', email)
    fields.update(localpart=localpart, domain_name=domain)
    extra = {}
    if item.get('password') is not None and item.get('password_hash') is not None:
        raise InputError('user', email, 'password', 'and password_hash are mutually exclusive')
    if item.get('password') is not None:
        problem = check_password(item['password'])
        if problem:
            raise InputError('user', email, 'password', problem)
        extra['password'] = item['password']
    if item.get('password_hash') is not None:
        problem = check_hash(item['password_hash'])
        # Stored as Mailu's config-import stores it: without a {SCHEME} prefix.
        stored = strip_legacy_prefix(item['password_hash'])
        if problem is None and len(stored) > PASSWORD_LENGTH:
            problem = 'is longer than %d characters' % PASSWORD_LENGTH
        if problem:
            raise InputError('user', email, 'password_hash', problem)
        extra['password_hash'] = stored
    return Declared('users', email, item.get('state') or 'present', fields, **extra)


def parse_alias(item, release):
    # A pattern is checked against the alias' final wildcard flag when the plan knows it.
    localpart, domain, email = inp.address(item['email'], 'alias', item['email'], 'email',
                                           wildcard=item.get('wildcard') is not False)
    fields = _fields(ALIAS, release, item, 'alias', email)
    fields.update(localpart=localpart, domain_name=domain)
    return Declared('aliases', email, item.get('state') or 'present', fields)


_PARSERS = {'domains': parse_domain, 'users': parse_user, 'aliases': parse_alias}
SINGULAR = {'domains': 'domain', 'users': 'user', 'aliases': 'alias'}
_TABLES = {'domains': DOMAIN, 'users': USER, 'aliases': ALIAS}


def parse(declared, release):
    """{'domains': [item, ...], ...} -> {'domains': {key: Declared}, ...}."""
    parsed = {}
    for kind in KINDS:
        parsed[kind] = {}
        for item in declared.get(kind) or []:
            obj = _PARSERS[kind](item, release)
            if obj.key in parsed[kind]:
                raise InputError(SINGULAR[kind], obj.key, _TABLES[kind].key, 'is listed twice')
            parsed[kind][obj.key] = obj
    return parsed


# --------------------------------------------------------------------------------------
# Current state: one query per table, limited to the domains concerned unless a purge
# needs all of them.

class State(object):
    def __init__(self, cur, release, domains=None):
        self.release = release
        self.complete = domains is None
        where = '' if domains is None else ' WHERE domain_name = ANY(%(d)s)'
        args = {'d': sorted(domains or [])}
        self.domains = self._rows(cur, DOMAIN, release, '' if domains is None else ' WHERE name = ANY(%(d)s)', args)
        self.users = self._rows(cur, USER, release, where, args, extra=', password')
        self.aliases = self._rows(cur, ALIAS, release, where, args)
        self.alternatives = self._rows(cur, ALTERNATIVE, release,
                                       '' if domains is None else ' WHERE domain_name = ANY(%(d)s) OR name = ANY(%(d)s)', args)
        cur.execute('SELECT domain_name, user_email FROM manager' + where, args)
        self.managers = set(cur.fetchall())
        cur.execute('SELECT name FROM relay' + ('' if domains is None else ' WHERE name = ANY(%(d)s)'), args)
        self.relays = set(row[0] for row in cur.fetchall())
        cur.execute('SELECT to_regclass(%s) IS NOT NULL', ('public.%s' % MANAGED_TABLE,))
        self.has_managed_table = cur.fetchone()[0]
        self.managed_marks = {}
        if self.has_managed_table:
            cur.execute('SELECT kind, name, created_at FROM %s' % MANAGED_TABLE)
            self.managed_marks = dict(((kind, name), created) for kind, name, created in cur.fetchall())

    def managed(self, kind, key):
        """Whether the collection manages this existing object (created or declared it)."""
        row = getattr(self, kind)[key]
        return self.managed_marks.get((kind, key)) == row['created_at']

    @staticmethod
    def _rows(cur, table, release, where, args, extra=''):
        names = [table.key, 'created_at'] + [c.name for c in table.columns(release)]
        cur.execute('SELECT %s%s FROM %s%s' % (', '.join(names), extra, table.sql_name, where), args)
        names += [extra[2:]] if extra else []
        return dict((row[0], dict(zip(names, row))) for row in cur.fetchall())

    def view(self, kind, key):
        """An existing object as modules show it (diff, result, mailu_info); domains with
        their alternative names and managers."""
        shown_row = view(_TABLES[kind], self.release, getattr(self, kind)[key])
        if kind == 'domains':
            shown_row['alternatives'] = sorted(self.alternatives_of(key))
            shown_row['managers'] = sorted(self.managers_of(key))
        return shown_row

    def alternatives_of(self, domain):
        return set(name for name, row in self.alternatives.items() if row['domain_name'] == domain)

    def managers_of(self, domain):
        return set(email for dom, email in self.managers if dom == domain)


def scope(parsed, purge):
    """The domains whose rows the plan reads; None for all of them."""
    if purge:
        return None
    domains = set(parsed['domains'])
    for obj in parsed['domains'].values():
        domains |= obj.alternatives or set()
        domains |= set(m.split('@')[1] for m in obj.managers or ())
    for kind in ('users', 'aliases'):
        domains |= set(obj.fields['domain_name'] for obj in parsed[kind].values())
    return domains


# --------------------------------------------------------------------------------------
# The plan.

class Plan(object):
    def __init__(self):
        self.inserts = dict((t.name, []) for t in (DOMAIN, ALTERNATIVE, USER, ALIAS))
        self.updates = dict((t.name, []) for t in (DOMAIN, ALTERNATIVE, USER, ALIAS))
        self.deletes = dict((t.name, []) for t in (DOMAIN, ALTERNATIVE, USER, ALIAS))
        self.manager_inserts = []
        self.manager_deletes = []
        self.mark_inserts = []
        self.mark_deletes = []
        self.unmanaged = dict((kind, []) for kind in KINDS)
        self.create_managed_table = False
        self.report = dict((kind, dict(created=[], updated=[], removed=[])) for kind in KINDS)
        self.before = dict((kind, {}) for kind in KINDS)
        self.after = dict((kind, {}) for kind in KINDS)

    @property
    def changed(self):
        return any(any(v.values()) for v in self.report.values())


class Planner(object):
    """Compares declared objects with the current state and builds the writes.

    ``declared`` is the parsed form (see ``parse``); ``purge`` the kinds whose unlisted
    objects are removed.  Raises InputError/MailuError before anything is written.
    """

    def __init__(self, state, release, declared, purge=(), update_password='on_create',
                 hash_rounds=DEFAULT_CREDENTIAL_ROUNDS, want_diff=False, new_user=None,
                 purge_limit=DEFAULT_PURGE_LIMIT):
        self.state = state
        self.new_user = new_user or new_user_defaults(release)
        self.release = release
        self.declared = declared
        self.purge = set(purge)
        self.update_password = update_password
        self.hash_rounds = hash_rounds
        self.want_diff = want_diff
        self.today = datetime.date.today()
        self.purge_limit = purge_limit
        self.plan = Plan()

    # -- helpers ---------------------------------------------------------------------

    def _diff(self, kind, key, before, after):
        if self.want_diff:
            self.plan.before[kind][key] = before
            self.plan.after[kind][key] = after

    def _removed(self, kind, table, key):
        self.plan.deletes[table.name].append(key)
        self.plan.report[kind]['removed'].append(key)
        self._diff(kind, key, self.state.view(kind, key), {})

    def _final(self, kind):
        """Keys of ``kind`` that exist once the plan is applied (removals decided)."""
        current = getattr(self.state, kind)
        keep = set(key for key in current if key not in self._removing[kind])
        return keep | set(k for k, o in self.declared[kind].items() if o.state == 'present')

    # -- planning --------------------------------------------------------------------

    def build(self):
        self._decide_removals()
        final_domains = self._final('domains')
        final_users = self._final('users')
        final_aliases = self._final('aliases')
        for kind in ('users', 'aliases'):
            singular = SINGULAR[kind]
            clash = final_aliases if kind == 'users' else final_users
            for obj in self.declared[kind].values():
                if obj.state != 'present':
                    continue
                if obj.fields['domain_name'] not in final_domains:
                    raise InputError(singular, obj.key, 'email', 'is in domain %s, which does not exist' % obj.fields['domain_name'])
                if obj.key in clash:
                    raise InputError(singular, obj.key, 'email', 'is already used by an %s' % ('alias' if kind == 'users' else 'user'))
        self._plan_removals()
        self._plan_domains(final_domains, final_users)
        self._plan_users()
        self._plan_aliases()
        self._plan_marks()
        return self.plan

    def _decide_removals(self):
        """Which existing objects go: declared absent, purged, or inside a removed domain.

        purge only takes objects the collection manages; the others are reported as
        ``unmanaged`` and kept.  A purged domain that still holds kept users or aliases
        is refused, since its removal would take them.
        """
        self._removing = dict((kind, set()) for kind in KINDS)
        self._purged = dict((kind, set()) for kind in KINDS)
        for kind in KINDS:
            current = getattr(self.state, kind)
            for key, obj in self.declared[kind].items():
                if obj.state == 'absent' and key in current:
                    self._removing[kind].add(key)
            if kind in self.purge:
                for key in sorted(key for key in current if key not in self.declared[kind]):
                    if self.state.managed(kind, key):
                        self._purged[kind].add(key)
                    else:
                        self.plan.unmanaged[kind].append(key)
                self._removing[kind] |= self._purged[kind]
        for domain in sorted(self._removing['domains']):
            obj = self.declared['domains'].get(domain)
            users = [u for u, row in self.state.users.items() if row['domain_name'] == domain]
            aliases = [a for a, row in self.state.aliases.items() if row['domain_name'] == domain]
            staying = sorted(u for u in users if u not in self._removing['users'])
            for kind in ('users', 'aliases'):
                declared_inside = sorted(k for k, o in self.declared[kind].items()
                                         if o.state == 'present' and o.fields['domain_name'] == domain)
                if declared_inside:
                    raise InputError(SINGULAR[kind], declared_inside[0], 'email',
                                     'is declared present in domain %s, which is being removed' % domain)
            if obj is None:
                # Purged: the aliases it takes count as purged, and none that purge keeps.
                staying += sorted(a for a in aliases if a not in self._removing['aliases']
                                  and not self.state.managed('aliases', a))
                if staying:
                    raise InputError('domain', domain, 'name',
                                     'is not listed, so purge would remove it, but it still has %d user(s) or '
                                     'alias(es) that stay (%s%s): list the domain, or remove them first'
                                     % (len(staying), ', '.join(staying[:5]), ', ...' if len(staying) > 5 else ''))
                self._purged['aliases'] |= set(a for a in aliases if a not in self._removing['aliases'])
            elif staying and not obj.force:
                raise InputError('domain', domain, 'state',
                                 'cannot be absent: the domain still has %d user(s) (%s%s); remove them '
                                 'first or set force: true' % (len(staying), ', '.join(staying[:5]),
                                                               ', ...' if len(staying) > 5 else ''))
            self._removing['users'] |= set(users)
            self._removing['aliases'] |= set(aliases)
        self._check_purge()

    def _check_purge(self):
        """Refuses a purge that looks like a mistake in the inventory, before anything is
        written: one of a kind declared with no object present (a variable that rendered
        to []), or one that removes more than purge_limit objects (-1: no limit)."""
        if self.purge_limit == -1:
            return
        listed = '; '.join('%s %s' % (kind, ', '.join(sorted(keys))) for kind, keys in
                           ((kind, self._purged[kind]) for kind in KINDS) if keys)
        total = sum(len(keys) for keys in self._purged.values())
        for kind in KINDS:
            if kind in self.purge and self._purged[kind] and not any(
                    o.state == 'present' for o in self.declared[kind].values()):
                raise MailuError(
                    'purge refused, nothing was changed: purge names %s, but no %s is declared present, so it '
                    'would remove every %s the collection manages (%s). An empty list is usually a variable '
                    'that rendered to []; to remove them, declare them with state: absent, or set '
                    'purge_limit: -1' % (kind, SINGULAR[kind], SINGULAR[kind], listed))
        if total > self.purge_limit:
            raise MailuError(
                'purge refused, nothing was changed: it would remove %d object(s), more than purge_limit (%d): %s. '
                'Check the inventory; to remove them, raise purge_limit for this run (-1: no limit), or declare '
                'them with state: absent' % (total, self.purge_limit, listed))

    def _plan_marks(self):
        """The bookkeeping of what the collection manages: every object declared present
        becomes managed (a created one, or one made in Mailu's admin that the inventory
        now declares); a removed one stops being."""
        for kind in KINDS:
            current = getattr(self.state, kind)
            for key in sorted(self.declared[kind]):
                if self.declared[kind][key].state != 'present':
                    continue
                if key not in current:
                    self.plan.mark_inserts.append((kind, key, self.today))
                elif not self.state.managed(kind, key):
                    self.plan.mark_inserts.append((kind, key, current[key]['created_at']))
            self.plan.mark_deletes.extend((kind, key) for key in sorted(self._removing[kind])
                                          if (kind, key) in self.state.managed_marks)
        self.plan.create_managed_table = bool(self.plan.mark_inserts) and not self.state.has_managed_table

    def _plan_removals(self):
        for kind in KINDS:
            table = _TABLES[kind]
            for key in sorted(self._removing[kind]):
                self._removed(kind, table, key)

    def _domain_value(self, domain, column):
        """A domain's column as it is once the plan is applied."""
        obj = self.declared['domains'].get(domain)
        if obj is not None and obj.state == 'present' and column in obj.fields:
            return obj.fields[column]
        current = self.state.domains.get(domain)
        return DOMAIN.column(column).default if current is None else current[column]

    def _new_user_fields(self, obj):
        """What Mailu gives a new user from the deployment's settings, under the
        declared fields.  The quota is capped at the domain's max_quota_bytes, as
        Mailu's form for a new user is."""
        fields = dict(self.new_user)
        cap = self._domain_value(obj.fields['domain_name'], 'max_quota_bytes')
        if cap and fields['quota_bytes'] > cap:
            fields['quota_bytes'] = cap
        fields.update(obj.fields)
        return fields

    def _row_changes(self, table, obj, current):
        return dict((col, value) for col, value in obj.fields.items() if current[col] != value)

    def _create_row(self, table, key, fields):
        row = dict((c.name, c.default) for c in table.columns(self.release))
        row.update(fields)
        row[table.key] = key
        row['created_at'] = self.today
        return row

    def _plan_domains(self, final_domains, final_users):
        claimed = {}
        for obj in self.declared['domains'].values():
            for alt in obj.alternatives or ():
                if alt in final_domains:
                    raise InputError('domain', obj.key, 'alternatives', 'names %s, which is a domain itself' % alt)
                if alt in claimed:
                    raise InputError('domain', obj.key, 'alternatives', 'names %s, which is also listed for domain %s' % (alt, claimed[alt]))
                if alt in self.state.relays and alt not in self.state.alternatives:
                    raise InputError('domain', obj.key, 'alternatives', 'names %s, which is a relayed domain' % alt)
                claimed[alt] = obj.key
            for manager in obj.managers or ():
                if manager not in final_users:
                    raise InputError('domain', obj.key, 'managers', 'names %s, which is not a user' % manager)
        for alt, row in sorted(self.state.alternatives.items()):
            owner = claimed.get(alt, row['domain_name'])
            if owner != row['domain_name'] or row['domain_name'] in self._removing['domains']:
                # Moving an alternative to another domain is a removal and a creation:
                # it keeps the statement order simple when its old domain goes away.
                self.plan.deletes[ALTERNATIVE.name].append(alt)
        for key, obj in sorted(self.declared['domains'].items()):
            if obj.state == 'present':
                self._plan_domain(key, obj)
        # Mailu keeps one name space for domains, alternative names and relays.
        final_alternatives = dict((alt, row['domain_name']) for alt, row in self.state.alternatives.items()
                                  if alt not in self.plan.deletes[ALTERNATIVE.name])
        final_alternatives.update((row['name'], row['domain_name']) for row in self.plan.inserts[ALTERNATIVE.name])
        for key in self.plan.report['domains']['created']:
            if key in final_alternatives:
                raise InputError('domain', key, 'name', 'is already an alternative name of domain %s' % final_alternatives[key])
            if key in self.state.relays:
                raise InputError('domain', key, 'name', 'is already used by a relayed domain')

    def _plan_domain(self, key, obj):
        current = self.state.domains.get(key)
        alts_now = self.state.alternatives_of(key)
        managers_now = self.state.managers_of(key)
        alts = alts_now if obj.alternatives is None else obj.alternatives
        managers = managers_now if obj.managers is None else obj.managers
        for alt in sorted(alts - alts_now):
            self.plan.inserts[ALTERNATIVE.name].append(self._create_row(ALTERNATIVE, alt, {'domain_name': key}))
        self.plan.deletes[ALTERNATIVE.name].extend(sorted(alts_now - alts))
        self.plan.manager_inserts.extend((key, m) for m in sorted(managers - managers_now))
        self.plan.manager_deletes.extend((key, m) for m in sorted(managers_now - managers))
        if current is None:
            row = self._create_row(DOMAIN, key, obj.fields)
            self.plan.inserts[DOMAIN.name].append(row)
            self.plan.report['domains']['created'].append(key)
        else:
            changes = self._row_changes(DOMAIN, obj, current)
            if changes:
                self.plan.updates[DOMAIN.name].append((key, dict(changes, updated_at=self.today)))
            if not (changes or alts != alts_now or managers != managers_now):
                return
            row = dict(current, **changes)
            self.plan.report['domains']['updated'].append(key)
        if self.want_diff:
            after = view(DOMAIN, self.release, row)
            after.update(alternatives=sorted(alts), managers=sorted(managers))
            self._diff('domains', key, self.state.view('domains', key) if current else {}, after)

    def _plan_users(self):
        to_verify, to_hash, updates = [], [], []
        for key, obj in sorted(self.declared['users'].items()):
            if obj.state != 'present':
                continue
            current = self.state.users.get(key)
            if current is None:
                if obj.password is None and obj.password_hash is None:
                    raise InputError('user', key, 'password', 'or password_hash is required to create the user')
                row = self._create_row(USER, key, self._new_user_fields(obj))
                _check_reply_dates(obj, row, 'the default')
                row['password'] = obj.password_hash
                if obj.password is not None:
                    to_hash.append((row, obj.password))
                self.plan.inserts[USER.name].append(row)
                self.plan.report['users']['created'].append(key)
                continue
            changes = self._row_changes(USER, obj, current)
            _check_reply_dates(obj, dict(current, **changes), 'the stored value')
            if self.update_password == 'always':
                if obj.password is not None:
                    to_verify.append((changes, obj.password, current['password']))
                elif obj.password_hash is not None and obj.password_hash != strip_legacy_prefix(current['password']):
                    changes['password'] = obj.password_hash
            updates.append((key, current, changes))

        # Verify, then hash, on every core: the slow part of a run with plain passwords.
        verified = parallel_map(verify_password, [(plain, stored) for changes, plain, stored in to_verify])
        to_hash.extend((changes, plain) for (changes, plain, stored), ok in zip(to_verify, verified) if not ok)
        digests = parallel_map(hash_password, [(plain, self.hash_rounds) for target, plain in to_hash])
        for (target, plain), digest in zip(to_hash, digests):
            target['password'] = digest

        if self.want_diff:
            for row in self.plan.inserts[USER.name]:
                self._diff('users', row['email'], {}, dict(view(USER, self.release, row), password=PASSWORD_SET))
        for key, current, changes in updates:
            if not changes:
                continue
            self.plan.updates[USER.name].append((key, dict(changes, updated_at=self.today)))
            self.plan.report['users']['updated'].append(key)
            if self.want_diff:
                before = view(USER, self.release, current)
                after = view(USER, self.release, dict(current, **changes))
                if 'password' in changes:
                    before['password'], after['password'] = PASSWORD_SET, PASSWORD_NEW
                self._diff('users', key, before, after)

    def _plan_aliases(self):
        for key, obj in sorted(self.declared['aliases'].items()):
            if obj.state != 'present':
                continue
            current = self.state.aliases.get(key)
            wildcard = obj.fields.get('wildcard', current['wildcard'] if current else False)
            if not wildcard and '%' in obj.fields['localpart']:
                raise InputError('alias', key, 'email', 'has an invalid local part: %r (a pattern needs wildcard: true)'
                                 % obj.fields['localpart'])
            if current is None:
                if 'destination' not in obj.fields:
                    raise InputError('alias', key, 'destination', 'is required to create the alias')
                row = self._create_row(ALIAS, key, obj.fields)
                self.plan.inserts[ALIAS.name].append(row)
                self.plan.report['aliases']['created'].append(key)
                if self.want_diff:
                    self._diff('aliases', key, {}, view(ALIAS, self.release, row))
                continue
            changes = self._row_changes(ALIAS, obj, current)
            if changes:
                self.plan.updates[ALIAS.name].append((key, dict(changes, updated_at=self.today)))
                self.plan.report['aliases']['updated'].append(key)
                if self.want_diff:
                    self._diff('aliases', key, view(ALIAS, self.release, current),
                               view(ALIAS, self.release, dict(current, **changes)))


def _check_reply_dates(obj, row, undeclared):
    """Refuses an auto-reply that ends before it starts (Mailu would never send it), when
    the declaration sets one of its dates; ``undeclared`` says where the other came from."""
    start, end = row['reply_startdate'], row['reply_enddate']
    if end >= start or not ('reply_startdate' in obj.fields or 'reply_enddate' in obj.fields):
        return
    if 'reply_enddate' in obj.fields:
        origin = '' if 'reply_startdate' in obj.fields else ' (%s)' % undeclared
        raise InputError('user', obj.key, 'reply_enddate', 'is %s, before reply_startdate %s%s'
                         % (end.isoformat(), start.isoformat(), origin))
    raise InputError('user', obj.key, 'reply_startdate', 'is %s, after reply_enddate %s (%s)'
                     % (start.isoformat(), end.isoformat(), undeclared))


# --------------------------------------------------------------------------------------
# Writing the plan: children before parents on removal, parents before children on
# creation; COPY for new rows, one statement per changed-column set for updates.

def _delete(cur, queries, sql, keys):
    keys = sorted(set(keys))
    if keys:
        cur.execute(sql, (keys,))
        queries.append('%s -- %d key(s)' % (sql.replace('%s', 'keys'), len(keys)))


def _insert(cur, queries, table, release, rows):
    if not rows:
        return
    names = [table.key, 'created_at'] + [c.name for c in table.columns(release)]
    if table is USER:
        names.append('password')
    sql = 'COPY %s (%s) FROM STDIN' % (table.sql_name, ', '.join(names))
    with cur.copy(sql) as copy:
        for row in rows:
            copy.write_row([row[n] for n in names])
    queries.append('%s -- %d row(s)' % (sql, len(rows)))


def _update(cur, queries, table, updates):
    groups = {}
    for key, changes in updates:
        columns = tuple(sorted(changes))
        groups.setdefault(columns, []).append([changes[c] for c in columns] + [key])
    for columns, params in sorted(groups.items()):
        sql = 'UPDATE %s SET %s WHERE %s = %%s' % (
            table.sql_name, ', '.join('%s = %%s' % c for c in columns), table.key)
        cur.executemany(sql, params)
        queries.append('%s -- %d row(s)' % (sql, len(params)))


def apply(cur, plan, release):
    """Run the plan's statements; returns them (without values) for the module result."""
    queries = []
    users_gone = plan.deletes[USER.name]
    if plan.manager_deletes:
        cur.executemany('DELETE FROM manager WHERE domain_name = %s AND user_email = %s', plan.manager_deletes)
        queries.append('DELETE FROM manager WHERE domain_name = %%s AND user_email = %%s -- %d pair(s)' % len(plan.manager_deletes))
    _delete(cur, queries, 'DELETE FROM token WHERE user_email = ANY(%s)', users_gone)
    _delete(cur, queries, 'DELETE FROM "fetch" WHERE user_email = ANY(%s)', users_gone)
    _delete(cur, queries, 'DELETE FROM manager WHERE user_email = ANY(%s)', users_gone)
    _delete(cur, queries, 'DELETE FROM "user" WHERE email = ANY(%s)', users_gone)
    _delete(cur, queries, 'DELETE FROM alias WHERE email = ANY(%s)', plan.deletes[ALIAS.name])
    _delete(cur, queries, 'DELETE FROM alternative WHERE name = ANY(%s)', plan.deletes[ALTERNATIVE.name])
    _delete(cur, queries, 'DELETE FROM manager WHERE domain_name = ANY(%s)', plan.deletes[DOMAIN.name])
    _delete(cur, queries, 'DELETE FROM domain WHERE name = ANY(%s)', plan.deletes[DOMAIN.name])
    for table in (DOMAIN, ALTERNATIVE, USER, ALIAS):
        _insert(cur, queries, table, release, plan.inserts[table.name])
        _update(cur, queries, table, plan.updates[table.name])
    if plan.manager_inserts:
        cur.executemany('INSERT INTO manager (domain_name, user_email) VALUES (%s, %s)', plan.manager_inserts)
        queries.append('INSERT INTO manager (domain_name, user_email) VALUES (%%s, %%s) -- %d pair(s)' % len(plan.manager_inserts))
    _apply_marks(cur, queries, plan)
    return queries


def _apply_marks(cur, queries, plan):
    if plan.create_managed_table:
        cur.execute(_MANAGED_DDL)
        queries.append(_MANAGED_DDL)
    if plan.mark_deletes:
        sql = 'DELETE FROM %s WHERE kind = %%s AND name = %%s' % MANAGED_TABLE
        cur.executemany(sql, plan.mark_deletes)
        queries.append('%s -- %d row(s)' % (sql, len(plan.mark_deletes)))
    if plan.mark_inserts:
        sql = ('INSERT INTO %s (kind, name, created_at) VALUES (%%s, %%s, %%s) '
               'ON CONFLICT (kind, name) DO UPDATE SET created_at = EXCLUDED.created_at' % MANAGED_TABLE)
        cur.executemany(sql, plan.mark_inserts)
        queries.append('%s -- %d row(s)' % (sql, len(plan.mark_inserts)))


def new_user_defaults(release, default_quota=None, default_spam_threshold=None):
    """{column: value} a new user gets from the deployment's settings on ``release``,
    when the declaration leaves the column out.  ``None`` is Mailu's own default."""
    quota = DEFAULT_QUOTA.default if default_quota is None else inp.size(
        default_quota, 'option', 'default_quota', 'value')
    threshold = DEFAULT_SPAM_THRESHOLD.default
    if default_spam_threshold is not None:
        threshold = inp.integer(default_spam_threshold, 'option', 'default_spam_threshold', 'value', 0, 100)
        if not release_at_least(release, DEFAULT_SPAM_THRESHOLD.since) and threshold != DEFAULT_SPAM_THRESHOLD.default:
            raise InputError(
                'option', 'default_spam_threshold', 'value',
                'is %d, but this database is Mailu %s, which has no %s setting: its new users always get %d. '
                'Leave the option at %d (%s exists from Mailu %s on) and give spam_threshold per user instead'
                % (threshold, release, DEFAULT_SPAM_THRESHOLD.env, DEFAULT_SPAM_THRESHOLD.default,
                   DEFAULT_SPAM_THRESHOLD.default, DEFAULT_SPAM_THRESHOLD.env, DEFAULT_SPAM_THRESHOLD.since))
    return {DEFAULT_QUOTA.column: quota, DEFAULT_SPAM_THRESHOLD.column: threshold}


def check_password_policy(parsed, update_password, hash_rounds):
    """Refuses declared hashes that cannot stay in place with update_password=always.

    Mailu's login replaces any hash but bcrypt_sha256 at CREDENTIAL_ROUNDS by one that
    is; every later run would then write the declared hash back, and the next login
    replace it again.  Only the plain password can be compared with what Mailu wrote.
    """
    if update_password != 'always':
        return
    for key, obj in sorted(parsed['users'].items()):
        if obj.state != 'present' or obj.password_hash is None:
            continue
        if rewritten_at_login(obj.password_hash, hash_rounds):
            raise InputError(
                'user', key, 'password_hash',
                'is %s, which Mailu replaces with a bcrypt_sha256 hash at CREDENTIAL_ROUNDS (hash_rounds: %d) '
                'at the first login; with update_password=always every later run would write this hash back. '
                'Give this user password (plain text, verified against whatever hash is stored), or a hash '
                'of the form $bcrypt-sha256$v=2,t=2b,r=%d$..., or use update_password=on_create'
                % (_scheme_text(obj.password_hash, hash_rounds), hash_rounds, hash_rounds))


def _scheme_text(stored, rounds):
    scheme = hash_scheme(stored)
    if scheme == 'bcrypt_sha256':
        return 'a bcrypt_sha256 hash with other rounds than %d or in the old v1 format' % rounds
    return 'a %s hash' % scheme


def _verify(cur, plan):
    """Re-check, after the writes and just before COMMIT, the invariants that span rows.

    Writers of this collection hold the accounts lock, so nothing of theirs can slip in
    between the read and the writes; Mailu's admin does not take it.  Under READ
    COMMITTED each statement sees what other sessions committed until then, so these
    queries catch what the admin committed while this run was planning.  What it commits
    between this check and COMMIT cannot be seen: Mailu's admin has the same window
    between its own requests.
    """
    checks = (
        ('user', 'email', 'an alias', 'SELECT email FROM alias WHERE email = ANY(%s)',
         [row['email'] for row in plan.inserts[USER.name]]),
        ('alias', 'email', 'a user', 'SELECT email FROM "user" WHERE email = ANY(%s)',
         [row['email'] for row in plan.inserts[ALIAS.name]]),
        ('domain', 'name', 'an alternative name', 'SELECT name FROM alternative WHERE name = ANY(%s)',
         [row['name'] for row in plan.inserts[DOMAIN.name]]),
        ('domain', 'name', 'a relayed domain', 'SELECT name FROM relay WHERE name = ANY(%s)',
         [row['name'] for row in plan.inserts[DOMAIN.name]]),
        ('alternative name', 'name', 'a domain', 'SELECT name FROM domain WHERE name = ANY(%s)',
         [row['name'] for row in plan.inserts[ALTERNATIVE.name]]),
        ('alternative name', 'name', 'a relayed domain', 'SELECT name FROM relay WHERE name = ANY(%s)',
         [row['name'] for row in plan.inserts[ALTERNATIVE.name]]),
    )
    for singular, field, other, sql, keys in checks:
        if not keys:
            continue
        cur.execute(sql, (sorted(keys),))
        clash = sorted(row[0] for row in cur.fetchall())
        if clash:
            raise InputError(singular, clash[0], field,
                             'is already used by %s, written by another client (such as Mailu\'s admin) while '
                             'this run was planning; run again' % other)


def run(conn, release, declared, purge=(), update_password='on_create',
        hash_rounds=DEFAULT_CREDENTIAL_ROUNDS, check_mode=False, want_diff=False,
        default_quota=None, default_spam_threshold=None, lock_timeout=120,
        purge_limit=DEFAULT_PURGE_LIMIT):
    """Parse, plan and apply in one transaction; rolled back in check mode.

    A real run first takes the accounts lock (waiting at most ``lock_timeout`` seconds
    for another writer), so that it plans from what the previous writer committed; check
    mode reads without it.  Returns (plan, queries).  On any error the transaction is
    rolled back and the database is exactly as before, except when the connection is
    lost during COMMIT (``CommitOutcomeUnknown``).
    """
    parsed = parse(declared, release)
    if hash_rounds < 4 or hash_rounds > 31:
        raise InputError('option', 'hash_rounds', 'value', 'must be between 4 and 31, got %d' % hash_rounds)
    if purge_limit < -1:
        raise InputError('option', 'purge_limit', 'value', 'must be -1 (no limit) or more, got %d' % purge_limit)
    check_password_policy(parsed, update_password, hash_rounds)
    new_user = new_user_defaults(release, default_quota, default_spam_threshold)
    try:
        if check_mode:
            with conn.cursor() as cur:
                mailu_db.set_lock_timeout(cur, lock_timeout)
        else:
            mailu_db.lock_accounts(conn, lock_timeout)
        with conn.cursor() as cur:
            state = State(cur, release, scope(parsed, purge))
            plan = Planner(state, release, parsed, purge, update_password, hash_rounds, want_diff,
                           new_user, purge_limit).build()
            plan.declared = parsed
            plan.state = state
            queries = apply(cur, plan, release)
            _verify(cur, plan)
        if check_mode:
            conn.rollback()
    except BaseException:
        if not conn.closed:
            conn.rollback()
        raise
    if not check_mode:
        mailu_db.commit(conn, plan, queries)
    return plan, queries


__all__ = ['MailuError', 'InputError', 'run', 'parse', 'State', 'Planner', 'apply', 'view', 'shown']
