"""A real ACME server and a real Certbot for the tests of the Certbot deploy hook.

Debian's ``pebble`` (2.4 on Debian 12) listens on loopback ports of its own, with
PEBBLE_VA_ALWAYS_VALID=1 (no challenge is really checked: no network is needed) and a
listener certificate made here, which Certbot trusts through REQUESTS_CA_BUNDLE.
``Certbot`` runs Debian's ``certbot`` (2.1) with --config-dir, --work-dir and --logs-dir
of the test's own, so its renewal-hooks/deploy directory is the test's too.
See /work/shared/CERTBOT-FACTS.md.
"""

import datetime
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def missing():
    """The programs not installed, of certbot and pebble."""
    return [name for name in ('certbot', 'pebble') if not shutil.which(name)]


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class Pebble:
    """Pebble on 127.0.0.1, its state and logs under ``directory``."""

    def __init__(self, directory):
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'pebble listener (test)')])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=7))
                .add_extension(x509.SubjectAlternativeName([
                    x509.DNSName('localhost'), x509.IPAddress(ipaddress.ip_address('127.0.0.1'))]), critical=False)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256()))
        self.ca_file = directory / 'listener.pem'
        self.ca_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (directory / 'listener-key.pem').write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        self.port = free_port()
        config = dict(pebble=dict(
            listenAddress='127.0.0.1:%d' % self.port, managementListenAddress='127.0.0.1:%d' % free_port(),
            certificate=str(self.ca_file), privateKey=str(directory / 'listener-key.pem'),
            httpPort=free_port(), tlsPort=free_port(), ocspResponderURL='', externalAccountBindingRequired=False))
        (directory / 'pebble.json').write_text(json.dumps(config))
        env = dict(os.environ, PEBBLE_VA_ALWAYS_VALID='1', PEBBLE_VA_NOSLEEP='1', PEBBLE_WFE_NONCEREJECT='0')
        self.log = open(directory / 'pebble.log', 'wb')  # pylint: disable=consider-using-with
        self.process = subprocess.Popen(  # pylint: disable=consider-using-with
            ['pebble', '-config', str(directory / 'pebble.json')], env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(('127.0.0.1', self.port), timeout=1).close()
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError('pebble did not start: %s' % (directory / 'pebble.log').read_text())
                time.sleep(0.1)
        self.url = 'https://127.0.0.1:%d/dir' % self.port

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.log.close()


class Certbot:
    """certbot with a configuration, work and logs directory of its own under ``directory``."""

    def __init__(self, pebble, directory):
        self.pebble = pebble
        self.config_dir, self.work_dir, self.logs_dir = directory / 'etc', directory / 'work', directory / 'logs'
        self.deploy_hooks = self.config_dir / 'renewal-hooks' / 'deploy'
        self.deploy_hooks.mkdir(parents=True)

    def live(self, name):
        return self.config_dir / 'live' / name

    def __call__(self, *args, check=True):
        command = ['certbot', '--non-interactive', '--config-dir', str(self.config_dir), '--work-dir',
                   str(self.work_dir), '--logs-dir', str(self.logs_dir), '--server', self.pebble.url] + list(args)
        env = dict(os.environ, REQUESTS_CA_BUNDLE=str(self.pebble.ca_file))
        out = subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=300)
        if check and out.returncode != 0:
            raise AssertionError('%s exited with %d:\n%s\n%s\n%s' % (
                ' '.join(command), out.returncode, out.stdout, out.stderr, self.log()[-4000:]))
        return out

    def certonly(self, name, domains, *args):
        """A certificate from scratch, or the lineage's domains changed: certonly runs no hook in renewal-hooks/."""
        domain_args = [arg for domain in domains for arg in ('-d', domain)]
        return self('certonly', '--standalone', '--http-01-address', '127.0.0.1', '--http-01-port', str(free_port()),
                    '--agree-tos', '--register-unsafely-without-email', '--cert-name', name, *domain_args, *args)

    def log(self):
        path = self.logs_dir / 'letsencrypt.log'
        return path.read_text() if path.exists() else ''
