# -*- coding: utf-8 -*-
# Copyright (c) 2026, Nantral Platform sysadmin team
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Everything the collection knows about Mailu's database schema, in one place.

The rest of the code asks this module which revisions exist, which columns a table has
in a given version, how long they may be and what Mailu's own code writes into them when
a row is created.  Sources: Mailu's Alembic migrations and models, 1.9 and 2024.06.
"""

from __future__ import annotations

import datetime

# Alembic head revision -> Mailu release line.  The order is the upgrade order.
SCHEMA_HEADS = {
    '3b7eee912b41': '1.9',
    '7ac252f2bbbf': '2.0',
    '0ba45693748d': '2024.06',
}
RELEASES = tuple(SCHEMA_HEADS.values())


def release_at_least(release, minimum):
    """True when release line ``release`` has everything ``minimum`` introduced."""
    return RELEASES.index(release) >= RELEASES.index(minimum)


class Column(object):
    """One Mailu column the collection manages.

    ``option`` is the name users see (module option, diff key, info key); ``kind`` says
    how a value is shown and compared: str, text, bool, int, bytes (a size in bytes),
    list (Mailu's comma-separated list) or date.  ``default`` is what Mailu's ORM writes
    on creation; ``since`` the first release line that has the column.
    """

    def __init__(self, name, kind, default, length=None, option=None, since='1.9', nullable=False):
        self.name = name
        self.kind = kind
        self.default = default
        self.length = length
        self.option = option or name
        self.since = since
        self.nullable = nullable


class Table(object):
    def __init__(self, name, key, columns):
        self.name = name
        # "user" is a reserved word in SQL.
        self.sql_name = '"%s"' % name
        self.key = key
        self._columns = columns
        self._by_release = dict((release, [c for c in columns if release_at_least(release, c.since)])
                                for release in RELEASES)

    def columns(self, release):
        """The managed columns present in ``release``, key column excluded."""
        return self._by_release[release]

    def column(self, name):
        for col in self._columns:
            if col.name == name:
                return col
        raise KeyError(name)

    def by_option(self):
        return dict((c.option, c) for c in self._columns)


COMMENT = Column('comment', 'str', '', length=255, nullable=True)

DOMAIN = Table('domain', 'name', [
    Column('max_users', 'int', -1),
    Column('max_aliases', 'int', -1),
    Column('max_quota_bytes', 'bytes', 0, option='max_quota'),
    Column('signup_enabled', 'bool', False),
    COMMENT,
])

USER = Table('user', 'email', [
    Column('localpart', 'str', None, length=80),
    Column('domain_name', 'str', None, length=80),
    Column('quota_bytes', 'bytes', 1000000000, option='quota'),
    Column('global_admin', 'bool', False),
    Column('enabled', 'bool', True),
    Column('enable_imap', 'bool', True),
    Column('enable_pop', 'bool', True),
    Column('forward_enabled', 'bool', False),
    Column('forward_destination', 'list', '', length=255, nullable=True),
    Column('forward_keep', 'bool', True),
    Column('reply_enabled', 'bool', False),
    Column('reply_subject', 'str', None, length=255, nullable=True),
    Column('reply_body', 'text', None, nullable=True),
    Column('reply_startdate', 'date', datetime.date(1900, 1, 1)),
    Column('reply_enddate', 'date', datetime.date(2999, 12, 31)),
    Column('displayed_name', 'str', '', length=160),
    Column('spam_enabled', 'bool', True),
    Column('spam_threshold', 'int', 80, nullable=True),
    # The database default is false but Mailu's ORM writes true: follow the ORM.
    Column('spam_mark_as_read', 'bool', True, since='2.0'),
    Column('allow_spoofing', 'bool', False, since='2.0'),
    Column('change_pw_next_login', 'bool', False, since='2024.06'),
    COMMENT,
])

ALIAS = Table('alias', 'email', [
    Column('localpart', 'str', None, length=80),
    Column('domain_name', 'str', None, length=80),
    Column('destination', 'list', '', length=1023),
    Column('wildcard', 'bool', False),
    COMMENT,
])

ALTERNATIVE = Table('alternative', 'name', [
    Column('domain_name', 'str', None, length=80, nullable=True),
    COMMENT,
])

# Key lengths, checked before anything is written.
NAME_LENGTH = 80          # domain.name, alternative.name, every domain_name
EMAIL_LENGTH = 255        # user.email, alias.email, manager.user_email
LOCALPART_LENGTH = 80
PASSWORD_LENGTH = 255
# passlib's MAX_PASSWORD_SIZE, which Mailu's admin image leaves at its default: passlib
# refuses to hash or verify a longer plain password, so Mailu's login never accepts one.
PLAIN_PASSWORD_LENGTH = 4096

# What Mailu writes for a password: passlib bcrypt_sha256 v2, CREDENTIAL_ROUNDS rounds.
PASSWORD_SCHEME = 'bcrypt_sha256'
DEFAULT_CREDENTIAL_ROUNDS = 12
# Prefixes of Mailu <= 1.8 that Mailu's login still strips before passlib identifies
# the hash, and that config-import strips before it stores one (the same six, matched
# case-sensitively, in 1.9 and 2024.06).
LEGACY_HASH_PREFIXES = ('{PBKDF2}', '{BLF-CRYPT}', '{SHA512-CRYPT}', '{SHA256-CRYPT}', '{MD5-CRYPT}', '{CRYPT}')


class Setting(object):
    """A deployment setting (mailu.env) that gives a new user a column's value.

    ``default`` is Mailu's value when the variable is absent; ``since`` the first release
    line whose admin reads it.  Before that, every new user gets ``default``.
    """

    def __init__(self, env, column, default, since):
        self.env = env
        self.column = column
        self.default = default
        self.since = since


# DEFAULT_QUOTA exists in every release line.  2024.06's admin form for a new user starts
# at it, capped at the domain's max_quota_bytes (1.9 and 2.0 use it for sign-ups only;
# their form starts at 10^9 and cannot exceed the cap either).  DEFAULT_SPAM_THRESHOLD is
# the ORM's default for spam_threshold from 2.0 on; 1.9 always writes 80.
DEFAULT_QUOTA = Setting('DEFAULT_QUOTA', 'quota_bytes', 1000000000, since='1.9')
DEFAULT_SPAM_THRESHOLD = Setting('DEFAULT_SPAM_THRESHOLD', 'spam_threshold', 80, since='2.0')
