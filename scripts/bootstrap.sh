#!/usr/bin/env bash
# Prepare a machine to run the tests: Debian packages (as root), the project
# virtualenv, and ansible-test's offline pip bootstrap. Idempotent: a second
# run only checks and exits within seconds.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
venv=$repo/.venv
requirements=$repo/requirements-dev.txt

log() { echo "bootstrap: $*" >&2; }

# Python 3.11 is what requirements-dev.txt is pinned for (ansible-core 2.19).
python=${PYTHON:-}
if [[ -z $python ]]; then
    for candidate in python3.11 python3; do
        if command -v "$candidate" >/dev/null; then
            python=$candidate
            break
        fi
    done
fi

# --- Debian packages ------------------------------------------------------
missing=()
[[ -n $python ]] || missing+=(python3)
if [[ ! -x $venv/bin/python ]] && ! ${python:-false} -c 'import venv, ensurepip' 2>/dev/null; then
    missing+=(python3-venv)  # Debian splits venv/ensurepip out of python3
fi
command -v git >/dev/null || missing+=(git)    # scripts/sanity.sh lists files with git
command -v make >/dev/null || missing+=(make)  # the developers' entry points are Makefile targets
# ansible-test sanity skips its shellcheck test (with only a warning) without it.
command -v shellcheck >/dev/null || missing+=(shellcheck)
# A real Certbot and ACME server for the certificate deploy hook's test (tests/acme.py), and
# the Docker SDK of the system python3 that the rendered hook runs with, as on a server.
command -v certbot >/dev/null || missing+=(certbot)
command -v pebble >/dev/null || missing+=(pebble)
/usr/bin/python3 -c 'import docker' 2>/dev/null || missing+=(python3-docker)
# A real DNS server on loopback for the DNS records' live check (tests/integration/test_dns_live.py).
[[ -x /usr/sbin/knotd ]] || missing+=(knot)
# A real Postfix (and its lmdb maps, Mailu's kind) for the Postfix overrides' test.
command -v postmap >/dev/null || missing+=(postfix)
[[ -e /usr/lib/postfix/postfix-lmdb.so ]] || missing+=(postfix-lmdb)
# restic, the backup engine's repository tool, for the backup tests and benchmarks (real repositories).
command -v restic >/dev/null || missing+=(restic)
# initdb/pg_ctl for the tests' throwaway cluster (tests/pgserver.py finds them).
if ! python3 "$repo/tests/pgserver.py" bindir >/dev/null 2>&1; then
    missing+=(postgresql-15)
fi

if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        log "WARNING: not root, cannot install: ${missing[*]} (install them, or the tests needing them fail)"
    else
        log "installing Debian packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        # Outside bookworm, take whatever PostgreSQL the distribution calls default.
        if [[ " ${missing[*]} " == *" postgresql-15 "* ]] && ! apt-cache show postgresql-15 >/dev/null 2>&1; then
            missing=("${missing[@]/postgresql-15/postgresql}")
        fi
        # Servers (Postfix, Knot, PostgreSQL) must not start on the machine's own ports when
        # installed: the tests start their own on loopback. policy-rc.d says so to invoke-rc.d,
        # for this install only when the machine has none of its own.
        policy=/usr/sbin/policy-rc.d
        own_policy=
        if [[ ! -e $policy ]]; then
            printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 0755 "$policy" && own_policy=1
        fi
        rc=0
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
        if [[ -n $own_policy ]]; then rm -f "$policy"; fi
        ((rc == 0)) || { log "apt-get install ${missing[*]} failed"; exit "$rc"; }
        if [[ -z $python ]]; then
            python=python3
        fi
    fi
fi

# --- virtualenv -----------------------------------------------------------
if [[ ! -x $venv/bin/python && -z $python ]]; then
    log "no python3 found (run as root to install it)"
    exit 1
fi

# install_requirements VENV FILE: pip install FILE into VENV when FILE changed
# since the last install (a stamp inside VENV holds its sha256).
install_requirements() {
    local target=$1 file=$2 wanted stamp
    stamp=$target/.$(basename "$file").sha256
    if [[ ! -x $target/bin/python ]]; then
        log "creating $target with $python"
        "$python" -m venv "$target"
    fi
    wanted=$(sha256sum "$file" | cut -d' ' -f1)
    if [[ ! -f $stamp || $(cat "$stamp") != "$wanted" ]]; then
        log "installing $(basename "$file") into $(basename "$target")"
        "$target/bin/python" -m pip install --quiet --disable-pip-version-check -r "$file"
        # Written last, so that a failed install is retried on the next run.
        echo "$wanted" >"$stamp"
    fi
}

install_requirements "$venv" "$requirements"
# Debian's passlib 1.7.4 + bcrypt 4, for the password tests (scripts/test.sh, step compat).
install_requirements "$repo/.venv-passlib174" "$repo/requirements-compat.txt"

# --- ansible-test offline pip bootstrap -----------------------------------
# ansible-test bootstraps pip in its virtualenvs with a get-pip script downloaded
# from a host that is not reachable here, unless ~/.ansible/test/cache holds one.
# This stand-in gets pip from ensurepip and upgrades it from the package index.
# The pip version is the one the installed ansible-test asks for.
pip_versions=$("$venv/bin/python" - <<'EOF'
import re
import types

try:
    from ansible_test._internal.constants import SUPPORTED_PYTHON_VERSIONS
    from ansible_test._internal.python_requirements import get_venv_packages

    versions = {get_venv_packages(types.SimpleNamespace(version=v))['pip'] for v in SUPPORTED_PYTHON_VERSIONS}
except (ImportError, AttributeError, KeyError):
    # Fall back to reading the source if the private API moved.
    import ansible_test._internal.python_requirements as module

    versions = set(re.findall(r"pip='([0-9.]+)'", open(module.__file__, encoding='utf-8').read()))
if not versions:
    raise SystemExit('cannot find the pip version ansible-test bootstraps')
print('\n'.join(sorted(versions)))
EOF
)

stub=$(mktemp)
trap 'rm -f "$stub"' EXIT
cat >"$stub" <<'EOF'
"""Offline stand-in for get-pip.py, written by nantral.mailu's scripts/bootstrap.sh.

ansible-test runs this in a fresh virtualenv with get-pip's arguments.
"""
import subprocess
import sys

# In a subprocess: ensurepip blanks pip's configuration in its own process, and
# a later install in that process would then not trust the index's certificate.
subprocess.check_call([sys.executable, '-m', 'ensurepip', '--upgrade'])
# --no-setuptools and --no-wheel are get-pip options that pip does not know.
args = [arg for arg in sys.argv[1:] if arg not in ('--no-setuptools', '--no-wheel')]
sys.exit(subprocess.call([sys.executable, '-m', 'pip', 'install'] + args))
EOF

cache=$HOME/.ansible/test/cache
mkdir -p "$cache"
for version in $pip_versions; do
    target=$cache/get_pip_${version//./_}.py
    if ! cmp -s "$stub" "$target"; then
        log "writing $target"
        install -m 0644 "$stub" "$target"
    fi
done

log "ready (ansible-test pip bootstrap: ${pip_versions//$'\n'/ })"
