"""A Mailu server's files, a real restic repository and a configuration for the backup engine.

Used by tests/unit/test_backup_*.py, tests/integration/test_backup_*.py and
benchmarks/backup.py.  ``BackupEnv(tmp)`` lays out ``tmp/mailu`` as Mailu's stack root
(maildirs owned by uid 1000, DKIM keys, redis, secrets), a local repository
``tmp/repo`` with its password file, a state dir and a lock file of its own, and the
engine's configuration (``config``, also written to ``config_path``).  The Compose
stack is a fake command (``FakeCompose``) that records its arguments; the database is
one of tests/conftest.py's ``mailu_db`` databases, or none.
"""

import contextlib
import io
import json
import os
import subprocess
import sys
import textwrap

from ansible_collections.nantral.mailu.plugins.module_utils import mailu_backup as engine

PASSWORD = 'correct horse battery staple'
MAILU_UID = 1000
SOURCES = ('mail', 'dkim', 'redis', 'filter', 'data', 'webmail', 'dav', 'overrides', 'mailqueue', 'certs',
           'mailu.env', '.env', 'docker-compose.yml')
OPTIONAL = ('webmail', 'dav', 'certs')

_FAKE_COMPOSE = textwrap.dedent('''\
    #!{python}
    """A stand-in for docker compose: logs its arguments, keeps running/paused service lists in files."""
    import json, os, sys
    here = {here!r}
    args = sys.argv[1:]
    with open(os.path.join(here, 'calls.jsonl'), 'a') as log:
        log.write(json.dumps(args) + '\\n')
    def names(kind):
        try:
            return open(os.path.join(here, kind)).read().split()
        except FileNotFoundError:
            return []
    def save(kind, values):
        open(os.path.join(here, kind), 'w').write('\\n'.join(values))
    while args and args[0] in ('--project-directory', '-p'):
        args = args[2:]
    fail = names('fail')
    if args and args[0] in fail:
        sys.stderr.write('fake compose: %s fails\\n' % args[0])
        sys.exit(1)
    if args[:2] == ['ps', '--services']:
        status = args[args.index('--status') + 1]
        paused = names('paused')
        running = [n for n in names('running') if n not in paused]
        print('\\n'.join(running if status == 'running' else paused))
    elif args[0] == 'pause':
        save('paused', sorted(set(names('paused')) | set(args[1:])))
    elif args[0] == 'unpause':
        save('paused', [n for n in names('paused') if n not in args[1:]])
    elif args[:5] == ['exec', '-T', 'redis', 'redis-cli', 'save']:
        with open({dump!r}, 'wb') as dump:
            dump.write(b'REDIS0011 fake dump')
        print('OK')
    else:
        sys.stderr.write('fake compose: unexpected %r\\n' % (args,))
        sys.exit(2)
''')


class FakeCompose:
    def __init__(self, directory, root, running=('redis', 'smtp', 'imap', 'front', 'admin')):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.command = os.path.join(directory, 'compose')
        with open(self.command, 'w', encoding='utf-8') as handle:
            handle.write(_FAKE_COMPOSE.format(python=sys.executable, here=directory,
                                              dump=os.path.join(root, 'redis', 'dump.rdb')))
        os.chmod(self.command, 0o755)
        self.set('running', running)

    def set(self, kind, names):
        with open(os.path.join(self.dir, kind), 'w', encoding='utf-8') as handle:
            handle.write('\n'.join(names))

    def names(self, kind):
        with contextlib.suppress(FileNotFoundError):
            with open(os.path.join(self.dir, kind), encoding='utf-8') as handle:
                return handle.read().split()
        return []

    def calls(self):
        """Each call's arguments, without the project options."""
        calls = []
        with contextlib.suppress(FileNotFoundError):
            with open(os.path.join(self.dir, 'calls.jsonl'), encoding='utf-8') as handle:
                for line in handle:
                    args = json.loads(line)
                    while args and args[0] in ('--project-directory', '-p'):
                        args = args[2:]
                    calls.append(args)
        return calls

    def config(self, root):
        return dict(command=[self.command], project_directory=root, project='mailu', pause=['smtp', 'imap'],
                    redis='redis')


