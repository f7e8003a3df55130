"""Shared pieces of the Mailu test stand-ins (see tests/standins/README.md).

Two uses, both through the stand-ins' own Python (Debian's python3, standard
library only):

* ``python3 /standin/standin.py serve NAME [--tcp PORT:PROTO]... [--http PORT]...
  [--pidfile PATH]`` runs a stand-in service as PID 1: TCP listeners that
  greet like the protocol they stand for (imap, pop3, smtp, lmtp, sieve) and
  HTTP listeners that answer 200; ``--pidfile`` writes its process ID where the
  real daemon writes its own (a healthcheck reads it). It logs to stdout and
  stops on SIGTERM/SIGINT.
* ``python3 /standin/standin.py probe tcp PORT | http PORT PATH``: exit 0 when
  the listener answers (a greeting, or an HTTP status below 400). The
  stand-ins' HEALTHCHECKs run the real images' own commands (curl, nc, dig,
  kill -0) instead wherever they can.

These are stand-ins for tests where no container registry is reachable; they
do not implement the protocols beyond the greeting and a few commands.
"""

import argparse
import http.client
import http.server
import os
import signal
import socket
import socketserver
import sys
import threading
import time

HOSTNAME = socket.gethostname()

# Greeting, then replies keyed by the upper-cased command word; '*' is the
# fallback. '{tag}' is the IMAP tag of the command; a reply ending the
# session is marked by the QUIT_MARK prefix.
QUIT_MARK = '\x00quit\x00'
PROTOCOLS = {
    'smtp': {
        'greeting': '220 {host} ESMTP Postfix (Mailu test stand-in)',
        'EHLO': '250-{host}\r\n250 8BITMIME', 'HELO': '250 {host}', 'NOOP': '250 2.0.0 Ok',
        'QUIT': QUIT_MARK + '221 2.0.0 Bye', '*': '502 5.5.2 Error: command not implemented (stand-in)',
    },
    'lmtp': {
        'greeting': '220 {host} Dovecot (Mailu test stand-in) ready.',
        'LHLO': '250-{host}\r\n250 8BITMIME', 'NOOP': '250 OK',
        'QUIT': QUIT_MARK + '221 2.0.0 Bye', '*': '502 5.5.2 Command not implemented (stand-in)',
    },
    'imap': {
        # Dovecot's own greetings (1.9's healthcheck greps the POP3 one).
        'greeting': '* OK [CAPABILITY IMAP4rev1] Dovecot ready.',
        'CAPABILITY': '* CAPABILITY IMAP4rev1\r\n{tag} OK Capability completed.',
        'NOOP': '{tag} OK NOOP completed.',
        'LOGOUT': QUIT_MARK + '* BYE Logging out\r\n{tag} OK Logout completed.',
        '*': '{tag} NO Not implemented by the stand-in.',
    },
    'pop3': {
        'greeting': '+OK Dovecot ready.',
        'CAPA': '+OK\r\nUSER\r\n.', 'NOOP': '+OK',
        'QUIT': QUIT_MARK + '+OK Logging out.', '*': '-ERR Not implemented by the stand-in.',
    },
    'sieve': {
        'greeting': '"IMPLEMENTATION" "Dovecot Pigeonhole (Mailu test stand-in)"\r\n"SIEVE" ""\r\nOK "Ready."',
        'NOOP': 'OK "NOOP completed."', 'LOGOUT': QUIT_MARK + 'OK "Logout completed."',
        '*': 'NO "Not implemented by the stand-in."',
    },
}

_stop = threading.Event()


def log(name, message):
    sys.stdout.write('%s %s[stand-in]: %s\n' % (time.strftime('%Y-%m-%dT%H:%M:%S'), name, message))
    sys.stdout.flush()


def _reply(proto, line):
    words = line.split()
    tag = '*'
    if proto == 'imap' and words:
        tag, words = words[0], words[1:]
    command = words[0].upper() if words else ''
    text = PROTOCOLS[proto].get(command, PROTOCOLS[proto]['*'])
    return text.replace('{host}', HOSTNAME).replace('{tag}', tag)


