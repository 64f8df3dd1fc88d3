#!/bin/sh
# Garbage collection and tag retention for the registry's data volume (private-registry, components/maintenance.py).
# Runs in the maintenance container, from the registry's own image (its `registry` binary and busybox shell).
#
#   maintenance.sh schedule   the container's command: a run whenever the clock matches the schedule
#   maintenance.sh run        one run now, for operators (`docker exec`): its output goes to the terminal and to
#                             the container's log; exit status 0, or 1 when it failed
#   maintenance.sh health     the healthcheck: unhealthy from a failed run until a run succeeds
#
# A run pauses writes first: while flag files named after the current 100-second span exist in the volume
# shared with nginx, nginx answers every write request 503 (retryable); pulls go on. The flags are renewed
# every 20 s and name only the current and the next span, so writes come back by themselves at most 200 s
# after a run that was killed. A single registry runs without a blob descriptor cache, so after a collection
# it answers from the disk, never from a stale cache (distribution #1803); replicas share a Redis cache, which
# the run empties after the collection (flush_cache).
set -eu

# shellcheck source=/dev/null
. /etc/registry-maintenance/settings.env
# REDIS_ADDRESS (empty: no Redis cache), REDIS_PASSWORD, REDIS_DB
REDIS_ADDRESS=
if [ -f /etc/registry-maintenance/cache.env ]; then
    # shellcheck source=/dev/null
    . /etc/registry-maintenance/cache.env
fi

DATA=/var/lib/registry
REPOSITORIES=$DATA/docker/registry/v2/repositories
FLAGS=/run/registry-maintenance
STATE=/tmp/registry-maintenance
RULES=/etc/registry-maintenance/retention.rules

log() {
    echo "$(date '+%Y-%m-%dT%H:%M:%S%z') maintenance: $*"
}

# ---- schedule

field_matches() { # value field: the field is `*` or a comma list of numbers
    [ "$2" = "*" ] && return 0
    case ",$2," in *",$1,"*) return 0 ;; esac
    return 1
}

# minute hour day month weekday (numbers without leading zeros): does the schedule run then?
schedule_matches() {
    set -f
    # shellcheck disable=SC2086
    set -- "$@" $SCHEDULE
    set +f
    field_matches "$1" "$6" && field_matches "$2" "$7" && field_matches "$4" "$9" || return 1
    if [ "$SCHEDULE_DAYS" = either ]; then
        # cron: with both day fields restricted, either one matching is enough
        field_matches "$3" "$8" || field_matches "$5" "${10}"
    else
        field_matches "$3" "$8" && field_matches "$5" "${10}"
    fi
}

number() { # strips the leading zero date prints (08 is not octal here)
    echo "${1#0}"
}

clear_leftovers() {
    rm -f "$FLAGS"/writes-paused-*
    rm -rf "$STATE/lock"
}

schedule() {
    mkdir -p "$STATE"
    clear_leftovers
    [ -f "$FLAGS/metrics.prom" ] || write_metrics 1 0 0 0 0
    trap 'log "stopping"; exit 0' TERM INT
    if [ "$SCHEDULE" = none ]; then
        log "no schedule: runs only on demand (docker exec <container> maintenance.sh run)"
    else
        log "scheduled at '$SCHEDULE_TEXT' (cron, this host's time: now $(date '+%H:%M %Z'))"
    fi
    last=""
    while :; do
        if [ "$SCHEDULE" != none ]; then
            # shellcheck disable=SC2046
            set -- $(date '+%M %H %d %m %w %Y%m%d%H%M')
            if [ "$6" != "$last" ] && schedule_matches "$(number "$1")" "$(number "$2")" "$(number "$3")" \
                "$(number "$4")" "$5"; then
                last=$6
                "$0" once || true
            fi
        fi
        # Until the next minute; in the background so that `docker stop` ends the container at once.
        sleep $((61 - $(number "$(date +%S)"))) &
        wait $! || true
    done
}

# ---- one run

