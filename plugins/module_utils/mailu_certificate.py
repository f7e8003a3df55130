# -*- coding: utf-8 -*-
# Copyright (c) 2026, Nantral Platform sysadmin team
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Hand a certificate (Certbot lineage or plain files) over to Mailu's front.

The one engine behind the module ``nantral.mailu.mailu_certificate`` and the Certbot
deploy hook.  It imports nothing from Ansible: only the standard library,
``cryptography`` (Debian's ``python3-cryptography``, 3.4 or later) and, only when
front is reloaded, ``docker`` (``python3-docker``), so that the hook can run it with
the system ``python3``, by importing this file or as a command::

    python3 mailu_certificate.py --lineage /etc/letsencrypt/live/mail.example.org \\
        --hostname mail.example.org [--certs-dir /mailu/certs] [--check]

Public interface
----------------
``handoff(source, certs_dir='/mailu/certs', hostnames=(), min_days_valid=7,
front='mailu-front-1', reload_doveadm=None, cert_filename='cert.pem',
key_filename='key.pem', keep_previous=True, check_mode=False) -> HandoffResult``

1. Reads ``source``: a Certbot lineage directory (``live/NAME``: its ``fullchain.pem``
   and ``privkey.pem``, symlinks resolved, the real files read), or a pair
   ``(certificate_path, private_key_path)``, the certificate file holding the full chain.
   A file over ``MAX_SOURCE_BYTES`` (1 MiB) is refused; the PEM scan is linear in the
   size of its input, whatever it holds.
2. Validates it, all problems at once, before anything is touched: the key matches
   the leaf certificate; each certificate is issued (and, for RSA PKCS#1 v1.5, ECDSA
   and EdDSA, signed) by the next one, and a leaf that is not self-signed is followed
   by its issuer; every certificate is valid now; the leaf is still valid in
   ``min_days_valid`` days; the leaf's DNS names (subjectAltName only, wildcards as
   in RFC 6125: ``*`` alone as the leftmost label, matching exactly one label) cover
   every name in ``hostnames`` (an empty list skips that check).
   Before all this, ``cert_filename``, ``key_filename`` and their ``.previous`` must be
   four different files (one file for chain and key would lose the key).
3. Takes an exclusive lock (flock) on ``certs_dir`` for the steps that follow, so
   that the role and the hook never interleave; waits up to ``LOCK_TIMEOUT`` s.
   Compares with the pair installed in ``certs_dir`` by content (the chain's DER
   certificates, and whether the installed key belongs to the new leaf), never by
   dates.  The pair is written only when it differs, or when the files need repair:
   not regular files (a symlink, say) or a key not in mode 0600.
4. Installs as real files: each one written to a new temporary file (O_EXCL,
   O_NOFOLLOW) in the same directory, fsync'ed, then renamed over the old one; chain
   mode 0644, key 0600.  Every file is reached through a file descriptor of the certs
   directory, its subdirectories opened without following symlinks (a symlinked one is
   refused): no write leaves ``certs_dir``, whatever its entries point to.  When the
   pair changes, the old one is kept as ``<name>.previous`` (key 0600; the chain 0600
   too when it held anything but certificates, a key say) unless ``keep_previous`` is
   false.  If a step fails, the files already replaced are put back.
5. Reloads front without restarting it (``front``: a container name, a
   ``DockerFront``, or None for no reload; tests pass any object with the
   ``find()``, ``run()`` and ``describe()`` of ``DockerFront``): ``nginx -s reload``, then
   ``doveadm reload`` for the Dovecot proxy that front runs in Mailu 2024.06 (its own
   certificate watcher fails there in 2024.06.0 to .13).  ``reload_doveadm=None``
   runs it when front has a ``doveadm`` command (2024.06: yes; 1.9 and 2.0: no).
   The container is looked up by name, then by Compose labels (``DockerFront``'s
   project, ``mailu`` by default, service ``front``).  Docker is asked before anything is written, and only when
   the pair changes.  No front container, or a stopped one: the new pair stays
   installed (front reads it when it starts) and a warning says so.  A reload
   command that fails puts every file back as it was, reloads front again, and
   raises ``ReloadError``.

In check mode, steps 1 to 3 run; nothing is written, Docker is not asked.

Exceptions, all ``CertificateError`` (the message says what is wrong and that the
installed pair was left or put back as it was): ``SourceError`` (the source cannot be
read or parsed), ``ValidationError`` (``.problems``: one sentence each),
``FrontError`` (Docker or the Docker SDK cannot be reached; nothing written),
``InstallError`` (writing failed; files put back), ``ReloadError`` (``.result``:
the state after the files were put back).

``HandoffResult``: ``changed``, ``cert_path``, ``key_path``, ``before`` and
``installed`` (``describe()`` of the pair before and after the run: fingerprint,
names, dates; never key material), ``changes`` (why the files were written),
``reloaded`` (the commands run), ``warnings``, ``source`` (the real files read);
``as_dict()`` and ``diff()`` for JSON output.