def make_tcp_handler(name, proto):
    class Handler(socketserver.StreamRequestHandler):
        timeout = 60

        def handle(self):
            log(name, '%s connection from %s' % (proto, self.client_address[0]))
            self.wfile.write((PROTOCOLS[proto]['greeting'].replace('{host}', HOSTNAME) + '\r\n').encode())
            for _count in range(100):
                try:
                    raw = self.rfile.readline(4096)
                except (socket.timeout, OSError):
                    return
                if not raw:
                    return
                answer = _reply(proto, raw.decode('utf-8', 'replace').strip())
                done = answer.startswith(QUIT_MARK)
                self.wfile.write((answer.replace(QUIT_MARK, '') + '\r\n').encode())
                if done:
                    return

    Handler.__name__ = '%sHandler' % proto.capitalize()
    return Handler


def make_http_handler(name):
    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = 'MailuStandin/1'

        def do_GET(self):  # noqa: N802 (the name http.server dispatches to)
            body = ('pong\n' if self.path.rstrip('/').endswith('/ping') else
                    'Mailu test stand-in: %s\n' % name).encode()
            self.send_response(200)
            self.send_header('Content-Type', 'text/plain; charset=utf-8')
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_HEAD = do_GET  # noqa: N815

        def log_message(self, format, *args):  # pylint: disable=redefined-builtin
            log(name, '%s %s' % (self.address_string(), format % args))

    return Handler


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def _serve(server):
    with server:
        server.serve_forever(poll_interval=0.5)


def serve(args):
    servers = []
    for spec in args.tcp:
        port, proto = spec.split(':', 1)
        if proto not in PROTOCOLS:
            raise SystemExit('unknown protocol %r (known: %s)' % (proto, ', '.join(sorted(PROTOCOLS))))
        servers.append((_Server(('0.0.0.0', int(port)), make_tcp_handler(args.name, proto)), '%s/%s' % (port, proto)))
    for port in args.http:
        servers.append((http.server.ThreadingHTTPServer(('0.0.0.0', int(port)), make_http_handler(args.name)), '%s/http' % port))
    for server, what in servers:
        threading.Thread(target=_serve, args=(server,), daemon=True).start()
        log(args.name, 'listening on %s' % what)
    if args.pidfile:
        os.makedirs(os.path.dirname(args.pidfile), exist_ok=True)
        with open(args.pidfile, 'w', encoding='ascii') as handle:
            handle.write('%d\n' % os.getpid())
    if args.name == 'fetchmail':
        log(args.name, 'FETCHMAIL_DELAY=%s; the stand-in polls and fetches nothing' % os.environ.get('FETCHMAIL_DELAY', '60'))

    def _on_signal(signum, _frame):
        log(args.name, 'signal %d, stopping' % signum)
        _stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    while not _stop.is_set():
        _stop.wait(3600)
    return 0  # the listeners' threads are daemons: they end with the process


def probe(args):
    try:
        if args.kind == 'tcp':
            with socket.create_connection(('127.0.0.1', int(args.target)), timeout=args.timeout) as sock:
                return 0 if sock.recv(256) else 1
        if args.kind == 'http':
            conn = http.client.HTTPConnection('127.0.0.1', int(args.target), timeout=args.timeout)
            conn.request('GET', args.path or '/')
            status = conn.getresponse().status
            conn.close()
            return 0 if status < 400 else 1
    except (OSError, http.client.HTTPException) as exc:
        print('probe failed: %s' % exc)
        return 1
    return 2


def main(argv=None):
    parser = argparse.ArgumentParser(description='Mailu test stand-in service and health probe')
    sub = parser.add_subparsers(dest='action', required=True)
    run = sub.add_parser('serve')
    run.add_argument('name')
    run.add_argument('--tcp', action='append', default=[], metavar='PORT:PROTO')
    run.add_argument('--http', action='append', default=[], metavar='PORT')
    run.add_argument('--pidfile', metavar='PATH')
    check = sub.add_parser('probe')
    check.add_argument('kind', choices=['tcp', 'http'])
    check.add_argument('target', help='port')
    check.add_argument('path', nargs='?')
    check.add_argument('--timeout', type=float, default=3)
    args = parser.parse_args(argv)
    return serve(args) if args.action == 'serve' else probe(args)


if __name__ == '__main__':
    sys.exit(main())
