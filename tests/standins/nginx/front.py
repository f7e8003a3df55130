"""Stand-in for Mailu's front (nginx) container, for tests without a container registry.

Runs as PID 1: writes the nginx configuration from Mailu's settings, starts a
real nginx, and, for 2024.06, a second nginx that plays the Dovecot proxy Mailu
2024.06 runs in front (it serves the TLS mail ports and is reloaded by
``doveadm reload``). Then it watches the certificate files the way Mailu's
certwatcher does, and exits when an nginx dies.

Settings honoured (env_file): TLS_FLAVOR (cert, mail, notls; others are treated
like cert), TLS_CERT_FILENAME / TLS_KEYPAIR_FILENAME (relative to /certs),
PORTS (2024.06), WEBROOT_REDIRECT, WEB_ADMIN, WEB_WEBMAIL, ADMIN, WEBMAIL, and
the service addresses (1.9: HOST_ADMIN, HOST_WEBMAIL, HOST_IMAP, HOST_SMTP;
2.x: ADMIN_ADDRESS, WEBMAIL_ADDRESS, IMAP_ADDRESS, SMTP_ADDRESS). Stand-in
only: STANDIN_CERTWATCHER=false turns the certificate watcher off.

Port 25 is served like Mailu's: nginx's mail module (``protocol smtp;
smtp_auth none;``, XCLIENT on), which asks ``auth_http`` where to send the
session. Mailu's admin answers that (/internal/auth/email); here a small HTTP
server in this process on 127.0.0.1:8000 answers port 25's question the way
core/admin/mailu/internal/views/auth.py and nginx.py do for it.

The web root follows core/nginx/conf/nginx.conf of the release: ``location /``
with ``try_files $uri <WEBROOT_REDIRECT>`` (2.x adds ``?homepage``) or
``=404``, none when WEB_WEBMAIL is ``/`` or WEBROOT_REDIRECT is ``none``; the
webmail location when WEBMAIL is not ``none``; the admin location when ADMIN
is true (1.9: the string ``true``; 2.x: true or yes in any case, socrate's
coercion, or another non-empty value).

Commands: ``serve`` (the CMD) and ``health`` (a probe; the image's
HEALTHCHECK is Mailu's own curl command).
"""

import argparse
import http.client
import http.server
import os
import socket
import threading
import signal
import subprocess
import sys
import time

FAMILY = os.environ.get('MAILU_STANDIN_FAMILY', '2024.06')
DOVECOT_PROXY = FAMILY == '2024.06'
NGINX = '/usr/sbin/nginx'
MAIN_CONF, MAIN_PID = '/etc/nginx/nginx.conf', '/run/nginx.pid'
# The pid file Mailu 2024.06's HEALTHCHECK reads (Dovecot's master.pid).
PROXY_CONF, PROXY_PID = '/etc/nginx/dovecot-proxy.conf', '/run/dovecot/master.pid'
AUTH_PORT = 8000
HEALTH_PORT = 80 if FAMILY == '1.9' else 10204
CERTS = '/certs'
# The mail ports other than 25 (nginx's mail module serves 25): implicit TLS or
# not, the backend service and port, and for
# 2024.06 whether the Dovecot proxy (rather than nginx) serves it.
MAIL_PORTS = {
    465: (True, 'smtp', 10025, True),
    587: (False, 'smtp', 10025, True),
    110: (False, 'imap', 110, True),
    995: (True, 'imap', 110, True),
    143: (False, 'imap', 143, True),
    993: (True, 'imap', 143, True),
    4190: (False, 'imap', 4190, True),
}
ALL_PORTS_19 = {25, 80, 443, 465, 587, 110, 995, 143, 993}
DEFAULT_PORTS_2024 = '25,80,443,465,993,995,4190'


def log(message):
    sys.stdout.write('%s front[stand-in %s]: %s\n' % (time.strftime('%Y-%m-%dT%H:%M:%S'), FAMILY, message))
    sys.stdout.flush()