``read_state(path)``, ``record_state(path, source, by, error=None)`` and
``describe_state(state)``: the JSON state file where the Certbot deploy hook, its retry
service and the module record a refused handoff (``status``: ``refused`` or ``ok``),
since Certbot itself ignores a deploy hook's failure.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import errno
import fcntl
import json
import os
import re
import secrets
import stat
import sys
import time
import traceback

CRYPTOGRAPHY_IMPORT_ERROR = None
try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
except ImportError:
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()

DEFAULT_CERTS_DIR = '/mailu/certs'
# Mailu's TLS_CERT_FILENAME and TLS_KEYPAIR_FILENAME defaults, relative to /certs.
DEFAULT_CERT_FILENAME = 'cert.pem'
DEFAULT_KEY_FILENAME = 'key.pem'
DEFAULT_FRONT_CONTAINER = 'mailu-front-1'
DEFAULT_COMPOSE_PROJECT = 'mailu'
# Let's Encrypt certificates live 90 days and Certbot renews them 30 days before
# the end: a week still catches a stale lineage in good time.
DEFAULT_MIN_DAYS_VALID = 7
PREVIOUS_SUFFIX = '.previous'
# Where the Certbot deploy hook, its retry and the module record the last handoff's outcome.
DEFAULT_STATE_FILE = '/var/lib/nantral-mailu/certificate-handoff.json'
STATE_OK = 'ok'
STATE_REFUSED = 'refused'
# Inside Certbot's live/NAME directory.
LINEAGE_CERTIFICATE = 'fullchain.pem'
LINEAGE_PRIVATE_KEY = 'privkey.pem'

# Seconds to wait for another handoff (the role, the hook) to finish with the certs directory.
LOCK_TIMEOUT = 60
CERT_MODE = 0o644
KEY_MODE = 0o600
NGINX_RELOAD = ('nginx', '-s', 'reload')
DOVEADM_RELOAD = ('doveadm', 'reload')

# A source file larger than this is no certificate or key file (a full chain is a few kB; a
# chain with a whole CA bundle appended stays well below it).
MAX_SOURCE_BYTES = 1024 * 1024
_PEM_BEGIN = b'-----BEGIN '
_PEM_END = b'-----END '
# Matched only on a short slice at a known position: constant work per block.
_PEM_HEADER = re.compile(br'-----BEGIN ([A-Z0-9 ]{1,64})-----\r?\n')
_PEM_TRAILER = re.compile(br'-----END ([A-Z0-9 ]{1,64})-----')
_PEM_LINE = 80
_CERTIFICATE_LABELS = ('CERTIFICATE', 'X509 CERTIFICATE')


class CertificateError(Exception):
    """A refusal or failure; the message says what, and what became of the files."""


class SourceError(CertificateError):
    """The source cannot be read or holds no usable certificate or key."""


class ValidationError(CertificateError):
    def __init__(self, source, problems):
        self.problems = list(problems)
        super(ValidationError, self).__init__(
            'refusing the certificate from %s, the installed pair is left as it is: %s'
            % (source, '; '.join(self.problems)))


class FrontError(CertificateError):
    """Front's Docker engine cannot be asked; nothing was written."""


class InstallError(CertificateError):
    """Writing the files failed; those already replaced were put back."""


class ReloadError(CertificateError):
    def __init__(self, message, result):
        self.result = result
        super(ReloadError, self).__init__(message)


# ---------------------------------------------------------------- reading


def _pem_blocks(data, wanted):
    """The PEM blocks of ``data`` whose label passes ``wanted`` (a predicate), in file order.

    Linear in ``len(data)``: every byte is looked at a bounded number of times (one
    ``find`` of the next BEGIN, one ``find`` of the END after it, one ``rfind`` back to the
    last BEGIN before that END), and no search starts again behind a block already
    passed.  A BEGIN line without its END (another BEGIN comes first, or the file ends)
    starts no block; neither does an END whose label is not its BEGIN's.  Only ``find``,
    ``rfind`` and slicing are used on ``data`` (the tests count the bytes they cover).
    """
    blocks = []
    position = 0
    while True:
        begin = data.find(_PEM_BEGIN, position)
        if begin < 0:
            break
        end = data.find(_PEM_END, begin)
        if end < 0:
            break  # no END anywhere after: no block can follow
        begin = data.rfind(_PEM_BEGIN, begin, end)  # the BEGIN lines before it are unterminated
        position = end + len(_PEM_END)
        header = _PEM_HEADER.match(data[begin:begin + _PEM_LINE])
        trailer = _PEM_TRAILER.match(data[end:end + _PEM_LINE])
        if header and trailer and header.group(1) == trailer.group(1):
            position = end + trailer.end()
            if wanted(header.group(1).decode('ascii')):
                blocks.append(data[begin:position])
    return blocks


def holds_private_key(data):
    """Whether ``data`` may hold a private key: anything but PEM certificates (and text
    around them without the word PRIVATE) counts as one."""
    if b'PRIVATE' in data.upper():
        return True
    certificates = _pem_blocks(data, lambda label: label in _CERTIFICATE_LABELS)
    return not certificates or len(certificates) != len(_pem_blocks(data, lambda label: True))


