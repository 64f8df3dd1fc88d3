#!/bin/sh
# Starts a pull-through mirror's registry (private-registry, components/mirror.py), in the registry's image.
#
# The registry keeps its expiry schedule in scheduler-state.json at the root of its storage and refuses to start
# when that file is not valid JSON (distribution #4478, #2374): a crash or a full disk while it is rewritten
# would keep the mirror down for good. The file is a flat JSON object whose strings (repository@digest keys,
# RFC 3339 times) hold no braces or quotes, so counting them tells a whole file from a truncated or zeroed one.
# A damaged file is moved aside, logged, and the mirror starts with an empty schedule: the content stays cached
# and is scheduled again when it is next fetched from the upstream.
set -eu

CONFIG=$1
STATE=/var/lib/registry/scheduler-state.json

count() { # character file
    tr -cd "$1" <"$2" | wc -c | tr -d ' '
}

state_is_whole() {
    [ -s "$STATE" ] || return 1
    # No NUL bytes (a file zero-filled by a crash)
    [ "$(tr -d '\000' <"$STATE" | wc -c | tr -d ' ')" = "$(wc -c <"$STATE" | tr -d ' ')" ] || return 1
    [ "$(tr -d ' \n\r\t' <"$STATE" | head -c 1)" = "{" ] || return 1
    [ "$(tr -d ' \n\r\t' <"$STATE" | tail -c 1)" = "}" ] || return 1
    [ "$(count '{' "$STATE")" = "$(count '}' "$STATE")" ] || return 1
    [ $(($(count '"' "$STATE") % 2)) -eq 0 ]
}

if [ -e "$STATE" ] && ! state_is_whole; then
    aside="$STATE.damaged-$(date +%Y%m%dT%H%M%S)"
    mv "$STATE" "$aside"
    echo "mirror: $STATE was damaged (truncated, zeroed or not JSON): moved to $aside; starting with an empty expiry schedule" >&2
fi

exec registry serve "$CONFIG"