def _env(key, default=''):
    return os.environ.get(key, default)


def _address(name):
    """The host name of a backend service, as the front's settings give it."""
    key = ('HOST_%s' if FAMILY == '1.9' else '%s_ADDRESS') % name.upper()
    return _env(key, name).split(':', 1)[0] or name


class Settings:
    def __init__(self):
        self.flavor = _env('TLS_FLAVOR', 'cert').lower()
        self.cert = os.path.join(CERTS, _env('TLS_CERT_FILENAME', 'cert.pem'))
        self.key = os.path.join(CERTS, _env('TLS_KEYPAIR_FILENAME', 'key.pem'))
        self.files_present = os.path.isfile(self.cert) and os.path.isfile(self.key)
        self.tls = self.flavor != 'notls' and self.files_present
        self.tls_error = self.flavor != 'notls' and not self.files_present
        if FAMILY == '2024.06':
            self.ports = {int(port) for port in _env('PORTS', DEFAULT_PORTS_2024).split(',') if port.strip()}
        else:
            self.ports = set(ALL_PORTS_19)
        self.resolver = '127.0.0.11'
        try:
            with open('/etc/resolv.conf', encoding='utf-8') as handle:
                for line in handle:
                    words = line.split()
                    if len(words) >= 2 and words[0] == 'nameserver':
                        self.resolver = words[1] if ':' not in words[1] else '[%s]' % words[1]
                        break
        except OSError:
            pass

    def mail_listeners(self, in_proxy):
        """(port, tls, backend) for the listeners one nginx serves."""
        listeners = []
        for port, (tls, service, backend_port, proxied) in sorted(MAIL_PORTS.items()):
            if port not in self.ports or (DOVECOT_PROXY and proxied) != in_proxy:
                continue
            if tls and not self.tls:
                continue
            if self.tls_error and port != 25:  # like Mailu: only 25 survives a TLS error
                continue
            listeners.append((port, tls, '%s:%d' % (_address(service), backend_port)))
        return listeners


def _ssl_lines(settings, indent):
    return [indent + 'ssl_certificate %s;' % settings.cert,
            indent + 'ssl_certificate_key %s;' % settings.key,
            indent + 'ssl_protocols TLSv1.2 TLSv1.3;']


def _stream_block(settings, listeners):
    lines = ['stream {', '    resolver %s valid=10s ipv6=off;' % settings.resolver, '    resolver_timeout 3s;']
    for port, tls, backend in listeners:
        lines.append('    server {')
        lines.append('        listen %d%s;' % (port, ' ssl' if tls else ''))
        if tls:
            lines += _ssl_lines(settings, '        ')
        lines.append('        set $backend "%s";' % backend)
        lines.append('        proxy_pass $backend;')
        lines.append('        proxy_connect_timeout 5s;')
        lines.append('    }')
    lines.append('}')
    return lines


def _admin_enabled():
    """ADMIN as each release's nginx.conf tests it."""
    value = os.environ.get('ADMIN')
    if FAMILY == '1.9':
        return value == 'true'  # {% if ADMIN == 'true' %}
    if value is None:
        return False  # undefined in the template
    if value.lower() in ('true', 'yes'):
        return True  # socrate's _coerce_value
    if value.lower() in ('false', 'no'):
        return False
    return bool(value)


