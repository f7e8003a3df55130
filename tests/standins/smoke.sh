#!/usr/bin/env bash
# Self-check of the Mailu test stand-ins (tests/standins/README.md), as root:
#
#   tests/standins/smoke.sh [VERSION]        (default 2024.06; also 1.9)
#
# Builds the images if needed (scripts/build-images.sh, cached), loads the
# version's archive, starts a throwaway PostgreSQL (tests/pgserver.py) that the
# containers reach on the Docker network's gateway, runs the stand-ins on a
# user-defined bridge network like Mailu's compose file does (subnet
# 192.168.203.0/24, resolver at .254; SMOKE_SUBNET=a.b.c overrides the first
# three octets) with a self-signed certificate, and checks: every healthcheck
# turns healthy (the real images' checks: 30 s at least), the admin created the schema (alembic head), front serves the
# certificate on 443 and the TLS mail ports and proxies to the backends, and a
# replaced certificate is served after `nginx -s reload` (plus `doveadm reload`
# for 2024.06's mail ports). Everything is removed at the end.
#
# Plain `docker run`/`docker network` commands: Debian 12's docker.io has no
# Compose v2 plugin, and these machines have no other.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# Re-run under a throwaway PostgreSQL cluster, which sets PG* for us.
if [[ -z ${NANTRAL_SMOKE_PG:-} ]]; then
    export NANTRAL_SMOKE_PG=1
    exec python3 "$repo/tests/pgserver.py" run -- bash "${BASH_SOURCE[0]}" "$@"
fi

# SMOKE_TRACE=1: trace every command with a timestamp.
if [[ -n ${SMOKE_TRACE:-} ]]; then
    PS4='+ ${EPOCHREALTIME} '
    set -x
fi
version=${1:-2024.06}
case $version in
    1.9 | 1.9.*) family=1.9 head=3b7eee912b41 webmail_image=roundcube ;;
    2024.06 | 2024.06.*) family=2024.06 head=0ba45693748d webmail_image=webmail ;;
    *)
        echo "smoke: VERSION must be 1.9[.N] or 2024.06[.N]" >&2
        exit 2
        ;;
esac
net24=${SMOKE_SUBNET:-192.168.203}
subnet=$net24.0/24
gateway=$net24.1
resolver_ip=$net24.254
project=nantral-smoke-$$
network=${project}_default
prefix=localhost/nantral-standin
tmp=$(mktemp -d /tmp/nantral-smoke.XXXXXX)
services=(redis resolver front admin imap smtp antispam fetchmail webmail)

now_ms() { echo $((${EPOCHREALTIME/./} / 1000)); }
since() { # START_MS -> seconds since then, one decimal
    local ms=$(($(now_ms) - $1))
    printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100))
}
started=$(now_ms)
phase_start=$started
timings=()
log() { echo "smoke: $*" >&2; }
fail() {
    log "FAILED: $*"
    exit 1
}
phase() { # NAME: record the time since the previous phase
    timings+=("$(printf '%-42s %6ss' "$1" "$(since "$phase_start")")")
    phase_start=$(now_ms)
}

cleanup() {
    local rc=$? svc
    if ((rc != 0)); then
        for svc in "${services[@]}"; do
            if docker container inspect "$project-$svc" >/dev/null 2>&1; then
                log "--- last log lines of $svc"
                docker logs --tail 15 "$project-$svc" 2>&1 | sed 's/^/    /' >&2 || true
            fi
        done
    fi
    for svc in "${services[@]}"; do docker rm -f -v "$project-$svc" >/dev/null 2>&1 || true; done
    docker network rm "$network" >/dev/null 2>&1 || true
    rm -rf "$tmp"
    if ((rc == 0)); then log "PASSED ($version) in $(since "$started")s"; fi
}
trap cleanup EXIT

