# -*- coding: utf-8 -*-
# Copyright (c) 2026, Nantral Platform sysadmin team
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Back up a Mailu server with restic, check the repository, and put a server back.

The one engine behind the host command ``nantral-mailu-backup`` (the role
``mailu_backup`` copies this file alone to ``/usr/local/lib/nantral-mailu/``) and the
modules ``nantral.mailu.mailu_backup_repository`` and ``nantral.mailu.mailu_backup_info``.
It imports only the standard library, so that the system ``python3`` runs it, and it
works with restic 0.14 to 0.18::

    nantral-mailu-backup [--config FILE] run [--allow-empty PATH]...
    nantral-mailu-backup unpause
    nantral-mailu-backup forget
    nantral-mailu-backup check [--read-data-subset X]
    nantral-mailu-backup status [--json] [--max-age-hours N]
    nantral-mailu-backup restore [--snapshot ID|latest] [--force] [--dry-run]
    nantral-mailu-backup restore-mailbox EMAIL [--snapshot ID|latest] [--folder NAME]

Exit status: 0 done (``status``: fresh and nothing failed), 1 failed or refused
(``status``: stale, no snapshot, the last run or check failed), 2 a usage or
configuration error (``status``: the repository cannot be reached).  Messages go to
stderr, one line each with a UTC timestamp; the result of every command but
``unpause`` is written as JSON to stdout (``status`` only with ``--json``).

Secrets never appear on a command line or in a message: restic reads the repository
password from ``RESTIC_PASSWORD_FILE`` (a file, or a pipe for a password given in
memory) and its location from ``RESTIC_REPOSITORY``, the backend credentials of the
configuration's ``env`` from its environment; libpq reads ``PGPASSFILE``.