def _site_locations(indent):
    """The locations of Mailu's main server (nginx.conf, "Actual logic")."""
    admin_port = 80 if FAMILY == '1.9' else 8080
    admin = _admin_enabled()
    webmail = _env('WEBMAIL', 'none')
    web_webmail = _env('WEB_WEBMAIL', '/webmail')
    web_admin = _env('WEB_ADMIN', '/admin')
    redirect = os.environ.get('WEBROOT_REDIRECT', '')
    lines = [indent + 'set $admin "%s:%d";' % (_address('admin'), admin_port),
             indent + 'set $webmail "%s:80";' % _address('webmail')]
    if admin or webmail != 'none':
        lines += [indent + 'location ~ ^/(sso|static)/ { proxy_pass http://$admin; }']
    if web_webmail != '/' and redirect != 'none':
        lines += [indent + 'location / {']
        if redirect:
            lines += [indent + '    try_files $uri %s%s;' % (redirect, '' if FAMILY == '1.9' else '?homepage')]
        else:
            lines += [indent + '    try_files $uri =404;']
        lines += [indent + '}']
    if webmail != 'none':
        lines += [indent + 'location %s {' % web_webmail]
        if web_webmail != '/':
            lines += [indent + '    rewrite ^(%s)$ $1/ permanent;' % web_webmail,
                      indent + '    rewrite ^%s/(.*) /$1 break;' % web_webmail]
        lines += [indent + '    proxy_pass http://$webmail;', indent + '}']
    if admin:
        lines += [indent + 'location %s {' % web_admin,
                  indent + '    proxy_pass http://$admin;',
                  indent + '}']
    lines += [indent + 'location /health { return 204; }']
    return lines


def _mail_block(settings):
    """Mailu's mail {} block, port 25 only (the other mail ports are TCP proxies)."""
    lines = ['mail {',
             '    server_name %s;' % _env('HOSTNAMES', socket.gethostname()).split(',')[0],
             '    auth_http http://127.0.0.1:%d/auth/email;' % AUTH_PORT,
             '    proxy_pass_error_message on;',
             '    resolver %s valid=30s;' % settings.resolver,
             '    error_log /dev/stderr info;',
             '    xclient on;']
    if settings.tls:
        lines += _ssl_lines(settings, '    ')
    lines += ['    smtp_capabilities PIPELINING "SIZE %s" ETRN ENHANCEDSTATUSCODES 8BITMIME DSN;'
              % _env('MESSAGE_SIZE_LIMIT', '50000000'),
              '    server {',
              '        listen 25;']
    if settings.tls:
        lines.append('        starttls on;')
    lines += ['        protocol smtp;',
              '        smtp_auth none;',
              '        auth_http_header Auth-Port 25;']
    if FAMILY == '2024.06':
        lines.append('        auth_http_header Client-Port $remote_port;')
    lines += ['    }', '}']
    return lines


def main_config(settings):
    lines = ['# Written by the Mailu front TEST STAND-IN at start; not Mailu.',
             'include /etc/nginx/modules-enabled/*.conf;',
             'user www-data;', 'worker_processes 1;', 'pid %s;' % MAIN_PID, 'error_log stderr notice;',
             'events { worker_connections 512; }',
             'http {', '    access_log /dev/stdout;', '    server_tokens off;', '    default_type text/plain;',
             '    absolute_redirect off;', '    root /static;',
             '    resolver %s valid=10s ipv6=off;' % settings.resolver, '    resolver_timeout 3s;']
    if HEALTH_PORT != 80:
        lines += ['    server {', '        listen 127.0.0.1:%d;' % HEALTH_PORT, '        access_log off;',
                  '        location = /health { return 204; }', '        location / { return 404; }', '    }']
    if 80 in settings.ports:
        lines += ['    server {', '        listen 80 default_server;']
        # 1.9's redirect server has no /health: its HEALTHCHECK (curl -L) follows
        # the redirect to 443, and so fails when TLS does.
        health = [] if FAMILY == '1.9' else ['        location /health { access_log off; return 204; }']
        if settings.tls and settings.flavor not in ('mail', 'mail-letsencrypt'):
            lines += health + ['        location / { return 301 https://$host$request_uri; }']
        elif settings.tls_error and settings.flavor not in ('mail', 'mail-letsencrypt'):
            lines += health + ['        location / { return 403; }']
        else:
            lines += _site_locations('        ')
        lines.append('    }')
    if 443 in settings.ports and settings.tls:
        lines += ['    server {', '        listen 443 ssl default_server;'] + _ssl_lines(settings, '        ')
        lines += _site_locations('        ') + ['    }']
    lines.append('}')
    lines += _stream_block(settings, settings.mail_listeners(in_proxy=False))
    lines += _mail_block(settings)
    return '\n'.join(lines) + '\n'


