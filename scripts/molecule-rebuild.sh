#!/usr/bin/env bash
# The backup/rebuild test (molecule/rebuild) for one Mailu release:
#
#   MOLECULE_SCENARIOS=rebuild bash scripts/molecule.sh     (sets up Docker, images, PATH)
#   bash scripts/molecule-rebuild.sh [VERSION]              (what scripts/molecule.sh calls)
#
# Molecule cannot destroy an instance and create it again inside one `molecule test` with
# the second converge told to rebuild, so the steps run here one by one, timed. The
# scenario's playbooks besides converge run with ansible-playbook against Molecule's
# inventory of the scenario (`molecule side-effect` takes no playbook argument on the
# command line); Molecule's working directory is build/molecule-rebuild/molecule
# (MOLECULE_EPHEMERAL_DIRECTORY: set it too to run molecule commands by hand).
#
#   molecule destroy, create (+ prepare), converge
#                                 site.yml (the mailu_backup role initialises the repository,
#                                 build/molecule-rebuild/repository)
#   seed.yml                      mail, an app token, an alias, redis data; the record
#                                 before.json (on this machine); playbooks/backup.yml
#   molecule destroy              the instance AND its Docker volume
#   molecule create (+ prepare)   a fresh instance (its prepare, the same, makes a Certbot
#                                 lineage of its own, which the restore sets aside)
#   molecule converge -- -e molecule_rebuild=true
#                                 playbooks/rebuild.yml (ends with site.yml)
#   rebuilt.yml                   all identical to before.json; every password verifies
#   molecule idempotence          site.yml changes nothing
#   failures.yml                  wrong password (host command), damaged pack, failed dump,
#                                 restore into a server with data; nothing lost
#   restore-mailbox.yml           one lost mailbox and one lost folder brought back
#   molecule verify               testinfra: molecule/default's tests and the rebuild's
#   wrong-password.yml            the role with the wrong repository password writes nothing
#   molecule destroy
#
# A failing build step (up to the rebuild) stops the sequence; the checks after it are
# independent and all run. The instance is destroyed at the end unless MOLECULE_REBUILD_KEEP=1
# and a step failed (to look at it: molecule login -s rebuild). Prints one line per step
# and a summary line with the rebuild's time (fresh instance to accounts served).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
log() { echo "molecule-rebuild.sh: $*" >&2; }

# Docker, the images, the collection path and the instance image come from scripts/molecule.sh.
if [[ -z ${MOLECULE_INSTANCE_IMAGE:-} || -z ${ANSIBLE_COLLECTIONS_PATH:-} ]]; then
    MOLECULE_SCENARIOS=rebuild MOLECULE_REBUILD_VERSIONS=${1:-${MOLECULE_MAILU_VERSION:-2024.06}} \
        exec bash scripts/molecule.sh
fi

export MOLECULE_MAILU_VERSION=${1:-${MOLECULE_MAILU_VERSION:-2024.06}}
dir=$repo/build/molecule-rebuild
export MOLECULE_EPHEMERAL_DIRECTORY=$dir/molecule
summary=()
failed=
total_start=$SECONDS

broken= # the first step that built or rebuilt the server and failed: nothing to check after it
failed=() # every step that failed
step() { # NAME COMMAND...: a step of the build; run unless one failed, time it
    local name=$1 start rc=0
    shift
    if [[ -n $broken ]]; then
        summary+=("$(printf '  %-24s %-8s' "$name" skipped)")
        return 0
    fi
    log "--- $name: $*"
    start=$SECONDS
    "$@" || rc=$?
    times[$name]=$((SECONDS - start))
    summary+=("$(printf '  %-24s %-8s %4ss' "$name" "$([[ $rc -eq 0 ]] && echo ok || echo "rc=$rc")" "${times[$name]}")")
    if [[ $rc -ne 0 ]]; then
        failed+=("$name")
        return 1
    fi
}
build() { step "$@" || broken=$1; }
check() { step "$@" || true; } # the checks are independent: each one runs
declare -A times

# shellcheck disable=SC2317  # only called through step
playbook() { # PLAYBOOK: one of the scenario's playbooks, as Molecule runs them
    ANSIBLE_CONFIG=$MOLECULE_EPHEMERAL_DIRECTORY/ansible.cfg ANSIBLE_PIPELINING=true \
        MOLECULE_PROJECT_DIRECTORY=$repo MOLECULE_SCENARIO_DIRECTORY=$repo/molecule/rebuild \
        ansible-playbook --inventory "$MOLECULE_EPHEMERAL_DIRECTORY/inventory" "$repo/molecule/rebuild/$1"
}

scenario=(--scenario-name rebuild)
build destroy-leftovers molecule destroy "${scenario[@]}"
rm -rf "$dir"
mkdir -p "$dir/repository" "$MOLECULE_EPHEMERAL_DIRECTORY"
# `molecule create` runs the prepare playbook too; `molecule prepare` then has nothing to do.
build create molecule create "${scenario[@]}"
build converge molecule converge "${scenario[@]}"
build seed-and-backup playbook seed.yml
build destroy-server molecule destroy "${scenario[@]}"
build create-fresh molecule create "${scenario[@]}"
build rebuild molecule converge "${scenario[@]}" -- -e molecule_rebuild=true
check compare playbook rebuilt.yml
check idempotence molecule idempotence "${scenario[@]}"
check failures playbook failures.yml
check restore-mailbox playbook restore-mailbox.yml
check verify molecule verify "${scenario[@]}"
# Last: a role that wrote the wrong password would break the checks after it.
check wrong-password playbook wrong-password.yml
if [[ ${MOLECULE_REBUILD_KEEP:-0} == 1 && ${#failed[@]} -gt 0 ]]; then
    log "keeping the instance (MOLECULE_REBUILD_KEEP=1): with MOLECULE_EPHEMERAL_DIRECTORY=$MOLECULE_EPHEMERAL_DIRECTORY," \
        "molecule login -s rebuild; molecule destroy -s rebuild"
else
    broken=
    step destroy molecule destroy "${scenario[@]}" || true
fi

echo "=== molecule rebuild, Mailu $MOLECULE_MAILU_VERSION" >&2
printf '%s\n' "${summary[@]}" >&2
total=$((SECONDS - total_start))
if [[ -n ${times[rebuild]:-} ]]; then
    rebuild="rebuild $((times[create-fresh] + times[rebuild]))s from a fresh instance to accounts served"
    rebuild+=" (create and prepare ${times[create-fresh]}s + playbooks/rebuild.yml ${times[rebuild]}s)"
else
    rebuild="no rebuild"
fi
if ((${#failed[@]} == 0)); then
    echo "molecule rebuild $MOLECULE_MAILU_VERSION: ok in ${total}s; $rebuild" >&2
    exit 0
fi
echo "molecule rebuild $MOLECULE_MAILU_VERSION: FAILED (${failed[*]}) in ${total}s; $rebuild" >&2
exit 1
