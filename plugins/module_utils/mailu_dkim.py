# -*- coding: utf-8 -*-
# Copyright (c) 2026, Nantral Platform sysadmin team
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Mailu's DKIM keys: the file each release reads, the key as it writes it, and the
public part a DNS record publishes.

The engine behind the module ``nantral.mailu.mailu_dkim``; it imports nothing from
Ansible (only the standard library, ``cryptography`` and ``idna``).

What Mailu does (1.9.50 and 2024.06.57, ``core/admin/mailu/models.py`` and ``dkim.py``)
---------------------------------------------------------------------------------------
* A domain's key is the file ``DKIM_PATH`` = ``/dkim/{domain}.{selector}.key`` in the
  admin container (``/mailu/dkim`` on the host), ``selector`` being ``DKIM_SELECTOR``
  (``dkim`` by default) and ``domain`` the domain's name as the admin reads it back from
  the database: lower case, IDNA-decoded (Unicode). No row of the database refers to it.
* Only the admin reads it, for rspamd, which asks the admin for the key of the domain it
  signs for. 2024.06 signs an alternative domain with its domain's key; 1.9 does not sign
  alternatives. So keys exist for domains only, never for alternatives.
* Mailu generates RSA 2048 keys (public exponent 65537) written as unencrypted PKCS#8 PEM
  (``BEGIN PRIVATE KEY``), in both releases: 2024.06 through ``cryptography``; 1.9 through
  pyOpenSSL's ``dump_privatekey``, whose ``PEM_write_bio_PrivateKey`` writes PKCS#8 for RSA
  keys (checked with 1.9's pinned pyOpenSSL 21.0.0 and cryptography 35.0.0, OpenSSL
  1.1.1). Both releases also read a traditional (``BEGIN RSA PRIVATE KEY``) PEM.
* The admin of 1.9 runs as root; the admin of 2024.06 runs as ``mailu`` (uid and gid
  1000) after ``chown -R mailu:mailu /dkim`` at its start, so a key written while it runs
  must already belong to uid 1000. Mailu writes with a plain ``open()``: nothing keeps a
  key from being readable by others but this module (always mode 0600).

Public interface (stable: the DNS records of the collection use it)
-------------------------------------------------------------------
``key_filename(domain, selector='dkim')``
    The key's file name in the DKIM directory, for a domain name in any case and in
    Unicode or punycode form.
``public_key_b64(pem)``
    The base64 DER SubjectPublicKeyInfo of a PEM private key (``bytes`` or ``str``),
    without line breaks: the ``p=`` of the DKIM record, as Mailu's ``dkim_publickey``.
