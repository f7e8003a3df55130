#!/usr/bin/env bash
# Build, locally, every Docker image the Molecule full-provisioning test needs,
# because no container registry is reachable on the development and CI machines.
#
#   scripts/build-images.sh [VERSION...]      (default: 2024.06 1.9)
#
# 1. localhost/nantral-mailu-test/debian:13: Debian 13 (trixie) with systemd,
#    made with debootstrap + docker import. The Molecule instance image when the
#    public default cannot be pulled, and the base of the stand-ins.
# 2. localhost/nantral-standin/<image>:<VERSION>: one TEST STAND-IN per Mailu
#    service image (see tests/standins/README.md), plus
#    localhost/nantral-standin/redis:alpine. They are not Mailu.
# 3. build/images/mailu-standins-<VERSION>.tar: `docker save` of one version's
#    stand-ins (redis included), which the roles `docker load`.
#
# VERSION is a Mailu release line or a pinned tag of one: 1.9[.N], 2.0[.N],
# 2024.06[.N]. Idempotent and cached: an image is skipped when the image with
# that tag carries the same build-context hash in its label, and an archive is
# skipped when it holds the same image IDs, so a second run takes seconds.
# FORCE=1 rebuilds everything. DEBIAN_MIRROR overrides the debootstrap mirror.
# Runs as root (debootstrap; and scripts/docker-host.sh when dockerd is down).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

build=$repo/build
standins=$repo/tests/standins
base_tag=localhost/nantral-mailu-test/debian:13
prefix=localhost/nantral-standin
hash_label=org.nantral.standin.context-hash
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=trixie
include=systemd,systemd-sysv,dbus,python3,ca-certificates,iproute2
force=${FORCE:-0}
export DOCKER_BUILDKIT=0 # the legacy builder: Debian's docker.io 20.10 has no buildx

log() { echo "build-images: $*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

if (($# == 0)); then set -- 2024.06 1.9; fi

# Release line of a version: decides the admin's port and schema, the front's
# Dovecot proxy and the webmail image name.
family_of() {
    case $1 in
        1.9 | 1.9.*) echo 1.9 ;;
        2.0 | 2.0.*) echo 2.0 ;;
        2024.06 | 2024.06.*) echo 2024.06 ;;
        *) return 1 ;;
    esac
}

# Mailu's image names for a release line (redis is added separately).
images_of() {
    case $1 in
        1.9) echo nginx unbound admin dovecot postfix rspamd fetchmail roundcube ;;
        *) echo nginx unbound admin dovecot postfix rspamd fetchmail webmail ;;
    esac
}

for version in "$@"; do
    family_of "$version" >/dev/null || die "unknown Mailu version '$version' (expected 1.9[.N], 2.0[.N] or 2024.06[.N])"
done

image_label() { # TAG -> the context hash it was built from, or nothing
    docker image inspect --format "{{ index .Config.Labels \"$hash_label\" }}" "$1" 2>/dev/null || true
}

image_id() {
    docker image inspect --format '{{.Id}}' "$1" 2>/dev/null || true
}

# After a tag moved to a new image, drop the old one if nothing else names it.
drop_if_dangling() {
    local old=$1 new
    new=$2
    if [[ -n $old && $old != "$new" ]] && [[ -z $(docker image inspect --format '{{join .RepoTags ","}}' "$old" 2>/dev/null) ]]; then
        docker image rm "$old" >/dev/null 2>&1 || true
    fi
}

# --- the engine -----------------------------------------------------------
if ! timeout 10 docker info >/dev/null 2>&1; then
    bash "$repo/scripts/docker-host.sh"
fi

# One build at a time (a smoke test and a Molecule run may start together).
mkdir -p "$build"
exec 9>"$build/.build-images.lock"
if ! flock -n 9; then
    log "waiting for another build-images.sh to finish"
    flock 9
fi

