# Copyright (c) 2026, Nantral Platform sysadmin team
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Run Mailu's own record code (models.Domain.dns_*, and 2024.06's zone-file view)
for a fixed configuration and print what it computes, as JSON.

Usage: PYTHON tests/data/mailu_dns_reference.py SOURCE_DIR RELEASE CONFIG_JSON
SOURCE_DIR is `git archive TAG core/admin/mailu` extracted; run with a Python that has
the release's pinned Flask, Flask-SQLAlchemy, SQLAlchemy, passlib, idna, dnspython and
pyOpenSSL (1.9) or cryptography (2024.06).
"""
import json
import os
import sys
import tempfile
import types
from unittest import mock

source, release, config_json = sys.argv[1:4]
config = json.loads(config_json)
admin = os.path.join(source, 'core', 'admin')

# Only mailu.models and mailu.dkim are imported for real; the package's __init__ (the
# whole app) and the modules records do not need are stubs.
package = types.ModuleType('mailu')
package.__path__ = [os.path.join(admin, 'mailu')]
sys.modules['mailu'] = package
sys.modules['mailu.utils'] = package.utils = mock.MagicMock()
for name in ('validators', 'flask_login', 'wtforms_components'):
    sys.modules[name] = mock.MagicMock()

import flask  # noqa: E402
from mailu import dkim, models  # noqa: E402

app = flask.Flask('reference')
keys = tempfile.mkdtemp()
app.config.update(
    DOMAIN=config['DOMAIN'],
    HOSTNAMES=','.join(config['HOSTNAMES']),
    HOSTNAME=config['HOSTNAMES'][0],
    DMARC_RUA=config['DMARC_RUA'],
    DMARC_RUF=config['DMARC_RUF'],
    DKIM_SELECTOR=config['DKIM_SELECTOR'],
    DKIM_PATH=os.path.join(keys, '{domain}.{selector}.key'),
    TLS_FLAVOR=config['TLS_FLAVOR'],
    PORTS=','.join(str(port) for port in config.get('PORTS', [])),
)

zonefile_view = None
if release == '2024.06':
    def identity(*_args, **_kwargs):
        return lambda function: function

    ui_package = types.ModuleType('mailu.ui')
    ui_package.ui = types.SimpleNamespace(route=identity)
    ui_package.forms = mock.MagicMock()
    ui_package.access = types.SimpleNamespace(domain_admin=identity, confirmation_required=identity,
                                              authenticated=lambda function: function,
                                              global_admin=lambda function: function,
                                              owner=identity)
    sys.modules['mailu.ui'] = ui_package
    import importlib.util  # noqa: E402
    spec = importlib.util.spec_from_file_location('mailu.ui.views.domains',
                                                  os.path.join(admin, 'mailu', 'ui', 'views', 'domains.py'))
    views = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(views)
    zonefile_view = views.domain_download_zonefile

result = {'release': release, 'config': config, 'domains': {}}
with app.app_context():
    for item in config['domains']:
        if item['dkim_key']:
            with open(app.config['DKIM_PATH'].format(domain=item['name'], selector=config['DKIM_SELECTOR']), 'wb') as handle:
                handle.write(dkim.gen_key())
        domain = models.Domain(name=item['name'])
        records = {
            'dkim_publickey': domain.dkim_publickey,
            'dns_mx': domain.dns_mx,
            'dns_spf': domain.dns_spf,
            'dns_dkim': domain.dns_dkim,
            'dns_dmarc': domain.dns_dmarc,
            'dns_dmarc_report': domain.dns_dmarc_report,
            'dns_autoconfig': domain.dns_autoconfig,
            'dns_tlsa': domain.dns_tlsa,
        }
        if zonefile_view:
            with mock.patch.object(models.Domain, 'query', types.SimpleNamespace(get=lambda name, d=domain: d)):
                records['zonefile'] = zonefile_view(item['name']).get_data(as_text=True)
        result['domains'][item['name']] = records
json.dump(result, sys.stdout, indent=2, sort_keys=True)
print()
