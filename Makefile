# Developer entry points; CI runs `make test` through .ci/run.
# Every target but test and demo bootstraps first (a no-op when nothing changed).

PYTEST := .venv/bin/python -m pytest -p no:cacheprovider

.PHONY: test bootstrap lint sanity unit integration molecule demo demo-accounts bench bench-provision bench-certificate bench-backup

test:
	bash scripts/test.sh

bootstrap:
	bash scripts/bootstrap.sh

lint: bootstrap
	bash scripts/lint.sh

sanity: bootstrap
	bash scripts/sanity.sh

unit: bootstrap
	$(PYTEST) tests/unit

integration: bootstrap
	$(PYTEST) tests/integration

molecule: bootstrap
	bash scripts/molecule.sh

demo:
	bash scripts/demo.sh

demo-accounts:
	bash scripts/demo-accounts.sh

bench: bootstrap
	.venv/bin/python benchmarks/accounts.py

bench-provision: bootstrap
	bash benchmarks/provision.sh

bench-certificate: bootstrap
	.venv/bin/python benchmarks/certificate_pem.py

bench-backup: bootstrap
	.venv/bin/python benchmarks/backup.py
