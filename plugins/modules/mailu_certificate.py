#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, Nantral Platform sysadmin team
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: mailu_certificate
short_description: Hand a certificate over to Mailu's front, validated, atomically, with a reload
version_added: 0.1.0
description:
  - Installs a certificate and its private key as the pair Mailu's front serves with C(TLS_FLAVOR=cert)
    or V(mail), from a Certbot lineage or from two files, then reloads front without restarting it.
  - Before anything is touched, the pair is validated; any problem fails the module, names what is wrong,
    and leaves the installed pair as it is. The key must match the leaf certificate; each certificate must be
    issued (and, when the scheme allows checking, signed) by the next one, and a leaf that is not
    self-signed must be followed by its issuer (a full chain); every certificate must be valid now and the
    leaf for O(min_days_valid) more days; the leaf's DNS names must cover O(hostnames).
  - The pair is written only when it differs from the installed one, compared by content (the chain's
    certificates, and whether the installed key belongs to the new certificate), or when the installed files
    need repair (symlinks, or a key not in mode V(0600)). Each file is written to a temporary file in the
    same directory, flushed to disk, and renamed over the old one, as real files (chain V(0644), key
    V(0600)). If writing fails midway, the files already replaced are put back.
  - Every file is reached through the certs directory's own file descriptor, its subdirectories opened without
    following symlinks, and temporary files are always new files, so no write can leave O(certs_dir), whatever its
    entries point to. A subdirectory in O(cert_filename) or O(key_filename) that is a symlink is refused.
  - A replaced chain file is kept as C(.previous) in mode V(0644) only when it held certificates alone; one that
    held a private key too (a combined file) is kept in mode V(0600).
  - Front is reloaded in place through the Docker API, with C(nginx -s reload) and, when front has one
    (Mailu 2024.06, whose front runs a Dovecot proxy), C(doveadm reload). If a reload command fails, the
    previous files are put back, front is reloaded again, and the module fails.
  - The same engine runs in the Certbot deploy hook of this collection, without Ansible.
author:
  - Nantral Platform sysadmin team (@nantral-platform)
extends_documentation_fragment:
  - nantral.mailu.attributes
attributes:
  check_mode:
    details:
      - The source is read and validated and compared with the installed pair; nothing is written, and
        Docker is not asked.
  diff_mode:
    details:
      - Before and after of the installed pair as front serves it (fingerprint, subject, names, issuer,
        dates, key type), never key material.
