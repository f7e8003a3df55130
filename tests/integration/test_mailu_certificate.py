"""mailu_certificate as Ansible runs it: the four steps, every refusal, and a real front reloaded.

The reload tests run the front stand-in (tests/standins/README.md: a real nginx, plus a
second one playing 2024.06's Dovecot proxy on the TLS mail ports) with its own
certificate watcher off, so that only the module's reload can bring a new certificate
to 443 and 993.  They are skipped only when no Docker engine answers (outside CI).
"""

import hashlib
import json
import os
import pathlib
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
import uuid

import docker
import pytest

import acme
from ansible_collections.nantral.mailu.plugins.module_utils import mailu_certificate as engine
from pki import DAY, HOSTS, NOW, Pki, lineage, new_key, pem_key, tree, write_pair

REPO = pathlib.Path(__file__).resolve().parents[2]
IMAGE = 'localhost/nantral-standin/nginx:%s'


@pytest.fixture(scope='module')
def pki():
    return Pki('rsa', slot=30)


@pytest.fixture
def certs(tmp_path):
    path = tmp_path / 'certs'
    path.mkdir()
    return path


def install(run, source, certs, check=False, diff=False, **options):
    """The module with the default name check and no reload, unless told otherwise."""
    options.setdefault('hostnames', HOSTS)
    options.setdefault('reload', False)
    if isinstance(source, tuple):
        options.update(certificate=source[0], private_key=source[1])
    else:
        options.update(lineage=source)
    return run('mailu_certificate', check=check, diff=diff, certs_dir=str(certs), **options)


def warnings(result):
    return [w['event']['msg'] if isinstance(w, dict) else w for w in result.get('warnings', [])]


def fingerprint(der):
    return ':'.join('%02x' % b for b in hashlib.sha256(der).digest())


def cert_fingerprint(chain):
    from cryptography.hazmat.primitives.serialization import Encoding  # pylint: disable=import-outside-toplevel
    return fingerprint(chain[0][0].public_bytes(Encoding.DER))


# ---------------------------------------------------------------- files only

def test_four_steps_then_renewal(run, pki, tmp_path, certs):
    first, renewed = pki.leaf(kind='rsa', slot=30), pki.leaf(slot=31)
    live = lineage(tmp_path / 'letsencrypt', 'mail.example.org', [first])

    checked = install(run, live, certs, check=True, diff=True)
    assert checked['changed'] is True and not checked.get('failed'), checked
    assert checked['changes'] == ['no pair was installed']
    assert checked['diff'] == dict(before={}, after=checked['installed'])
    assert tree(str(certs)) == {}

    applied = install(run, live, certs)
    assert applied['changed'] is True
    assert applied['installed'] == checked['installed']
    assert applied['installed']['fingerprint_sha256'] == cert_fingerprint(first)
    assert (applied['installed']['names'], applied['installed']['key_type']) == (HOSTS, 'RSA 2048')
    assert applied['source'] == dict(
        certificate=str(tmp_path / 'letsencrypt/archive/mail.example.org/fullchain1.pem'),
        private_key=str(tmp_path / 'letsencrypt/archive/mail.example.org/privkey1.pem'))
    assert applied['cert_path'] == str(certs / 'cert.pem') and applied['reloaded'] == []
    installed = tree(str(certs))
    assert sorted(installed) == ['cert.pem', 'key.pem']
    assert (installed['cert.pem'][:2], installed['key.pem'][:2]) == (('file', 0o644), ('file', 0o600))

    for check in (True, False):
        again = install(run, live, certs, check=check, diff=True)
        assert again['changed'] is False and again['changes'] == [], again
        assert again['diff']['before'] == again['diff']['after'] == applied['installed']
        assert tree(str(certs)) == installed

    lineage(tmp_path / 'letsencrypt', 'mail.example.org', [first, renewed])
    predicted = install(run, live, certs, check=True, diff=True)
    assert predicted['changed'] is True and tree(str(certs)) == installed
    assert predicted['diff']['before'] == applied['installed']
    assert predicted['diff']['after']['fingerprint_sha256'] == cert_fingerprint(renewed)
    assert predicted['diff']['after']['key_type'] == 'EC secp256r1'
    assert predicted['changes'] == ['certificate %s replaces %s' % (cert_fingerprint(renewed),
                                                                    cert_fingerprint(first))]
    done = install(run, live, certs, diff=True)
    assert done['changed'] is True and done['diff'] == predicted['diff']
    assert done['source']['private_key'].endswith('/privkey2.pem')
    assert tree(str(certs))['cert.pem.previous'] == installed['cert.pem']
    assert tree(str(certs))['key.pem.previous'] == installed['key.pem']
    assert install(run, live, certs)['changed'] is False