``dns_value(pem)``
    ``'v=DKIM1; k=rsa; p=<public_key_b64>'``: the TXT value Mailu shows for the record
    ``<selector>._domainkey.<domain>``, as one string (splitting it into strings of at most
    255 bytes is the zone writer's job).
``read_public_key(dkim_dir, domain, selector='dkim')``
    ``public_key_b64`` of the installed key, or None when the domain has no key file.
    Raises ``DkimError`` when the file cannot be read as a key.
``ensure_keys(...)``
    The module's engine (see its docstring).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import os
import re
import secrets
import stat
import time
import traceback

from ansible_collections.nantral.mailu.plugins.module_utils.mailu_input import InputError, domain_name

CRYPTOGRAPHY_IMPORT_ERROR = None
try:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
except ImportError:
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()

IDNA_IMPORT_ERROR = None
try:
    import idna
except ImportError:
    IDNA_IMPORT_ERROR = traceback.format_exc()

DEFAULT_DKIM_DIR = '/mailu/dkim'
DEFAULT_SELECTOR = 'dkim'
KEY_SIZE = 2048
PUBLIC_EXPONENT = 65537
KEY_MODE = 0o600
# RFC 8301: signers use at least 1024 bits; verifiers need not check keys over 4096 bits.
MIN_BITS, MAX_BITS = 1024, 4096
# The largest PEM an RSA 4096 key takes is about 3.3 kB; anything far larger is no key.
MAX_KEY_BYTES = 64 * 1024
LOCK_TIMEOUT = 60

# Who must own a key for the release's admin to read it (see the module docstring).
RELEASE_OWNERS = {
    '1.9': (0, 0),
    '2024.06': (1000, 1000),
}

# A selector is one or more DNS labels (RFC 6376 3.1); it is also part of a file name.
_SELECTOR = re.compile(r'(?:[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)'
                       r'(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*')

GENERATED = '(generated when applied)'


class DkimError(Exception):
    """A refusal; no key file was written."""


# ---------------------------------------------------------------- keys and names


def check_selector(selector):
    if not isinstance(selector, str) or not _SELECTOR.fullmatch(selector) or len(selector) > 253:
        raise DkimError('selector must be DNS labels (letters, digits, "-" and "_", separated by dots), '
                        'as in DKIM_SELECTOR, not %r' % (selector,))
    return selector


def _ascii_domain(domain):
    try:
        return domain_name(domain, 'domain', domain, 'name')
    except InputError as exc:
        raise DkimError(str(exc))


def key_filename(domain, selector=DEFAULT_SELECTOR):
    """``<domain>.<selector>.key``, the domain lower-cased and in Unicode, as Mailu's admin
    formats DKIM_PATH with the name it reads back from the database."""
    return '%s.%s.key' % (idna.decode(_ascii_domain(domain)), check_selector(selector))


def _as_bytes(pem):
    return pem.encode('utf-8') if isinstance(pem, str) else bytes(pem)


def load_private_key(pem, origin):
    """The RSA private key of an unencrypted PEM (PKCS#8 or traditional), or DkimError
    naming ``origin``. The messages never quote the PEM."""
    data = _as_bytes(pem)
    if len(data) > MAX_KEY_BYTES:
        raise DkimError('%s is %d bytes, too large for a private key' % (origin, len(data)))
    if b'ENCRYPTED' in data:
        raise DkimError('%s is encrypted: Mailu reads DKIM keys without a passphrase' % origin)
    try:
        key = serialization.load_pem_private_key(data.strip() + b'\n', password=None)
    except (ValueError, TypeError) as exc:
        # cryptography's messages name the problem, never the key's content.
        raise DkimError('%s is not a PEM private key (%s)' % (origin, str(exc).split('\n', 1)[0]))
    if not isinstance(key, rsa.RSAPrivateKey):
        raise DkimError('%s is not an RSA key: Mailu publishes DKIM keys as k=rsa' % origin)
    return key


def _public_der(key):
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _key_b64(key):
    return base64.b64encode(_public_der(key)).decode('ascii')


def _fingerprint(key):
    return 'SHA256:' + hashlib.sha256(_public_der(key)).hexdigest()


def public_key_b64(pem, origin='the key'):
    """The ``p=`` value of the DKIM record of a PEM private key (``bytes`` or ``str``);
    DkimError naming ``origin`` when it is none."""
    return _key_b64(load_private_key(pem, origin))


def dns_value(pem):
    """The DKIM TXT value of a PEM private key, as Mailu shows it, in one string."""
    return 'v=DKIM1; k=rsa; p=%s' % public_key_b64(pem)


def pem_for_mailu(key):
    """The key as both releases of Mailu write it: unencrypted PKCS#8 PEM."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def generate_key():
    return rsa.generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=KEY_SIZE)


# ---------------------------------------------------------------- files


def _read_regular(dir_fd, name):
    """The bytes of ``name`` in ``dir_fd`` when it is a regular file, None when absent;
    DkimError for a symlink or anything else (never followed, never opened for good)."""
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None, None
    if not stat.S_ISREG(info.st_mode):
        return info, None
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    with os.fdopen(fd, 'rb') as handle:
        return os.fstat(handle.fileno()), handle.read(MAX_KEY_BYTES + 1)


def read_public_key(dkim_dir, domain, selector=DEFAULT_SELECTOR):
    """``public_key_b64`` of the domain's installed key, None when it has none."""
    name = key_filename(domain, selector)
    path = os.path.join(dkim_dir, name)
    fd = os.open(dkim_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        info, data = _read_regular(fd, name)
    finally:
        os.close(fd)
    if info is None:
        return None
    if data is None:
        raise DkimError('%s is not a regular file' % path)
    return _key_b64(load_private_key(data, path))


def _write(dir_fd, name, data, owner, group):
    """A new temporary file beside ``name`` (O_EXCL, O_NOFOLLOW, mode 0600 from the start),
    owned by ``owner``:``group``, fsync'ed, then renamed over ``name``."""
    temp = '.%s.%s.tmp' % (name, secrets.token_hex(6))
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, KEY_MODE, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, 'wb') as handle:
            fd = None
            os.fchmod(handle.fileno(), KEY_MODE)  # whatever the umask
            os.fchown(handle.fileno(), owner, group)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        if fd is not None:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(temp, dir_fd=dir_fd)
        raise


def _repair(dir_fd, name, owner, group):
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        os.fchmod(fd, KEY_MODE)
        os.fchown(fd, owner, group)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _locked(dkim_dir):
    """The DKIM directory's file descriptor, under an exclusive flock (two runs at once
    plan one after the other)."""
    try:
        fd = os.open(dkim_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise DkimError('cannot open the DKIM directory %s (the mailu_stack role creates it): %s; '
                        'no key was written' % (dkim_dir, exc.strerror or exc))
    try:
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise DkimError('another run has held %s for %d s; no key was written' % (dkim_dir, LOCK_TIMEOUT))
                time.sleep(0.2)
        yield fd
    finally:
        os.close(fd)


# ---------------------------------------------------------------- the engine


def _describe(path, key, owner, group, mode):
    """What the result and the diff show of a key: never private material."""
    if key is None:
        public, fingerprint, bits = GENERATED, GENERATED, KEY_SIZE
    else:
        public, fingerprint, bits = _key_b64(key), _fingerprint(key), key.key_size
    return dict(path=path, public_key=public, fingerprint=fingerprint, bits=bits,
                owner=owner, group=group, mode='%04o' % mode)


def _domains(entries):
    """The ASCII names of the domains that must have a key: ``entries`` are names, or
    dicts in the form of mailu_accounts' ``domains`` (``name``, ``state``; other keys
    ignored); a domain with ``state: absent`` keeps its key file, as in Mailu."""
    names = []
    for entry in entries or []:
        if isinstance(entry, dict):
            if 'name' not in entry:
                raise DkimError('domains: every entry needs a name, got one with keys %s' % ', '.join(sorted(entry)))
            if entry.get('state', 'present') == 'absent':
                continue
            entry = entry['name']
        names.append(_ascii_domain(entry))
    return names


def _given(keys):
    """{ascii domain: (key, replace)} of the keys the inventory gives."""
    given = {}
    for entry in keys or []:
        name = _ascii_domain(entry.get('domain'))
        if name in given:
            raise DkimError('keys: %s is given twice' % name)
        key = load_private_key(entry.get('private_key') or '', 'keys: the private_key of %s' % name)
        if not MIN_BITS <= key.key_size <= MAX_BITS:
            raise DkimError('keys: the private_key of %s has %d bits; DKIM keys have %d to %d (Mailu makes %d)'
                            % (name, key.key_size, MIN_BITS, MAX_BITS, KEY_SIZE))
        given[name] = (key, bool(entry.get('replace')))
    return given


def ensure_keys(dkim_dir=DEFAULT_DKIM_DIR, domains=(), keys=(), selector=DEFAULT_SELECTOR,
                owner=0, group=0, check_mode=False, generate=generate_key):
    """Make every domain of ``domains`` and of ``keys`` have its key in ``dkim_dir``.

    * No key file: the given key (``keys``: dicts with ``domain``, ``private_key`` and
      ``replace``), else a new RSA 2048 key, written as Mailu writes keys.
    * A key file: kept, whatever its PEM form. A given key with another public key
      replaces it only with ``replace``; without it the run is refused. A file that is no
      RSA private key is refused too, unless a given key replaces it.
    * Every key ends owned by ``owner``:``group`` in mode 0600.

    Everything is checked before the first write: a refusal names every domain at fault
    and writes nothing. Returns a dict: ``changed``, ``domains`` ({ascii domain: description,
    with ``action`` = kept, created, generated, replaced or repaired}), ``changes``
    (one line per changed domain), ``warnings`` and ``diff`` (before/after of the changed
    keys). Nothing returned holds private material; in check mode a key to be generated
    shows ``GENERATED`` as its public key.
    """
    check_selector(selector)
    given = _given(keys)
    names = sorted(set(_domains(domains)) | set(given))
    warnings = ['%s: the given key has %d bits; Mailu makes %d-bit keys and RFC 8301 asks signers for 2048 or more'
                % (name, key.key_size, KEY_SIZE) for name, (key, unused) in sorted(given.items()) if key.key_size < KEY_SIZE]
    if check_mode and not os.path.lexists(dkim_dir):
        # A first run in check mode: the stack's role has not made the directory yet.
        warnings.append('%s does not exist yet: every key would be new' % dkim_dir)
        context = contextlib.nullcontext(None)
    else:
        context = _locked(dkim_dir)
    with context as dir_fd:
        plans, problems = [], []
        for name in names:
            filename = key_filename(name, selector)
            path = os.path.join(dkim_dir, filename)
            try:
                info, data = _read_regular(dir_fd, filename) if dir_fd is not None else (None, None)
            except OSError as exc:
                problems.append('%s: cannot read %s: %s' % (name, path, exc.strerror or exc))
                continue
            plan = _plan(name, path, info, data, given.get(name), owner, group)
            if isinstance(plan, str):
                problems.append(plan)
            else:
                plans.append(plan)
        if problems:
            raise DkimError('; '.join(problems) + '; no key was written')
        if not check_mode:
            for plan in plans:
                if plan['action'] == 'generated':
                    plan['key'] = generate()
                    plan['after'] = _describe(plan['path'], plan['key'], owner, group, KEY_MODE)
                if plan['action'] in ('created', 'generated', 'replaced'):
                    _write(dir_fd, plan['filename'], pem_for_mailu(plan['key']), owner, group)
                elif plan['action'] == 'repaired':
                    _repair(dir_fd, plan['filename'], owner, group)
            if any(plan['action'] != 'kept' for plan in plans):
                os.fsync(dir_fd)
    result = dict(changed=False, domains={}, changes=[], warnings=warnings, diff=dict(before={}, after={}))
    for plan in plans:
        result['domains'][plan['name']] = dict(plan['after'], action=plan['action'], selector=selector)
        if plan['action'] != 'kept':
            result['changed'] = True
            result['changes'].append(plan['change'])
            if plan['before']:
                result['diff']['before'][plan['name']] = plan['before']
            result['diff']['after'][plan['name']] = plan['after']
    return result


def _plan(name, path, info, data, given, owner, group):
    """What to do with one domain's key: a dict, or a string saying why it is refused."""
    plan = dict(name=name, path=path, filename=os.path.basename(path), before={})
    if info is not None and data is None:
        return '%s: %s is not a regular file (a symlink, perhaps); remove it' % (name, path)
    installed, installed_problem = None, None
    if data is not None:
        plan['before'] = _describe(path, None, info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode))
        try:
            installed = load_private_key(data, path)
            plan['before'] = _describe(path, installed, info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode))
        except DkimError as exc:
            installed_problem = str(exc)
            plan['before'].update(public_key='(unreadable)', fingerprint='(unreadable)', bits=None)
    key, replace = given if given else (None, False)

    if installed is None and installed_problem is None:
        action = 'created' if key is not None else 'generated'
        plan['change'] = '%s: %s key written to %s' % (
            name, 'the given' if key is not None else 'a new RSA %d' % KEY_SIZE, path)
    elif installed_problem is not None:
        if key is None or not replace:
            return ('%s: %s; give the domain\'s key in keys with replace: true, or remove the file'
                    % (name, installed_problem))
        action = 'replaced'
        plan['change'] = '%s: the unreadable %s replaced by the given key' % (name, path)
    elif key is not None and _public_der(key) != _public_der(installed):
        if not replace:
            return ('%s: the given key (%s) is not the installed one (%s, %s); set replace: true to '
                    'install it (the DKIM record must then be published again)'
                    % (name, _fingerprint(key), _fingerprint(installed), path))
        action = 'replaced'
        plan['change'] = '%s: key %s replaced by the given key %s in %s' % (
            name, _fingerprint(installed), _fingerprint(key), path)
    else:
        key = installed
        mode = stat.S_IMODE(info.st_mode)
        if (info.st_uid, info.st_gid, mode) == (owner, group, KEY_MODE):
            action = 'kept'
        else:
            action = 'repaired'
            plan['change'] = '%s: %s owner %d:%d mode %04o set to %d:%d %04o' % (
                name, path, info.st_uid, info.st_gid, mode, owner, group, KEY_MODE)
    plan.update(action=action, key=key)
    plan['after'] = _describe(path, key, owner, group, KEY_MODE)
    return plan