options:
  lineage:
    description:
      - A Certbot lineage directory, C(/etc/letsencrypt/live/NAME). Its C(fullchain.pem) and C(privkey.pem)
        are followed to the real files in C(archive/), which are read; the symlinks themselves are never copied.
      - Exactly one of O(lineage) or O(certificate) with O(private_key).
    type: path
  certificate:
    description:
      - A PEM file with the full chain, leaf first. Other PEM blocks in it (a private key, for example) are
        not copied.
    type: path
  private_key:
    description:
      - The PEM file with the certificate's private key, not encrypted. It is read on the host that runs the
        module and written in PKCS#8 form; it never appears in the result.
      - A source file larger than 1 MiB is refused (no certificate or key file is that large).
    type: path
  certs_dir:
    description:
      - Mailu's certificate directory on the host, the one mounted as C(/certs) in front. It must exist.
    type: path
    default: /mailu/certs
  cert_filename:
    description:
      - File name of the full chain in O(certs_dir); Mailu's C(TLS_CERT_FILENAME). It may name a file in a
        subdirectory of O(certs_dir) that exists and is no symlink.
      - It must name another file than O(key_filename), and neither may be the other's C(.previous) copy.
    type: str
    default: cert.pem
  key_filename:
    description:
      - File name of the private key in O(certs_dir); Mailu's C(TLS_KEYPAIR_FILENAME).
    type: str
    default: key.pem
  check_hostnames:
    description:
      - Whether the certificate must cover every name in O(hostnames). V(false) skips that check only.
    type: bool
    default: true
  hostnames:
    description:
      - The names the certificate must cover, usually Mailu's C(HOSTNAMES). Required when O(check_hostnames=true).
      - Matched against the certificate's subjectAltName DNS names, case-insensitively; a wildcard
        C(*.example.org) covers exactly one label (C(mail.example.org), not C(example.org) nor
        C(a.b.example.org)). Give internationalised names as A-labels (C(xn--...)) when IDNA 2003 and 2008
        disagree on them.
    type: list
    elements: str
  min_days_valid:
    description:
      - The leaf certificate must be valid for at least this many more days. V(0) only refuses expired ones.
      - Lower it for short-lived certificates (Let's Encrypt's six-day profile).
    type: int
    default: 7
  keep_previous:
    description:
      - When the pair changes, keep the replaced one beside the new one as C(<cert_filename>.previous) and
        C(<key_filename>.previous) (key in mode V(0600)), overwriting older ones.
    type: bool
    default: true
  reload:
    description:
      - Whether to reload front after a change. Without it, front reads the new pair at its next start, or
        when its own certificate watcher notices it.
    type: bool
    default: true
  front_container:
    description:
      - Name of front's container. When no container has that name, the container of the Compose project
        O(compose_project), service C(front), is used.
      - When no front container exists, or it is stopped, the new pair stays installed (front reads it when it
        starts) and a warning says so.
    type: str
    default: mailu-front-1
  compose_project:
    description:
      - Compose project name of the Mailu stack (its C(com.docker.compose.project) label), used when no container
        is named O(front_container), a renamed or recreated one for example. The role
        M(nantral.mailu.mailu_certificates) passes its C(mailu_certificates_compose_project), by default the stack's
        C(mailu_stack_project_name).
    type: str
    default: mailu
  doveadm_reload:
    description:
      - Whether to run C(doveadm reload) in front after C(nginx -s reload). Mailu 2024.06 needs it for its Dovecot
        proxy (ports 465, 993, 995, 4190); its own certificate watcher fails in 2024.06.0 to 2024.06.13.
      - When not set, it runs when front has a C(doveadm) command, as in Mailu 2024.06 and not in 1.9 or 2.0.
    type: bool
  docker_host:
    description:
      - The Docker API to reach front through, as C(DOCKER_HOST). Default the environment's C(DOCKER_HOST), or
        the local socket.
    type: str
  state_file:
    description:
      - A JSON file where the outcome of the handoff is recorded, shared with the Certbot deploy hook and its
        retry service of the role M(nantral.mailu.mailu_certificates) (C(/var/lib/nantral-mailu/certificate-handoff.json)
        there). Not set, nothing is recorded.
      - When the handoff fails, the refusal is recorded there (the hook's retry service then retries it and fails
        visibly while it lasts), and the failure message also names an earlier refusal recorded by the hook.
      - When the handoff succeeds and the file recorded a refusal (the hook refused a renewal), the module records
        the success, reports V(changed), and warns with what had been refused and when. Otherwise the file is not
        written.
      - In check mode the file is read, never written.
    type: path