def test_key_never_in_the_output(run, pki, tmp_path, certs):
    chain, key = pki.leaf()
    result = install(run, write_pair(tmp_path / 'src', chain, key), certs, diff=True)
    text = repr(result)
    assert result['changed'] and 'PRIVATE KEY' not in text
    assert pem_key(key).splitlines()[1].decode('ascii') not in text


@pytest.mark.parametrize('case', ['mismatched key', 'expired', 'expiring', 'missing hostname', 'only the leaf'])
def test_refusals_leave_the_installed_pair(run, pki, tmp_path, certs, case):
    install(run, write_pair(tmp_path / 'good', *pki.leaf()), certs)
    install(run, write_pair(tmp_path / 'good2', *pki.leaf(slot=1)), certs)
    before = tree(str(certs))
    hostnames = HOSTS
    if case == 'mismatched key':
        chain, key = pki.leaf(slot=2)[0], new_key('ec', slot=3)
        expected = 'the private key (EC secp256r1) does not match the certificate CN=mail.example.org (EC secp256r1)'
    elif case == 'expired':
        chain, key = pki.leaf(slot=2, not_before=NOW - 120 * DAY, not_after=NOW - 30 * DAY)
        expected = 'the certificate CN=mail.example.org expired on %s' % (NOW - 30 * DAY).strftime('%Y-%m-%dT%H:%M:%SZ')
    elif case == 'expiring':
        chain, key = pki.leaf(slot=2, not_after=NOW + 2 * DAY)
        expected = 'the certificate CN=mail.example.org expires on %s, in 2.0 days, less than min_days_valid (7)' % (
            (NOW + 2 * DAY).strftime('%Y-%m-%dT%H:%M:%SZ'))
    elif case == 'missing hostname':
        chain, key = pki.leaf(slot=2)
        hostnames = HOSTS + ['webmail.example.org']
        expected = ('the certificate CN=mail.example.org does not cover webmail.example.org '
                    '(its names: mail.example.org, imap.example.org)')
    else:
        chain, key = pki.leaf(slot=2)
        chain = chain[:1]
        expected = ('the certificate file holds only the leaf CN=mail.example.org: front needs the full chain, with '
                    'its issuer CN=Nantral Test Intermediate (Certbot: fullchain.pem, not cert.pem)')
    source = write_pair(tmp_path / 'bad', chain, key)
    for check in (True, False):
        result = install(run, source, certs, check=check, hostnames=hostnames, reload=True,
                         front_container='must-not-be-asked', docker_host='unix:///nonexistent.sock')
        assert result['failed'] is True and not result.get('changed')
        assert result['msg'] == ('refusing the certificate from %s, the installed pair is left as it is: %s'
                                 % (source[0], expected))
        assert tree(str(certs)) == before


def test_argument_errors(run, pki, tmp_path, certs):
    source = write_pair(tmp_path / 'src', *pki.leaf())
    result = run('mailu_certificate', certificate=source[0], private_key=source[1], certs_dir=str(certs))
    assert result['msg'] == 'check_hostnames is True but all of the following are missing: hostnames'
    result = install(run, source, certs, hostnames=[])
    assert result['msg'].startswith('hostnames is empty: list the names the certificate must cover')
    result = run('mailu_certificate', lineage=str(tmp_path), certificate=source[0], private_key=source[1],
                 hostnames=HOSTS, certs_dir=str(certs))
    assert result['msg'] == 'parameters are mutually exclusive: lineage|certificate, lineage|private_key'
    result = install(run, source, tmp_path / 'absent')
    assert result['msg'] == 'the certs directory %s does not exist; nothing was changed' % (tmp_path / 'absent')
    assert install(run, source, certs, check_hostnames=False, hostnames=None)['changed'] is True
    assert tree(str(certs)) != {}