def load_chain(data, origin):
    """The certificates of a PEM file, in file order; other PEM blocks are ignored."""
    blocks = _pem_blocks(data, lambda label: label in _CERTIFICATE_LABELS)
    if not blocks:
        raise SourceError('%s holds no PEM certificate' % origin)
    chain = []
    for index, block in enumerate(blocks, 1):
        try:
            chain.append(x509.load_pem_x509_certificate(block))
        except ValueError as exc:
            raise SourceError('certificate %d in %s cannot be parsed: %s' % (index, origin, exc))
    return chain


def load_key(data, origin):
    """The one private key of a PEM file (certificates beside it are ignored)."""
    blocks = _pem_blocks(data, lambda label: label.endswith('PRIVATE KEY'))
    if len(blocks) != 1:
        raise SourceError('%s holds %s PEM private keys, not one' % (origin, len(blocks) or 'no'))
    try:
        return serialization.load_pem_private_key(blocks[0], password=None)
    except TypeError:
        raise SourceError('the private key in %s is encrypted; front needs it unencrypted' % origin)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise SourceError('the private key in %s cannot be parsed: %s' % (origin, exc))


def _read(path):
    try:
        with open(path, 'rb') as handle:
            data = handle.read(MAX_SOURCE_BYTES + 1)
    except OSError as exc:
        raise SourceError('cannot read %s: %s' % (path, exc.strerror or exc))
    if len(data) > MAX_SOURCE_BYTES:
        raise SourceError('%s is larger than %d bytes: not a certificate or key file' % (path, MAX_SOURCE_BYTES))
    return data


def _real_file(path):
    """``path`` with its symlinks resolved (Certbot's are relative to their directory)."""
    real = os.path.realpath(path)
    if not os.path.isfile(real):
        if os.path.islink(path):
            raise SourceError('%s points to %s, which is not a file' % (path, os.readlink(path)))
        raise SourceError('%s is not a file' % path)
    return real


class Source:
    """A certificate chain and its key, read from the real files."""

    def __init__(self, certificate_path, private_key_path, origin):
        self.origin = origin
        self.certificate_path = _real_file(certificate_path)
        self.private_key_path = _real_file(private_key_path)
        self.chain = load_chain(_read(self.certificate_path), self.certificate_path)
        self.key = load_key(_read(self.private_key_path), self.private_key_path)


def read_source(source):
    """A ``Source`` from a Certbot lineage directory or a (certificate, key) pair of paths."""
    if CRYPTOGRAPHY_IMPORT_ERROR:
        raise SourceError('the Python library cryptography (Debian: python3-cryptography) is missing')
    if isinstance(source, Source):
        return source
    if isinstance(source, (tuple, list)):
        certificate, private_key = (os.fspath(p) for p in source)
        return Source(certificate, private_key, certificate)
    lineage = os.fspath(source)
    if not os.path.isdir(lineage):
        raise SourceError('the Certbot lineage %s is not a directory' % lineage)
    return Source(os.path.join(lineage, LINEAGE_CERTIFICATE), os.path.join(lineage, LINEAGE_PRIVATE_KEY), lineage)


# ---------------------------------------------------------------- validation


def _utc(value):
    return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)


def not_before(cert):
    # not_valid_*_utc exist from cryptography 42; the naive ones are deprecated there.
    return getattr(cert, 'not_valid_before_utc', None) or _utc(cert.not_valid_before)


def not_after(cert):
    return getattr(cert, 'not_valid_after_utc', None) or _utc(cert.not_valid_after)


