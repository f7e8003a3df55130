#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, Nantral Platform sysadmin team
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: mailu_backup_info
short_description: How fresh Mailu's backups are, and whether the last run and check succeeded
version_added: 0.1.0
description:
  - Reads the backup configuration the role M(nantral.mailu.mailu_backup) writes, asks the restic repository for
    this server's newest snapshot, and reads the results the backup engine recorded (last backup run, last
    integrity check, last retention run).
  - Changes nothing; the same report as C(nantral-mailu-backup status --json) on the host.
  - The module does not fail when the backups are stale or the repository cannot be reached; it says so in
    RV(fresh), RV(repository) and RV(problems), so that the play decides (fail or warn).
author:
  - Nantral Platform sysadmin team (@nantral-platform)
extends_documentation_fragment:
  - nantral.mailu.attributes.info_module
options:
  config:
    description:
      - The backup engine's configuration file.
    type: path
    default: /etc/nantral-mailu/backup/config.json
  max_age_hours:
    description:
      - The newest snapshot may be this many hours old and still count as fresh. Default the configuration's
        C(max_age_hours).
    type: float
requirements:
  - restic 0.14 or later on the host that runs the module.
seealso:
  - module: nantral.mailu.mailu_backup_repository
'''

EXAMPLES = r'''
- name: Read the backups' freshness
  nantral.mailu.mailu_backup_info:
  register: backup

- name: Fail when the newest backup is too old
  ansible.builtin.assert:
    that: backup.fresh or backup.grace
    fail_msg: "{{ backup.problems | join('; ') }}"
'''

RETURN = r'''
fresh:
  description: Whether the newest snapshot is at most RV(max_age_hours) old.
  returned: always
  type: bool
grace:
  description:
    - True when the repository holds no snapshot of this server yet but the marker saw it first less than
      RV(max_age_hours) ago (a new server); not a problem then.
  returned: always
  type: bool
max_age_hours:
  description: The age limit applied.
  returned: always
  type: float
newest_snapshot:
  description: The newest snapshot of this server (host and tag of the configuration); null when there is none.
  returned: always
  type: dict
  contains:
    id:
      description: Short snapshot id.
      type: str
      returned: success
    full_id:
      description: Full snapshot id.
      type: str
      returned: success
    time:
      description: When it was taken (RFC 3339, as restic prints it).
      type: str
      returned: success
    age_hours:
      description: Its age in hours.
      type: float
      returned: success
  sample: {id: 5386d9ce, time: "2026-11-28T03:29:17.801970406Z", age_hours: 4.5}
repository:
  description:
    - The repository's state. V(ok); V(missing) (never initialised); V(vanished) (the marker remembers it, it is
      gone); V(wrong_password); V(locked); V(other) (unreachable, or another repository than the marker's).
  returned: always
  type: str
  sample: ok
repository_location:
  description: The repository, from the configuration.
  returned: always
  type: str
repository_message:
  description: What is wrong with the repository; empty when it is fine.
  returned: always
  type: str
last_backup:
  description: The last backup run as the engine recorded it (C(last-backup.json)); null before the first.
  returned: always
  type: dict
  sample: {result: ok, started: "2026-11-28T03:15:02Z", finished: "2026-11-28T03:16:40Z", snapshot: 5386d9ce,
           message: "snapshot 5386d9ce of /srv/restic-mailu", pause_seconds: 1.3, duration_seconds: 98.2,
           counts: {/mailu/mail: 10000}}
last_check:
  description: The last integrity check (C(last-check.json)), with result, finished, subset and message; null before the first.
  returned: always
  type: dict
last_forget:
  description: The last retention run (C(last-forget.json)); null before the first.
  returned: always
  type: dict
marker:
  description: The repository marker (location, id, first_seen, initialised_here); null when there is none.
  returned: always
  type: dict
problems:
  description: One sentence per problem found; empty when the backups are fresh and nothing failed.
  returned: always
  type: list
  elements: str
exit:
  description: The exit status C(nantral-mailu-backup status) gives. V(0) fresh and nothing failed, V(1) stale or a
    failure recorded, V(2) the repository cannot be reached.
  returned: always
  type: int
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nantral.mailu.plugins.module_utils import mailu_backup as engine


def main():
    module = AnsibleModule(
        argument_spec=dict(
            config=dict(type='path', default=engine.DEFAULT_CONFIG),
            max_age_hours=dict(type='float'),
        ),
        supports_check_mode=True,
    )
    if module.params['max_age_hours'] is not None and module.params['max_age_hours'] <= 0:
        module.fail_json(msg='max_age_hours must be more than 0, not %s' % module.params['max_age_hours'])
    try:
        config = engine.load_config(module.params['config'])
        report = engine.status(config, module.params['max_age_hours'])
    except engine.BackupError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, **report)


if __name__ == '__main__':
    main()