pause_writes() {
    while :; do
        span=$(($(date +%s) / 100))
        touch "$FLAGS/writes-paused-$span" "$FLAGS/writes-paused-$((span + 1))"
        sleep 20
    done
}

# The last run's figures for Prometheus, in the volume nginx's metrics listener serves them from.
write_metrics() { # success ended_at duration freed_bytes deleted_blobs
    cat >"$FLAGS/metrics.prom.tmp" <<METRICS
# HELP registry_maintenance_last_run_success 1 when the last retention and garbage collection run succeeded.
# TYPE registry_maintenance_last_run_success gauge
registry_maintenance_last_run_success $1
# HELP registry_maintenance_last_run_timestamp_seconds When the last run ended (0: none yet).
# TYPE registry_maintenance_last_run_timestamp_seconds gauge
registry_maintenance_last_run_timestamp_seconds $2
# HELP registry_maintenance_last_run_duration_seconds How long the last run took, writes paused.
# TYPE registry_maintenance_last_run_duration_seconds gauge
registry_maintenance_last_run_duration_seconds $3
# HELP registry_maintenance_last_run_freed_bytes Bytes the last run freed on the data volume (du).
# TYPE registry_maintenance_last_run_freed_bytes gauge
registry_maintenance_last_run_freed_bytes $4
# HELP registry_maintenance_last_run_deleted_blobs Blobs the last garbage collection deleted.
# TYPE registry_maintenance_last_run_deleted_blobs gauge
registry_maintenance_last_run_deleted_blobs $5
METRICS
    mv "$FLAGS/metrics.prom.tmp" "$FLAGS/metrics.prom"
}

finish() {
    status=$?
    if [ -n "${heartbeat:-}" ]; then kill "$heartbeat" 2>/dev/null || true; fi
    rm -f "$FLAGS"/writes-paused-*
    rm -rf "$STATE/lock"
    ended=$(date +%s)
    success=0
    [ "$status" -eq 0 ] && success=1
    write_metrics "$success" "$ended" "$((ended - run_started))" "$freed_bytes" "$deleted"
    if [ "$status" -eq 0 ]; then
        echo ok >"$STATE/last-run"
        log "run finished; writes resumed"
    else
        echo failed >"$STATE/last-run"
        log "run FAILED (exit $status); writes resumed; the container reports unhealthy until a run succeeds"
    fi
    exit "$status"
}

usage_kib() { # 0 when the data is not on a volume here (s3 storage): nothing to measure
    if [ "$DATA_ON_VOLUME" = true ]; then du -sk "$DATA" | cut -f1; else echo 0; fi
}

run() {
    mkdir -p "$STATE"
    if ! mkdir "$STATE/lock" 2>/dev/null; then
        holder=$(cat "$STATE/lock/pid" 2>/dev/null || echo "")
        if [ -n "$holder" ] && kill -0 "$holder" 2>/dev/null; then
            log "another run is in progress (pid $holder); not starting a second one"
            return 1
        fi
        rm -rf "$STATE/lock"
        mkdir "$STATE/lock"
    fi
    echo $$ >"$STATE/lock/pid"
    heartbeat=""
    run_started=$(date +%s)
    freed_bytes=0
    deleted=0
    trap finish EXIT
    trap 'exit 130' INT TERM HUP

    log "run started: garbage collection$(flag_text "$GC_DRY_RUN" " (dry run)")$(flag_text "$GC_DELETE_UNTAGGED" \
        ", untagged manifests too"), retention$(flag_text "$RETENTION_DRY_RUN" " (dry run)")"
    pause_writes &
    heartbeat=$!
    log "writes paused (pushes and deletes answer 503); waiting ${WRITE_PAUSE_SECONDS}s for requests under way"
    sleep "$WRITE_PAUSE_SECONDS"

    before=$(usage_kib)
    retention
    collect
    flush_cache
    after=$(usage_kib)
    freed_bytes=$(((before - after) * 1024))
    if [ "$DATA_ON_VOLUME" = true ]; then
        log "data volume: $((before * 1024)) bytes before, $((after * 1024)) after: freed $freed_bytes bytes"
    else
        log "storage is not a volume here (s3): freed bytes are not measured"
    fi
}

