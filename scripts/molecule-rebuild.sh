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
#   molecule destroy, create, prepare, converge
#                                 site.yml (the mailu_backup role initialises the repository,
#                                 build/molecule-rebuild/repository)
#   seed.yml                      mail, an app token, an alias, redis data; the record
#                                 before.json (on this machine); playbooks/backup.yml
#   molecule destroy              the instance AND its Docker volume
#   molecule create, prepare      a fresh instance
#   molecule converge -- -e molecule_rebuild=true
#                                 playbooks/rebuild.yml (ends with site.yml)
#   rebuilt.yml                   all identical to before.json; every password verifies
#   molecule idempotence          site.yml changes nothing
#   failures.yml                  wrong password, damaged pack, failed dump, restore into a
#                                 server with data, single-mailbox restore; nothing lost
#   molecule verify               testinfra: molecule/default's tests and the rebuild's
#   molecule destroy
#
# The first failing step stops the sequence; the instance is destroyed anyway unless
# MOLECULE_REBUILD_KEEP=1 (to look at it: molecule login -s rebuild). Prints one line per
# step and a summary line with the rebuild's time (fresh instance to accounts served).
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

step() { # NAME COMMAND...: run unless an earlier step failed; time it
    local name=$1 start rc=0
    shift
    if [[ -n $failed ]]; then
        summary+=("$(printf '  %-24s %-8s' "$name" skipped)")
        return 0
    fi
    log "--- $name: $*"
    start=$SECONDS
    "$@" || rc=$?
    times[$name]=$((SECONDS - start))
    summary+=("$(printf '  %-24s %-8s %4ss' "$name" "$([[ $rc -eq 0 ]] && echo ok || echo "rc=$rc")" "${times[$name]}")")
    if [[ $rc -ne 0 ]]; then failed=$name; fi
}
declare -A times

# shellcheck disable=SC2317  # only called through step
playbook() { # PLAYBOOK: one of the scenario's playbooks, as Molecule runs them
    ANSIBLE_CONFIG=$MOLECULE_EPHEMERAL_DIRECTORY/ansible.cfg ANSIBLE_PIPELINING=true \
        MOLECULE_PROJECT_DIRECTORY=$repo MOLECULE_SCENARIO_DIRECTORY=$repo/molecule/rebuild \
        ansible-playbook --inventory "$MOLECULE_EPHEMERAL_DIRECTORY/inventory" "$repo/molecule/rebuild/$1"
}

scenario=(--scenario-name rebuild)
step destroy-leftovers molecule destroy "${scenario[@]}"
rm -rf "$dir"
mkdir -p "$dir/repository" "$MOLECULE_EPHEMERAL_DIRECTORY"
step create molecule create "${scenario[@]}"
step prepare molecule prepare "${scenario[@]}"
step converge molecule converge "${scenario[@]}"
step seed-and-backup playbook seed.yml
step destroy-server molecule destroy "${scenario[@]}"
step create-fresh molecule create "${scenario[@]}"
step prepare-fresh molecule prepare "${scenario[@]}"
step rebuild molecule converge "${scenario[@]}" -- -e molecule_rebuild=true
step compare playbook rebuilt.yml
step idempotence molecule idempotence "${scenario[@]}"
step failures playbook failures.yml
step verify molecule verify "${scenario[@]}"
if [[ ${MOLECULE_REBUILD_KEEP:-0} == 1 && -n $failed ]]; then
    log "keeping the instance (MOLECULE_REBUILD_KEEP=1): with MOLECULE_EPHEMERAL_DIRECTORY=$MOLECULE_EPHEMERAL_DIRECTORY," \
        "molecule login -s rebuild; molecule destroy -s rebuild"
else
    failed_before=$failed
    failed=
    step destroy molecule destroy "${scenario[@]}"
    failed=${failed_before:-$failed}
fi

echo "=== molecule rebuild, Mailu $MOLECULE_MAILU_VERSION" >&2
printf '%s\n' "${summary[@]}" >&2
rebuild=$((${times[create-fresh]:-0} + ${times[prepare-fresh]:-0} + ${times[rebuild]:-0}))
if [[ -z $failed ]]; then
    echo "molecule rebuild $MOLECULE_MAILU_VERSION: ok in $((SECONDS - total_start))s; rebuild ${rebuild}s" \
        "(fresh instance to accounts served: create ${times[create-fresh]}s + prepare ${times[prepare-fresh]}s" \
        "+ playbooks/rebuild.yml ${times[rebuild]}s)" >&2
    exit 0
fi
echo "molecule rebuild $MOLECULE_MAILU_VERSION: FAILED at step $failed after $((SECONDS - total_start))s" >&2
exit 1