# --- images ------------------------------------------------------------------
archive=$(bash "$repo/scripts/build-images.sh" "$version" | tail -n 1)
phase "images (build-images.sh, cached)"
docker load -q -i "$archive" >/dev/null
phase "docker load $(basename "$archive")"

# --- network and PostgreSQL ----------------------------------------------------
docker network create --driver bridge --subnet "$subnet" --gateway "$gateway" "$network" >/dev/null ||
    fail "cannot create $network on $subnet (another network uses it? set SMOKE_SUBNET)"
# The cluster listens on 127.0.0.1 only. Containers reach the host on their
# network's gateway address, so make it listen there too (a restart: the
# address exists only now that the network does) and let the subnet in.
datadir=$(psql -Atc 'SHOW data_directory')
hba=$(psql -Atc 'SHOW hba_file')
psql -q -c "ALTER SYSTEM SET listen_addresses = '127.0.0.1,$gateway'"
echo "host all all $subnet scram-sha-256" >>"$hba"
(cd / && runuser -u postgres -- "$PG_BINDIR/pg_ctl" -D "$datadir" -l "$datadir/../postgres.log" -w -t 30 restart >/dev/null)
db_pw=smoke-$RANDOM-$RANDOM
psql -q -c "CREATE ROLE mailu LOGIN PASSWORD '$db_pw'" -c "CREATE DATABASE mailu OWNER mailu"
phase "network + PostgreSQL on $gateway"

# --- the stand-ins -------------------------------------------------------------
mkdir -p "$tmp"/{certs,data/fetchmail,dkim,mail,mailqueue,filter,redis,webmail,overrides/{nginx,dovecot,postfix,rspamd,roundcube}}
make_cert() { # CN: a self-signed certificate in $tmp/certs (written in place, like a deploy hook's cp)
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=$1" \
        -keyout "$tmp/new-key.pem" -out "$tmp/new-cert.pem" 2>/dev/null
    cat "$tmp/new-key.pem" >"$tmp/certs/key.pem"
    cat "$tmp/new-cert.pem" >"$tmp/certs/cert.pem"
}
make_cert mail-one.smoke.test
cat >"$tmp/mailu.env" <<EOF
SECRET_KEY=SMOKETESTSECRET1
SUBNET=$subnet
DOMAIN=smoke.test
HOSTNAMES=mail.smoke.test
POSTMASTER=admin
TLS_FLAVOR=cert
ADMIN=true
WEBMAIL=roundcube
WEBROOT_REDIRECT=/webmail
FETCHMAIL_DELAY=600
SQLALCHEMY_DATABASE_URI=postgresql://mailu:$db_pw@$gateway:$PGPORT/mailu
STANDIN_CERTWATCHER=false
EOF

run() { # SERVICE IMAGE [docker run options...]
    local svc=$1 image=$2
    shift 2
    docker run -d --name "$project-$svc" --network "$network" --network-alias "$svc" \
        --dns "$resolver_ip" --restart no "$@" "$prefix/$image" >/dev/null
}
run resolver "unbound:$version" --env-file "$tmp/mailu.env" --ip "$resolver_ip"
run redis redis:alpine -v "$tmp/redis:/data"
run front "nginx:$version" --env-file "$tmp/mailu.env" -v "$tmp/certs:/certs" -v "$tmp/overrides/nginx:/overrides:ro"
run admin "admin:$version" --env-file "$tmp/mailu.env" -v "$tmp/data:/data" -v "$tmp/dkim:/dkim"
run imap "dovecot:$version" --env-file "$tmp/mailu.env" -v "$tmp/mail:/mail" -v "$tmp/overrides/dovecot:/overrides:ro"
run smtp "postfix:$version" --env-file "$tmp/mailu.env" -v "$tmp/mailqueue:/queue" -v "$tmp/overrides/postfix:/overrides:ro"
if [[ $family == 1.9 ]]; then rspamd_overrides=/etc/rspamd/override.d; else rspamd_overrides=/overrides; fi
run antispam "rspamd:$version" --env-file "$tmp/mailu.env" --hostname antispam -v "$tmp/filter:/var/lib/rspamd" \
    -v "$tmp/overrides/rspamd:$rspamd_overrides:ro"