# A RESP command (array of bulk strings): safe for any password, unlike the inline form.
resp() {
    printf '*%d\r\n' "$#"
    for word in "$@"; do
        printf '$%d\r\n%s\r\n' "$(printf %s "$word" | wc -c)" "$word"
    done
}

# The registry replicas' Redis cache still names the blobs the collection deleted: a HEAD would answer 200
# and a re-push would skip them (distribution #1803). Empty the registry's database, as Harbor does after
# its garbage collection; the cache fills again from the store.
flush_cache() {
    [ -n "${REDIS_ADDRESS:-}" ] || return 0
    if [ "$GC_DRY_RUN" = true ]; then
        log "cache: dry run, Redis left as it is"
        return 0
    fi
    host=${REDIS_ADDRESS%:*}
    port=${REDIS_ADDRESS##*:}
    {
        [ -z "$REDIS_PASSWORD" ] || resp AUTH "$REDIS_PASSWORD"
        resp SELECT "$REDIS_DB"
        resp FLUSHDB
        resp QUIT
    } | nc -w 10 "$host" "$port" >"$STATE/redis.out" 2>&1 || true
    # One +OK per command: AUTH (if sent), SELECT, FLUSHDB, QUIT.
    expected=3
    [ -z "$REDIS_PASSWORD" ] || expected=4
    if [ "$(grep -c '^+OK' "$STATE/redis.out" || true)" -ne "$expected" ]; then
        log "cache: emptying Redis database $REDIS_DB at $REDIS_ADDRESS FAILED: $(tr -d '\r' <"$STATE/redis.out" | head -c 200)"
        return 1
    fi
    log "cache: Redis database $REDIS_DB at $REDIS_ADDRESS emptied (it named deleted blobs)"
}

flag_text() { # value text: the text when the value is true
    if [ "$1" = true ]; then echo "$2"; fi
}

collect() {
    set -- garbage-collect
    [ "$GC_DRY_RUN" = true ] && set -- "$@" --dry-run
    [ "$GC_DELETE_UNTAGGED" = true ] && set -- "$@" --delete-untagged
    log "registry $* $REGISTRY_CONFIG"
    status=0
    registry "$@" "$REGISTRY_CONFIG" >"$STATE/gc.out" 2>&1 || status=$?
    # Marking lines name every blob still in use (thousands); keep what is deleted, the summary and errors.
    stamp=$(date '+%Y-%m-%dT%H:%M:%S%z')
    grep -v ': marking ' "$STATE/gc.out" | grep -v '^$' | sed "s/^/$stamp maintenance: gc: /" || true
    deleted=$(grep -c 'blob eligible for deletion' "$STATE/gc.out" || true)
    outcome="done"
    [ "$status" -eq 0 ] || outcome="FAILED (exit $status)"
    log "garbage collection $outcome: $deleted blobs eligible for deletion"
    return "$status"
}

# ---- retention

# The first rule whose repository globs match: prints "keepLast tagGlobs" (`-` when absent).
rule_for() {
    [ -f "$RULES" ] || return 1
    while read -r keep_last repositories keep_tags; do
        case "$keep_last" in "#"* | "") continue ;; esac # the header, a blank line
        set -f
        old_ifs=$IFS
        IFS=,
        for glob in $repositories; do
            # shellcheck disable=SC2254
            case "$1" in
                $glob)
                    IFS=$old_ifs
                    set +f
                    echo "$keep_last $keep_tags"
                    return 0
                    ;;
            esac
        done
        IFS=$old_ifs
        set +f
    done <"$RULES"
    return 1
}

matches_any() { # tag globs
    [ "$2" = - ] && return 1
    set -f
    old_ifs=$IFS
    IFS=,
    for glob in $2; do
        # shellcheck disable=SC2254
        case "$1" in $glob)
            IFS=$old_ifs
            set +f
            return 0
            ;;
        esac
    done
    IFS=$old_ifs
    set +f
    return 1
}

