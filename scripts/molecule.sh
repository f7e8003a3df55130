#!/usr/bin/env bash
# The Molecule tests (make molecule; a step of scripts/test.sh): a Docker engine on this
# machine, the test images, then the scenarios of MOLECULE_SCENARIOS (default: both):
# - default: `molecule test` (create, prepare, converge = playbooks/site.yml, idempotence,
#   side effects, verify with testinfra, destroy) for each release of MOLECULE_MAILU_VERSIONS
#   (default "2024.06 1.9");
# - rebuild: backup, destruction and rebuild (scripts/molecule-rebuild.sh) for each release
#   of MOLECULE_REBUILD_VERSIONS (default "2024.06").
# Arguments go to molecule instead, e.g. `bash scripts/molecule.sh converge`.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
log() { echo "molecule.sh: $*" >&2; }

bash scripts/docker-host.sh
# Mailu releases the scenario runs; the group_vars read MOLECULE_MAILU_VERSION.
read -r -a versions <<<"${MOLECULE_MAILU_VERSIONS:-2024.06 1.9}"
read -r -a rebuild_versions <<<"${MOLECULE_REBUILD_VERSIONS:-2024.06}"
read -r -a scenarios <<<"${MOLECULE_SCENARIOS:-default rebuild}"
# The local Debian 13 systemd image and the stand-ins of Mailu's images, as archives
# the roles load (the path users without registry access take). Cached.
needed=()
for scenario in "${scenarios[@]}"; do
    case $scenario in
        default) needed+=("${versions[@]}") ;;
        rebuild) needed+=("${rebuild_versions[@]}") ;;
        *) log "unknown scenario '$scenario' in MOLECULE_SCENARIOS (default, rebuild)" && exit 2 ;;
    esac
done
read -r -a needed <<<"$(printf '%s\n' "${needed[@]}" | awk '!seen[$0]++' | tr '\n' ' ')"
bash scripts/build-images.sh "${needed[@]}"

# The instance: the public systemd image of molecule.yml when it can be pulled,
# otherwise the one scripts/build-images.sh made with debootstrap.
public=docker.io/geerlingguy/docker-debian13-ansible:latest
if [[ -z ${MOLECULE_INSTANCE_IMAGE:-} ]]; then
    if docker image inspect "$public" >/dev/null 2>&1 || timeout 120 docker pull -q "$public" >/dev/null 2>&1; then
        export MOLECULE_INSTANCE_IMAGE=$public
    else
        log "cannot pull $public: using the locally built instance image"
        export MOLECULE_INSTANCE_IMAGE=localhost/nantral-mailu-test/debian:13
    fi
fi
log "instance image: $MOLECULE_INSTANCE_IMAGE"

mkdir -p build/collections/ansible_collections/nantral
ln -sfn "$repo" build/collections/ansible_collections/nantral/mailu
export PATH=$repo/.venv/bin:$PATH
export ANSIBLE_COLLECTIONS_PATH=$repo/build/collections
# The default scenario's instance keeps /var/lib/docker on a named volume, which
# `molecule destroy` leaves behind: remove it with the instance, so that a new instance
# starts without images. (The rebuild scenario's destroy playbook removes its own.)
volume=nantral-mailu-molecule-docker
default_scenario=false
if (($#)); then
    scenario=default
    args=("$@")
    for ((i = 0; i < $#; i++)); do
        case ${args[i]} in
            -s | --scenario-name) scenario=${args[i + 1]:-} ;;
            --scenario-name=*) scenario=${args[i]#*=} ;;
        esac
    done
    if [[ $scenario == default ]]; then default_scenario=true; fi
elif [[ " ${scenarios[*]} " == *" default "* ]]; then
    default_scenario=true
fi
drop_volume() {
    if $default_scenario; then docker volume rm -f "$volume" >/dev/null 2>&1 || true; fi
}
command=${1:-test}
case $command in
    test | create) drop_volume ;;  # a no-op while an instance still uses it
esac
rc=0
if (($#)); then
    export MOLECULE_MAILU_VERSION=${MOLECULE_MAILU_VERSION:-${versions[0]}}
    molecule "$@" || rc=$?
else
    results=()
    for scenario in "${scenarios[@]}"; do
        if [[ $scenario == rebuild ]]; then
            for version in "${rebuild_versions[@]}"; do
                log "rebuild, Mailu $version"
                start=$SECONDS
                one=0
                bash scripts/molecule-rebuild.sh "$version" || one=$?
                results+=("$(printf 'rebuild %-8s %-6s %4ss' "$version" "$([[ $one -eq 0 ]] && echo ok || echo "rc=$one")" $((SECONDS - start)))")
                if [[ $one -ne 0 ]]; then rc=$one; fi
            done
            continue
        fi
        for version in "${versions[@]}"; do
            log "default, Mailu $version"
            start=$SECONDS
            one=0
            MOLECULE_MAILU_VERSION=$version molecule test --scenario-name default || one=$?
            drop_volume
            results+=("$(printf 'default %-8s %-6s %4ss' "$version" "$([[ $one -eq 0 ]] && echo ok || echo "rc=$one")" $((SECONDS - start)))")
            if [[ $one -ne 0 ]]; then rc=$one; fi
        done
    done
    log "summary:"
    printf 'molecule.sh:   %s\n' "${results[@]}" >&2
fi
case $command in
    test | destroy) drop_volume ;;
esac
exit "$rc"