def _when(moment):
    return moment.astimezone(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def _name(cert):
    return cert.subject.rfc4514_string() or '(empty subject)'


def dns_names(cert):
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [name.lower().rstrip('.') for name in san.get_values_for_type(x509.DNSName)]


def normalize_hostname(name):
    """Lower case, no final dot, A-labels (IDNA 2003, from the standard library)."""
    name = name.strip().rstrip('.').lower()
    try:
        name.encode('ascii')
    except UnicodeEncodeError:
        name = name.encode('idna').decode('ascii')
    return name


def hostname_matches(pattern, hostname):
    """Whether a certificate name covers ``hostname`` (RFC 6125 6.4.3): a wildcard is
    ``*`` as the whole leftmost label, stands for exactly one label, and needs two
    more labels after it.  A wildcard ``hostname`` is covered by the same wildcard only."""
    pattern, hostname = normalize_hostname(pattern), normalize_hostname(hostname)
    if pattern == hostname or not pattern.startswith('*.'):
        return pattern == hostname
    rest = pattern[2:]
    if '*' in rest or rest.count('.') < 1:
        return False
    label, dot, parent = hostname.partition('.')
    return bool(label) and label != '*' and bool(dot) and parent == rest


def _signed_by(cert, issuer):
    """True or False, or None when the signature scheme is not checked here (RSA-PSS)."""
    key = issuer.public_key()
    signature, data = cert.signature, cert.tbs_certificate_bytes
    try:
        if isinstance(key, rsa.RSAPublicKey):
            if cert.signature_algorithm_oid == x509.SignatureAlgorithmOID.RSASSA_PSS:
                return None
            key.verify(signature, data, padding.PKCS1v15(), cert.signature_hash_algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(cert.signature_hash_algorithm))
        elif isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
            key.verify(signature, data)
        else:
            return None
    except InvalidSignature:
        return False
    except (UnsupportedAlgorithm, ValueError, TypeError):
        return None
    return True


def _public_der(key):
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_type(key):
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return 'RSA %d' % key.key_size
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return 'EC %s' % key.curve.name
    return type(key).__name__.lstrip('_').replace('PrivateKey', '').replace('PublicKey', '')


def key_matches(key, cert):
    return _public_der(key.public_key()) == _public_der(cert.public_key())


def validate(chain, key, hostnames=(), min_days_valid=DEFAULT_MIN_DAYS_VALID, now=None):
    """Every reason to refuse ``chain`` (leaf first) with ``key``, one sentence each."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    leaf = chain[0]
    problems = []
    if not key_matches(key, leaf):
        problems.append('the private key (%s) does not match the certificate %s (%s)'
                        % (key_type(key), _name(leaf), key_type(leaf.public_key())))
    for index, (cert, issuer) in enumerate(zip(chain, chain[1:]), 1):
        if cert.issuer != issuer.subject:
            problems.append('the chain is out of order: certificate %d (%s) is issued by %s, but certificate %d is %s'
                            % (index, _name(cert), cert.issuer.rfc4514_string(), index + 1, _name(issuer)))
        elif _signed_by(cert, issuer) is False:
            problems.append('certificate %d (%s) is not signed by the key of certificate %d (%s)'
                            % (index, _name(cert), index + 1, _name(issuer)))
    if len(chain) == 1 and leaf.issuer != leaf.subject:
        problems.append('the certificate file holds only the leaf %s: front needs the full chain, with its issuer %s '
                        '(Certbot: fullchain.pem, not cert.pem)' % (_name(leaf), leaf.issuer.rfc4514_string()))
    elif len(chain) == 1 and _signed_by(leaf, leaf) is False:
        problems.append('the self-issued certificate %s is not signed by its own key' % _name(leaf))
    for index, cert in enumerate(chain, 1):
        what = 'the certificate %s' % _name(cert) if index == 1 else 'certificate %d (%s)' % (index, _name(cert))
        if not_before(cert) > now:
            problems.append('%s is not valid yet: valid from %s' % (what, _when(not_before(cert))))
        elif not_after(cert) <= now:
            problems.append('%s expired on %s' % (what, _when(not_after(cert))))
        elif index == 1 and not_after(cert) < now + datetime.timedelta(days=min_days_valid):
            left = (not_after(cert) - now).total_seconds() / 86400
            problems.append('%s expires on %s, in %.1f days, less than min_days_valid (%s)'
                            % (what, _when(not_after(cert)), left, min_days_valid))
    names = dns_names(leaf)
    missing = [h for h in (normalize_hostname(h) for h in hostnames) if not any(hostname_matches(n, h) for n in names)]
    if missing:
        problems.append('the certificate %s does not cover %s (its names: %s)'
                        % (_name(leaf), ', '.join(missing), ', '.join(names) or 'none, it has no subjectAltName'))
    return problems


def fingerprint(cert):
    return ':'.join('%02x' % b for b in bytearray(cert.fingerprint(hashes.SHA256())))


def describe(chain):
    """What front serves with this chain: never any key material."""
    leaf = chain[0]
    return dict(fingerprint_sha256=fingerprint(leaf), subject=_name(leaf), issuer=leaf.issuer.rfc4514_string(),
                names=dns_names(leaf), not_before=_when(not_before(leaf)), not_after=_when(not_after(leaf)),
                key_type=key_type(leaf.public_key()), chain_length=len(chain))


def _pem_chain(chain):
    return b''.join(cert.public_bytes(serialization.Encoding.PEM) for cert in chain)


def _pem_key(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


# ---------------------------------------------------------------- files


class _Place:
    """One file name in a directory of the certs directory, reached through directory file
    descriptors only: every later read, write, rename and unlink is relative to ``fd``, so
    nothing can leave the certs directory, whatever its entries (or their parents) point to.
    ``path`` is for messages."""

    def __init__(self, fd, name, path):
        self.fd, self.name, self.path = fd, name, path

    def sibling(self, suffix):
        return _Place(self.fd, self.name + suffix, self.path + suffix)


def _parts(filename, option):
    """The components of a file name relative to the certs directory."""
    parts = [part for part in filename.split('/') if part not in ('', '.')]
    if os.path.isabs(filename) or '..' in parts or not parts or filename.endswith('/'):
        raise CertificateError('%s must be a file name relative to the certs directory, not %r' % (option, filename))
    return parts


def _open_directory(root_fd, certs_dir, parts, opened):
    """A file descriptor on the directory ``parts`` inside the certs directory, opened one
    component at a time without following symlinks; the descriptors go to ``opened``."""
    fd, path = root_fd, certs_dir
    for part in parts:
        path = os.path.join(path, part)
        try:
            fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise InstallError('%s is not a directory of %s (a symlink, perhaps): the certificate files are only '
                                   'written inside the certs directory; nothing was changed' % (path, certs_dir))
            raise InstallError('cannot open the directory %s, nothing was changed: %s' % (path, exc.strerror or exc))
        opened.append(fd)
    return fd


def _read_at(place, follow):
    """The bytes of a regular file (a FIFO or device is never opened for good)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    fd = os.open(place.name, flags, dir_fd=place.fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, 'not a regular file')
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return b''.join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


class _Snapshot:
    """One place as it was: absent, a symlink (its target), or a file (bytes and mode)."""

    def __init__(self, place):
        self.place = place
        self.path = place.path
        self.link = self.data = self.mode = None
        try:
            info = os.stat(place.name, dir_fd=place.fd, follow_symlinks=False)
        except FileNotFoundError:
            self.kind = 'absent'
            return
        if stat.S_ISLNK(info.st_mode):
            self.kind, self.link = 'link', os.readlink(place.name, dir_fd=place.fd)
        elif stat.S_ISREG(info.st_mode):
            self.kind, self.mode = 'file', stat.S_IMODE(info.st_mode)
            self.data = _read_at(place, follow=False)
        else:
            raise InstallError('%s is neither a file nor a symlink; nothing was changed' % place.path)

    def content(self):
        """The bytes read through the place (a symlink followed, for reading only), or None."""
        if self.kind == 'file':
            return self.data
        if self.kind == 'link':
            try:
                return _read_at(self.place, follow=True)
            except OSError:
                return None
        return None

    def readable_by_others(self):
        """The mode its content may keep in a copy: 0644 only for a chain that holds no key
        (what a file held once stays unreadable by others), and was readable by others already."""
        data = self.content()
        if data is None or holds_private_key(data) or (self.kind == 'file' and not self.mode & 0o004):
            return KEY_MODE
        return CERT_MODE

    def restore(self):
        place = self.place
        if self.kind == 'absent':
            try:
                os.unlink(place.name, dir_fd=place.fd)
            except FileNotFoundError:
                pass
        elif self.kind == 'link':
            _atomic_symlink(place, self.link)
        else:
            _atomic_write(place, self.data, self.mode)


def _temp_name(place):
    return '.%s.%s.tmp' % (place.name, secrets.token_hex(6))


def _atomic_write(place, data, mode):
    """Write ``data`` to a new temporary file beside ``place``, fsync it, rename it over ``place``."""
    temp = _temp_name(place)
    # O_EXCL and O_NOFOLLOW: a new file, never a file or a symlink already there; 0600 from the start.
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, KEY_MODE, dir_fd=place.fd)
    try:
        os.fchmod(fd, mode)  # before the content: a key is never readable by others
        with os.fdopen(fd, 'wb') as handle:
            fd = None
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, place.name, src_dir_fd=place.fd, dst_dir_fd=place.fd)
    except BaseException:
        if fd is not None:
            os.close(fd)
        try:
            os.unlink(temp, dir_fd=place.fd)
        except OSError:
            pass
        raise


