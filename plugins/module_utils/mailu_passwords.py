# -*- coding: utf-8 -*-
# Copyright (c) 2026, Nantral Platform sysadmin team
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Password hashes the way Mailu writes and verifies them.

Works with passlib 1.7.4 (Debian's python3-passlib, with bcrypt < 5) and with libpass
(the maintained fork, same ``passlib`` import name).  Hashing and verifying many
passwords is spread over every core of the host: bcrypt_sha256 is slow by design.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import traceback

from ansible_collections.nantral.mailu.plugins.module_utils.mailu_schema import (
    LEGACY_HASH_PREFIXES,
    PASSWORD_SCHEME,
    PLAIN_PASSWORD_LENGTH,
)

PASSLIB_IMPORT_ERROR = None
try:
    from passlib.context import CryptContext
    from passlib.exc import MissingBackendError
    from passlib.registry import list_crypt_handlers
except ImportError:
    PASSLIB_IMPORT_ERROR = traceback.format_exc()

# passlib 1.7.4 logs a harmless "(trapped) error reading bcrypt version" with bcrypt 4;
# keep it out of the module's output.
logging.getLogger('passlib.handlers.bcrypt').setLevel(logging.ERROR)

# passlib identifies these, but Mailu cannot verify them (no backend in its image) or
# refuses them: a user with such a hash could never log in.
_UNUSABLE_SCHEMES = frozenset(['argon2', 'scrypt'])
# Account-disabling markers that never verify any password.  passlib 1.7.4's
# unix_fallback even "identifies" every string (libpass dropped it), so it must not
# count as recognising a hash.
_NOT_HASHES = frozenset(['unix_fallback', 'unix_disabled', 'django_disabled'])

_CONTEXTS = {}


def _context(rounds):
    """The CryptContext Mailu's admin builds: every registered handler but scrypt and the
    plaintext ones, bcrypt_sha256 by default at CREDENTIAL_ROUNDS rounds."""
    if rounds not in _CONTEXTS:
        schemes = [name for name in list_crypt_handlers()
                   if name != 'scrypt' and not name.endswith('plaintext')]
        _CONTEXTS[rounds] = CryptContext(
            schemes=schemes, default=PASSWORD_SCHEME, deprecated='auto',
            bcrypt_sha256__rounds=rounds)
    return _CONTEXTS[rounds]


def strip_legacy_prefix(stored):
    """The hash without a Mailu <= 1.8 C({SCHEME}) prefix: what Mailu's login verifies
    and what its config-import stores."""
    for prefix in LEGACY_HASH_PREFIXES:
        if stored.startswith(prefix):
            return stored[len(prefix):]
    return stored


def hash_scheme(stored):
    """The passlib scheme of a stored hash as Mailu's login sees it, or None."""
    try:
        return _context(12).identify(strip_legacy_prefix(stored), required=False)
    except (ValueError, TypeError):
        return None


def check_hash(stored):
    """Why Mailu could not use ``stored`` as a password hash, or None when it can."""
    scheme = hash_scheme(stored)
    if scheme is None or scheme in _NOT_HASHES:
        return 'is not a password hash that Mailu recognises (expected e.g. $bcrypt-sha256$..., {BLF-CRYPT}$2b$..., $6$...)'
    if scheme in _UNUSABLE_SCHEMES:
        return 'is a %s hash, which Mailu cannot verify' % scheme
    # identify() only looks at the prefix; parsing finds a truncated or garbled hash,
    # on which passlib (and so Mailu's login) would raise an error.
    handler = _context(12).handler(scheme)
    if hasattr(handler, 'from_string'):
        try:
            parsed = handler.from_string(strip_legacy_prefix(stored))
        except (ValueError, TypeError) as exc:
            return 'is not a well-formed %s hash (%s)' % (scheme, exc)
        # passlib also parses a salt and settings without the digest (crypt(3)'s
        # "setting", such as $6$rounds=5000$salt$); no password ever matches one.
        if not getattr(parsed, 'checksum', True):
            return 'has no checksum: it is the settings and salt of a %s hash, not the hash of a password' % scheme
    return None


def check_password(plain):
    """Why Mailu could not use ``plain`` as a password, or None when it can."""
    if not plain:
        return 'must not be empty'
    if len(plain) > PLAIN_PASSWORD_LENGTH:
        return ('is longer than %d characters, the most passlib hashes or verifies: Mailu could never accept it'
                % PLAIN_PASSWORD_LENGTH)
    return None


def rewritten_at_login(stored, rounds):
    """True when Mailu's login replaces ``stored`` once it verifies: any scheme but
    bcrypt_sha256 (v2) at CREDENTIAL_ROUNDS = ``rounds``."""
    try:
        return bool(_context(rounds).needs_update(strip_legacy_prefix(stored)))
    except (ValueError, TypeError):
        return True


def hash_password(job):
    """``job`` is (plain text, rounds): the bcrypt_sha256 v2 string Mailu writes."""
    plain, rounds = job
    return _context(rounds).hash(plain)


def verify_password(job):
    """``job`` is (plain text, stored hash): True when Mailu's login would accept it."""
    plain, stored = job
    if not plain:
        return False
    try:
        return bool(_context(12).verify(plain, strip_legacy_prefix(stored)))
    except (ValueError, TypeError, MissingBackendError):
        # Unknown or malformed hash, a scheme without a backend (argon2), or a password
        # the backend refuses: Mailu's login would fail as well, so the password has to
        # be written.
        return False


def _cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def parallel_map(func, jobs):
    """``[func(job) for job in jobs]`` on every core.

    Processes rather than threads: bcrypt releases the GIL, but passlib's bcrypt_sha256
    does its own work in Python around it.  ``fork`` because an Ansible module runs from
    a zipped payload that a spawned interpreter could not import again.
    """
    jobs = list(jobs)
    workers = min(_cores(), len(jobs))
    if workers <= 1:
        return [func(job) for job in jobs]
    ctx = multiprocessing.get_context('fork')
    with ctx.Pool(workers) as pool:
        # One job at a time: each is a fraction of a second, and even chunks would leave
        # a core idle at the end.
        return pool.map(func, jobs, chunksize=1)