retention() {
    if ! grep -q '^[^#]' "$RULES" 2>/dev/null; then
        log "retention: no rules"
        return 0
    fi
    [ -d "$REPOSITORIES" ] || return 0
    find "$REPOSITORIES" -type d -name _manifests | sort >"$STATE/repositories"
    while read -r manifests; do
        repository=${manifests#"$REPOSITORIES"/}
        repository=${repository%/_manifests}
        if rule=$(rule_for "$repository"); then
            set -f # the rule's tag globs are for `case`, not names of files in the working directory (v* -> var)
            # shellcheck disable=SC2086
            retain "$repository" $rule
            set +f
        fi
    done <"$STATE/repositories"
}

# repository keepLast tagGlobs: keep the tags the rule keeps, delete the others.
retain() {
    repository=$1 keep_last=$2 keep_tags=$3
    tags_dir=$REPOSITORIES/$repository/_manifests/tags
    revisions_dir=$REPOSITORIES/$repository/_manifests/revisions/sha256
    : >"$STATE/tags"
    if [ -d "$tags_dir" ]; then
        find "$tags_dir" -mindepth 3 -maxdepth 3 -path '*/current/link' >"$STATE/links"
        while read -r link; do
            tag=${link#"$tags_dir"/}
            tag=${tag%/current/link}
            digest=$(cat "$link")
            case "$digest" in sha256:*) ;; *) continue ;; esac
            echo "$(stat -c %Y "$link") $tag $digest" >>"$STATE/tags"
        done <"$STATE/links"
    fi
    # Most recently pushed first; the tag name orders tags pushed in the same second.
    sort -k1,1nr -k2,2 "$STATE/tags" >"$STATE/tags.sorted"
    : >"$STATE/kept"
    : >"$STATE/dropped"
    position=0
    while read -r pushed tag digest; do
        position=$((position + 1))
        if matches_any "$tag" "$keep_tags"; then
            echo "$digest" >>"$STATE/kept"
        elif [ "$keep_last" != - ] && [ "$position" -le "$keep_last" ]; then
            echo "$digest" >>"$STATE/kept"
        else
            echo "$pushed $tag $digest" >>"$STATE/dropped"
        fi
    done <"$STATE/tags.sorted"
    kept_count=$(($(wc -l <"$STATE/tags.sorted") - $(wc -l <"$STATE/dropped")))
    log "retention: $repository: keeping $kept_count tags, deleting $(wc -l <"$STATE/dropped" | tr -d ' ')"
    while read -r pushed tag digest; do
        when=$(date -d "@$pushed" '+%Y-%m-%d %H:%M')
        hex=${digest#sha256:}
        if grep -qx "$digest" "$STATE/kept"; then
            what="tag $repository:$tag (its manifest $digest stays: a kept tag points to it)"
        else
            what="$repository:$tag ($digest, pushed $when)"
        fi
        if [ "$RETENTION_DRY_RUN" = true ]; then
            log "retention: would delete $what"
            continue
        fi
        # What the registry's own DELETE does: the tag's directory, and the manifest's revision link when no
        # kept tag points to it (its blobs then go in the garbage collection that follows).
        rm -rf "${tags_dir:?}/$tag"
        if ! grep -qx "$digest" "$STATE/kept"; then
            rm -rf "${revisions_dir:?}/$hex"
        fi
        log "retention: deleted $what"
    done <"$STATE/dropped"
}

health() {
    [ "$(cat "$STATE/last-run" 2>/dev/null || echo none)" != failed ]
}

case "${1:-}" in
    schedule) schedule ;;
    once) run ;;
    run)
        mkdir -p "$STATE"
        rm -f "$STATE/exit.$$"
        { "$0" once || echo $? >"$STATE/exit.$$"; } 2>&1 | tee -a /proc/1/fd/1
        status=$(cat "$STATE/exit.$$" 2>/dev/null || echo 0)
        rm -f "$STATE/exit.$$"
        exit "$status"
        ;;
    health) health ;;
    *)
        echo "usage: $0 schedule|run|once|health" >&2
        exit 2
        ;;
esac