def _atomic_symlink(place, target):
    temp = _temp_name(place)
    os.symlink(target, temp, dir_fd=place.fd)
    try:
        os.replace(temp, place.name, src_dir_fd=place.fd, dst_dir_fd=place.fd)
    except BaseException:
        os.unlink(temp, dir_fd=place.fd)
        raise


class _Transaction:
    """Atomic replacements of several places, undone together."""

    def __init__(self, snapshots):
        self.snapshots = snapshots
        self.done = []

    def write(self, snapshot, data, mode):
        _atomic_write(snapshot.place, data, mode)
        self.done.append(snapshot)

    def sync(self):
        for fd in set(s.place.fd for s in self.done):
            os.fsync(fd)

    def rollback(self):
        """Put back every replaced place; the problems met, empty when all went back."""
        problems = []
        while self.done:
            snapshot = self.done.pop()
            try:
                snapshot.restore()
            except OSError as exc:
                problems.append('%s: %s' % (snapshot.path, exc))
        try:
            for fd in set(s.place.fd for s in self.snapshots):
                os.fsync(fd)
        except OSError:
            pass
        return problems


def _file_names(certs_dir, cert_filename, key_filename):
    """The components of the chain's and the key's names; the two, and their ``.previous``,
    must be four different files."""
    cert_parts, key_parts = _parts(cert_filename, 'cert_filename'), _parts(key_filename, 'key_filename')
    names = [('cert_filename', '/'.join(cert_parts)), ('key_filename', '/'.join(key_parts))]
    names += [(option + PREVIOUS_SUFFIX, name + PREVIOUS_SUFFIX) for option, name in names]
    seen = {}
    for option, name in names:
        if name in seen:
            raise CertificateError(
                '%s and %s name the same file %s in %s: the chain and the key need a file each (and their %s '
                'copies); nothing was changed' % (seen[name], option, name, certs_dir, PREVIOUS_SUFFIX))
        seen[name] = option
    return cert_parts, key_parts


def _places(root_fd, certs_dir, parts_list, opened):
    """The places of the given file names, their directories opened from ``root_fd``."""
    places = []
    for parts in parts_list:
        fd = _open_directory(root_fd, certs_dir, parts[:-1], opened)
        places.append(_Place(fd, parts[-1], os.path.join(certs_dir, *parts)))
    return places