# ---------------------------------------------------------------- a real front

def served(port):
    """SHA-256 fingerprint of the certificate a TLS server on 127.0.0.1:port presents."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(('127.0.0.1', port), timeout=3) as raw:
        with context.wrap_socket(raw, server_hostname='mail.example.org') as tls:
            return fingerprint(tls.getpeercert(binary_form=True))


def wait_served(port, expected, timeout=5.0):
    """Seconds until ``expected`` is served on ``port``; fails after ``timeout``."""
    start = time.monotonic()
    while True:
        try:
            found = served(port)
        except OSError as exc:
            found = 'error: %s' % exc
        if found == expected:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            pytest.fail('port %d serves %s, not %s, after %.0f s' % (port, found, expected, timeout))
        time.sleep(0.1)


class Front:
    """A front stand-in with ``certs`` mounted as /certs, its certificate watcher off."""

    def __init__(self, client, version, certs, labels=None):
        image = IMAGE % version
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            subprocess.run(['bash', str(REPO / 'scripts/build-images.sh'), version], check=True)
        self.name = 'nantral-test-front-%s' % uuid.uuid4().hex[:8]
        self.container = client.containers.run(
            image, detach=True, name=self.name, volumes={str(certs): dict(bind='/certs', mode='rw')},
            environment=dict(STANDIN_CERTWATCHER='false'), labels=labels or {},
            ports={'443/tcp': ('127.0.0.1', None), '993/tcp': ('127.0.0.1', None)})

    def wait_healthy(self, timeout=40):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.container.reload()
            state = self.container.attrs['State']
            if state['Health']['Status'] == 'healthy':
                self.started_at = state['StartedAt']
                self.ports = dict((p, int(self.container.ports['%d/tcp' % p][0]['HostPort'])) for p in (443, 993))
                return self
            assert state['Status'] == 'running', self.logs()
            time.sleep(0.5)
        pytest.fail('front stand-in not healthy after %d s:\n%s' % (timeout, self.logs()))

    def logs(self):
        return self.container.logs().decode('utf-8', 'replace')

    def count(self, text):
        return self.logs().count(text)

    def exec(self, script):
        code, output = self.container.exec_run(['sh', '-c', script])
        assert code == 0, output

    def remove(self):
        self.container.remove(force=True)


@pytest.fixture(scope='module')
def front_2024(docker_client, tmp_path_factory, pki):
    """A 2024.06 front started on certificate A (front needs the files at start, as Mailu's does)."""
    certs = tmp_path_factory.mktemp('front-2024') / 'certs'
    certs.mkdir()
    chain, key = pki.leaf(slot=40)
    engine.handoff(write_pair(certs.parent / 'a', chain, key), str(certs), HOSTS, front=None)
    front = Front(docker_client, '2024.06', certs)
    front.certs, front.first = certs, (chain, key)
    try:
        yield front.wait_healthy()
    finally:
        front.remove()


def test_reload_brings_new_certificate_to_443_and_993(run, pki, front_2024):
    front = front_2024
    for port in (443, 993):
        assert served(front.ports[port]) == cert_fingerprint(front.first)
    renewed = pki.leaf(slot=41)
    source = write_pair(front.certs.parent / 'b', *renewed)
    nginx_before, doveadm_before = front.count('front[stand-in]: nginx -s reload'), front.count('doveadm reload')

    result = install(run, source, front.certs, reload=True, front_container=front.name, diff=True)
    assert result['changed'] is True, result
    assert result['reloaded'] == ['%s: nginx -s reload' % front.name, '%s: doveadm reload' % front.name]
    for port in (443, 993):
        assert wait_served(front.ports[port], cert_fingerprint(renewed)) < 5
    front.container.reload()
    assert front.container.attrs['State']['StartedAt'] == front.started_at
    assert front.count('front[stand-in]: nginx -s reload') == nginx_before + 1
    assert front.count('front[stand-in]: doveadm reload (Dovecot proxy)') == doveadm_before + 1
    assert 'certwatcher' not in front.logs()

    again = install(run, source, front.certs, reload=True, front_container=front.name)
    assert again['changed'] is False and again['reloaded'] == []


@pytest.mark.parametrize('command, path', [('doveadm', '/usr/local/bin/doveadm'), ('nginx', '/usr/local/sbin/nginx')])
def test_failed_reload_restores_the_served_pair(run, pki, front_2024, command, path):
    """The reload command fails once: the previous pair is put back, front reloaded with it."""
    front = front_2024
    current = pki.leaf(slot=42 if command == 'doveadm' else 44)
    install(run, write_pair(front.certs.parent / command, *current), front.certs, reload=True,
            front_container=front.name)
    for port in (443, 993):
        wait_served(front.ports[port], cert_fingerprint(current))
    before = tree(str(front.certs))
    flag = '/tmp/%s-failed-once' % command
    front.exec('cp {path} {path}.real && cat > {path} <<\'EOF\'\n'
               '#!/bin/sh\n'
               'if [ ! -e {flag} ]; then touch {flag}; echo "{command}: simulated reload failure" >&2; exit 1; fi\n'
               'exec {path}.real "$@"\n'
               'EOF\n'.format(path=path, flag=flag, command=command))
    try:
        refused = pki.leaf(slot=43)
        result = install(run, write_pair(front.certs.parent / 'refused', *refused), front.certs, reload=True,
                         front_container=front.name)
    finally:
        front.exec('mv {0}.real {0}'.format(path))
    first = '%s: %s' % (front.name, 'doveadm reload' if command == 'doveadm' else 'nginx -s reload')
    assert result['failed'] is True and result['changed'] is False
    assert result['msg'] == ('reloading front failed: `%s` in %s exited with 1: %s: simulated reload failure; '
                             'the previous files were put back and front was reloaded with them'
                             % (first.split(': ')[1], front.name, command))
    nginx, doveadm = '%s: nginx -s reload' % front.name, '%s: doveadm reload' % front.name
    assert result['reloaded'] == ([nginx, doveadm, nginx, doveadm] if command == 'doveadm' else [nginx, nginx, doveadm])
    assert result['installed']['fingerprint_sha256'] == cert_fingerprint(current)
    assert tree(str(front.certs)) == before
    for port in (443, 993):
        wait_served(front.ports[port], cert_fingerprint(current))


def test_mailu_19_front_found_by_compose_labels(run, pki, docker_client, tmp_path):
    """1.9: nginx alone serves 993, and there is no doveadm to run.  The container is
    found by its Compose labels, its name being another."""
    certs = tmp_path / 'certs'
    certs.mkdir()
    first, renewed = pki.leaf(slot=50), pki.leaf(slot=51)
    install(run, write_pair(tmp_path / 'a', *first), certs)
    project = 'nantral-test-%s' % uuid.uuid4().hex[:8]
    front = Front(docker_client, '1.9', certs, labels={'com.docker.compose.project': project,
                                                       'com.docker.compose.service': 'front'})
    try:
        front.wait_healthy()
        result = install(run, write_pair(tmp_path / 'b', *renewed), certs, reload=True,
                         front_container='%s-front-1' % project, compose_project=project)
        assert result['reloaded'] == ['%s: nginx -s reload' % front.name], result
        for port in (443, 993):
            wait_served(front.ports[port], cert_fingerprint(renewed))
        assert 'doveadm' not in front.logs()
    finally:
        front.remove()


def test_front_missing(run, pki, docker_client, tmp_path):
    certs = tmp_path / 'certs'
    certs.mkdir()
    result = install(run, write_pair(tmp_path / 'a', *pki.leaf(slot=60)), certs, reload=True,
                     front_container='nantral-test-no-such-front', compose_project='nantral-test-none')
    assert result['changed'] is True and result['reloaded'] == []
    assert warnings(result) == [
        'no front container found (container nantral-test-no-such-front (or Compose project nantral-test-none, '
        'service front)): the new pair is installed, and front will read it when it starts']
    assert sorted(tree(str(certs))) == ['cert.pem', 'key.pem']


# ---------------------------------------------------------------- a refused renewal is never silent (issue 8, item 11)

def test_state_file_refusal_reported_then_cleared(run, pki, tmp_path, certs):
    """The module's side of the state file: a refusal recorded by the Certbot hook is named
    in the next run's failure, then cleared (changed, with a warning) by a run that succeeds."""
    state_file = tmp_path / 'state' / 'handoff.json'
    good = write_pair(tmp_path / 'good', *pki.leaf(slot=70))
    assert install(run, good, certs, state_file=str(state_file))['changed'] is True
    assert not state_file.exists()  # nothing refused, nothing recorded
    hook = engine.record_state(str(state_file), '/etc/letsencrypt/live/mail', 'Certbot deploy hook',
                               'refusing the certificate from /etc/letsencrypt/live/mail: it does not cover x')
    bad = write_pair(tmp_path / 'bad', *pki.leaf(slot=71))
    failed = install(run, bad, certs, state_file=str(state_file), hostnames=HOSTS + ['webmail.example.org'])
    assert failed['failed'] is True
    assert failed['msg'].endswith(
        'does not cover webmail.example.org (its names: mail.example.org, imap.example.org); before this run, the '
        'handoff from /etc/letsencrypt/live/mail was refused by the Certbot deploy hook at %s: refusing the '
        'certificate from /etc/letsencrypt/live/mail: it does not cover x' % hook['time'])
    recorded = engine.read_state(str(state_file))
    assert (recorded['status'], recorded['by'], recorded['since']) == ('refused', 'Ansible run', hook['since'])
    assert 'does not cover webmail.example.org' in recorded['message']

    checked = install(run, good, certs, check=True, state_file=str(state_file))
    assert checked['changed'] is True and engine.read_state(str(state_file)) == recorded
    assert warnings(checked)[-1].endswith('this run handed the certificate over (check mode: the refusal stays '
                                          'recorded)')
    cleared = install(run, good, certs, state_file=str(state_file))
    assert cleared['changed'] is True and cleared['changes'] == []
    # (The in-process runner keeps Ansible's warnings from one run to the next: the last is this run's.)
    assert warnings(cleared)[-1] == ('%s; this run handed the certificate over, and the refusal recorded in %s is '
                                     'cleared' % (engine.describe_state(recorded), state_file))
    assert engine.read_state(str(state_file))['status'] == 'ok'
    content = state_file.read_bytes()
    again = install(run, good, certs, state_file=str(state_file))
    assert again['changed'] is False and warnings(again) == []
    assert state_file.read_bytes() == content


def render_hook(tmp_path, **variables):
    """The role's deploy hook and retry units rendered by Ansible from the role's templates and
    defaults, with the engine beside them: {'hook': path, 'service': text, 'timer': text}."""
    role = REPO / 'roles' / 'mailu_certificates'
    out = tmp_path / 'rendered'
    (out / 'engine').mkdir(parents=True, exist_ok=True)
    variables.setdefault('mailu_certificates_engine_dir', str(out / 'engine'))
    variables.setdefault('mailu_certificates_hook_path', str(out / '50-nantral-mailu-front'))
    playbook = tmp_path / 'render.yml'
    playbook.write_text(json.dumps([dict(
        hosts='localhost', connection='local', gather_facts=False, vars_files=[str(role / 'defaults' / 'main.yml')],
        tasks=[
            {'ansible.builtin.copy': dict(src=str(REPO / 'plugins/module_utils/mailu_certificate.py'),
                                          dest='{{ mailu_certificates_engine_dir }}/mailu_certificate.py',
                                          mode='0644')},
            {'ansible.builtin.template': dict(src=str(role / 'templates/deploy-hook.py.j2'),
                                              dest='{{ mailu_certificates_hook_path }}', mode='0755')},
            {'ansible.builtin.template': dict(src=str(role / 'templates/retry.{{ item }}.j2'),
                                              dest=str(out) + '/retry.{{ item }}', mode='0644'),
             'loop': ['service', 'timer']}])]))
    env = dict(os.environ, ANSIBLE_LOCALHOST_WARNING='false', ANSIBLE_PYTHON_INTERPRETER=sys.executable,
               ANSIBLE_NOCOLOR='1')
    done = subprocess.run([str(pathlib.Path(sys.executable).parent / 'ansible-playbook'), '-i', 'localhost,',
                           '-e', json.dumps(variables), str(playbook)], env=env, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return dict(hook=variables['mailu_certificates_hook_path'], service=(out / 'retry.service').read_text(),
                timer=(out / 'retry.timer').read_text())


def exec_start(service):
    """The command of a rendered systemd service, as systemd would run it (no shell)."""
    line = [line for line in service.splitlines() if line.startswith('ExecStart=')]
    assert len(line) == 1, service
    return line[0][len('ExecStart='):].split()


STAMPED = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d nantral-mailu-front: ')


def assert_stamped(text):
    lines = text.splitlines()
    assert lines and all(STAMPED.match(line) for line in lines), text


@pytest.fixture(scope='module')
def pebble(tmp_path_factory):
    absent = acme.missing()
    if absent:
        message = '%s not installed (apt-get install certbot pebble; scripts/bootstrap.sh does)' % ' and '.join(absent)
        if os.environ.get('CI'):
            pytest.fail(message)
        pytest.skip(message)
    server = acme.Pebble(tmp_path_factory.mktemp('pebble'))
    try:
        yield server
    finally:
        server.stop()


def test_refused_renewal_recorded_retried_and_reported(run, pebble, tmp_path):
    """Item 11 with the real Certbot and a real ACME server: `certbot -q renew` says nothing
    about a deploy hook that refuses the renewed certificate; the hook records the refusal,
    the retry service's command fails while it lasts, the module (the role's next run) fails
    naming it; once the lineage is right, the retry hands it over and clears it.  A
    successful hook run writes nothing to stderr, and every line it logs is timestamped."""
    certbot = acme.Certbot(pebble, tmp_path / 'certbot')
    certs, log, state_file = tmp_path / 'certs', tmp_path / 'hook.log', tmp_path / 'state' / 'handoff.json'
    certs.mkdir()
    certbot.certonly('mail', HOSTS)
    live = str(certbot.live('mail'))
    hostnames = HOSTS + ['webmail.example.org']  # the inventory gained a name the certificate lacks
    settings = dict(
        mailu_certificates_lineage=live, mailu_certificates_certs_dir=str(certs),
        mailu_certificates_hostnames=hostnames, mailu_certificates_hook_log=str(log),
        mailu_certificates_state_file=str(state_file),
        mailu_certificates_front_container='nantral-test-absent-%s' % uuid.uuid4().hex[:8],
        mailu_certificates_compose_project='nantral-test-absent-%s' % uuid.uuid4().hex[:8])
    rendered = render_hook(tmp_path, **settings)
    hook = certbot.deploy_hooks / '50-nantral-mailu-front'
    shutil.copy(rendered['hook'], hook)
    before = engine.handoff(live, str(certs), HOSTS, front=None)  # what front served so far
    served_before = tree(str(certs))

    renewed = certbot('-q', 'renew', '--force-renewal', '--no-random-sleep-on-renew')
    assert (renewed.returncode, renewed.stdout, renewed.stderr) == (0, '', '')  # Certbot's silence
    assert "Hook 'deploy-hook' reported error code 1" in certbot.log()
    assert tree(str(certs)) == served_before  # front keeps its certificate
    state = engine.read_state(str(state_file))
    assert (state['status'], state['by'], state['source']) == ('refused', 'Certbot deploy hook', live)
    assert state['message'].startswith('refusing the certificate from %s, the installed pair is left as it is' % live)
    assert 'does not cover webmail.example.org' in state['message']
    assert_stamped(log.read_text())
    assert 'FAILED, front keeps the certificate it had' in log.read_text()

    retry = exec_start(rendered['service'])
    assert retry == [rendered['hook'], '--retry']
    assert 'OnCalendar=hourly' in rendered['timer'] and 'Persistent=true' in rendered['timer']
    for _attempt in range(2):  # fails at every attempt while refused
        failed = subprocess.run(retry, capture_output=True, text=True, check=False)
        assert failed.returncode == 1, failed
        assert 'does not cover webmail.example.org' in failed.stderr
        assert_stamped(failed.stderr)
    assert engine.read_state(str(state_file))['since'] == state['since']

    role_run = install(run, live, certs, hostnames=hostnames, state_file=str(state_file))
    assert role_run['failed'] is True
    assert 'before this run, the handoff from %s was refused by the retry service at ' % live in role_run['msg']

    # The administrator takes webmail. out of the inventory again; the role renders the hook anew.
    settings['mailu_certificates_hostnames'] = HOSTS
    render_hook(tmp_path, **settings)
    shutil.copy(rendered['hook'], hook)
    fixed = subprocess.run(retry, capture_output=True, text=True, check=False)
    assert (fixed.returncode, fixed.stderr) == (0, ''), fixed
    assert_stamped(fixed.stdout)
    assert 'the refusal recorded in %s is cleared' % state_file in fixed.stdout
    assert engine.read_state(str(state_file))['status'] == 'ok'
    assert before.installed['fingerprint_sha256'] != engine.describe(
        engine.load_chain((certs / 'cert.pem').read_bytes(), 'x'))['fingerprint_sha256']
    idle = subprocess.run(retry, capture_output=True, text=True, check=False)
    assert (idle.returncode, idle.stderr) == (0, '') and 'nothing to retry' in idle.stdout

    # A successful renewal: the hook writes nothing to stderr ("ran with error output").
    lines = len(certbot.log().splitlines())
    renewed = certbot('renew', '--force-renewal', '--no-random-sleep-on-renew')
    new_log = '\n'.join(certbot.log().splitlines()[lines:])
    assert 'Running deploy-hook command: %s' % hook in new_log
    assert 'ran with error output' not in new_log and 'reported error code' not in new_log
    assert 'installed ' in new_log and engine.read_state(str(state_file))['by'] == 'Certbot deploy hook'
    assert_stamped(log.read_text())
    assert install(run, live, certs, hostnames=HOSTS, state_file=str(state_file))['changed'] is False


# ---------------------------------------------------------------- the compose project reaches the hook (item 12)

def test_role_passes_the_compose_project_and_state_file():
    """The role's handoff task passes the project (and the state file) to the module; the
    project defaults to the stack's, in defaults/main.yml as in meta/argument_specs.yml."""
    import yaml  # pylint: disable=import-outside-toplevel
    role = REPO / 'roles' / 'mailu_certificates'
    tasks = yaml.safe_load((role / 'tasks' / 'main.yml').read_text())
    handoff_task = [t for t in tasks if 'nantral.mailu.mailu_certificate' in t][0]['nantral.mailu.mailu_certificate']
    assert handoff_task['compose_project'] == '{{ mailu_certificates_compose_project }}'
    assert handoff_task['state_file'] == '{{ mailu_certificates_state_file }}'
    defaults = yaml.safe_load((role / 'defaults' / 'main.yml').read_text())
    assert defaults['mailu_certificates_compose_project'] == "{{ mailu_stack_project_name | default('mailu') }}"
    spec = yaml.safe_load((role / 'meta' / 'argument_specs.yml').read_text())['argument_specs']['main']['options']
    assert spec['mailu_certificates_compose_project']['type'] == 'str'


def test_hook_finds_a_renamed_front_by_the_stacks_compose_project(pki, docker_client, tmp_path):
    """Front's container is not named <project>-front-1 any more (recreated under another
    name): the hook finds it by the Compose labels of the project the inventory names in
    mailu_stack_project_name, not of `mailu`, and reloads it."""
    certs = tmp_path / 'certs'
    certs.mkdir()
    first, renewed = pki.leaf(slot=80), pki.leaf(slot=81)
    engine.handoff(write_pair(tmp_path / 'a', *first), str(certs), HOSTS, front=None)
    project = 'nantral-test-%s' % uuid.uuid4().hex[:8]
    live = lineage(tmp_path / 'letsencrypt', 'mail', [first, renewed])
    rendered = render_hook(
        tmp_path, mailu_stack_project_name=project, mailu_certificates_lineage=live,
        mailu_certificates_certs_dir=str(certs), mailu_certificates_hostnames=HOSTS,
        mailu_certificates_hook_log=str(tmp_path / 'hook.log'),
        mailu_certificates_state_file=str(tmp_path / 'state.json'))
    front = Front(docker_client, '1.9', certs, labels={'com.docker.compose.project': project,
                                                       'com.docker.compose.service': 'front'})
    try:
        front.wait_healthy()
        assert front.name != '%s-front-1' % project
        done = subprocess.run([rendered['hook']], env=dict(os.environ, RENEWED_LINEAGE=live), capture_output=True,
                              text=True, check=False)
        assert (done.returncode, done.stderr) == (0, ''), done
        assert 'reloaded: %s: nginx -s reload' % front.name in done.stdout
        for port in (443, 993):
            wait_served(front.ports[port], cert_fingerprint(renewed))
    finally:
        front.remove()
