# -*- coding: utf-8 -*-
# Copyright (c) 2026, Nantral Platform sysadmin team
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Friendly inputs turned into the values Mailu stores, or a clear error.

Pure functions: no database, no Ansible.  Every error names the object and the field.
"""

from __future__ import annotations

import datetime
import decimal
import functools
import re
import traceback
import unicodedata

from ansible_collections.nantral.mailu.plugins.module_utils.mailu_schema import (
    EMAIL_LENGTH,
    LOCALPART_LENGTH,
    NAME_LENGTH,
)

IDNA_IMPORT_ERROR = None
try:
    import idna
except ImportError:
    IDNA_IMPORT_ERROR = traceback.format_exc()


class MailuError(Exception):
    """A failure the module reports as its message; nothing has been written."""


class InputError(MailuError):
    def __init__(self, kind, name, field, problem):
        self.kind = kind
        self.name = name
        self.field = field
        # A name with a newline or another control character in it is shown quoted, so
        # that the message stays on one line and shows what was given.
        shown = name if str(name).isprintable() else repr(name)
        super(InputError, self).__init__('%s %s: %s %s' % (kind, shown, field, problem))


# Every pattern is used with fullmatch: ``$`` also matches before a final newline, which
# let ``nl\n@example.org`` through.
# RFC 5322 atext plus dots; non-ASCII letters are allowed (SMTPUTF8).  Commas are
# excluded on purpose: Mailu stores address lists comma-separated.
_LOCALPART = re.compile(r"[\w!#$%&'*+/=?^`{|}~.-]+", re.UNICODE)
_LABEL = re.compile(r'(?!-)[a-z0-9-]{1,63}(?<!-)')

_SIZE = re.compile(r'([0-9]+(?:\.[0-9]+)?)\s*(?:([KMGT])(I)?)?B?', re.IGNORECASE)
_DATE = re.compile(r'[0-9]{4}-[0-9]{2}-[0-9]{2}')


@functools.lru_cache(maxsize=4096)
def _idna(text):
    """(punycode form, None) or (None, problem); cached: thousands of addresses share a
    handful of domains, and IDNA checks are slow."""
    try:
        ascii_name = idna.encode(text).decode('ascii').lower()
    except idna.IDNAError as exc:
        return None, 'is not a valid domain name (%s)' % exc
    labels = ascii_name.split('.')
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels):
        return None, 'is not a valid domain name: %r' % text
    if len(ascii_name) > NAME_LENGTH:
        return None, 'is longer than %d characters: %r' % (NAME_LENGTH, ascii_name)
    return ascii_name, None


def _bare(value, kind, name, field):
    """``value`` without surrounding whitespace (a YAML block scalar ends in a newline),
    refused when a space or a control character is left inside: none may reach a stored
    address or domain name."""
    text = value.strip()
    found = sorted(set(char for char in text if char.isspace() or unicodedata.category(char) == 'Cc'))
    if found:
        raise InputError(kind, name, field, 'must not contain spaces or control characters (%s), got %r'
                         % (', '.join('U+%04X' % ord(char) for char in found), value))
    return text


def domain_name(value, kind, name, field):
    """Lower-cased IDNA (punycode) form, as Mailu's IdnaDomain stores it."""
    if not isinstance(value, str) or not value.strip():
        raise InputError(kind, name, field, 'must be a domain name, got %r' % (value,))
    ascii_name, problem = _idna(_bare(value, kind, name, field).rstrip('.').lower())
    if problem:
        raise InputError(kind, name, field, problem)
    return ascii_name


def address(value, kind, name, field, wildcard=False):
    """(localpart, domain, email), all lower-cased with a punycode domain, and ``email``
    equal to localpart@domain: what Mailu's config-import stores (its email setter
    lower-cases the address, then splits it).  Mailu's lookups (``Domain.has_email``,
    the UI's uniqueness checks) compare lower-cased input with the stored local part, so
    a local part kept in its case would be invisible to them."""
    if not isinstance(value, str) or value.count('@') != 1:
        raise InputError(kind, name, field, 'must be an address localpart@domain, got %r' % (value,))
    localpart, domain = _bare(value, kind, name, field).split('@')
    localpart = localpart.lower()
    if not localpart or not _LOCALPART.fullmatch(localpart) or (not wildcard and ('%' in localpart)):
        raise InputError(kind, name, field, 'has an invalid local part: %r' % (value,))
    if len(localpart) > LOCALPART_LENGTH:
        raise InputError(kind, name, field, 'has a local part longer than %d characters: %r' % (LOCALPART_LENGTH, value))
    domain = domain_name(domain, kind, name, field)
    email = '%s@%s' % (localpart, domain)
    if len(email) > EMAIL_LENGTH:
        raise InputError(kind, name, field, 'is longer than %d characters' % EMAIL_LENGTH)
    return localpart, domain, email