# ---------------------------------------------------------------- front


class DockerFront:
    """Mailu's front container, reached through the Docker SDK for Python.

    Looked up by container name, then by the Compose labels of the project's
    ``front`` service.  ``docker_host``: as ``DOCKER_HOST``; default from the
    environment (the local socket).
    """

    def __init__(self, name=DEFAULT_FRONT_CONTAINER, compose_project=DEFAULT_COMPOSE_PROJECT, docker_host=None):
        self.name = name
        self.compose_project = compose_project
        self.docker_host = docker_host
        self._docker = None

    def describe(self):
        return 'container %s (or Compose project %s, service front)' % (self.name, self.compose_project)

    def _client(self):
        if self._docker is None:
            try:
                import docker  # pylint: disable=import-outside-toplevel
            except ImportError:
                raise FrontError('reloading front needs the Docker SDK for Python (Debian: python3-docker); '
                                 'nothing was changed')
            try:
                self._docker = docker.DockerClient(base_url=self.docker_host) if self.docker_host else docker.from_env()
            except docker.errors.DockerException as exc:
                raise FrontError('cannot reach the Docker engine to reload front, nothing was changed: %s' % exc)
        return self._docker

    def find(self):
        """The front containers (objects with ``.name`` and ``.status``)."""
        client = self._client()
        import docker  # pylint: disable=import-outside-toplevel
        try:
            try:
                return [client.containers.get(self.name)]
            except docker.errors.NotFound:
                labels = ['com.docker.compose.project=%s' % self.compose_project, 'com.docker.compose.service=front']
                return client.containers.list(all=True, filters={'label': labels})
        except docker.errors.DockerException as exc:
            raise FrontError('cannot ask the Docker engine for %s, nothing was changed: %s' % (self.describe(), exc))

    def run(self, container, argv):
        """(exit code, output) of ``argv`` run in the container; exit code None when Docker failed."""
        import docker  # pylint: disable=import-outside-toplevel
        try:
            result = container.exec_run(list(argv))
        except docker.errors.DockerException as exc:
            return None, str(exc)
        return result.exit_code, (result.output or b'').decode('utf-8', 'replace').strip()


def _has_command(front, container, command):
    code, _output = front.run(container, ('sh', '-c', 'command -v %s' % command))
    return code == 0


def _reload_plan(front, reload_doveadm):
    """[(container, [command, ...]), ...] for the running front containers, and warnings."""
    found = front.find()
    running = [c for c in found if c.status == 'running']
    warnings = ['front container %s is %s: it will read the new pair when it starts' % (c.name, c.status)
                for c in found if c.status != 'running']
    if not found:
        warnings.append('no front container found (%s): the new pair is installed, and front will read it '
                        'when it starts' % front.describe())
    plan = []
    for container in running:
        commands = [NGINX_RELOAD]
        if reload_doveadm or (reload_doveadm is None and _has_command(front, container, DOVEADM_RELOAD[0])):
            commands.append(DOVEADM_RELOAD)
        plan.append((container, commands))
    return plan, warnings


def _run_reloads(front, plan, done):
    """Run the plan; the first failure as a sentence, or None.  Commands run go to ``done``."""
    for container, commands in plan:
        for command in commands:
            code, output = front.run(container, command)
            done.append('%s: %s' % (container.name, ' '.join(command)))
            if code != 0:
                return '`%s` in %s %s%s' % (' '.join(command), container.name,
                                            'failed' if code is None else 'exited with %s' % code,
                                            ': %s' % output[-500:] if output else '')
    return None


# ---------------------------------------------------------------- handoff


class HandoffResult:
    def __init__(self, **fields):
        self.changed = False
        self.cert_path = self.key_path = None
        self.before = {}
        self.installed = {}
        self.changes = []
        self.reloaded = []
        self.warnings = []
        self.source = {}
        self.__dict__.update(fields)

    def as_dict(self):
        return dict(changed=self.changed, cert_path=self.cert_path, key_path=self.key_path,
                    installed=self.installed, changes=self.changes, reloaded=self.reloaded,
                    warnings=self.warnings, source=self.source)

    def diff(self):
        return dict(before=self.before, after=self.installed)


def _describe_installed(cert, key):
    """(description, chain, key) of the installed pair: ({}, None, None) when absent; the
    description has a ``problem`` when front cannot use the pair."""
    cert_data, key_data = cert.content(), key.content()
    if cert_data is None and key_data is None:
        return {}, None, None
    try:
        chain = load_chain(cert_data or b'', cert.path)
        installed_key = load_key(key_data or b'', key.path)
    except SourceError as exc:
        return {'problem': str(exc)}, None, None
    info = describe(chain)
    if not key_matches(installed_key, chain[0]):
        info['problem'] = '%s (%s) does not match the certificate' % (key.path, key_type(installed_key))
    return info, chain, installed_key


