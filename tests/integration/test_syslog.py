"""mailu_accounts' arguments never reach the managed host's system log, as its
documentation says: thousands of accounts would end up there otherwise.

AnsibleModule writes "Invoked with <arguments>" to /dev/log (journald when the systemd
bindings are installed, which they are not here).  The playbook runs in a mount namespace
of the test's own, whose /dev is a private copy where /dev/log is a socket this test
listens on; nothing changes on the machine.  An ordinary module must reach the listener
first, or the absence of mailu_accounts' message would prove nothing.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from dbutil import HASH

# Runs as root inside `unshare --mount` (mounts there are private): a tmpfs over /dev
# holding the usual device nodes, bound from the real /dev, and /dev/log -> $2.
PRIVATE_DEV = r'''
set -eu
real=$1 listener=$2
shift 2
mount --rbind /dev "$real"
mount -t tmpfs -o mode=0755 nantral-test-dev /dev
for node in null zero full random urandom tty ptmx; do
    if [ -e "$real/$node" ]; then touch "/dev/$node"; mount --bind "$real/$node" "/dev/$node"; fi
done
for dir in pts shm; do
    if [ -d "$real/$dir" ]; then mkdir "/dev/$dir"; mount --rbind "$real/$dir" "/dev/$dir"; fi
done
ln -s /proc/self/fd /dev/fd
ln -s /proc/self/fd/0 /dev/stdin
ln -s /proc/self/fd/1 /dev/stdout
ln -s /proc/self/fd/2 /dev/stderr
ln -s "$listener" /dev/log
exec "$@"
'''

ORDINARY_MARKER = 'ordinary-module-marker-4d1f'
ACCOUNT_MARKER = 'syslog-marker-3b8e'


def _namespaces_available():
    if os.geteuid() != 0 or not shutil.which('unshare'):
        return False
    return subprocess.run(['unshare', '--mount', 'true'], capture_output=True, check=False).returncode == 0


pytestmark = pytest.mark.skipif(not _namespaces_available(),
                                reason='needs root and util-linux unshare --mount (a private /dev/log)')


class SyslogListener:
    """An AF_UNIX datagram socket read by a thread: the kernel queues only a few
    datagrams (net.unix.max_dgram_qlen), and a full queue would block the module."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix='nantral-log-')   # short: AF_UNIX paths are limited
        self.path = os.path.join(self.dir, 'log')
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        os.chmod(self.path, 0o666)
        self.sock.settimeout(0.2)
        self.messages = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        while not self._stop.is_set():
            try:
                self.messages.append(self.sock.recv(65536).decode('utf-8', 'replace'))
            except socket.timeout:
                continue

    def close(self):
        self._stop.set()
        self._thread.join()
        self.sock.close()
        shutil.rmtree(self.dir)


@pytest.fixture
def syslog():
    listener = SyslogListener()
    yield listener
    listener.close()


def playbook_with_private_syslog(tmp_path, listener, tasks):
    """Run ``tasks`` on localhost through ansible-playbook with /dev/log = ``listener``;
    returns the JSON callback's task results."""
    (tmp_path / 'play.yml').write_text(json.dumps([dict(hosts='localhost', gather_facts=False, tasks=tasks)]))
    (tmp_path / 'private-dev.sh').write_text(PRIVATE_DEV)
    (tmp_path / 'real-dev').mkdir()
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK='ansible.posix.json', ANSIBLE_LOCALHOST_WARNING='false',
               ANSIBLE_INVENTORY_UNPARSED_WARNING='false', ANSIBLE_PYTHON_INTERPRETER=sys.executable,
               ANSIBLE_NOCOLOR='1')
    command = ['unshare', '--mount', 'sh', str(tmp_path / 'private-dev.sh'), str(tmp_path / 'real-dev'), listener.path,
               str(Path(sys.executable).parent / 'ansible-playbook'), '-i', 'localhost,', '-c', 'local', '--diff',
               str(tmp_path / 'play.yml')]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=300)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    return [task['hosts']['localhost'] for task in json.loads(out.stdout)['plays'][0]['tasks']]


def test_mailu_accounts_arguments_never_reach_the_system_log(tmp_path, mailu_db, db_snapshot, syslog):
    db = mailu_db('2024.06')
    connection = dict((k, v) for k, v in db.items() if k.startswith('login_'))
    accounts = dict(connection,
                    domains=[dict(name='%s.example.org' % ACCOUNT_MARKER)],
                    users=[dict(email='user@%s.example.org' % ACCOUNT_MARKER, password_hash=HASH,
                                displayed_name='Displayed %s' % ACCOUNT_MARKER, quota='1G')],
                    aliases=[dict(email='alias@%s.example.org' % ACCOUNT_MARKER,
                                  destination=['user@%s.example.org' % ACCOUNT_MARKER])])
    ping, created, again = playbook_with_private_syslog(tmp_path, syslog, [
        {'name': 'An ordinary module', 'ansible.builtin.ping': dict(data=ORDINARY_MARKER)},
        {'name': 'The accounts', 'nantral.mailu.mailu_accounts': accounts},
        {'name': 'The accounts again, in check mode', 'nantral.mailu.mailu_accounts': accounts, 'check_mode': True},
    ])

    # The listener works: AnsibleModule's own logging of an ordinary module reached it.
    assert ping['ping'] == ORDINARY_MARKER
    assert any('ping: Invoked with data=%s' % ORDINARY_MARKER in m for m in syslog.messages), syslog.messages

    # mailu_accounts did its work, with its result and diff, and logged nothing.
    assert created['changed'] is True
    assert created['users']['created'] == ['user@%s.example.org' % ACCOUNT_MARKER]
    assert created['diff']['after']['users']['user@%s.example.org' % ACCOUNT_MARKER]['displayed_name'] == \
        'Displayed %s' % ACCOUNT_MARKER
    assert created['invocation']['module_args']['users'][0]['password_hash'] == 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER'
    assert again['changed'] is False
    logged = [m for m in syslog.messages if 'mailu_accounts' in m or ACCOUNT_MARKER in m or HASH[:20] in m]
    assert logged == []
    assert db_snapshot(db)['user'][0]['displayed_name'] == 'Displayed %s' % ACCOUNT_MARKER
