"""Run the collection's modules in-process, the way Ansible runs them, and read their result;
and the Docker engine the stand-in and certificate tests use."""

import contextlib
import importlib
import io
import json
import os

import pytest
from ansible.module_utils.common import warnings
from ansible.module_utils.testing import patch_module_args


class ModuleRunner:
    """``run('mailu_user', params, email=...)``: the module's JSON result as a dict."""

    def __call__(self, module, connection=None, check=False, diff=False, **args):
        params = dict(args)
        params.update((k, v) for k, v in (connection or {}).items() if k.startswith('login_'))
        params['_ansible_check_mode'] = check
        params['_ansible_diff'] = diff
        main = importlib.import_module('ansible_collections.nantral.mailu.plugins.modules.%s' % module).main
        # A module process starts with no warnings; in one test process they would pile up.
        warnings._global_warnings.clear()  # pylint: disable=protected-access
        warnings._global_deprecations.clear()  # pylint: disable=protected-access
        out = io.StringIO()
        with patch_module_args(params), contextlib.redirect_stdout(out):
            with pytest.raises(SystemExit):
                main()
        return json.loads(out.getvalue())


@pytest.fixture
def run():
    return ModuleRunner()


@pytest.fixture(scope='session')
def docker_client():
    """The Docker engine; scripts/test.sh starts one before the tests, so in CI a missing
    engine is a failure, elsewhere a skip."""
    import docker  # pylint: disable=import-outside-toplevel  # not in the passlib 1.7.4 compat venv
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        if os.environ.get('CI'):
            pytest.fail('no Docker engine answers: %s' % exc)
        pytest.skip('no Docker engine answers: %s' % exc)
    return client
