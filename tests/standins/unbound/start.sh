#!/bin/sh
# Write unbound.conf from Mailu's SUBNET/SUBNET6 (env_file) and run unbound in
# the foreground, logging to stderr.
set -e
subnet=${SUBNET:-192.168.203.0/24}
conf=/etc/unbound/unbound.conf
{
    echo 'server:'
    echo '  verbosity: 1'
    echo '  interface: 0.0.0.0'
    if [ -n "${SUBNET6:-}" ]; then
        echo '  interface: ::0'
        echo "  access-control: ${SUBNET6} allow"
    else
        echo '  do-ip6: no'
    fi
    echo '  port: 53'
    echo '  do-daemonize: no'
    echo '  use-syslog: no'
    echo '  logfile: ""'
    echo '  username: "unbound"'
    echo '  chroot: ""'
    echo '  directory: "/etc/unbound"'
    echo '  pidfile: "/run/unbound.pid"'
    echo '  access-control: 0.0.0.0/0 refuse'
    echo '  access-control: 127.0.0.0/8 allow'
    echo "  access-control: ${subnet} allow"
    echo '  hide-identity: yes'
    echo '  hide-version: yes'
    echo '  cache-min-ttl: 300'
    echo '  module-config: "validator iterator"'
    echo '  trust-anchor-file: "/usr/share/dns/root.key"'
    echo '  root-hints: "/usr/share/dns/root.hints"'
    echo 'remote-control:'
    echo '  control-enable: no'
} >"$conf"
unbound-checkconf "$conf"
echo "unbound[stand-in]: serving ${subnet}${SUBNET6:+ and $SUBNET6} on port 53"
exec unbound -d -c "$conf"