def message(number, size):
    """A plausible RFC 5322 message of about ``size`` bytes."""
    head = ('Return-Path: <sender%d@example.net>\nFrom: Sender <sender%d@example.net>\nTo: user@example.org\n'
            'Subject: message %d\nMessage-ID: <%d@example.net>\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n\n'
            % (number, number, number, number)).encode()
    body = (b'%d lorem ipsum dolor sit amet ' % number) * (max(size - len(head), 0) // 30 + 1)
    return head + body[:max(size - len(head), 0)]


def write_maildir(root, email, sizes, folder='', uid=MAILU_UID, start=0):
    """Messages in Maildir layout under root/mail/EMAIL[/.FOLDER]/cur, owned by uid; returns their paths."""
    top = os.path.join(root, 'mail', email)
    base = os.path.join(top, '.' + folder) if folder else top
    paths = []
    for sub in ('cur', 'new', 'tmp'):
        os.makedirs(os.path.join(base, sub), exist_ok=True)
    for index, size in enumerate(sizes, start):
        name = '17040672%02d.M%dP%d.mail,S=%d,W=%d:2,S' % (index % 100, index, 4242, size, size)
        path = os.path.join(base, 'cur' if index % 5 else 'new', name if index % 5 else name.split(':')[0])
        with open(path, 'wb') as handle:
            handle.write(message(index, size))
        os.chmod(path, 0o600)
        paths.append(path)
    for directory, dirs, files in os.walk(top):
        os.chown(directory, uid, uid)
        os.chmod(directory, 0o700)
        for name in files:
            os.chown(os.path.join(directory, name), uid, uid)
    return paths


class BackupEnv:
    def __init__(self, tmp_path, database=None, compose=False, repository=None):
        tmp = str(tmp_path)
        self.tmp = tmp
        self.root = os.path.join(tmp, 'mailu')
        self.etc = os.path.join(tmp, 'etc')
        self.state_dir = os.path.join(tmp, 'state')
        self.repository = repository or os.path.join(tmp, 'repo')
        os.makedirs(self.etc, mode=0o700)
        self.password_file = os.path.join(self.etc, 'password')
        self.set_password(PASSWORD)
        self.compose = FakeCompose(os.path.join(tmp, 'compose'), self.root) if compose else None
        self.config = dict(
            repository=self.repository, password_file=self.password_file, env={}, options=[], restic='restic',
            host='mail.example.org', tag='nantral-mailu', state_dir=self.state_dir, mailu_version='2024.06',
            root=self.root, lock_file=os.path.join(tmp, 'backup.lock'),
            sources=[dict(path=os.path.join(self.root, name), required=name not in OPTIONAL) for name in SOURCES],
            compose=self.compose.config(self.root) if compose else None,
            database=self.database_config(database) if database else None,
            check_subset='100%', retention=dict(keep_daily=7, keep_weekly=4, keep_monthly=6, keep_within=''),
            max_age_hours=36)
        self.config_path = os.path.join(self.etc, 'config.json')
        self.save()

    def database_config(self, params):
        pgpass = os.path.join(self.etc, 'pgpass')
        with open(pgpass, 'w', encoding='utf-8') as handle:
            handle.write('%s:%s:%s:%s:%s\n' % (params['login_host'], params['login_port'], params['login_db'],
                                               params['login_user'], params['login_password']))
        os.chmod(pgpass, 0o600)
        return dict(host=params['login_host'], port=params['login_port'], name=params['login_db'],
                    user=params['login_user'], pgpass_file=pgpass, pg_dump='pg_dump', pg_restore='pg_restore',
                    psql='psql')

    def set_password(self, password):
        with open(self.password_file, 'w', encoding='utf-8') as handle:
            handle.write(password)
        os.chmod(self.password_file, 0o600)

    def save(self):
        with open(self.config_path, 'w', encoding='utf-8') as handle:
            json.dump(self.config, handle)

    @property
    def engine_config(self):
        return engine.check_config(json.loads(json.dumps(self.config)))

    def populate(self, mailboxes=None):
        """A small Mailu server's files: two mailboxes, a DKIM key, redis, the secrets."""
        root = self.root
        for name in ('dkim', 'redis', 'filter', 'data', 'overrides', 'mailqueue', 'webmail'):
            os.makedirs(os.path.join(root, name), exist_ok=True)
        mailboxes = mailboxes or {'user@example.org': [2000, 15000, 300, 80000], 'admin@example.org': [5000]}
        for email, sizes in mailboxes.items():
            write_maildir(root, email, sizes)
        write_maildir(root, 'user@example.org', [1200, 3400], folder='Sent', start=50)
        files = {
            'dkim/example.org.dkim.key': b'-----BEGIN PRIVATE KEY-----\nMIIfake\n-----END PRIVATE KEY-----\n',
            'redis/dump.rdb': b'REDIS0011 learned spam',
            'filter/bayes.db': b'bayes', 'data/main.db': b'sqlite', 'overrides/postfix.cf': b'# none\n',
            'mailqueue/.keep': b'', 'webmail/roundcube.db': b'rc',
            'mailu.env': b'SECRET_KEY=0123456789abcdef\n', '.env': b'COMPOSE_PROJECT_NAME=mailu\n',
            'docker-compose.yml': b'services: {}\n',
        }
        for name, content in files.items():
            path = os.path.join(root, name)
            with open(path, 'wb') as handle:
                handle.write(content)
        os.chmod(os.path.join(root, 'dkim/example.org.dkim.key'), 0o600)
        os.chmod(os.path.join(root, 'mailu.env'), 0o600)
        for directory in ('data', 'dkim'):
            os.chown(os.path.join(root, directory), MAILU_UID, MAILU_UID)
            for name in os.listdir(os.path.join(root, directory)):
                os.chown(os.path.join(root, directory, name), MAILU_UID, MAILU_UID)

    def init(self):
        return engine.ensure_repository(engine.Restic.from_config(self.engine_config), self.state_dir)

    def main(self, *argv):
        """The host command in-process: (exit status, stdout as JSON when it is, stderr)."""
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = engine.main(['--config', self.config_path] + list(argv))
        text = out.getvalue()
        try:
            data = json.loads(text)
        except ValueError:
            data = text
        return code, data, err.getvalue()

    def restic(self, *args, check=True):
        env = dict(os.environ, RESTIC_REPOSITORY=self.repository, RESTIC_PASSWORD=PASSWORD)
        return subprocess.run(['restic'] + list(args), env=env, capture_output=True, text=True, check=check)

    def snapshots(self, tag=None):
        args = ['snapshots', '--json'] + (['--tag', tag] if tag else [])
        return json.loads(self.restic(*args).stdout or '[]') or []

    def state(self, name):
        with open(os.path.join(self.state_dir, name), encoding='utf-8') as handle:
            return json.load(handle)


def tree(path):
    """{relative path: (sha-less content, mode, uid, gid)} of every file and directory under path."""
    found = {}
    for directory, dirs, files in os.walk(path):
        for name in dirs + files:
            full = os.path.join(directory, name)
            info = os.lstat(full)
            content = None
            if os.path.isfile(full) and not os.path.islink(full):
                with open(full, 'rb') as handle:
                    content = handle.read()
            found[os.path.relpath(full, path)] = (content, oct(info.st_mode), info.st_uid, info.st_gid)
    return found