# --- 1. the Debian 13 systemd base ------------------------------------------
build_base() {
    local hash old rootfs workdir start
    # The recipe is the whole input: the image is a function of it (and of the
    # archive's state the day it is built; FORCE=1 refreshes it).
    hash=$(printf 'base v2\n%s\n' "$suite" "$include" "$mirror" "minbase" | sha256sum | cut -c1-32)
    if [[ $force != 1 && $(image_label "$base_tag") == "$hash" ]]; then
        log "cached: $base_tag"
        return
    fi
    command -v debootstrap >/dev/null || bash "$repo/scripts/docker-host.sh"
    [[ $(id -u) -eq 0 ]] || die "debootstrap needs root"
    start=$SECONDS
    workdir=$build/debootstrap
    rootfs=$workdir/rootfs
    remove_rootfs "$rootfs"
    mkdir -p "$rootfs"
    log "debootstrap $suite into $rootfs (log: $workdir/debootstrap.log)"
    if ! debootstrap --variant=minbase --include="$include" "$suite" "$rootfs" "$mirror" >"$workdir/debootstrap.log" 2>&1; then
        tail -n 20 "$workdir/debootstrap.log" >&2
        remove_rootfs "$rootfs"
        die "debootstrap failed (see $workdir/debootstrap.log)"
    fi
    # Keep the image lean: downloaded packages and package lists are not needed
    # (every Dockerfile runs apt-get update), and the host's name and resolver
    # that debootstrap copied in are replaced by Docker at run time anyway.
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/lib/apt/lists/*
    # Nor are manuals, documentation (copyright files stay) and translations,
    # about a quarter of the image; dpkg leaves them out of later installs too.
    cat >"$rootfs"/etc/dpkg/dpkg.cfg.d/01-nantral-mailu-test-nodoc <<'EOF'
# Test image (scripts/build-images.sh): no manuals, documentation or translations.
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
EOF
    find "$rootfs"/usr/share/doc -mindepth 1 ! -name copyright ! -type d -delete
    find "$rootfs"/usr/share/doc -mindepth 1 -type d -empty -delete
    rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/*
    find "$rootfs"/usr/share/locale -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
    rm -f "$rootfs"/etc/hostname "$rootfs"/etc/resolv.conf
    : >"$rootfs"/etc/machine-id # systemd generates one at first boot
    old=$(image_id "$base_tag")
    tar --numeric-owner -C "$rootfs" -c . |
        docker import -c 'CMD ["/sbin/init"]' -c "LABEL $hash_label=$hash" \
            -m "debootstrap --variant=minbase --include=$include $suite" - "$base_tag" >/dev/null
    remove_rootfs "$rootfs"
    drop_if_dangling "$old" "$(image_id "$base_tag")"
    log "built $base_tag in $((SECONDS - start))s"
}

# debootstrap mounts /proc and /sys inside the target and may leave them
# mounted when it fails: unmount before removing, and never cross into them.
remove_rootfs() {
    local dir=$1 mnt
    [[ -e $dir ]] || return 0
    while read -r mnt; do
        umount -l "$mnt" 2>/dev/null || true
    done < <(findmnt -rn -o TARGET | grep -F "$dir/" | sort -r)
    rm -rf --one-file-system "$dir"
}

# --- 2. the stand-ins -------------------------------------------------------
# The build context of one stand-in: its own directory, the shared helpers, and
# for the admin the project's DDL of that release line (tests/sql is the
# test suite's statement of Mailu's schema; it is copied, never edited).
assemble_context() {
    local image=$1 family=$2 ctx=$3
    rm -rf "$ctx"
    mkdir -p "$ctx"
    cp -R "$standins/$image/." "$ctx/"
    cp -R "$standins/common" "$ctx/common"
    if [[ $image == admin ]]; then
        [[ -f $repo/tests/sql/mailu-$family.sql ]] || die "tests/sql/mailu-$family.sql is missing"
        cp "$repo/tests/sql/mailu-$family.sql" "$ctx/schema.sql"
    fi
    find "$ctx" \( -name __pycache__ -o -name '*.pyc' \) -prune -exec rm -rf {} +
}

context_hash() { # CTX BUILD-ARGS... -> hash of the files, the base image and the arguments
    local ctx=$1
    shift
    {
        (cd "$ctx" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
        echo "base $(image_id "$base_tag")"
        printf 'arg %s\n' "$@"
    } | sha256sum | cut -c1-32
}

built=()
build_standin() { # IMAGE FAMILY TAG [BUILD-ARG...]
    local image=$1 family=$2 tag=$3 ctx hash old start
    shift 3
    ctx=$build/standins/$family/$image
    assemble_context "$image" "$family" "$ctx"
    hash=$(context_hash "$ctx" "$@")
    if [[ $force != 1 && $(image_label "$tag") == "$hash" ]]; then
        log "cached: $tag"
        return
    fi
    start=$SECONDS
    old=$(image_id "$tag")
    local args=() arg
    for arg in "$@"; do args+=(--build-arg "$arg"); done
    # A Dockerfile with one stage per release line (`AS release-<line>`, e.g. a
    # HEALTHCHECK that differs between releases): build that line's stage.
    if grep -qiE "^FROM .* AS release-$family\$" "$ctx/Dockerfile"; then
        args+=(--target "release-$family")
    fi
    log "building $tag"
    if ! docker build --quiet --force-rm "${args[@]}" \
        --label "$hash_label=$hash" \
        --label "org.nantral.standin.image=$image" \
        --label "org.opencontainers.image.description=Test stand-in for Mailu's $image image, not Mailu (tests/standins)" \
        -t "$tag" "$ctx" >"$ctx.log" 2>&1; then
        tail -n 30 "$ctx.log" >&2
        die "docker build of $tag failed (log: $ctx.log)"
    fi
    drop_if_dangling "$old" "$(image_id "$tag")"
    built+=("$tag")
    log "built $tag in $((SECONDS - start))s"
}

# --- 3. the archives --------------------------------------------------------
save_archive() { # VERSION TAG... -> build/images/mailu-standins-VERSION.tar
    local version=$1 tar ids start
    shift
    tar=$build/images/mailu-standins-$version.tar
    mkdir -p "$build/images"
    ids=$(for tag in "$@"; do echo "$tag $(image_id "$tag")"; done)
    if [[ $force != 1 && -f $tar && -f $tar.ids && $(cat "$tar.ids") == "$ids" ]]; then
        log "cached: $tar"
        return
    fi
    start=$SECONDS
    rm -f "$tar" "$tar.ids"
    docker save -o "$tar.part" "$@"
    chmod 0644 "$tar.part"
    mv "$tar.part" "$tar"
    echo "$ids" >"$tar.ids"
    log "saved $tar ($(du -m "$tar" | cut -f1) MiB) in $((SECONDS - start))s"
}

total_start=$SECONDS
build_base

build_standin redis redis "$prefix/redis:alpine"

archives=()
for version in "$@"; do
    family=$(family_of "$version")
    tags=()
    for image in $(images_of "$family"); do
        extra=()
        if [[ $image == admin ]]; then
            extra=("ADMIN_PORT=$([[ $family == 1.9 ]] && echo 80 || echo 8080)")
        fi
        build_standin "$image" "$family" "$prefix/$image:$version" \
            "MAILU_FAMILY=$family" "MAILU_VERSION=$version" "${extra[@]}"
        tags+=("$prefix/$image:$version")
    done
    tags+=("$prefix/redis:alpine")
    save_archive "$version" "${tags[@]}"
    archives+=("$build/images/mailu-standins-$version.tar")
done

log "done in $((SECONDS - total_start))s (${#built[@]} image(s) built)"
printf '%s\n' "${archives[@]}"