run fetchmail "fetchmail:$version" --env-file "$tmp/mailu.env" -v "$tmp/data/fetchmail:/data"
run webmail "$webmail_image:$version" --env-file "$tmp/mailu.env" -v "$tmp/webmail:/data" \
    -v "$tmp/overrides/roundcube:/overrides:ro"
phase "docker run (9 containers)"

# --- every healthcheck healthy -------------------------------------------------
# The stand-ins carry the real images' HEALTHCHECKs: Docker's defaults (first
# probe 30 s after the start, every 30 s), so this takes at least 30 s. redis
# (both releases) and 1.9's fetchmail have no healthcheck at all, as the real
# images: for them "running" is all there is.
no_health=(redis)
if [[ $family == 1.9 ]]; then no_health+=(fetchmail); fi
deadline=$((SECONDS + 150))
while :; do
    waiting=()
    for svc in "${services[@]}"; do
        state=$(docker inspect -f '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$project-$svc")
        if [[ " ${no_health[*]} " == *" $svc "* ]]; then
            [[ $state == "running none" ]] || fail "$svc is '$state', expected running without a healthcheck"
            continue
        fi
        case $state in
            "running healthy") ;;
            "running starting") waiting+=("$svc") ;;
            *) fail "$svc is '$state'" ;;
        esac
    done
    ((${#waiting[@]} == 0)) && break
    ((SECONDS < deadline)) || fail "not healthy after 150s: ${waiting[*]}"
    sleep 1
done
phase "healthchecks healthy (Docker's 30 s interval)"

# --- the admin made the schema ---------------------------------------------------
got=$(psql -d mailu -Atc 'SELECT version_num FROM alembic_version')
[[ $got == "$head" ]] || fail "alembic_version is '$got', expected $head"
tables=$(psql -d mailu -Atc "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner = 'mailu'")
[[ $tables == 10 ]] || fail "expected 10 tables owned by mailu, found $tables"
log "admin created the $family schema: alembic head $got, $tables tables"
phase "schema check"

# The admin's database settings, resolved like Mailu's admin does.
uri() { docker run --rm "$@" "$prefix/admin:$version" python3 /standin/admin.py print-db-uri; }
[[ $(uri) == sqlite:////data/main.db ]] || fail "default database URI"
[[ $(uri -e SQLALCHEMY_DATABASE_URI=postgresql://a:b@h/d) == postgresql://a:b@h/d ]] || fail "SQLALCHEMY_DATABASE_URI"
echo ' s3cret ' >"$tmp/db_pw"
got=$(uri -e SQLALCHEMY_DATABASE_URI=postgresql://ignored/x -e DB_FLAVOR=postgresql -e DB_USER=u -e DB_HOST=db:5433 \
    -e DB_NAME=n -e DB_PW_FILE=/run/db_pw -v "$tmp/db_pw:/run/db_pw:ro")
[[ $got == postgresql://u:s3cret@db:5433/n ]] || fail "DB_FLAVOR + DB_*_FILE gave '$got'"
phase "admin settings (3 x docker run)"

# --- front: TLS, proxying, reload ---------------------------------------------------
front_ip=$(docker inspect -f "{{(index .NetworkSettings.Networks \"$network\").IPAddress}}" "$project-front")
served_cn() { # PORT -> the CN of the certificate front serves there
    timeout 10 openssl s_client -connect "$front_ip:$1" -servername mail.smoke.test </dev/null 2>/dev/null |
        openssl x509 -noout -subject -nameopt multiline 2>/dev/null | sed -n 's/^ *commonName *= *//p'
}
greeting() { # PORT [tls] -> the first line the backend sends through front
    python3 - "$front_ip" "$1" "${2:-}" <<'EOF'
import socket, ssl, sys
sock = socket.create_connection((sys.argv[1], int(sys.argv[2])), 10)
if sys.argv[3] == 'tls':
    sock = ssl._create_unverified_context().wrap_socket(sock)
print(sock.recv(200).decode().splitlines()[0])
EOF
}
http_get() { # URL -> "STATUS LOCATION"
    python3 - "$1" <<'EOF'
import http.client, ssl, sys, urllib.parse
url = urllib.parse.urlsplit(sys.argv[1])
cls = http.client.HTTPSConnection if url.scheme == 'https' else http.client.HTTPConnection
kw = {'context': ssl._create_unverified_context()} if url.scheme == 'https' else {}
conn = cls(url.hostname, url.port, timeout=10, **kw)
conn.request('GET', url.path)
resp = conn.getresponse()
print(resp.status, resp.getheader('Location') or '')
EOF
}
tls_ports=(443 465 993 995)
for port in "${tls_ports[@]}"; do
    got=$(served_cn "$port")
    [[ $got == mail-one.smoke.test ]] || fail "port $port serves CN '$got', expected mail-one.smoke.test"
done
log "front serves mail-one.smoke.test on ${tls_ports[*]}"
got=$(http_get "http://$front_ip/")
[[ $got == "301 https://$front_ip/" ]] || fail "port 80 answered '$got', expected a redirect to https"
got=$(http_get "https://$front_ip/admin/")
[[ $got == "200 "* ]] || fail "https://front/admin/ answered '$got' (proxy to the admin)"
# Port 25 is front's nginx mail module, as in Mailu: it greets by itself and
# reaches smtp only after its auth_http lookup (the front stand-in's own tests).
got=$(greeting 25)
[[ $got == "220 "*ESMTP* ]] || fail "port 25 greets with '$got', expected front's ESMTP greeting"
[[ $(greeting 993 tls) == "* OK "* ]] || fail "port 993 does not reach imap"
[[ $(greeting 995 tls) == "+OK "* ]] || fail "port 995 does not reach imap (pop3)"
log "front: 80 redirects, /admin reaches the admin, 25 greets, 993/995 reach imap"
phase "front TLS and proxy checks"

make_cert mail-two.smoke.test
sleep 2 # no watcher here (STANDIN_CERTWATCHER=false): nothing may change by itself
[[ $(served_cn 443) == mail-one.smoke.test ]] || fail "443 changed certificate without a reload"
docker exec "$project-front" nginx -s reload 2>/dev/null
sleep 1
[[ $(served_cn 443) == mail-two.smoke.test ]] || fail "443 does not serve the new certificate after nginx -s reload"
if [[ $family == 2024.06 ]]; then
    # Mailu 2024.06: the mail TLS ports belong to the Dovecot proxy.
    [[ $(served_cn 993) == mail-one.smoke.test ]] || fail "993 changed with nginx -s reload alone"
    docker exec "$project-front" doveadm reload 2>/dev/null
    sleep 1
fi
for port in "${tls_ports[@]}"; do
    got=$(served_cn "$port")
    [[ $got == mail-two.smoke.test ]] || fail "port $port serves CN '$got' after the reload(s), expected mail-two.smoke.test"
done
# The whole log first: `docker logs | grep -q` fails under pipefail when grep
# stops reading early (SIGPIPE), and front's log is long.
front_log=$(docker logs "$project-front" 2>&1)
[[ $front_log == *'nginx -s reload'* ]] || fail "front did not log the nginx reload"
if [[ $family == 2024.06 ]]; then
    [[ $front_log == *'doveadm reload'* ]] || fail "front did not log the doveadm reload"
fi
log "after the reload(s) front serves mail-two.smoke.test on ${tls_ports[*]}"
phase "certificate replace + reload"

log "timings:"
printf '    %s\n' "${timings[@]}" >&2
