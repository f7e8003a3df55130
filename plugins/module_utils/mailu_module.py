# -*- coding: utf-8 -*-
# Copyright (c) 2026, Nantral Platform sysadmin team
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What every module of the collection does around the engine: requirements, the
connection, errors as fail_json, and the result."""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.warnings import get_deprecations, get_warnings

from ansible_collections.nantral.mailu.plugins.module_utils import mailu_accounts, mailu_db
from ansible_collections.nantral.mailu.plugins.module_utils.mailu_input import IDNA_IMPORT_ERROR, MailuError
from ansible_collections.nantral.mailu.plugins.module_utils.mailu_passwords import PASSLIB_IMPORT_ERROR
from ansible_collections.nantral.mailu.plugins.module_utils.mailu_schema import DEFAULT_CREDENTIAL_ROUNDS, SCHEMA_HEADS


class QuietModule(AnsibleModule):
    """An AnsibleModule that never writes to the host's system log or journal.

    AnsibleModule(no_log=True) alone does not do it: the controller sends
    _ansible_no_log with every task (false unless the task sets no_log), and
    AnsibleModule puts it in place of the constructor's value before it logs
    "Invoked with <arguments>".  Only the logging is concerned: no_log options are
    still masked in the result, and the task's own no_log still hides it.
    """

    @property
    def no_log(self):
        return True

    @no_log.setter
    def no_log(self, value):
        pass


def check_requirements(module, passwords=True):
    missing = [('psycopg', mailu_db.PSYCOPG_IMPORT_ERROR), ('idna', IDNA_IMPORT_ERROR)]
    if passwords:
        missing.append(('passlib (or libpass)', PASSLIB_IMPORT_ERROR))
    for name, error in missing:
        if error:
            module.fail_json(msg=missing_required_lib(name), exception=error)


def connect(module, name):
    """The connection for module ``name``, which pg_stat_activity shows as its application_name."""
    try:
        return mailu_db.connect(module.params, name)
    except MailuError as exc:
        fail_json(module, str(exc))


def schema_info(release):
    revision = [rev for rev, rel in SCHEMA_HEADS.items() if rel == release][0]
    return dict(release=release, revision=revision)


def _strings(value, found):
    if isinstance(value, str):
        found.append(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _strings(key, found)
            _strings(item, found)
    elif isinstance(value, (list, tuple, set)):
        for item in value:
            _strings(item, found)
    elif value is not None and not isinstance(value, bool):
        found.append(str(value))


def _masked(spec, params, nested=False):
    """``params`` with every no_log option replaced, as AnsibleModule's masking would.

    Inside list items, options left unset are left out: with thousands of accounts
    they would be most of the result sent back to the controller, for no information.
    """
    masked = {}
    for name, value in params.items():
        option = spec.get(name, {})
        if value is None and nested:
            continue
        if option.get('no_log') and value is not None:
            value = 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER'
        elif option.get('options') and isinstance(value, list):
            value = [_masked(option['options'], item, True) if isinstance(item, dict) else item for item in value]
        elif option.get('options') and isinstance(value, dict):
            value = _masked(option['options'], value, True)
        masked[name] = value
    return masked


def _occurring(secrets, strings):
    """The secrets that are a substring of one of ``strings``."""
    texts = {}
    kept = set()
    for secret in secrets:
        # Only strings at least as long as the secret can contain it; the
        # secrets (hashes especially) are often longer than anything returned.
        size = len(secret)
        if size not in texts:
            texts[size] = '\0'.join(s for s in strings if len(s) >= size)
        if secret in texts[size]:
            kept.add(secret)
    return kept


def _finish(module, method, result):
    """exit_json/fail_json that stay fast with thousands of secrets in the arguments.

    AnsibleModule masks every no_log value in every returned string (the echoed
    arguments included), one string against one secret at a time: with thousands of
    passwords and thousands of returned strings that alone takes minutes.  So the
    echoed arguments are masked here by their argument spec, and the secrets that are
    not a substring of anything returned, which masking could not find anyway, are
    left out of the list it works through.  What is masked is unchanged.
    """
    result['invocation'] = dict(module_args=_masked(module.argument_spec, module.params))
    found = []
    _strings(result, found)
    _strings(get_warnings(), found)
    _strings(get_deprecations(), found)
    module.no_log_values = _occurring(module.no_log_values, set(found))
    method(**result)


def exit_json(module, **result):
    _finish(module, module.exit_json, result)


def fail_json(module, msg, **result):
    result['msg'] = msg
    _finish(module, module.fail_json, result)


def run_accounts(module, declared, purge=(), want_diff=None, name='mailu_accounts'):
    """Apply ``declared`` ({'domains': [...], 'users': [...], 'aliases': [...]}) and
    return (plan, queries, release); fails the module on any error."""
    conn, release = connect(module, name)
    try:
        plan, queries = mailu_accounts.run(
            conn, release, declared, purge=purge,
            update_password=module.params.get('update_password', 'on_create'),
            hash_rounds=module.params.get('hash_rounds', DEFAULT_CREDENTIAL_ROUNDS),
            check_mode=module.check_mode,
            want_diff=module._diff if want_diff is None else want_diff,
            default_quota=module.params.get('default_quota'),
            default_spam_threshold=module.params.get('default_spam_threshold'),
            lock_timeout=module.params['lock_timeout'],
            purge_limit=module.params.get('purge_limit', mailu_accounts.DEFAULT_PURGE_LIMIT))
    except mailu_db.CommitOutcomeUnknown as exc:
        # What this run sent; whether it was applied is what the message says is unknown.
        fail_json(module, str(exc), queries=exc.queries, unconfirmed=exc.plan.report)
    except MailuError as exc:
        fail_json(module, str(exc))
    except mailu_db.psycopg.Error as exc:
        fail_json(module, 'Mailu database error, nothing was changed: %s' % str(exc).strip())
    finally:
        conn.close()
    return plan, queries, release


def one_object(module, kind, spec):
    """The body of mailu_domain, mailu_user and mailu_alias: one object through the
    accounts engine.  Exits with the object as it is afterwards."""
    check_requirements(module, passwords=(kind == 'users'))
    item = dict((name, module.params[name]) for name in spec)
    plan, queries, release = run_accounts(module, {kind: [item]}, want_diff=True, name='mailu_' + mailu_accounts.SINGULAR[kind])
    key = list(plan.declared[kind])[0]
    if item['state'] == 'absent':
        obj = {}
    elif key in plan.after[kind]:
        obj = plan.after[kind][key]
    else:
        obj = plan.state.view(kind, key)
    result = dict(changed=plan.changed, queries=queries, schema=schema_info(release))
    result[mailu_accounts.SINGULAR[kind]] = dict(obj, name=key) if obj and kind == 'domains' else obj
    if module._diff:
        result['diff'] = dict(before=plan.before[kind].get(key, {}), after=plan.after[kind].get(key, {}))
    exit_json(module, **result)
