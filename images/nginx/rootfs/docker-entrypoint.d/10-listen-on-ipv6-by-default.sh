#!/bin/sh
# Stand-in for the official image's 10-listen-on-ipv6-by-default.sh: adds `listen [::]:80;` to
# /etc/nginx/conf.d/default.conf, but only when IPv6 exists, the file is writable, not yet edited and
# still exactly the packaged file. Never fails the start.
set -e

ME=$(basename "$0")
CONF=/etc/nginx/conf.d/default.conf
PACKAGED_MD5=/usr/share/nginx/default.conf.md5

log() {
    [ -n "${NGINX_ENTRYPOINT_QUIET_LOGS:-}" ] || echo "$@"
}

if [ ! -f /proc/net/if_inet6 ]; then
    log "$ME: info: ipv6 not available"
    exit 0
fi
if [ ! -f "$CONF" ]; then
    log "$ME: info: $CONF is not a file or does not exist"
    exit 0
fi
if ! touch "$CONF" 2>/dev/null; then
    log "$ME: info: can not modify $CONF (read-only file system?)"
    exit 0
fi
if grep -q 'listen  \[::]:80;' "$CONF"; then
    log "$ME: info: IPv6 listen already enabled"
    exit 0
fi

log "$ME: info: Getting the checksum of $CONF"
if ! md5sum -c "$PACKAGED_MD5" >/dev/null 2>&1; then
    log "$ME: info: $CONF differs from the packaged version"
    exit 0
fi

sed -i -E 's,listen       80;,listen       80;\n    listen  [::]:80;,' "$CONF"
log "$ME: info: Enabled listen on IPv6 in $CONF"
exit 0
