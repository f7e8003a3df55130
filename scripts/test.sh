#!/usr/bin/env bash
# The one test entry point (make test, .ci/run): bootstrap, then lint, sanity
# and the pytest suites. Every step after bootstrap runs even if an earlier one
# failed, so that one run reports everything; the exit status is non-zero if
# any step failed. Each step's time is printed in the summary.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

summary=()
failed=0

step() {
    local name=$1 start rc=0
    shift
    echo "=== $name: $*" >&2
    start=$(date +%s)
    "$@" || rc=$?
    summary+=("$(printf '%-16s %-6s %4ss' "$name" "$([[ $rc -eq 0 ]] && echo ok || echo "rc=$rc")" $(($(date +%s) - start)))")
    if [[ $rc -ne 0 ]]; then failed=1; fi
    return "$rc"
}

# shellcheck disable=SC2317  # only called through step
run_pytest() {
    local rc=0 dir dirs=()
    # git keeps no empty directories: a suite without tests yet may be absent.
    for dir in tests/unit tests/integration; do
        if [[ -d $dir ]]; then dirs+=("$dir"); fi
    done
    # Without paths pytest would search the whole tree, build/ copies included.
    if ((${#dirs[@]} == 0)); then
        echo "no tests/unit or tests/integration directory" >&2
        return 5
    fi
    # Three worker processes, each test file on one worker (module fixtures stay whole).
    "$repo/.venv/bin/python" -m pytest -p no:cacheprovider -n "${PYTEST_WORKERS:-3}" --dist loadfile \
        "${dirs[@]}" || rc=$?
    # 5 means no test was collected: a broken collection must not look green.
    if [[ $rc -eq 5 ]]; then echo "pytest collected no tests" >&2; fi
    return "$rc"
}

# shellcheck disable=SC2317  # only called through step
run_compat() {
    # The password code under Debian's passlib 1.7.4 and bcrypt 4 (requirements-compat.txt).
    "$repo/.venv-passlib174/bin/python" -m pytest -p no:cacheprovider -q \
        tests/unit/test_passwords.py tests/integration/test_passwords_mailu_compat.py
}

# Nothing else can run without the virtualenv and packages.
step bootstrap bash scripts/bootstrap.sh || { printf '%s\n' "${summary[@]}" >&2; exit 1; }
# A Docker engine and the test images, for the certificate tests (real front stand-in)
# and Molecule; without them those tests would be skipped or fail.
step docker bash -c 'bash scripts/docker-host.sh && bash scripts/build-images.sh' || true
step lint bash scripts/lint.sh || true
step sanity bash scripts/sanity.sh || true
step pytest run_pytest || true
step compat run_compat || true
# Molecule in Docker (needs root for the Docker engine and debootstrap), one step per
# scenario of MOLECULE_SCENARIOS: "default" (the full provisioning, for the releases of
# MOLECULE_MAILU_VERSIONS) and "rebuild" (backup, destruction and rebuild, for those of
# MOLECULE_REBUILD_VERSIONS); see scripts/molecule.sh.
for scenario in ${MOLECULE_SCENARIOS:-default rebuild}; do
    step "molecule-$scenario" env MOLECULE_SCENARIOS="$scenario" bash scripts/molecule.sh || true
done

echo "=== summary" >&2
printf '%s\n' "${summary[@]}" >&2
exit $failed