requirements:
  - cryptography (Debian's C(python3-cryptography)) on the host that runs the module.
  - The Docker SDK for Python (Debian's C(python3-docker)) when front is reloaded.
notes:
  - Docker is asked before any file is written, and only when the pair changes.
  - While it works, the module holds an exclusive lock on O(certs_dir) (C(flock)), as the Certbot deploy hook
    does, so that the two never interleave; it waits up to 60 seconds for the other one.
  - The files are written by the user that runs the module (root, normally), who must be able to read the
    private key (Certbot's are readable by root only).
  - This module takes no database connection; it does not belong to the C(nantral.mailu.mailu) action group.
seealso:
  - name: Mailu documentation, certificate management
    description: Mailu's own advice for Certbot deploy hooks.
    link: https://mailu.io/2024.06/maintain.html
'''

EXAMPLES = r'''
- name: Hand Certbot's certificate over to Mailu's front
  nantral.mailu.mailu_certificate:
    lineage: /etc/letsencrypt/live/mail.example.org
    hostnames: [mail.example.org, imap.example.org]

- name: Install a certificate from files, with Mailu's own file names, before the first start
  nantral.mailu.mailu_certificate:
    certificate: /root/tls/fullchain.pem
    private_key: /root/tls/privkey.pem
    certs_dir: /srv/mailu/certs
    cert_filename: mailu-chain.pem
    key_filename: mailu-key.pem
    hostnames: "{{ mailu_hostnames }}"
    reload: false

- name: Check the served pair, without changing anything
  nantral.mailu.mailu_certificate:
    lineage: /etc/letsencrypt/live/mail.example.org
    hostnames: [mail.example.org]
    min_days_valid: 20
  check_mode: true
  register: certificate

- name: Show when it expires
  ansible.builtin.debug:
    msg: "{{ certificate.installed.not_after }}"
'''

RETURN = r'''
installed:
  description:
    - The pair installed after the run (in check mode, as it would be), as front serves it.
    - Empty when nothing is installed; V(problem) only, when the installed files cannot be read.
  returned: always
  type: dict
  contains:
    fingerprint_sha256:
      description: SHA-256 fingerprint of the leaf certificate, lower-case hex bytes separated by colons.
      type: str
      returned: success
    subject:
      description: Subject of the leaf certificate (RFC 4514).
      type: str
      returned: success
    issuer:
      description: Issuer of the leaf certificate (RFC 4514).
      type: str
      returned: success
    names:
      description: The leaf's subjectAltName DNS names.
      type: list
      elements: str
      returned: success
    not_before:
      description: Start of the leaf's validity, UTC, ISO 8601.
      type: str
      returned: success
    not_after:
      description: End of the leaf's validity, UTC, ISO 8601.
      type: str
      returned: success
    key_type:
      description: Type and size or curve of the leaf's key, such as V(RSA 2048) or V(EC secp384r1).
      type: str
      returned: success
    chain_length:
      description: Number of certificates in the chain file, the leaf included.
      type: int
      returned: success
    problem:
      description: Why the installed files cannot be read.
      type: str
      returned: when the installed pair cannot be read and nothing replaced it
  sample:
    fingerprint_sha256: "3f:1c:...:9a"
    subject: CN=mail.example.org
    issuer: CN=E6,O=Let's Encrypt,C=US
    names: [imap.example.org, mail.example.org]
    not_before: "2026-05-01T08:12:44Z"
    not_after: "2026-07-30T08:12:43Z"
    key_type: EC secp256r1
    chain_length: 2
cert_path:
  description: The full chain's path on the host.
  returned: always
  type: str
  sample: /mailu/certs/cert.pem
key_path:
  description: The private key's path on the host.
  returned: always
  type: str
  sample: /mailu/certs/key.pem
changes:
  description: Why the files were (or, in check mode, would be) written; empty when nothing changed.
  returned: always
  type: list
  elements: str
  sample: ["certificate 3f:1c:...:9a replaces 08:be:...:71"]
reloaded:
  description: The reload commands run, with the container they ran in.
  returned: always
  type: list
  elements: str
  sample: ["mailu-front-1: nginx -s reload", "mailu-front-1: doveadm reload"]
source:
  description: The real files read, Certbot's symlinks resolved.
  returned: always
  type: dict
  contains:
    certificate:
      description: The chain file.
      type: str
      returned: always
    private_key:
      description: The key file.
      type: str
      returned: always
  sample:
    certificate: /etc/letsencrypt/archive/mail.example.org/fullchain3.pem
    private_key: /etc/letsencrypt/archive/mail.example.org/privkey3.pem
'''

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.nantral.mailu.plugins.module_utils import mailu_certificate as engine


def main():
    module = AnsibleModule(
        argument_spec=dict(
            lineage=dict(type='path'),
            certificate=dict(type='path'),
            private_key=dict(type='path'),
            certs_dir=dict(type='path', default=engine.DEFAULT_CERTS_DIR),
            cert_filename=dict(type='str', default=engine.DEFAULT_CERT_FILENAME),
            key_filename=dict(type='str', default=engine.DEFAULT_KEY_FILENAME),
            check_hostnames=dict(type='bool', default=True),
            hostnames=dict(type='list', elements='str'),
            min_days_valid=dict(type='int', default=engine.DEFAULT_MIN_DAYS_VALID),
            keep_previous=dict(type='bool', default=True),
            reload=dict(type='bool', default=True),
            front_container=dict(type='str', default=engine.DEFAULT_FRONT_CONTAINER),
            compose_project=dict(type='str', default=engine.DEFAULT_COMPOSE_PROJECT),
            doveadm_reload=dict(type='bool'),
            docker_host=dict(type='str'),
            state_file=dict(type='path'),
        ),
        required_one_of=[('lineage', 'certificate')],
        mutually_exclusive=[('lineage', 'certificate'), ('lineage', 'private_key')],
        required_together=[('certificate', 'private_key')],
        required_if=[('check_hostnames', True, ['hostnames'])],
        supports_check_mode=True,
    )
    params = module.params
    if engine.CRYPTOGRAPHY_IMPORT_ERROR:
        module.fail_json(msg=missing_required_lib('cryptography'), exception=engine.CRYPTOGRAPHY_IMPORT_ERROR)
    if params['check_hostnames'] and not params['hostnames']:
        module.fail_json(msg='hostnames is empty: list the names the certificate must cover, '
                             'or set check_hostnames=false')
    if params['min_days_valid'] < 0:
        module.fail_json(msg='min_days_valid must be 0 or more, not %d' % params['min_days_valid'])

    front = None
    if params['reload']:
        front = engine.DockerFront(params['front_container'], params['compose_project'], params['docker_host'])
    source = params['lineage'] or (params['certificate'], params['private_key'])
    state = engine.read_state(params['state_file']) if params['state_file'] else {}
    refused_before = state.get('status') == engine.STATE_REFUSED
    try:
        result = engine.handoff(
            source,
            certs_dir=params['certs_dir'],
            hostnames=params['hostnames'] if params['check_hostnames'] else (),
            min_days_valid=params['min_days_valid'],
            front=front,
            reload_doveadm=params['doveadm_reload'],
            cert_filename=params['cert_filename'],
            key_filename=params['key_filename'],
            keep_previous=params['keep_previous'],
            check_mode=module.check_mode)
    except engine.CertificateError as exc:
        msg = str(exc)
        if params['state_file'] and not module.check_mode:
            try:
                engine.record_state(params['state_file'], params['lineage'] or params['certificate'], 'Ansible run', exc,
                                    previous=state)
            except OSError as error:
                msg += '; recording the refusal in %s failed too: %s' % (params['state_file'], error)
        if refused_before:
            msg += '; before this run, %s' % engine.describe_state(state)
        output = _output(module, exc.result) if isinstance(exc, engine.ReloadError) else {}
        module.fail_json(msg=msg, **output)
    output = _output(module, result)
    if refused_before:
        module.warn('%s; this run handed the certificate over%s' % (
            engine.describe_state(state), ' (check mode: the refusal stays recorded)' if module.check_mode
            else ', and the refusal recorded in %s is cleared' % params['state_file']))
        output['changed'] = True
        if not module.check_mode:
            try:
                engine.record_state(params['state_file'], params['lineage'] or params['certificate'], 'Ansible run')
            except OSError as exc:
                module.fail_json(msg='the certificate was handed over, but clearing the refusal recorded in %s '
                                     'failed: %s' % (params['state_file'], exc), **output)
    module.exit_json(**output)


def _output(module, result):
    output = result.as_dict()
    for warning in output.pop('warnings'):
        module.warn(warning)
    if module._diff:
        output['diff'] = result.diff()
    return output


if __name__ == '__main__':
    main()