def proxy_config(settings):
    lines = ['# The Dovecot proxy of Mailu 2024.06 front, played by nginx (TEST STAND-IN).',
             'include /etc/nginx/modules-enabled/*.conf;',
             'user www-data;', 'worker_processes 1;', 'pid %s;' % PROXY_PID, 'error_log stderr notice;',
             'events { worker_connections 512; }']
    lines += _stream_block(settings, settings.mail_listeners(in_proxy=True))
    return '\n'.join(lines) + '\n'


def write_configs():
    settings = Settings()
    if settings.flavor not in ('cert', 'mail', 'notls'):
        log('TLS_FLAVOR=%s is not implemented by the stand-in: using the cert files like "cert"' % settings.flavor)
    if settings.tls_error:
        log('TLS error: %s or %s is missing; serving without TLS (only port 25 for mail)' % (settings.cert, settings.key))
    with open(MAIN_CONF, 'w', encoding='utf-8') as handle:
        handle.write(main_config(settings))
    if DOVECOT_PROXY:
        with open(PROXY_CONF, 'w', encoding='utf-8') as handle:
            handle.write(proxy_config(settings))
    listening = sorted(p for p in settings.ports if p in (80, 443) and (p == 80 or settings.tls))
    listening.append(25)
    listening += [port for port, _tls, _backend in settings.mail_listeners(False) + settings.mail_listeners(True)]
    log('TLS %s; listening on %s' % ('on' if settings.tls else 'off', ', '.join(str(p) for p in sorted(listening))))
    return settings


def _reload(conf, why):
    result = subprocess.run([NGINX, '-c', conf, '-s', 'reload'], capture_output=True, text=True, check=False)
    outcome = 'ok' if result.returncode == 0 else 'FAILED: %s' % (result.stdout + result.stderr).strip()
    log('%s: reload %s %s' % (why, os.path.basename(conf), outcome))


def _true(value):
    return str(value).lower() in ('true', 'yes')


def _smtp_server():
    """(address, port) of smtp, as the admin's get_server(protocol='smtp') gives it.

    1.9: HOST_SMTP may carry a port (default 25); 2.x: SMTP_ADDRESS, port 25. The
    name is resolved at every request (smtp starts after front); the admin
    retries for minutes, the stand-in for about ten seconds."""
    value = _env('HOST_SMTP' if FAMILY == '1.9' else 'SMTP_ADDRESS', 'smtp') or 'smtp'
    host, _colon, port = value.partition(':')
    port = int(port) if FAMILY == '1.9' and port.isdigit() else 25
    for attempt in range(5):
        try:
            return socket.gethostbyname(host), port
        except OSError:
            if attempt == 4:
                raise
            time.sleep(2)
    raise OSError('unreachable')


def auth_answer(headers):
    """What Mailu's admin answers nginx's auth_http request, for port 25 only.

    Imitates core/admin/mailu/internal/views/auth.py (nginx_authentication) and
    core/admin/mailu/internal/nginx.py (handle_authentication, get_server) of the
    release, without rate limits: on port 25 a login is refused ("AUTH not
    supported"); an unauthenticated SMTP session is sent to smtp:25, unless
    INBOUND_TLS_ENFORCE wants STARTTLS first. Anything else is no business of
    this stand-in: a temporary error."""
    port, method = headers.get('Auth-Port', ''), headers.get('Auth-Method', '')
    protocol = headers.get('Auth-Protocol', '')
    refused = method == 'plain' if FAMILY == '1.9' else method != 'none'
    if port == '25' and refused:
        return [('Auth-Status', 'AUTH not supported'), ('Auth-Error-Code', '502 5.5.1')]
    if FAMILY != '1.9':
        method, protocol = method.lower(), protocol.lower()
    if port == '25' and method in (('none',) if FAMILY == '1.9' else ('', 'none')) and protocol == 'smtp':
        if _true(_env('INBOUND_TLS_ENFORCE')) and headers.get('Auth-SSL') != 'on':
            return [('Auth-Status', 'Must issue a STARTTLS command first'), ('Auth-Error-Code', '530 5.7.0'),
                    ('Auth-Wait', '0')]
        try:
            server, server_port = _smtp_server()
        except OSError as exc:
            log('auth_http: smtp address not resolved: %s' % exc)
            return [('Auth-Status', 'Temporary server problem, try again later'), ('Auth-Error-Code', '451 4.3.0')]
        return [('Auth-Status', 'OK'), ('Auth-Server', server), ('Auth-Port', str(server_port))]
    return [('Auth-Status', 'Temporary server problem, try again later'), ('Auth-Error-Code', '451 4.3.0')]