def address_list(values, kind, name, field, length):
    """Mailu's CommaSeparatedList: sorted, de-duplicated, case kept, no spaces."""
    items = set()
    for value in values or []:
        if not isinstance(value, str) or value.strip().count('@') != 1:
            raise InputError(kind, name, field, 'must hold addresses localpart@domain, got %r' % (value,))
        item = _bare(value, kind, name, field)
        localpart, domain = item.split('@')
        if not localpart or not _LOCALPART.fullmatch(localpart):
            raise InputError(kind, name, field, 'has an invalid address: %r' % (value,))
        domain_name(domain, kind, name, field)
        items.add(item)
    joined = ','.join(sorted(items))
    if length is not None and len(joined) > length:
        raise InputError(kind, name, field, 'is longer than %d characters once joined with commas' % length)
    return joined


def size(value, kind, name, field):
    """Bytes from an integer or a size such as ``1G``, ``500M``, ``1.5GB`` (powers of
    1000, as Mailu's quotas) or ``2GiB`` (powers of 1024).

    The result must be a whole number of bytes: ``0.4`` was rounded to 0, which Mailu
    reads as no limit at all.  A float is taken only when it is whole (Jinja arithmetic
    such as ``{{ 1.5 * 1000**3 }}`` gives one); ``1.5`` is refused, not rounded.
    """
    if isinstance(value, bool):
        raise InputError(kind, name, field, 'must be a size such as 1G, 500M or a number of bytes, got %r' % (value,))
    if isinstance(value, int):
        number = value
    elif isinstance(value, float):
        if not value.is_integer():
            raise InputError(kind, name, field, 'must be a whole number of bytes, got %r' % (value,))
        number = int(value)
    else:
        match = _SIZE.fullmatch(str(value).strip())
        if not match:
            problem = 'must not be negative' if str(value).strip().startswith('-') else 'must be a size such as 1G, 500M or a number of bytes'
            raise InputError(kind, name, field, '%s, got %r' % (problem, value))
        number_text, unit, binary = match.groups()
        power = ' KMGT'.index(unit.upper()) if unit else 0
        # Decimal, not float, with every digit kept: byte counts beyond 2**53 must stay
        # exact, and a fraction of a byte must not be rounded away.
        with decimal.localcontext() as context:
            context.prec = len(number_text) + 16
            exact = decimal.Decimal(number_text) * (1024 if binary else 1000) ** power
        if exact != exact.to_integral_value():
            raise InputError(kind, name, field, 'must be a whole number of bytes, got %r (%s bytes)'
                             % (value, '{0:f}'.format(exact.normalize())))
        number = int(exact)
    if number < 0:
        raise InputError(kind, name, field, 'must not be negative, got %r' % (value,))
    if number > 2 ** 63 - 1:
        raise InputError(kind, name, field, 'is too large: %r' % (value,))
    return number


def date(value, kind, name, field):
    """A date written YYYY-MM-DD; Python's fromisoformat alone also takes 20240601 and
    2024-W22-6."""
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        return value
    text = str(value).strip()
    try:
        if not _DATE.fullmatch(text):
            raise ValueError(text)
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise InputError(kind, name, field, 'must be a date YYYY-MM-DD, got %r' % (value,))


def text(value, kind, name, field, length):
    if length is not None and value is not None and len(value) > length:
        raise InputError(kind, name, field, 'is longer than %d characters' % length)
    return value


def integer(value, kind, name, field, minimum, maximum=None):
    if value < minimum or (maximum is not None and value > maximum):
        bounds = 'at least %d' % minimum if maximum is None else 'between %d and %d' % (minimum, maximum)
        raise InputError(kind, name, field, 'must be %s, got %d' % (bounds, value))
    return value
