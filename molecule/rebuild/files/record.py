"""What a rebuild must give back, recorded on the server as JSON (stdout), and compared.

    record.py                       (on the server) print the record
    record.py compare BEFORE AFTER [--expect-missing REGEX]
                                    (on this machine) exit 1 and list every difference;
                                    paths matching REGEX may be missing from AFTER

- files: every file, directory and symlink under the paths below, with its sha256 (or
  link target), numeric owner and mode: the maildirs, the DKIM keys, the secrets
  (mailu.env, the compose .env) and Certbot's /etc/letsencrypt;
- database: the rows of Mailu's account tables (password hashes included), each table
  ordered by its whole row, and the sequences, read with psql as postgres;
- redis: every key of every database with its type and value (sorted members), read over
  Redis's own protocol from the redis container; not the dump file's bytes, which redis
  rewrites at every save.
"""

import hashlib
import json
import os
import socket
import stat
import subprocess
import sys

PATHS = ['/mailu/mail', '/mailu/dkim', '/mailu/mailu.env', '/mailu/.env', '/etc/letsencrypt']
TABLES = ['domain', 'user', 'alias', 'alternative', 'relay', 'manager', 'token', 'fetch', 'alembic_version']
SEQUENCES = ['fetch_id_seq', 'token_id_seq']
REDIS_CONTAINER = 'mailu-redis-1'


def entry(path):
    info = os.lstat(path)
    item = {'uid': info.st_uid, 'gid': info.st_gid, 'mode': '%04o' % stat.S_IMODE(info.st_mode)}
    if stat.S_ISLNK(info.st_mode):
        item['link'] = os.readlink(path)
    elif stat.S_ISDIR(info.st_mode):
        item['dir'] = True
    else:
        with open(path, 'rb') as handle:
            item['sha256'] = hashlib.sha256(handle.read()).hexdigest()
        item['size'] = info.st_size
    return item


def files():
    found = {}
    for top in PATHS:
        if not os.path.lexists(top):
            found[top] = None
            continue
        found[top] = entry(top)
        for base, dirs, names in os.walk(top):
            for name in dirs + names:
                path = os.path.join(base, name)
                found[path] = entry(path)
    return found


def psql(query):
    return subprocess.run(['runuser', '-u', 'postgres', '--', 'psql', '-X', '-d', 'mailu', '-v', 'ON_ERROR_STOP=1',
                           '-Atc', query], check=True, capture_output=True, text=True).stdout.splitlines()


def database():
    rows = {}
    for table in TABLES:
        rows[table] = psql('COPY (SELECT * FROM "%s" t ORDER BY t::text) TO STDOUT' % table)
    for sequence in SEQUENCES:
        rows[sequence] = psql('SELECT last_value, is_called FROM %s' % sequence)
    return rows


class Redis:
    """Just enough of RESP to read every key: the server has no redis client library."""

    def __init__(self, address):
        self.sock = socket.create_connection((address, 6379), timeout=10)
        self.buf = b''

    def _line(self):
        while b'\r\n' not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError('redis closed the connection')
            self.buf += chunk
        line, self.buf = self.buf.split(b'\r\n', 1)
        return line

    def _exact(self, size):
        while len(self.buf) < size + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError('redis closed the connection')
            self.buf += chunk
        data, self.buf = self.buf[:size], self.buf[size + 2:]
        return data

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b'+':
            return rest.decode()
        if kind == b'-':
            raise RuntimeError('redis: %s' % rest.decode())
        if kind == b':':
            return int(rest)
        if kind == b'$':
            size = int(rest)
            return None if size < 0 else self._exact(size)
        if kind == b'*':
            size = int(rest)
            return None if size < 0 else [self._reply() for item in range(size)]
        raise RuntimeError('redis: unexpected reply %r' % line)

    def __call__(self, *args):
        parts = [a if isinstance(a, bytes) else str(a).encode() for a in args]
        self.sock.sendall(b'*%d\r\n' % len(parts) + b''.join(b'$%d\r\n%s\r\n' % (len(p), p) for p in parts))
        return self._reply()


def text(value):
    return value.decode('utf-8', 'backslashreplace') if isinstance(value, bytes) else value


def redis():
    address = subprocess.run(
        ['docker', 'inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}', REDIS_CONTAINER],
        check=True, capture_output=True, text=True).stdout.split()[0]
    client = Redis(address)
    keyspace = text(client('INFO', 'keyspace'))
    databases = sorted(int(line.split(':')[0][2:]) for line in keyspace.splitlines() if line.startswith('db'))
    content = {}
    for number in databases:
        client('SELECT', number)
        keys, cursor = set(), b'0'
        while True:
            cursor, batch = client('SCAN', cursor, 'COUNT', 1000)
            keys.update(batch)
            if cursor == b'0':
                break
        for key in sorted(keys):
            kind = client('TYPE', key)
            if kind == 'string':
                value = text(client('GET', key))
            elif kind == 'hash':
                flat = client('HGETALL', key)
                value = dict(sorted((text(k), text(v)) for k, v in zip(flat[::2], flat[1::2])))
            elif kind == 'set':
                value = sorted(text(m) for m in client('SMEMBERS', key))
            elif kind == 'zset':
                flat = client('ZRANGE', key, 0, -1, 'WITHSCORES')
                value = [[text(m), text(s)] for m, s in zip(flat[::2], flat[1::2])]
            elif kind == 'list':
                value = [text(m) for m in client('LRANGE', key, 0, -1)]
            else:
                value = '<%s>' % kind
            content['%d/%s' % (number, text(key))] = {'type': kind, 'value': value, 'ttl': client('TTL', key) >= 0}
    return content


def compare(before, after, expect_missing=None):
    """Every difference, one line each: what is missing, extra or changed, by section."""
    lines = []
    for section in sorted(set(before) | set(after)):
        old, new = before.get(section, {}), after.get(section, {})
        for key in sorted(set(old) | set(new)):
            if key not in new:
                if not (expect_missing and expect_missing.search(key)):
                    lines.append('%s: missing after: %s' % (section, key))
            elif key not in old:
                lines.append('%s: new after: %s = %s' % (section, key, json.dumps(new[key])[:200]))
            elif old[key] != new[key]:
                lines.append('%s: changed: %s: %s -> %s' % (
                    section, key, json.dumps(old[key])[:200], json.dumps(new[key])[:200]))
    return lines


def main(argv):
    if argv[:1] == ['compare']:
        import argparse
        import re
        parser = argparse.ArgumentParser(prog='record.py compare')
        parser.add_argument('before')
        parser.add_argument('after')
        parser.add_argument('--expect-missing', type=re.compile)
        args = parser.parse_args(argv[1:])
        with open(args.before) as one, open(args.after) as two:
            before, after = json.load(one), json.load(two)
        lines = compare(before, after, args.expect_missing)
        sizes = ', '.join('%d %s' % (len(after.get(s, {})), s) for s in ('files', 'database', 'redis'))
        if lines:
            print('%d differences between %s and %s:' % (len(lines), args.before, args.after))
            print('\n'.join(lines))
            return 1
        print('identical: %s (%s)' % (args.after, sizes))
        return 0
    json.dump({'files': files(), 'database': database(), 'redis': redis()}, sys.stdout, sort_keys=True)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