``run``
    Checks the repository (present, the password right, the one the marker
    ``repository.json`` remembers: a vanished repository is reported, never
    re-created), the sources (a required one missing, or one empty that held files at
    the last good backup, is refused), saves redis (``redis-cli save``), dumps the
    database (``pg_dump -Fc``, the client's major at least the server's, the dump
    listed by ``pg_restore --list``) and writes a manifest, all into ``staging/``.
    Then the mail services that are running are paused while restic reads the files,
    and unpaused in a ``finally``.  When no good run of this server into this
    repository is on record, there is something to pause and the sources hold at
    least ``prepass_min_bytes`` (1 GiB), an unpaused "prepass" reads everything
    first, so that the paused pass reads only what changed since (the prepass
    snapshot is forgotten afterwards); below that, the one paused pass reads it all.
    restic's exit 3 (some files could not be read) and a snapshot without every
    source are forgotten at once, never "latest".  ``last-backup.json`` records every
    run: ``ok`` with the file counts, or ``failed``.

    Every restic command first spends about half a second of CPU deriving the key,
    so a run starts one restic command on its way: the probe of the repository runs
    beside the local work (and, when nothing is to be paused and the local work is
    quicker, beside the backup: a snapshot made in a repository the probe then
    rejects is forgotten, the run fails; mail is paused only once the probe passed); no
    snapshot listing before or after (the parent is the last good run on record, a
    skipped source is read from restic's own output).
``forget``, ``check``
    Retention (``forget --prune``, only this server's snapshots with the tag) and an
    integrity check (``check --read-data-subset``); ``last-forget.json`` and
    ``last-check.json`` record them.
``status``
    The newest snapshot's age, the last run and check, the repository's state.
``restore``
    For a rebuild, into a server whose stack is not running: the database
    (``pg_restore --single-transaction``) and every source, the live one moved aside.
    ``restic restore latest --host H --tag T`` picks the snapshot (no listing first),
    beside the probe; nothing live is touched before the probe's verdict.
    A server that holds accounts or mail is refused, naming what it holds, unless
    forced.
``restore-mailbox``
    Copies back the messages of one mailbox that are missing, nothing else.

Public interface for the modules: ``load_config(path)``, ``Restic``,
``ensure_repository(restic, state_dir, init, check_mode)``, ``status(config,
max_age_hours=None)``, ``BackupError``, ``ConfigError``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time

PROG = 'nantral-mailu-backup'
DEFAULT_CONFIG = '/etc/nantral-mailu/backup/config.json'
DEFAULT_STATE_DIR = '/var/lib/nantral-mailu/backup'
DEFAULT_LOCK_FILE = '/run/lock/nantral-mailu-backup.lock'
DEFAULT_TAG = 'nantral-mailu'
PREPASS_TAG = 'nantral-mailu-prepass'
DEFAULT_MAX_AGE_HOURS = 36
DEFAULT_CHECK_SUBSET = '5%'
# The first backup of a store at least this big reads it unpaused first (a prepass); below it, the one
# paused pass reads everything (a few seconds per hundred MB), which saves a restic run and a forget.
DEFAULT_PREPASS_MIN_BYTES = 1024 ** 3

MARKER = 'repository.json'
LAST_BACKUP = 'last-backup.json'
LAST_CHECK = 'last-check.json'
LAST_FORGET = 'last-forget.json'
PREPASS_PENDING = 'prepass.json'
STAGING = 'staging'
DUMP_NAME = 'mailu-database.dump'
MANIFEST_NAME = 'manifest.json'
# Mailu's account tables: a server where one of them has rows holds accounts.
ACCOUNT_TABLES = ('user', 'domain', 'alias')

OK = 'ok'
FAILED = 'failed'
# The states of a repository, as probe() and status() report them.
REPO_OK = 'ok'
REPO_MISSING = 'missing'
REPO_VANISHED = 'vanished'
REPO_WRONG_PASSWORD = 'wrong_password'
REPO_LOCKED = 'locked'
REPO_OTHER = 'other'

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
# restic backup: the snapshot was created, but some source files could not be read.
RESTIC_INCOMPLETE = 3
# restic 0.17 and later; before, every error is 1 and only the message tells them apart.
RESTIC_NO_REPOSITORY = 10
RESTIC_LOCKED = 11
RESTIC_WRONG_PASSWORD = 12

_MAX_STATE_BYTES = 1024 * 1024
_MESSAGE_LINES = 8


class BackupError(Exception):
    """A failure or a refusal; the message names what, and says what was left as it was."""


class ConfigError(BackupError):
    """The configuration cannot be read or is not valid (exit status 2)."""


class RepositoryError(BackupError):
    """The repository cannot be used; ``state`` is one of the REPO_* values."""

    def __init__(self, message, state):
        super(RepositoryError, self).__init__(message)
        self.state = state


# ---------------------------------------------------------------- small helpers


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _iso(moment):
    return moment.strftime('%Y-%m-%dT%H:%M:%SZ')


def _stamp(moment):
    return moment.strftime('%Y%m%dT%H%M%SZ')


def parse_time(text):
    """restic's RFC 3339 times (nanoseconds, ``Z`` or an offset) as an aware datetime."""
    match = re.match(r'^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?$', text.strip())
    if not match:
        raise ValueError('not an RFC 3339 time: %r' % text)
    base, fraction, zone = match.groups()
    moment = datetime.datetime.strptime(base, '%Y-%m-%dT%H:%M:%S')
    if fraction:
        moment = moment.replace(microsecond=int(fraction[:6].ljust(6, '0')))
    if zone in (None, 'Z'):
        return moment.replace(tzinfo=datetime.timezone.utc)
    sign = 1 if zone[0] == '+' else -1
    offset = datetime.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    return moment.replace(tzinfo=datetime.timezone(sign * offset))


def log(message):
    sys.stderr.write('%s %s: %s\n' % (_iso(_now()), PROG, message))
    sys.stderr.flush()


def _last_lines(*texts):
    """The meaningful lines of a child's output, for a one-line message."""
    lines = []
    for text in texts:
        for line in (text or '').splitlines():
            line = line.strip()
            if line and not line.startswith('{"message_type":"status"'):
                lines.append(line)
    return ' / '.join(lines[-_MESSAGE_LINES:]) or 'no output'


def write_json(path, data):
    """Write ``data`` to ``path`` as JSON: a new file in the same directory, flushed, renamed
    over the old one; mode 0600."""
    directory, name = os.path.split(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.%s.' % name, suffix='.tmp', dir=directory)
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(json.dumps(data, indent=2, sort_keys=True) + '\n')
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_json(path):
    """The JSON object in ``path``, ``None`` when there is no such file."""
    try:
        with open(path, 'rb') as handle:
            data = json.loads(handle.read(_MAX_STATE_BYTES).decode('utf-8'))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise BackupError('%s cannot be read: %s' % (path, exc))
    if not isinstance(data, dict):
        raise BackupError('%s holds no JSON object' % path)
    return data


def _run(argv, env=None, capture=True, **kwargs):
    """Run a command; a command that cannot be started is a BackupError naming it."""
    try:
        return subprocess.run(argv, env=env, stdout=subprocess.PIPE if capture else None,
                              stderr=subprocess.PIPE if capture else None, universal_newlines=True,
                              check=False, **kwargs)
    except OSError as exc:
        raise BackupError('cannot run %s: %s' % (argv[0], exc.strerror or exc))


def count_files(path):
    """Files (anything but directories) under ``path``; a file counts 1 when not empty."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISDIR(info.st_mode):
        return 1 if info.st_size > 0 or stat.S_ISLNK(info.st_mode) else 0
    total = 0
    for root, dirs, files in os.walk(path):
        total += len(files) + sum(1 for name in dirs if os.path.islink(os.path.join(root, name)))
    return total


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b''):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------- configuration


def load_config(path=DEFAULT_CONFIG):
    """The configuration in ``path`` with its defaults filled in; ConfigError names what is wrong."""
    try:
        with open(path, 'rb') as handle:
            config = json.loads(handle.read(_MAX_STATE_BYTES).decode('utf-8'))
    except OSError as exc:
        raise ConfigError('the configuration %s cannot be read: %s' % (path, exc.strerror or exc))
    except ValueError as exc:
        raise ConfigError('the configuration %s is not JSON: %s' % (path, exc))
    return check_config(config, path)


def check_config(config, origin='the configuration'):
    if not isinstance(config, dict):
        raise ConfigError('%s holds no JSON object' % origin)
    problems = []
    for key in ('repository', 'password_file', 'host', 'root'):
        if not isinstance(config.get(key), str) or not config.get(key):
            problems.append('%s is missing or not a string' % key)
    sources = config.get('sources')
    if not isinstance(sources, list) or not all(
            isinstance(item, dict) and isinstance(item.get('path'), str) and os.path.isabs(item['path'])
            for item in sources):
        problems.append('sources must be a list of {"path": absolute path, "required": bool}')
    for key in ('env',):
        if not isinstance(config.get(key) or {}, dict):
            problems.append('%s must be an object' % key)
    if not isinstance(config.get('options') or [], list):
        problems.append('options must be a list')
    compose = config.get('compose')
    if compose is not None and not (isinstance(compose, dict) and isinstance(compose.get('command'), list)
                                    and compose.get('command')):
        problems.append('compose must be null or an object with a command list')
    database = config.get('database')
    if database is not None and not (isinstance(database, dict) and database.get('name') and database.get('user')):
        problems.append('database must be null or an object with name and user')
    minimum = config.get('prepass_min_bytes', DEFAULT_PREPASS_MIN_BYTES)
    if isinstance(minimum, bool) or not isinstance(minimum, int) or minimum < 0:
        problems.append('prepass_min_bytes must be a number of bytes (0 or more)')
    if problems:
        raise ConfigError('%s is not valid: %s' % (origin, '; '.join(problems)))
    config = dict(config)
    config.setdefault('restic', 'restic')
    config.setdefault('tag', DEFAULT_TAG)
    config.setdefault('state_dir', DEFAULT_STATE_DIR)
    config.setdefault('lock_file', DEFAULT_LOCK_FILE)
    config.setdefault('check_subset', DEFAULT_CHECK_SUBSET)
    config.setdefault('prepass_min_bytes', DEFAULT_PREPASS_MIN_BYTES)
    config.setdefault('max_age_hours', DEFAULT_MAX_AGE_HOURS)
    config.setdefault('retention', {})
    config['env'] = config.get('env') or {}
    config['options'] = config.get('options') or []
    return config


# ---------------------------------------------------------------- restic


def classify(returncode, output):
    """What a failed restic command means: REPO_MISSING, REPO_WRONG_PASSWORD, REPO_LOCKED or
    REPO_OTHER.  restic 0.17+ says it by its exit status, earlier ones only in the message."""
    text = (output or '').lower()
    if returncode == RESTIC_WRONG_PASSWORD or 'wrong password' in text:
        return REPO_WRONG_PASSWORD
    if returncode == RESTIC_LOCKED or 'repository is already locked' in text:
        return REPO_LOCKED
    if returncode == RESTIC_NO_REPOSITORY:
        return REPO_MISSING
    # "unable to open config file" alone may be a network failure: a missing one says why.
    if ('unable to open config file' in text or 'is there a repository at the following location' in text) and any(
            reason in text for reason in ('no such file', 'does not exist', 'not exist', 'not found', '404')):
        return REPO_MISSING
    return REPO_OTHER


class Restic:
    """restic for one repository.  The password comes from ``password_file``, or from
    ``password`` (given in memory, handed over through a pipe, never written to disk)."""

    def __init__(self, repository, password_file=None, password=None, env=None, options=(), command='restic',
                 cache_dir=None):
        if (password_file is None) == (password is None):
            raise ValueError('give password_file or password')
        self.repository = repository
        self.password_file = password_file
        self.password = password
        self.extra_env = dict(env or {})
        self.options = list(options)
        self.command = command
        self.cache_dir = cache_dir

    @classmethod
    def from_config(cls, config):
        return cls(config['repository'], password_file=config['password_file'], env=config['env'],
                   options=config['options'], command=config['restic'],
                   cache_dir=os.path.join(config['state_dir'], 'cache'))

    def argv(self, args):
        argv = [self.command]
        for option in self.options:
            argv += ['-o', option]
        return argv + list(args)

    def environment(self):
        env = dict((k, v) for k, v in os.environ.items()
                   if k not in ('RESTIC_PASSWORD', 'RESTIC_PASSWORD_COMMAND', 'RESTIC_PASSWORD_FILE',
                                'RESTIC_REPOSITORY_FILE', 'RESTIC_FROM_PASSWORD_FILE'))
        env['RESTIC_REPOSITORY'] = self.repository
        if self.cache_dir and 'RESTIC_CACHE_DIR' not in self.extra_env:
            env['RESTIC_CACHE_DIR'] = self.cache_dir
        env.update((k, str(v)) for k, v in self.extra_env.items())
        return env

    def run(self, *args, **kwargs):
        """restic ARGS; returns the CompletedProcess (text stdout and stderr)."""
        env = self.environment()
        if self.password is None:
            env['RESTIC_PASSWORD_FILE'] = self.password_file
            return _run(self.argv(args), env=env, **kwargs)
        read_end, write_end = os.pipe()
        try:
            os.write(write_end, self.password.encode('utf-8'))
            os.close(write_end)
            write_end = None
            env['RESTIC_PASSWORD_FILE'] = '/dev/fd/%d' % read_end
            return _run(self.argv(args), env=env, pass_fds=(read_end,), **kwargs)
        finally:
            os.close(read_end)
            if write_end is not None:
                os.close(write_end)

    def version(self):
        result = _run([self.command, 'version'])
        match = re.search(r'restic (\d+\.\d+\.\d+)', result.stdout or '')
        if result.returncode != 0 or not match:
            raise BackupError('%s version failed: %s' % (self.command, _last_lines(result.stdout, result.stderr)))
        return match.group(1)

    def probe(self):
        """(state, repository id, message): REPO_OK and its id, or why not."""
        result = self.run('cat', 'config')
        if result.returncode == 0:
            try:
                return REPO_OK, json.loads(result.stdout)['id'], ''
            except (ValueError, KeyError, TypeError):
                return REPO_OTHER, None, 'restic cat config printed no repository id'
        return classify(result.returncode, result.stderr), None, _last_lines(result.stderr)

    def snapshots(self, host=None, tags=None, ids=()):
        # --no-lock: a read-only listing, which may run beside another command of this engine.
        args = ['--no-lock', 'snapshots', '--json']
        if host:
            args += ['--host', host]
        if tags:
            args += ['--tag', tags]
        result = self.run(*(args + list(ids)))
        if result.returncode != 0:
            raise RepositoryError('listing the snapshots of %s failed: %s' % (
                self.repository, _last_lines(result.stderr)), classify(result.returncode, result.stderr))
        try:
            snapshots = json.loads(result.stdout or '[]') or []
        except ValueError:
            raise BackupError('restic snapshots printed no JSON')
        return sorted(snapshots, key=lambda item: parse_time(item['time']))

    def forget_ids(self, ids):
        if not ids:
            return
        result = self.run('forget', *ids)
        if result.returncode != 0:
            raise BackupError('restic forget %s failed: %s' % (' '.join(ids), _last_lines(result.stderr)))


def describe_problem(restic, state, message, marker=None):
    if state == REPO_MISSING and marker:
        return ('repository %s vanished (initialised or first seen %s, id %s); not re-created: bring it back '
                'or, for a new repository, remove %s' % (restic.repository, marker.get('first_seen', '?'),
                                                         marker.get('id', '?'), marker.get('_path', MARKER)))
    if state == REPO_MISSING:
        return 'repository %s is not initialised (run the mailu_backup role)' % restic.repository
    if state == REPO_WRONG_PASSWORD:
        return 'wrong password for repository %s (restic: %s)' % (restic.repository, message)
    if state == REPO_LOCKED:
        return 'repository %s is locked by another restic process (restic: %s)' % (restic.repository, message)
    return 'repository %s cannot be opened: %s' % (restic.repository, message)


def read_marker(state_dir, repository):
    """The marker of ``repository`` in ``state_dir``; a marker for another location does not count."""
    path = os.path.join(state_dir, MARKER)
    marker = read_json(path)
    if marker is None or marker.get('repository') != repository:
        return None
    marker['_path'] = path
    return marker


def _write_marker(state_dir, repository, repo_id, initialised_here):
    marker = dict(repository=repository, id=repo_id, first_seen=_iso(_now()), initialised_here=initialised_here)
    write_json(os.path.join(state_dir, MARKER), marker)
    return marker


def open_repository(restic, state_dir):
    """Check that the repository is there, the password right, and the one the marker
    remembers; write the marker when there is none.  Returns its id."""
    marker = read_marker(state_dir, restic.repository)
    return verify_probe(restic, state_dir, marker, restic.probe())


def verify_probe(restic, state_dir, marker, probed):
    """open_repository's judgement of a probe made earlier (``probed``: what probe() returned)
    with the marker read before it; raises RepositoryError, writes the marker when there is none."""
    state, repo_id, message = probed
    if state != REPO_OK:
        raise RepositoryError(describe_problem(restic, state, message, marker),
                              REPO_VANISHED if state == REPO_MISSING and marker else state)
    if marker is None:
        _write_marker(state_dir, restic.repository, repo_id, False)
    elif marker.get('id') != repo_id:
        raise RepositoryError('a different repository is at %s (id %s, %s remembers %s); refusing to use it' % (
            restic.repository, repo_id, marker['_path'], marker.get('id')), REPO_OTHER)
    return repo_id


def ensure_repository(restic, state_dir, init=True, check_mode=False):
    """What the module mailu_backup_repository does: initialise the repository once, never
    again; remember it in the marker.  Returns a dict: changed, id, initialised,
    repository, restic_version, marker_before, marker_after.  Raises RepositoryError and
    writes nothing when the repository cannot be used."""
    version = restic.version()
    path = os.path.join(state_dir, MARKER)
    raw_marker = read_json(path)
    marker = read_marker(state_dir, restic.repository)
    state, repo_id, message = restic.probe()
    result = dict(changed=False, id=repo_id, initialised=False, repository=restic.repository,
                  restic_version=version, marker_before=_public(raw_marker), marker_after=_public(raw_marker))
    if state == REPO_OK:
        if marker is not None and marker.get('id') != repo_id:
            raise RepositoryError('a different repository is at %s (id %s, %s remembers %s); refusing to use it' % (
                restic.repository, repo_id, path, marker.get('id')), REPO_OTHER)
        if marker is None:
            result['changed'] = True
            result['marker_after'] = dict(repository=restic.repository, id=repo_id, initialised_here=False)
            if not check_mode:
                result['marker_after'] = _write_marker(state_dir, restic.repository, repo_id, False)
        return result
    if state != REPO_MISSING or marker is not None or not init:
        if state == REPO_MISSING and marker is None:
            raise RepositoryError('repository %s is not initialised, and init is false' % restic.repository, state)
        raise RepositoryError(describe_problem(restic, state, message, marker),
                              REPO_VANISHED if state == REPO_MISSING and marker else state)
    result.update(changed=True, initialised=True)
    if check_mode:
        result['marker_after'] = dict(repository=restic.repository, id=None, initialised_here=True)
        return result
    created = restic.run('init', '--repository-version', '2')
    if created.returncode != 0:
        raise RepositoryError('restic init of %s failed: %s' % (restic.repository, _last_lines(created.stderr)),
                              classify(created.returncode, created.stderr))
    state, repo_id, message = restic.probe()
    if state != REPO_OK:
        raise RepositoryError('repository %s was initialised but cannot be opened: %s' % (restic.repository, message),
                              state)
    result['id'] = repo_id
    result['marker_after'] = _write_marker(state_dir, restic.repository, repo_id, True)
    return result


def _public(marker):
    return None if marker is None else dict((k, v) for k, v in marker.items() if not k.startswith('_'))


# ---------------------------------------------------------------- Compose


def _compose(config, *args):
    compose = config['compose']
    argv = list(compose['command'])
    if compose.get('project_directory'):
        argv += ['--project-directory', compose['project_directory']]
    if compose.get('project'):
        argv += ['-p', compose['project']]
    result = _run(argv + list(args))
    if result.returncode != 0:
        raise BackupError('%s failed: %s' % (' '.join(argv[:2] + list(args)), _last_lines(result.stdout, result.stderr)))
    return result.stdout


def compose_services(config, status_name):
    """The Compose services of the stack in ``status_name`` (running, paused)."""
    if not config.get('compose'):
        return []
    output = _compose(config, 'ps', '--services', '--status', status_name)
    return [line.strip() for line in output.splitlines() if line.strip()]


def unpause(config):
    """Unpause the mail services this engine pauses, those that are paused; idempotent."""
    if not config.get('compose'):
        return []
    paused = [name for name in compose_services(config, 'paused') if name in config['compose'].get('pause', [])]
    if paused:
        _compose(config, 'unpause', *paused)
        log('unpaused %s' % ', '.join(paused))
    return paused


def _redis_save(config, running):
    compose = config.get('compose') or {}
    service = compose.get('redis')
    if not service:
        return
    if service not in running:
        log('redis (%s) is not running: its dump.rdb on disk is backed up as it is' % service)
        return
    output = _compose(config, 'exec', '-T', service, 'redis-cli', 'save')
    if output.strip() != 'OK':
        raise BackupError('redis-cli save in %s printed %r, not OK' % (service, output.strip()[:200]))
    dump = os.path.join(config['root'], 'redis', 'dump.rdb')
    try:
        size = os.stat(dump).st_size
    except OSError as exc:
        raise BackupError('redis saved, but %s cannot be read: %s' % (dump, exc.strerror))
    if size == 0:
        raise BackupError('redis saved, but %s is empty' % dump)


# ---------------------------------------------------------------- PostgreSQL


def _pg_env(database):
    env = dict((k, v) for k, v in os.environ.items() if k not in ('PGPASSWORD', 'PGSERVICE', 'PGSERVICEFILE'))
    if database.get('pgpass_file'):
        env['PGPASSFILE'] = database['pgpass_file']
    return env


def _pg_login(database):
    args = []
    if database.get('host'):
        args += ['-h', str(database['host'])]
    if database.get('port'):
        args += ['-p', str(database['port'])]
    return args + ['-U', database['user']]


def _psql(database, query):
    result = _run([database.get('psql', 'psql'), '-X', '-w', '-A', '-t', '-v', 'ON_ERROR_STOP=1'] + _pg_login(database)
                  + ['-d', database['name'], '-c', query], env=_pg_env(database))
    if result.returncode != 0:
        raise BackupError('database %s at %s:%s cannot be queried: %s' % (
            database['name'], database.get('host', 'local'), database.get('port', 5432), _last_lines(result.stderr)))
    return result.stdout.strip()


def _major(version_num):
    number = int(version_num)
    return number // 10000 if number >= 100000 else number // 100


def dump_database(config, staging):
    """pg_dump -Fc into staging; returns the manifest's database part."""
    database = config['database']
    server_num = _psql(database, 'show server_version_num')
    server_major = _major(server_num)
    pg_dump = database.get('pg_dump', 'pg_dump')
    version = _run([pg_dump, '--version'])
    match = re.search(r'\)\s+(\d+)', version.stdout or '')
    if version.returncode != 0 or not match:
        raise BackupError('%s --version failed: %s' % (pg_dump, _last_lines(version.stdout, version.stderr)))
    client_major = int(match.group(1))
    if client_major < server_major:
        raise BackupError('%s is PostgreSQL %d, older than the server (%d): a dump needs a client of the server\'s '
                          'major version or newer' % (pg_dump, client_major, server_major))
    final = os.path.join(staging, DUMP_NAME)
    tmp = final + '.tmp'
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    result = _run([pg_dump, '-w', '-Fc', '-f', tmp] + _pg_login(database) + ['-d', database['name']],
                  env=_pg_env(database))
    if result.returncode != 0:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise BackupError('pg_dump of database %s failed (exit %d): %s' % (
            database['name'], result.returncode, _last_lines(result.stderr)))
    size = os.path.getsize(tmp) if os.path.exists(tmp) else 0
    if size == 0:
        raise BackupError('pg_dump of database %s wrote an empty dump' % database['name'])
    os.chmod(tmp, 0o600)
    listed = _run([database.get('pg_restore', 'pg_restore'), '--list', tmp])
    if listed.returncode != 0:
        raise BackupError('the dump of database %s cannot be read back (pg_restore --list): %s' % (
            database['name'], _last_lines(listed.stderr)))
    os.replace(tmp, final)
    return dict(name=database['name'], server_version_num=int(server_num), client_major=client_major,
                dump=DUMP_NAME, size=size, sha256=_sha256(final))


# ---------------------------------------------------------------- run


@contextlib.contextmanager
def _locked(config, what):
    """One engine command at a time (fcntl lock); the holder's pid and command are in the file."""
    path = config['lock_file']
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            holder = os.pread(fd, 200, 0).decode('utf-8', 'replace').strip() or 'pid unknown'
            raise BackupError('another backup command is running (%s; lock %s); not starting %s' % (holder, path, what))
        os.ftruncate(fd, 0)
        os.pwrite(fd, ('pid %d, %s since %s\n' % (os.getpid(), what, _iso(_now()))).encode('utf-8'), 0)
        yield
    finally:
        os.close(fd)


def _source_report(config, allow_empty, last_counts):
    """(paths to back up, counts, owners); refuses a missing required or a suspiciously empty source."""
    paths, counts, owners, problems = [], {}, {}, []
    for source in config['sources']:
        path = source['path']
        count = count_files(path)
        if count is None:
            if source.get('required', True):
                problems.append('%s is missing (a required source)' % path)
            continue
        if count == 0 and last_counts.get(path, 0) > 0 and path not in allow_empty:
            problems.append('%s is empty, it held %d files at the last good backup; an unmounted volume? '
                            '(--allow-empty %s if it really is empty now)' % (path, last_counts[path], path))
        info = os.lstat(path)
        paths.append(path)
        counts[path] = count
        owners[path] = dict(uid=info.st_uid, gid=info.st_gid, mode='%04o' % stat.S_IMODE(info.st_mode))
    if problems:
        raise BackupError('refusing to back up: %s' % '; '.join(problems))
    return paths, counts, owners


def _backup(restic, config, paths, tags, parent=None):
    args = ['backup', '--json', '--host', config['host']]
    for tag in tags:
        args += ['--tag', tag]
    if parent:
        args += ['--parent', parent]
    result = restic.run(*(args + paths))
    summary, errors = None, []
    for line in (result.stdout or '').splitlines():
        if not line.startswith('{'):
            continue
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if message.get('message_type') == 'summary':
            summary = message
        elif message.get('message_type') == 'error':
            error = message.get('error')
            errors.append('%s: %s' % (message.get('item', '?'), error.get('message', error) if isinstance(error, dict)
                                      else error))
    return result, summary, errors


def _forget_quietly(restic, ids, why=''):
    """Forget ``ids``; True when done, a warning (not a failure) when not."""
    try:
        restic.forget_ids([item for item in ids if item])
        return True
    except BackupError as exc:
        log('warning: %s%s' % (exc, why))
        return False


def _snapshot_id(summary):
    return (summary or {}).get('snapshot_id')


# restic 0.14 to 0.16 skip a path given that does not exist when they start, say so on stderr and exit 0.
_SKIPPING = re.compile(r'^(.*) does not exist, skipping$')


def skipped_paths(stderr, targets):
    """The ``targets`` a backup did not hold: those restic said it skipped, and those gone now (a path
    that vanished while restic ran may be missing from the snapshot, a late one is taken as missing)."""
    said = set(match.group(1) for match in (_SKIPPING.match(line) for line in (stderr or '').splitlines()) if match)
    return sorted(path for path in targets if path in said or not os.path.lexists(path))


def _tree_bytes(paths):
    """The bytes of the regular files under ``paths`` (symlinks not followed)."""
    total = 0
    for path in paths:
        if os.path.isdir(path) and not os.path.islink(path):
            files = (os.path.join(root, name) for root, unused, names in os.walk(path) for name in names)
        else:
            files = [path]
        for name in files:
            with contextlib.suppress(OSError):
                info = os.lstat(name)
                if stat.S_ISREG(info.st_mode):
                    total += info.st_size
    return total


def _restic_failure(what, result, errors, restic, marker):
    """The error of a restic command that failed: the repository's state by name when that is why."""
    state = classify(result.returncode, result.stderr)
    if state != REPO_OTHER:
        return RepositoryError(describe_problem(restic, state, _last_lines(result.stderr), marker),
                               REPO_VANISHED if state == REPO_MISSING and marker else state)
    return BackupError('%s failed (exit %d): %s' % (what, result.returncode, _last_lines(result.stderr, *errors)))


def run(config, allow_empty=(), clock=time.monotonic):
    """A backup; returns last-backup.json's content (result ok), raises BackupError (recorded as failed)."""
    with _locked(config, 'run'):
        started = _now()
        state_dir = config['state_dir']
        last_path = os.path.join(state_dir, LAST_BACKUP)
        try:
            last = read_json(last_path) or {}
        except BackupError:
            last = {}
        record = dict(result=FAILED, started=_iso(started), finished=None, snapshot=None, message='',
                      pause_seconds=0.0, duration_seconds=0.0, counts=last.get('counts') or {},
                      last_good=last.get('last_good') if isinstance(last.get('last_good'), dict) else None)
        begin = clock()
        try:
            _run_backup(config, allow_empty, record, clock)
            record['result'] = OK
            record['message'] = 'snapshot %s of %s' % (record['snapshot'], config['repository'])
        except BackupError as exc:
            record['message'] = str(exc)
            raise
        finally:
            record['finished'] = _iso(_now())
            record['duration_seconds'] = round(clock() - begin, 3)
            write_json(last_path, record)
        return record


def _prepare(config, allow_empty, record, pool):
    """The local work before restic reads: the sources checked, redis saved, the database dumped (in
    ``pool``, beside the rest) and the manifest written.  Returns (paths to back up, counts, running
    services); the first failure in that order is the one raised."""
    staging = os.path.join(config['state_dir'], STAGING)
    os.makedirs(staging, mode=0o700, exist_ok=True)
    dump = pool.submit(dump_database, config, staging) if config.get('database') else None
    try:
        running = compose_services(config, 'running')
        # Saved before the sources are counted, so that redis's dump.rdb is among the counted files.
        _redis_save(config, running)
        paths, counts, owners = _source_report(config, set(allow_empty), record['counts'])
    finally:
        database = dump.exception() or dump.result() if dump else None
    if isinstance(database, BaseException):
        raise database
    manifest = dict(mailu_version=config.get('mailu_version'), host=config['host'], created=_iso(_now()),
                    root=config['root'], sources=paths, counts=counts, owners=owners, staging=staging,
                    database=database)
    write_json(os.path.join(staging, MANIFEST_NAME), manifest)
    return paths + [staging], counts, running


def _forget_leftover_prepass(restic, config):
    """Forget the prepass snapshot a run that was killed left (its id in prepass.json, or, killed while
    restic made it, every prepass snapshot of this host)."""
    path = os.path.join(config['state_dir'], PREPASS_PENDING)
    try:
        pending = read_json(path) or {}
    except BackupError:
        pending = {}
    ids = [pending['snapshot']] if pending.get('snapshot') else [
        item['id'] for item in restic.snapshots(host=config['host'], tags=PREPASS_TAG)]
    log('forgetting %d prepass snapshot(s) an interrupted run left' % len(ids))
    if _forget_quietly(restic, ids, ' (the next run tries again)'):
        os.unlink(path)


def _run_backup(config, allow_empty, record, clock):
    restic = Restic.from_config(config)
    state_dir = config['state_dir']
    marker = read_marker(state_dir, restic.repository)
    pending = os.path.join(state_dir, PREPASS_PENDING)
    # Each restic command first spends about half a second of CPU deriving the key.  The probe of the
    # repository (there, the password right, the marker's id) runs while the local work is done; when it
    # is not over by then and nothing is to be paused, the backup starts beside it, and what the backup
    # made is forgotten if the probe then fails: a run that fails records nothing as good, whichever
    # finished first.
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        probe = pool.submit(restic.probe)
        verified = []

        def repository_id():
            if not verified:
                verified.append(verify_probe(restic, state_dir, marker, probe.result()))
            return verified[0]

        try:
            targets, counts, running = _prepare(config, allow_empty, record, pool)
        except BackupError:
            repository_id()  # a repository that cannot be used is said first
            raise
        if os.path.exists(pending):
            repository_id()
            _forget_leftover_prepass(restic, config)
        to_pause = [name for name in (config.get('compose') or {}).get('pause', []) if name in running]
        # Mail is never paused for a repository that cannot be used: an unreachable SFTP server can keep
        # restic waiting for minutes.  With nothing to pause, the backup may start beside the probe.
        if probe.done() or to_pause:
            repository_id()

        last_good = record.get('last_good') or {}
        # restic takes the newest snapshot of the host with the same paths as the parent: after a good
        # run of this server into this repository, the paused pass reads only what changed.
        known_parent = bool(marker and last_good.get('snapshot') and last_good.get('repository') == config['repository']
                            and last_good.get('repository_id') == marker.get('id'))
        parent = None
        if to_pause and not known_parent:
            size = _tree_bytes(targets)
            if size >= config['prepass_min_bytes']:
                parent = _prepass(restic, config, targets, size, repository_id, marker)
            else:
                log('no earlier good run: the paused pass reads all %.0f MB (prepass_min_bytes %d)' % (
                    size / 1e6, config['prepass_min_bytes']))

        paused_at = None
        try:
            if to_pause:
                paused_at = clock()
                _compose(config, 'pause', *to_pause)
                log('paused %s' % ', '.join(to_pause))
            result, summary, errors = _backup(restic, config, targets, [config['tag']], parent)
        except BaseException:
            if parent and _forget_quietly(restic, [parent], ' (the next run forgets it)'):
                os.unlink(pending)
            raise
        finally:
            if paused_at is not None:
                try:
                    _compose(config, 'unpause', *to_pause)
                finally:
                    record['pause_seconds'] = round(clock() - paused_at, 3)
                    log('unpaused %s after %.1f s' % (', '.join(to_pause), record['pause_seconds']))

        snapshot = _snapshot_id(summary)
        try:
            repo_id = repository_id()
        except BackupError as exc:
            if snapshot or parent:
                made = [item for item in (snapshot, parent) if item]
                done = _forget_quietly(restic, made, ' (snapshot(s) %s are left there)' % ', '.join(made))
                raise RepositoryError('%s; the snapshot just made there %s' % (
                    exc, 'was forgotten' if done else 'could NOT be forgotten'), getattr(exc, 'state', REPO_OTHER))
            raise
    failure = None
    if result.returncode == RESTIC_INCOMPLETE:
        failure = BackupError('restic could not read some files, the incomplete snapshot %s was forgotten: %s' % (
            snapshot or '?', '; '.join(errors[:_MESSAGE_LINES]) or _last_lines(result.stderr)))
    elif result.returncode != 0 or not snapshot:
        failure = _restic_failure('restic backup', result, errors, restic, marker)
    else:
        files = sum(summary.get(key, 0) for key in ('files_new', 'files_changed', 'files_unmodified'))
        missing = skipped_paths(result.stderr, targets)
        if files == 0 or missing:
            failure = BackupError('snapshot %s was forgotten: %s' % (
                snapshot, 'it holds no file' if files == 0 else 'restic skipped %s' % ', '.join(missing)))
    if failure:
        # The prepass goes too; should the forget fail, prepass.json stays for the next run.
        restic.forget_ids([item for item in (snapshot, parent) if item])
        if parent:
            os.unlink(pending)
        raise failure
    if parent and _forget_quietly(restic, [parent], ' (the next run forgets it)'):
        os.unlink(pending)
    record.update(snapshot=snapshot, counts=counts, last_good=dict(
        snapshot=snapshot, repository=config['repository'], repository_id=repo_id, finished=_iso(_now())))


def _prepass(restic, config, targets, size, repository_id, marker):
    """The unpaused first read of a big store; returns its snapshot id (recorded in prepass.json until
    it is forgotten, so that a run killed meanwhile leaves nothing the next run does not forget)."""
    pending = os.path.join(config['state_dir'], PREPASS_PENDING)
    log('no earlier good run and %.0f MB to read: an unpaused prepass reads everything first' % (size / 1e6))
    write_json(pending, dict(started=_iso(_now()), snapshot=None))
    result, summary, errors = _backup(restic, config, targets, [PREPASS_TAG])
    parent = _snapshot_id(summary)
    if parent:
        write_json(pending, dict(started=_iso(_now()), snapshot=parent))
    try:
        repository_id()
        if result.returncode not in (0, RESTIC_INCOMPLETE) or not parent:
            raise _restic_failure('the prepass backup', result, errors, restic, marker)
    except BackupError:
        if parent and _forget_quietly(restic, [parent], ' (the next run forgets it)'):
            os.unlink(pending)
        raise
    return parent


# ---------------------------------------------------------------- forget, check


@contextlib.contextmanager
def _recorded(config, name, record):
    """Write ``record`` to the state file ``name`` however the block ends: a failure's message in it."""
    try:
        yield record
    except BackupError as exc:
        record['message'] = str(exc)
        raise
    finally:
        record['finished'] = _iso(_now())
        write_json(os.path.join(config['state_dir'], name), record)


def forget(config):
    with _locked(config, 'forget'):
        restic = Restic.from_config(config)
        with _recorded(config, LAST_FORGET, dict(result=FAILED, finished=None, message='')) as record:
            open_repository(restic, config['state_dir'])
            args = ['forget', '--host', config['host'], '--tag', config['tag']]
            retention = config.get('retention') or {}
            for key in ('keep_last', 'keep_hourly', 'keep_daily', 'keep_weekly', 'keep_monthly', 'keep_yearly',
                        'keep_within'):
                value = retention.get(key)
                if value not in (None, '', 0):
                    args += ['--' + key.replace('_', '-'), str(value)]
            result = restic.run(*(args + ['--prune']))
            if result.returncode != 0:
                raise BackupError('restic forget --prune failed: %s' % _last_lines(result.stderr))
            removed = len(re.findall(r'^remove \d+ snapshots', result.stdout or '', re.M))
            record.update(result=OK, message='retention applied (%s)' % ', '.join(args[5:]) if len(args) > 5 else
                          'no retention policy set: nothing forgotten', removed_groups=removed)
        return record


_CHECK_NOISE = re.compile(r'^(using temporary cache|create exclusive lock|load indexes|check all packs|check snapshots'
                          r'|read (all|[0-9.]+%|.* of) |\[|no errors were found|created new cache|'
                          r'read group|check all|using cache)', re.I)


def check(config, subset=None):
    subset = subset or config['check_subset']
    with _locked(config, 'check'):
        restic = Restic.from_config(config)
        with _recorded(config, LAST_CHECK, dict(result=FAILED, finished=None, subset=subset, message='')) as record:
            open_repository(restic, config['state_dir'])
            result = restic.run('check', '--read-data-subset', subset)
            if result.returncode != 0:
                lines = [line.strip() for line in ((result.stdout or '') + '\n' + (result.stderr or '')).splitlines()
                         if line.strip() and not _CHECK_NOISE.match(line.strip())]
                raise BackupError('restic check --read-data-subset %s found damage in %s: %s' % (
                    subset, config['repository'], ' / '.join(lines[:_MESSAGE_LINES]) or 'no message'))
            record.update(result=OK, message='no errors in %s of the data' % subset)
        return record


# ---------------------------------------------------------------- status


def status(config, max_age_hours=None, now=None):
    """The freshness report: repository state, newest snapshot, last run and check, problems.

    ``exit``: 0 fresh and nothing failed; 1 stale, no snapshot, or a failure recorded;
    2 the repository cannot be reached."""
    now = now or _now()
    max_age = float(config['max_age_hours'] if max_age_hours is None else max_age_hours)
    state_dir = config['state_dir']
    report = dict(repository=REPO_OTHER, repository_location=config['repository'], repository_message='',
                  newest_snapshot=None, fresh=False, grace=False, max_age_hours=max_age,
                  last_backup=None, last_check=None, last_forget=None, marker=None, problems=[])
    problems = report['problems']
    for key, name in (('last_backup', LAST_BACKUP), ('last_check', LAST_CHECK), ('last_forget', LAST_FORGET)):
        try:
            report[key] = read_json(os.path.join(state_dir, name))
        except BackupError as exc:
            problems.append(str(exc))
    try:
        marker = read_marker(state_dir, config['repository'])
    except BackupError as exc:
        problems.append(str(exc))
        marker = None
    report['marker'] = _public(marker)
    restic = Restic.from_config(config)
    try:
        state, repo_id, message = restic.probe()
    except BackupError as exc:
        state, repo_id, message = REPO_OTHER, None, str(exc)
    if state == REPO_MISSING and marker:
        state = REPO_VANISHED
    report['repository'] = state
    if state != REPO_OK:
        report['repository_message'] = describe_problem(restic, state, message, marker)
        problems.append(report['repository_message'])
    elif marker and marker.get('id') != repo_id:
        report['repository'] = REPO_OTHER
        report['repository_message'] = 'a different repository is at %s (id %s, the marker remembers %s)' % (
            config['repository'], repo_id, marker.get('id'))
        problems.append(report['repository_message'])
    else:
        try:
            snapshots = restic.snapshots(host=config['host'], tags=config['tag'])
        except BackupError as exc:
            snapshots = []
            problems.append(str(exc))
        if snapshots:
            newest = snapshots[-1]
            age = (now - parse_time(newest['time'])).total_seconds() / 3600.0
            report['newest_snapshot'] = dict(id=newest.get('short_id') or newest['id'][:8], full_id=newest['id'],
                                             time=newest['time'], age_hours=round(age, 2))
            report['fresh'] = age <= max_age
            if not report['fresh']:
                problems.append('the newest snapshot %s is %.1f hours old (more than %g)' % (
                    report['newest_snapshot']['id'], age, max_age))
        else:
            first_seen = (marker or {}).get('first_seen')
            if first_seen and (now - parse_time(first_seen)).total_seconds() / 3600.0 <= max_age:
                report['grace'] = True
            else:
                problems.append('repository %s holds no snapshot of %s' % (config['repository'], config['host']))
    for key, what in (('last_backup', 'the last backup run'), ('last_check', 'the last integrity check'),
                      ('last_forget', 'the last retention run')):
        if (report[key] or {}).get('result') == FAILED:
            problems.append('%s failed at %s: %s' % (what, report[key].get('finished'), report[key].get('message')))
    if report['repository'] != REPO_OK:
        report['exit'] = EXIT_USAGE
    elif problems:
        report['exit'] = EXIT_FAILED
    else:
        report['exit'] = EXIT_OK
    return report


def _status_text(report):
    lines = ['repository %s: %s' % (report['repository_location'], report['repository'])]
    newest = report['newest_snapshot']
    if newest:
        lines.append('newest snapshot %s at %s, %.1f hours old (%s)' % (
            newest['id'], newest['time'], newest['age_hours'], 'fresh' if report['fresh'] else 'STALE'))
    elif report['grace']:
        lines.append('no snapshot yet (a new repository, within %g hours)' % report['max_age_hours'])
    for key, what in (('last_backup', 'last backup run'), ('last_check', 'last check'), ('last_forget', 'last forget')):
        if report[key]:
            lines.append('%s: %s at %s%s' % (what, report[key].get('result'), report[key].get('finished'),
                                             ', paused %.1f s' % report[key]['pause_seconds']
                                             if report[key].get('pause_seconds') else ''))
    lines += ['PROBLEM: %s' % problem for problem in report['problems']]
    return '\n'.join(lines) + '\n'


# ---------------------------------------------------------------- restore


def _resolve_snapshot(restic, config, snapshot):
    if snapshot in (None, '', 'latest'):
        found = restic.snapshots(host=config['host'], tags=config['tag'])
        if not found:
            raise BackupError('repository %s holds no snapshot of %s (tag %s)' % (
                config['repository'], config['host'], config['tag']))
        return found[-1]
    found = restic.snapshots(ids=[snapshot])
    if not found:
        raise BackupError('repository %s holds no snapshot %s' % (config['repository'], snapshot))
    return found[-1]


def _server_holdings(config):
    """What the server holds that a restore would replace: account rows, mail, DKIM keys."""
    found = []
    database = config.get('database')
    if database:
        existing = _psql(database, "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                                   "WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname IN (%s)"
                         % ', '.join("'%s'" % table for table in ACCOUNT_TABLES)).split()
        for table in ACCOUNT_TABLES:
            if table in existing:
                rows = int(_psql(database, 'SELECT count(*) FROM "%s"' % table))
                if rows:
                    found.append('%d rows in table %s' % (rows, table))
    for directory, what in (('mail', 'entries'), ('dkim', 'files')):
        path = os.path.join(config['root'], directory)
        try:
            entries = sorted(os.listdir(path))
        except FileNotFoundError:
            continue
        if what == 'files':
            entries = [name for name in entries if not os.path.isdir(os.path.join(path, name))]
        if entries:
            found.append('%d %s in %s (%s%s)' % (len(entries), what, path, ', '.join(entries[:3]),
                                                 ', ...' if len(entries) > 3 else ''))
    return found


def _copy_owned(source, target):
    """Copy a tree (or file) with modes, times and numeric ownership, symlinks as symlinks."""
    def owned(src, dst):
        info = os.lstat(src)
        os.lchown(dst, info.st_uid, info.st_gid)
    if os.path.isdir(source) and not os.path.islink(source):
        shutil.copytree(source, target, symlinks=True)
        for root, dirs, files in os.walk(source):
            relative = os.path.relpath(root, source)
            owned(root, os.path.normpath(os.path.join(target, relative)))
            for name in dirs + files:
                owned(os.path.join(root, name), os.path.join(target, relative, name))
    else:
        shutil.copy2(source, target, follow_symlinks=False)
        owned(source, target)


def _move_into_place(source, target):
    try:
        os.rename(source, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        _copy_owned(source, target + '.restoring')
        os.rename(target + '.restoring', target)
        shutil.rmtree(source) if os.path.isdir(source) and not os.path.islink(source) else os.unlink(source)


def _find_staging(workdir, config):
    """The staging directory in a restored snapshot: this server's state_dir/staging, else the first
    ``staging`` directory holding a manifest (a snapshot made with another state_dir)."""
    candidate = os.path.join(workdir, os.path.join(config['state_dir'], STAGING).lstrip('/'))
    if os.path.isfile(os.path.join(candidate, MANIFEST_NAME)):
        return candidate
    for root, dirs, files in os.walk(workdir):
        if os.path.basename(root) == STAGING and MANIFEST_NAME in files:
            return root
        dirs.sort()
    raise BackupError('the snapshot holds no %s (not a nantral-mailu backup?)' % MANIFEST_NAME)


# restic restore's first line: "restoring <Snapshot ID of [PATHS] at TIME by USER@HOST> to TARGET" (0.14 to
# 0.16), "restoring snapshot ID of [PATHS] at TIME by USER@HOST to TARGET" (0.17 and later).
_RESTORING = re.compile(r'restoring <?[Ss]napshot ([0-9a-f]+) of \[.*\] at (\d{4}-\d\d-\d\d)[ T]'
                        r'(\d\d:\d\d:\d\d)(?:\.(\d+))? ?([+-]\d\d:?\d\d|Z)?')


def restored_snapshot(output):
    """(short id, RFC 3339 time) of the snapshot restic restore says it restores; (None, None) if it does not."""
    match = _RESTORING.search(output or '')
    if not match:
        return None, None
    snap_id, day, clock_time, fraction, zone = match.groups()
    zone = zone or 'Z'
    if zone != 'Z' and ':' not in zone:
        zone = zone[:3] + ':' + zone[3:]
    return snap_id, '%sT%s%s%s' % (day, clock_time, '.' + fraction if fraction else '', zone)


def _restore_refusals(config, snapshot, force):
    """The checks before anything is restored: the stack stopped, the server empty unless forced."""
    what = 'the latest snapshot' if snapshot in (None, '', 'latest') else 'snapshot %s' % snapshot
    running = compose_services(config, 'running')
    if running:
        raise BackupError('refusing to restore: the Mailu stack is running (%s); stop it first' % ', '.join(running))
    holdings = _server_holdings(config)
    if holdings and not force:
        raise BackupError('refusing to restore %s: this server holds data: %s (force to replace it; '
                          'the files are kept aside)' % (what, '; '.join(holdings)))
    return holdings


def restore(config, snapshot='latest', force=False, dry_run=False):
    """Put the server back from a snapshot; returns what was done (or, dry run, would be)."""
    with _locked(config, 'restore'):
        restic = Restic.from_config(config)
        if dry_run:
            open_repository(restic, config['state_dir'])
            chosen = _resolve_snapshot(restic, config, snapshot)
            holdings = _restore_refusals(config, snapshot, force)
            return dict(snapshot=chosen.get('short_id') or chosen['id'][:8], snapshot_time=chosen['time'],
                        dry_run=True, found=holdings, moved_aside=[], removed_empty=[], database=None,
                        restored=[path for path in chosen.get('paths', []) if os.path.basename(path) != STAGING])
        marker = read_marker(config['state_dir'], restic.repository)
        os.makedirs(config['root'], exist_ok=True)
        # The probe of the repository runs beside the refusal checks and restic's restore into a work
        # directory (no restic command here writes to the repository, nothing live is touched before
        # the probe's verdict); restic restore picks the snapshot itself: no listing first.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            probe = pool.submit(restic.probe)
            try:
                holdings = _restore_refusals(config, snapshot, force)
            except BackupError:
                verify_probe(restic, config['state_dir'], marker, probe.result())
                raise
            workdir = tempfile.mkdtemp(prefix='.restore-', dir=config['root'])
            try:
                if snapshot in (None, '', 'latest'):
                    args = ['latest', '--host', config['host'], '--tag', config['tag']]
                else:
                    args = [snapshot]
                restored = restic.run(*(['restore'] + args + ['--target', workdir]))
                verify_probe(restic, config['state_dir'], marker, probe.result())
            except BaseException:
                shutil.rmtree(workdir, ignore_errors=True)
                raise
        try:
            return _restore_from(config, workdir, restored, snapshot, holdings)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


def _restore_from(config, workdir, restored, snapshot, holdings):
    if restored.returncode != 0:
        text = (restored.stderr or '').lower()
        if snapshot in (None, '', 'latest') and 'no snapshot found' in text:
            raise BackupError('repository %s holds no snapshot of %s (tag %s)' % (
                config['repository'], config['host'], config['tag']))
        if 'no matching id' in text:
            raise BackupError('repository %s holds no snapshot %s' % (config['repository'], snapshot))
        raise BackupError('restic restore of %s failed: %s' % (
            'the latest snapshot' if snapshot in (None, '', 'latest') else 'snapshot %s' % snapshot,
            _last_lines(restored.stderr)))
    snap_id, snap_time = restored_snapshot(restored.stdout)
    staging = _find_staging(workdir, config)
    manifest = read_json(os.path.join(staging, MANIFEST_NAME)) or {}
    snap_id = snap_id or snapshot
    result = dict(snapshot=snap_id, snapshot_time=snap_time or manifest.get('created'), dry_run=False,
                  found=holdings, restored=[], moved_aside=[], removed_empty=[], database=None)
    wanted = config.get('mailu_version')
    if wanted and manifest.get('mailu_version') and manifest['mailu_version'] != wanted:
        raise BackupError('snapshot %s is Mailu %s, this server is %s: upgrade is not a restore' % (
            snap_id, manifest['mailu_version'], wanted))
    if manifest.get('database'):
        if not config.get('database'):
            raise BackupError('snapshot %s holds a database dump, but the configuration names no database' % snap_id)
        result['database'] = _restore_database(config, staging, manifest['database'])
    stamp = _stamp(_now())
    try:
        for path in manifest.get('sources', []):
            source = os.path.join(workdir, path.lstrip('/'))
            if not os.path.lexists(source):
                continue
            if os.path.lexists(path):
                if os.path.isdir(path) and not os.path.islink(path) and not os.listdir(path):
                    os.rmdir(path)
                    result['removed_empty'].append(path)
                else:
                    aside = '%s.before-restore-%s' % (path, stamp)
                    os.rename(path, aside)
                    result['moved_aside'].append(aside)
                    log('moved %s aside to %s' % (path, aside))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            _move_into_place(source, path)
            result['restored'].append(path)
    except OSError as exc:
        # What was done so far is said, so that a sysadmin knows where the server stands.
        raise BackupError('restore of snapshot %s stopped at %s (%s); database restored: %s; restored: %s; '
                          'moved aside: %s' % (snap_id, getattr(exc, 'filename', None) or '?', exc.strerror or exc,
                                               'yes' if result['database'] else 'no',
                                               ', '.join(result['restored']) or 'nothing',
                                               ', '.join(result['moved_aside']) or 'nothing'))
    return result


def _restore_database(config, staging, info):
    database = config['database']
    dump = os.path.join(staging, info.get('dump', DUMP_NAME))
    if _sha256(dump) != info.get('sha256'):
        raise BackupError('the database dump in the snapshot does not match its manifest (sha256); nothing restored')
    # --clean --if-exists: the tables an earlier start of Mailu's admin created are replaced, none is left behind.
    result = _run([database.get('pg_restore', 'pg_restore'), '-w', '--no-owner', '--no-privileges',
                   '--single-transaction', '--exit-on-error', '--clean', '--if-exists'] + _pg_login(database)
                  + ['-d', database['name'], dump], env=_pg_env(database))
    if result.returncode != 0:
        raise BackupError('pg_restore into database %s failed, the database is as it was: %s' % (
            database['name'], _last_lines(result.stderr)))
    counts = dict((table, int(_psql(database, 'SELECT count(*) FROM "%s"' % table))) for table in ACCOUNT_TABLES)
    return dict(name=database['name'], rows=counts)


# ---------------------------------------------------------------- restore-mailbox


def _maildir_folders(top):
    """The Maildir folders under ``top``: directories holding cur/ or new/."""
    for root, dirs, _files in os.walk(top):
        if 'cur' in dirs or 'new' in dirs:
            yield root


def _unique(name):
    return name.split(':', 1)[0]


def restore_mailbox(config, email, snapshot='latest', folder=None):
    """Copy back the messages of ``email``'s maildir that are missing; never overwrite or delete."""
    if '/' in email or email.startswith('.') or '@' not in email:
        raise BackupError('%r is not a mailbox address' % email)
    with _locked(config, 'restore-mailbox'):
        restic = Restic.from_config(config)
        open_repository(restic, config['state_dir'])
        chosen = _resolve_snapshot(restic, config, snapshot)
        snap_id = chosen.get('short_id') or chosen['id'][:8]
        mailbox = os.path.join(config['root'], 'mail', email)
        if folder in (None, ''):
            include = [mailbox]
        elif folder.upper() == 'INBOX':
            include = [os.path.join(mailbox, 'cur'), os.path.join(mailbox, 'new')]
        else:
            include = [os.path.join(mailbox, '.' + folder.strip('/').replace('/', '.'))]
        workdir = tempfile.mkdtemp(prefix='.restore-mailbox-', dir=config['root'])
        restored = []
        try:
            args = ['restore', chosen['id'], '--target', workdir]
            for path in include:
                args += ['--include', path]
            result = restic.run(*args)
            if result.returncode != 0:
                raise BackupError('restic restore of %s from snapshot %s failed: %s' % (
                    email, snap_id, _last_lines(result.stderr)))
            source_top = os.path.join(workdir, mailbox.lstrip('/'))
            if not os.path.isdir(source_top):
                raise BackupError('snapshot %s holds no mailbox %s%s' % (
                    snap_id, email, ' folder %s' % folder if folder else ''))
            for source_folder in _maildir_folders(source_top):
                relative = os.path.relpath(source_folder, source_top)
                if folder and folder.upper() == 'INBOX' and relative != '.':
                    continue
                restored += _restore_folder(source_top, source_folder, mailbox)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        return dict(snapshot=snap_id, mailbox=email, folder=folder, restored=len(restored), files=restored)


def _ensure_dirs(source_top, source_dir, target_top, target_dir):
    """Create the missing directories from target_top down to target_dir, owned and moded as restored."""
    missing = []
    path, src = target_dir, source_dir
    while not os.path.isdir(path):
        missing.append((path, src))
        if os.path.normpath(path) == os.path.normpath(target_top):
            break
        path, src = os.path.dirname(path), os.path.dirname(src)
    for path, src in reversed(missing):
        info = os.stat(src)
        os.mkdir(path, stat.S_IMODE(info.st_mode))
        os.chmod(path, stat.S_IMODE(info.st_mode))
        os.chown(path, info.st_uid, info.st_gid)


def _restore_folder(source_top, source_folder, target_top):
    target_folder = os.path.normpath(os.path.join(target_top, os.path.relpath(source_folder, source_top)))
    live = set()
    for sub in ('cur', 'new'):
        with contextlib.suppress(FileNotFoundError):
            live.update(_unique(name) for name in os.listdir(os.path.join(target_folder, sub)))
    # A Maildir folder is whole only with its cur/, new/ and tmp/ (an empty one included): each the
    # snapshot has comes back, owned and moded as restored, even when no message goes into it.
    for sub in ('cur', 'new', 'tmp'):
        src_dir = os.path.join(source_folder, sub)
        if os.path.isdir(src_dir) and not os.path.islink(src_dir):
            _ensure_dirs(source_top, src_dir, target_top, os.path.join(target_folder, sub))
    copied = []
    for sub in ('cur', 'new'):
        directory = os.path.join(source_folder, sub)
        if not os.path.isdir(directory):
            continue
        for name in sorted(os.listdir(directory)):
            source = os.path.join(directory, name)
            if _unique(name) in live or not os.path.isfile(source) or os.path.islink(source):
                continue
            for needed in ('tmp', sub):
                src_dir = os.path.join(source_folder, needed)
                _ensure_dirs(source_top, src_dir if os.path.isdir(src_dir) else directory, target_top,
                             os.path.join(target_folder, needed))
            # Maildir delivery: written in tmp/, then renamed into place, never over a file.
            staged = os.path.join(target_folder, 'tmp', name)
            shutil.copy2(source, staged)
            info = os.lstat(source)
            os.chown(staged, info.st_uid, info.st_gid)
            final = os.path.join(target_folder, sub, name)
            if os.path.lexists(final):
                os.unlink(staged)
                continue
            os.rename(staged, final)
            copied.append(final)
    return copied


# ---------------------------------------------------------------- command line


def _parser():
    parser = argparse.ArgumentParser(prog=PROG, description='Back up and restore a Mailu server with restic '
                                                            '(nantral.mailu).')
    parser.add_argument('--config', default=DEFAULT_CONFIG, help='configuration file (default %(default)s)')
    sub = parser.add_subparsers(dest='command')
    sub.required = True
    backup = sub.add_parser('run', help='back up now')
    backup.add_argument('--allow-empty', action='append', default=[], metavar='PATH',
                        help='a source that may be empty although it held files at the last good backup')
    sub.add_parser('unpause', help='unpause the mail services (idempotent)')
    sub.add_parser('forget', help='apply the retention policy and prune')
    checking = sub.add_parser('check', help='check the repository, reading part of the data')
    checking.add_argument('--read-data-subset', metavar='X', help='n/t, x%% or a size (default: the configuration\'s)')
    report = sub.add_parser('status', help='the newest snapshot, the last run and check')
    report.add_argument('--json', action='store_true')
    report.add_argument('--max-age-hours', type=float)
    back = sub.add_parser('restore', help='restore the database and the files (for a rebuild)')
    back.add_argument('--snapshot', default='latest')
    back.add_argument('--force', action='store_true', help='replace the data this server holds (kept aside)')
    back.add_argument('--dry-run', action='store_true')
    mailbox = sub.add_parser('restore-mailbox', help="copy back a mailbox's missing messages")
    mailbox.add_argument('email')
    mailbox.add_argument('--snapshot', default='latest')
    mailbox.add_argument('--folder', help='only this folder (INBOX, or a name such as Sent or Archive/2024)')
    return parser


def _print(data):
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + '\n')
    sys.stdout.flush()


def main(argv=None):
    """The host command; returns its exit status."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return EXIT_OK if exc.code in (0, None) else EXIT_USAGE
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        log(str(exc))
        return EXIT_USAGE
    try:
        if args.command == 'status':
            report = status(config, args.max_age_hours)
            if args.json:
                _print(report)
            else:
                sys.stdout.write(_status_text(report))
            return report['exit']
        if args.command == 'unpause':
            unpause(config)
            return EXIT_OK
        if args.command == 'run':
            log('backing up %s to %s' % (config['host'], config['repository']))
            result = run(config, allow_empty=args.allow_empty)
            log('%s, paused %.1f s, %.1f s in all' % (
                result['message'], result['pause_seconds'], result['duration_seconds']))
        elif args.command == 'forget':
            result = forget(config)
        elif args.command == 'check':
            result = check(config, args.read_data_subset)
        elif args.command == 'restore':
            result = restore(config, args.snapshot, args.force, args.dry_run)
        else:
            result = restore_mailbox(config, args.email, args.snapshot, args.folder)
        log('%s: done' % args.command)
        _print(result)
        return EXIT_OK
    except ConfigError as exc:
        log(str(exc))
        return EXIT_USAGE
    except BackupError as exc:
        log('%s failed: %s' % (args.command, exc))
        if args.command in ('run', 'check', 'forget'):
            _print(dict(result=FAILED, message=str(exc)))
        return EXIT_FAILED
    except OSError as exc:
        log('%s failed: %s' % (args.command, exc))
        return EXIT_FAILED


if __name__ == '__main__':
    raise SystemExit(main())