class _AuthHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        if self.path.split('?')[0] != '/auth/email':
            self.send_error(404)
            return
        self.send_response(200)
        for key, value in auth_answer(self.headers):
            self.send_header(key, value)
        self.send_header('Content-Length', '0')
        self.end_headers()

    def log_message(self, *_args):  # Mailu's nginx does not log /auth/email either
        pass


def start_auth_server():
    server = http.server.ThreadingHTTPServer(('127.0.0.1', AUTH_PORT), _AuthHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name='auth_http', daemon=True).start()
    return server


def _cert_state(settings):
    state = []
    for path in (settings.cert, settings.key):
        try:
            info = os.stat(path)
            state.append((True, info.st_mtime_ns, info.st_size, info.st_ino))
        except OSError:
            state.append((False, 0, 0, 0))
    return state


def serve():
    settings = write_configs()
    start_auth_server()
    confs = [MAIN_CONF] + ([PROXY_CONF] if DOVECOT_PROXY else [])
    children = {conf: subprocess.Popen([NGINX, '-c', conf, '-g', 'daemon off;']) for conf in confs}
    stopping = []

    def _on_signal(signum, _frame):
        stopping.append(signum)

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    watch = settings.flavor in ('cert', 'mail') and _env('STANDIN_CERTWATCHER', 'true').lower() != 'false'
    if watch:
        log('watching %s and %s (Mailu certwatcher)' % (settings.cert, settings.key))
    state = _cert_state(settings)
    while not stopping:
        time.sleep(1)
        for conf, child in children.items():
            if child.poll() is not None:
                log('nginx -c %s exited with %s; stopping' % (conf, child.returncode))
                stopping.append(0)
        if not watch or stopping:
            continue
        new_state = _cert_state(settings)
        if new_state == state:
            continue
        if [s[0] for s in new_state] != [s[0] for s in state]:
            log('certificate files created or removed: configuration written again')
            settings = write_configs()
            for conf in confs:
                _reload(conf, 'certwatcher')
        else:
            for conf in confs:
                _reload(conf, 'certwatcher (modified)')
        state = new_state
    for child in children.values():
        if child.poll() is None:
            child.terminate()
    for child in children.values():
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
    return 0 if stopping[0] else 1


def health():
    try:
        conn = http.client.HTTPConnection('127.0.0.1', HEALTH_PORT, timeout=3)
        conn.request('GET', '/health')
        status = conn.getresponse().status
        conn.close()
    except (OSError, http.client.HTTPException) as exc:
        print('/health: %s' % exc)
        return 1
    if status >= 300:
        print('/health: %d' % status)
        return 1
    if DOVECOT_PROXY:
        try:
            with open(PROXY_PID, encoding='ascii') as handle:
                os.kill(int(handle.read().strip()), 0)
        except (OSError, ValueError) as exc:
            print('Dovecot proxy (nginx) not running: %s' % exc)
            return 1
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description='Mailu front stand-in')
    parser.add_argument('action', choices=['serve', 'health'])
    args = parser.parse_args(argv)
    return serve() if args.action == 'serve' else health()


if __name__ == '__main__':
    sys.exit(main())