@contextlib.contextmanager
def _locked(directory):
    """An exclusive lock on the certs directory itself (the role and the Certbot hook may run
    at once); yields the directory's file descriptor, through which every file is reached."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise InstallError('cannot open the certs directory %s, nothing was changed: %s' % (directory, exc.strerror or exc))
    try:
        timeout = LOCK_TIMEOUT
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise InstallError('another handoff has held %s for %d s; nothing was changed' % (directory, timeout))
                time.sleep(0.2)
        yield fd
    finally:
        os.close(fd)  # releases the lock


def _compare(src, cert, key, names):
    """The result of installing ``src`` over the ``cert`` and ``key`` snapshots, as if done,
    and whether the served pair stays the same (only the files need repair, if anything)."""
    before, old_chain, old_key = _describe_installed(cert, key)
    same_pair = 'problem' not in before and old_chain == src.chain and key_matches(old_key, src.chain[0])
    changes = []
    if not before:
        changes.append('no pair was installed')
    elif 'problem' in before:
        changes.append('the installed pair is unusable: %s' % before['problem'])
    elif not same_pair:
        changes.append('certificate %s replaces %s' % (fingerprint(src.chain[0]), before['fingerprint_sha256']))
    for snapshot, name in zip((cert, key), names):
        if snapshot.kind == 'link':
            changes.append('%s was a symlink to %s' % (name, snapshot.link))
    if same_pair and key.kind == 'file' and key.mode != KEY_MODE:
        changes.append('%s had mode %04o' % (names[1], key.mode))
    result = HandoffResult(changed=bool(changes), cert_path=cert.path, key_path=key.path, before=before,
                           installed=describe(src.chain) if changes else before, changes=changes,
                           source=dict(certificate=src.certificate_path, private_key=src.private_key_path))
    return result, same_pair


def _install(src, snapshots, cert, key, keep_previous):
    """Write the new pair (and the previous one beside it); the transaction, to undo it."""
    transaction = _Transaction(list(snapshots.values()))
    previous = dict((s.path, s) for s in snapshots.values())
    try:
        if keep_previous and cert.content() is not None and key.content() is not None:
            # A chain file that held a key (a combined file) keeps it unreadable by others.
            transaction.write(previous[cert.path + PREVIOUS_SUFFIX], cert.content(), cert.readable_by_others())
            transaction.write(previous[key.path + PREVIOUS_SUFFIX], key.content(), KEY_MODE)
        transaction.write(key, _pem_key(src.key), KEY_MODE)
        transaction.write(cert, _pem_chain(src.chain), CERT_MODE)
        transaction.sync()
    except OSError as exc:
        left = transaction.rollback()
        raise InstallError('cannot install the new pair in %s: %s; %s' % (
            os.path.dirname(cert.path), exc, 'the files already replaced were put back' if not left
            else 'putting the replaced files back failed too (%s)' % '; '.join(left)))
    return transaction


def handoff(source, certs_dir=DEFAULT_CERTS_DIR, hostnames=(), min_days_valid=DEFAULT_MIN_DAYS_VALID,
            front=DEFAULT_FRONT_CONTAINER, reload_doveadm=None, cert_filename=DEFAULT_CERT_FILENAME,
            key_filename=DEFAULT_KEY_FILENAME, keep_previous=True, check_mode=False):
    """Validate ``source``, install it in ``certs_dir`` and reload front; see the module docstring."""
    if isinstance(hostnames, str):
        hostnames = [hostnames]
    names = _file_names(certs_dir, cert_filename, key_filename)
    src = read_source(source)
    problems = validate(src.chain, src.key, hostnames, min_days_valid)
    if problems:
        raise ValidationError(src.origin, problems)
    if not os.path.isdir(certs_dir):
        raise InstallError('the certs directory %s does not exist; nothing was changed' % certs_dir)
    opened = []
    try:
        with _locked(certs_dir) as root_fd:
            cert_place, key_place = _places(root_fd, certs_dir, names, opened)
            return _handoff_locked(src, certs_dir, cert_place, key_place, cert_filename, key_filename, front,
                                   reload_doveadm, keep_previous, check_mode)
    finally:
        for fd in opened:
            os.close(fd)


def _handoff_locked(src, certs_dir, cert_place, key_place, cert_filename, key_filename, front, reload_doveadm,
                    keep_previous, check_mode):
    """Steps 3 to 5 of ``handoff()``, the certs directory locked."""
    try:
        snapshots = dict((place.path, _Snapshot(place)) for place in (
            cert_place, key_place, cert_place.sibling(PREVIOUS_SUFFIX), key_place.sibling(PREVIOUS_SUFFIX)))
    except OSError as exc:
        raise InstallError('cannot read the installed files in %s, nothing was changed: %s' % (certs_dir, exc))
    cert, key = snapshots[cert_place.path], snapshots[key_place.path]
    result, same_pair = _compare(src, cert, key, (cert_filename, key_filename))
    if not result.changed or check_mode:
        return result

    if isinstance(front, str):
        front = DockerFront(front)
    plan = []
    if front is not None:
        plan, result.warnings = _reload_plan(front, reload_doveadm)
    transaction = _install(src, snapshots, cert, key, keep_previous and not same_pair)
    failure = _run_reloads(front, plan, result.reloaded)
    if not failure:
        return result

    left = transaction.rollback()
    again = _run_reloads(front, plan, result.reloaded) if not left else None
    result.changed, result.installed = False, result.before
    message = 'reloading front failed: %s; ' % failure
    if left:
        message += 'putting the previous files back failed too (%s)' % '; '.join(left)
    elif result.before:
        message += ('the previous files were put back, but reloading front with them failed too: %s' % again
                    if again else 'the previous files were put back and front was reloaded with them')
    else:
        message += ('the new files were removed, but reloading front failed again: %s' % again
                    if again else 'the new files were removed and front was reloaded')
    raise ReloadError(message, result)


# ---------------------------------------------------------------- state of the last handoff


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def read_state(path):
    """The state recorded in ``path`` (a JSON object): ``{}`` when there is none.  A state
    file that cannot be read or parsed counts as a refusal, saying so: it is never ignored."""
    try:
        with open(path, 'rb') as handle:
            state = json.loads(handle.read(MAX_SOURCE_BYTES).decode('utf-8'))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        return dict(status=STATE_REFUSED, message='the state file %s cannot be read: %s' % (path, exc))
    if not isinstance(state, dict) or state.get('status') not in (STATE_OK, STATE_REFUSED):
        return dict(status=STATE_REFUSED, message='the state file %s holds no handoff state' % path)
    return state


def record_state(path, source, by, error=None, previous=None):
    """Record the outcome of a handoff in ``path`` (written then renamed, mode 0644: no secret in
    it): ``refused`` with the error's message, or ``ok``.  ``since`` keeps the time of the first
    refusal of a series.  Returns the state written."""
    previous = read_state(path) if previous is None else previous
    state = dict(status=STATE_REFUSED if error else STATE_OK, time=_now(), source=os.fspath(source), by=by)
    if error:
        state['message'] = str(error)
        state['since'] = previous.get('since', state['time']) if previous.get('status') == STATE_REFUSED else state['time']
    directory, name = os.path.split(os.path.abspath(path))
    os.makedirs(directory, mode=0o755, exist_ok=True)
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _atomic_write(_Place(fd, name, path), (json.dumps(state, indent=2, sort_keys=True) + '\n').encode('utf-8'),
                      CERT_MODE)
        os.fsync(fd)
    finally:
        os.close(fd)
    return state


def describe_state(state):
    """One sentence about a recorded refusal."""
    return 'the handoff from %s was refused by the %s at %s%s: %s' % (
        state.get('source', '?'), state.get('by', '?'), state.get('time', '?'),
        ' (refused since %s)' % state['since'] if state.get('since') not in (None, state.get('time')) else '',
        state.get('message', 'no message'))


# ---------------------------------------------------------------- command line


def main(argv=None):
    """Command line: the result as JSON on stdout; exit status 0, or 1 with the error on stderr."""
    parser = argparse.ArgumentParser(description="Hand a certificate over to Mailu's front (nantral.mailu).")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--lineage', help="Certbot lineage directory (live/NAME)")
    source.add_argument('--certificate', help='full chain PEM file (needs --private-key)')
    parser.add_argument('--private-key', help='private key PEM file (with --certificate)')
    parser.add_argument('--certs-dir', default=DEFAULT_CERTS_DIR)
    parser.add_argument('--cert-filename', default=DEFAULT_CERT_FILENAME)
    parser.add_argument('--key-filename', default=DEFAULT_KEY_FILENAME)
    parser.add_argument('--hostname', action='append', default=[], help='a name the certificate must cover (repeat)')
    parser.add_argument('--min-days-valid', type=int, default=DEFAULT_MIN_DAYS_VALID)
    parser.add_argument('--front-container', default=DEFAULT_FRONT_CONTAINER)
    parser.add_argument('--compose-project', default=DEFAULT_COMPOSE_PROJECT)
    parser.add_argument('--no-reload', action='store_true')
    parser.add_argument('--doveadm-reload', choices=['auto', 'yes', 'no'], default='auto')
    parser.add_argument('--no-previous', action='store_true', help='do not keep the replaced pair')
    parser.add_argument('--check', action='store_true', help='validate and compare only')
    args = parser.parse_args(argv)
    if bool(args.certificate) != bool(args.private_key):
        parser.error('--certificate and --private-key go together')
    try:
        result = handoff(args.lineage or (args.certificate, args.private_key), certs_dir=args.certs_dir,
                         hostnames=args.hostname, min_days_valid=args.min_days_valid,
                         front=None if args.no_reload else DockerFront(args.front_container, args.compose_project),
                         reload_doveadm=dict(auto=None, yes=True, no=False)[args.doveadm_reload],
                         cert_filename=args.cert_filename, key_filename=args.key_filename,
                         keep_previous=not args.no_previous, check_mode=args.check)
    except CertificateError as exc:
        sys.stderr.write('mailu_certificate: %s\n' % exc)
        return 1
    for warning in result.warnings:
        sys.stderr.write('mailu_certificate: warning: %s\n' % warning)
    sys.stdout.write(json.dumps(result.as_dict(), indent=2, sort_keys=True) + '\n')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
