#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, Nantral Platform sysadmin team
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: mailu_backup_repository
short_description: Initialise a restic repository for Mailu's backups once, and never again
version_added: 0.1.0
description:
  - Probes the restic repository O(repository) with C(restic cat config). A repository that exists is never
    initialised again; one that does not exist is initialised (C(restic init --repository-version 2)) only when
    it was never seen before.
  - A marker file C(repository.json) in O(state_dir) remembers the repository (location, id, when it was first
    seen, whether this module created it). When a repository the marker remembers has vanished, the module fails
    and re-creates nothing, since the snapshots of the old one would be lost without a word. To start a new repository
    at the same location on purpose, remove the marker.
  - A repository at the remembered location with another id than the marker's is refused.
  - A wrong password fails the module, naming it; nothing is written.
  - The password is handed to restic through a pipe (C(RESTIC_PASSWORD_FILE=/dev/fd/N)), never on a command line
    or in a file.
author:
  - Nantral Platform sysadmin team (@nantral-platform)
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
    support: full
    details:
      - The repository is probed; it is not initialised and the marker is not written.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details:
      - Before and after of the marker file.
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
options:
  repository:
    description:
      - The restic repository, as C(RESTIC_REPOSITORY) takes it, a local directory, V(sftp:user@host:/path),
        V(s3:https://host/bucket/path), or any backend restic knows.
    type: str
    required: true
  password:
    description:
      - The repository password.
    type: str
    required: true
  env:
    description:
      - Environment variables restic needs for the backend, such as C(AWS_ACCESS_KEY_ID) and
        C(AWS_SECRET_ACCESS_KEY). Given to restic's environment only.
    type: dict
    default: {}
  options:
    description:
      - Extended options for restic, each given as C(-o OPTION), such as
        V(sftp.command=ssh -i /etc/nantral-mailu/backup/ssh_key user@host -s sftp). Not for secrets.
    type: list
    elements: str
    default: []
  restic:
    description:
      - The restic command.
    type: str
    default: restic
  state_dir:
    description:
      - Where the marker C(repository.json) is kept (mode V(0700), created when missing); the backup engine
        reads it there.
    type: path
    default: /var/lib/nantral-mailu/backup
  init:
    description:
      - Whether to initialise the repository when it does not exist and was never seen. V(false) fails instead (a
        rebuild, which must find the existing repository).
    type: bool
    default: true
requirements:
  - restic 0.14 or later on the host that runs the module.
notes:
  - A marker for another location than O(repository) does not count; it is replaced when this repository is
    initialised or first seen.
seealso:
  - module: nantral.mailu.mailu_backup_info
'''

EXAMPLES = r'''
- name: Initialise the backup repository once
  nantral.mailu.mailu_backup_repository:
    repository: sftp:backup@vault.example.org:/srv/restic/mail
    password: "{{ mailu_backup_password }}"
    options:
      - sftp.command=ssh -i /etc/nantral-mailu/backup/ssh_key backup@vault.example.org -s sftp

- name: A rebuild finds the existing repository, never creates one
  nantral.mailu.mailu_backup_repository:
    repository: s3:https://s3.example.org/mail-backups/mail
    password: "{{ mailu_backup_password }}"
    env:
      AWS_ACCESS_KEY_ID: "{{ vault_s3_key_id }}"
      AWS_SECRET_ACCESS_KEY: "{{ vault_s3_secret }}"
    init: false
'''

RETURN = r'''
repository:
  description: The repository's location.
  returned: always
  type: str
  sample: /srv/restic-mailu
id:
  description: restic's id of the repository; null in check mode when it would be initialised.
  returned: always
  type: str
  sample: 358d2ed503d06f155547cac6f1e9c4629d35db29acfdf2ff0a24a1ccf4aed03c
initialised:
  description: Whether this run initialised the repository (in check mode, would initialise it).
  returned: always
  type: bool
restic_version:
  description: The version of restic that ran.
  returned: always
  type: str
  sample: 0.18.0
marker:
  description: The marker after the run, as the engine reads it.
  returned: always
  type: dict
  sample: {repository: /srv/restic-mailu, id: 358d2ed5..., first_seen: "2026-11-28T07:29:17Z", initialised_here: true}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nantral.mailu.plugins.module_utils import mailu_backup as engine


def main():
    module = AnsibleModule(
        argument_spec=dict(
            repository=dict(type='str', required=True),
            password=dict(type='str', required=True, no_log=True),
            env=dict(type='dict', default={}, no_log=True),
            options=dict(type='list', elements='str', default=[]),
            restic=dict(type='str', default='restic'),
            state_dir=dict(type='path', default=engine.DEFAULT_STATE_DIR),
            init=dict(type='bool', default=True),
        ),
        supports_check_mode=True,
    )
    params = module.params
    if not params['password']:
        module.fail_json(msg='password is empty: restic repositories need one')
    restic = engine.Restic(params['repository'], password=params['password'], env=params['env'],
                           options=params['options'], command=params['restic'],
                           cache_dir=None)
    try:
        result = engine.ensure_repository(restic, params['state_dir'], init=params['init'],
                                          check_mode=module.check_mode)
    except engine.BackupError as exc:
        module.fail_json(msg='%s; nothing was changed' % exc, repository=params['repository'],
                         state=getattr(exc, 'state', None))
    except OSError as exc:
        module.fail_json(msg='the marker in %s cannot be written: %s' % (params['state_dir'], exc))
    output = dict(changed=result['changed'], repository=result['repository'], id=result['id'],
                  initialised=result['initialised'], restic_version=result['restic_version'],
                  marker=result['marker_after'])
    if module._diff:
        output['diff'] = dict(before=result['marker_before'] or {}, after=result['marker_after'] or {})
    module.exit_json(**output)


if __name__ == '__main__':
    main()
