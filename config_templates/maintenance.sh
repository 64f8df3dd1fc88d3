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
    # Its own output goes nowhere: the `sleep 20` it leaves when killed would hold `run`'s pipe to tee (and the
    # operator's terminal) open for up to 20 s after the run.
    pause_writes </dev/null >/dev/null 2>&1 &
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
    # An IPv6 address comes bracketed ([fd00::7]:6379), as the registry takes it; nc takes it bare.
    host=${host#\[}
    host=${host%\]}
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
    # A registry nothing was ever pushed to has no repositories directory, and garbage-collect fails on it
    # ("Path not found"): there is nothing to collect, and the run must not report a failure for it.
    if [ "$DATA_ON_VOLUME" = true ] && [ ! -d "$REPOSITORIES" ]; then
        log "garbage collection: nothing pushed yet ($REPOSITORIES does not exist), nothing to collect"
        return 0
    fi
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

# The largest keepLast (components/config/gc.py KEEP_LAST_MAX): beyond 2^63 busybox cannot compare at all.
KEEP_LAST_MAX=1000000

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

# Every rule's keepLast before any tag is touched: `-` or a whole number from 0 to KEEP_LAST_MAX. A number the
# shell cannot compare would make every "is it among the last N" test fail, and every tag would go.
check_rules() {
    while read -r keep_last repositories keep_tags; do
        case "$keep_last" in "#"* | "") continue ;; esac
        if [ -z "$repositories" ] || [ -z "$keep_tags" ]; then
            log "retention: FAILED: an incomplete rule line ('$keep_last $repositories'): no tag is deleted"
            return 1
        fi
        [ "$keep_last" != - ] || continue
        valid=true
        case "$keep_last" in *[!0-9]*) valid=false ;; esac
        # Seven digits at most before comparing: any such number compares.
        if [ "$valid" = true ] && { [ "${#keep_last}" -gt 7 ] || ! at_most "$keep_last" "$KEEP_LAST_MAX"; }; then
            valid=false
        fi
        if [ "$valid" = false ]; then
            log "retention: FAILED: a rule has keepLast '$keep_last', not a whole number from 0 to $KEEP_LAST_MAX:" \
                "no tag is deleted"
            return 1
        fi
    done <"$RULES"
}

# first <= second, for whole numbers. A comparison the shell cannot make (not a number, beyond its range) stops the
# run then and there: it must never read as "no" and let a tag go.
at_most() {
    compared=0
    [ "$1" -le "$2" ] 2>/dev/null || compared=$?
    case "$compared" in
        0) return 0 ;;
        1) return 1 ;;
    esac
    log "retention: FAILED: '$1' and '$2' cannot be compared as numbers: the run stops, no more tags are deleted"
    exit 1
}

is_hex64() {
    [ "${#1}" -eq 64 ] || return 1
    case "$1" in *[!0-9a-f]*) return 1 ;; esac
}

# A tag of cosign's (sha256-<hex>.sig, .att, .sbom) or the OCI 1.1 referrers tag fallback (sha256-<hex>): it
# belongs to the manifest sha256:<hex>, whose hex goes to `named`.
tag_subject() {
    case "$1" in sha256-*) ;; *) return 1 ;; esac
    named=${1#sha256-}
    named=${named%%.*}
    case "${1#sha256-"$named"}" in "" | .sig | .att | .sbom) ;; *) return 1 ;; esac
    is_hex64 "$named"
}

# The digests manifests name, from their JSON without jq: for each blob .../<hex>/data it writes $dir/facts/<hex>,
# the hex of every sha256:<64 hex> anywhere in its strings but its subject, one a line (config, layers, an index's
# manifests, annotations: naming more keeps more, never less); and when it has a subject (OCI 1.1: the top-level
# subject.digest of a signature, attestation, SBOM...) $dir/subject_of/<hex> with that hex, and <hex> added to
# $dir/referrers/<subject hex>. A JSON string holds no raw newline, so a line splits at its quotes into strings (an
# odd run of backslashes before a quote escapes it) and the structure between them.
# shellcheck disable=SC2016
MANIFEST_DIGESTS='
function odd_backslashes(s,   k, n) {
    n = length(s)
    k = 0
    while (k < n && substr(s, n - k, 1) == "\\") k++
    return k % 2
}
function unescape(s,   out, i, j, n, c, d, code) {
    out = ""
    n = length(s)
    for (i = 1; i <= n; i++) {
        c = substr(s, i, 1)
        if (c != "\\") { out = out c; continue }
        c = substr(s, ++i, 1)
        if (c == "u") {
            code = 0
            for (j = 1; j <= 4; j++) {
                d = index("0123456789abcdef", tolower(substr(s, i + j, 1)))
                if (d == 0) { code = -1; break }
                code = code * 16 + d - 1
            }
            i += 4
            out = out ((code > 32 && code < 127) ? sprintf("%c", code) : "?")
        } else if (c == "\"" || c == "\\" || c == "/") out = out c
        else out = out "?"
    }
    return out
}
function structure(t,   j, m, c) {
    m = length(t)
    for (j = 1; j <= m; j++) {
        c = substr(t, j, 1)
        if (c == "{") { depth++; kind[depth] = "o"; want_key[depth] = 1; key[depth] = "" }
        else if (c == "[") { depth++; kind[depth] = "a"; want_key[depth] = 0; key[depth] = "" }
        else if (c == "}" || c == "]") { if (depth > 0) depth-- }
        else if (c == "," && kind[depth] == "o") { want_key[depth] = 1; key[depth] = "" }
    }
}
function token(s,   h) {
    if (index(s, "\\")) s = unescape(s)
    if (depth > 0 && kind[depth] == "o" && want_key[depth]) {
        key[depth] = s
        want_key[depth] = 0
    } else if (depth == 2 && key[1] == "subject" && key[2] == "digest" && kind[2] == "o") {
        if (s ~ /^sha256:[0-9a-f]+$/ && length(s) == 71) { subject = substr(s, 8); return }
    }
    # Every sha256: followed by 64 hex digits (the next search starts right after the "sha256:" found).
    while (match(s, /sha256:[0-9a-f]/)) {
        h = substr(s, RSTART + 7, 64)
        s = substr(s, RSTART + 7)
        if (length(h) == 64 && h !~ /[^0-9a-f]/ && !(h in named)) { named[h] = 1; print h > out }
    }
}
function finish(   file) {
    if (out == "") return
    close(out)
    out = ""
    if (subject == "") return
    file = dir "/subject_of/" hex
    print subject > file
    close(file)
    file = dir "/referrers/" subject
    print hex >> file
    close(file)
}
FNR == 1 {
    finish()
    parts = split(FILENAME, path, "/")
    hex = path[parts - 1]
    out = dir "/facts/" hex
    printf "" > out
    depth = 0
    subject = ""
    split("", named)
}
{
    n = split($0, part, "\"")
    structure(part[1])
    i = 1
    while (i < n) {
        s = part[++i]
        while (odd_backslashes(s) && i < n) s = s "\"" part[++i]
        token(s)
        if (i < n) structure(part[++i])
    }
}
END { finish() }
'

retention() {
    if ! grep -q '^[^#]' "$RULES" 2>/dev/null; then
        log "retention: no rules"
        return 0
    fi
    if ! check_rules; then
        return 1
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

# hex: the manifest stays (a kept tag, or something kept, needs it); queued for `close_kept`.
keep() {
    if [ ! -e "$work/kept/$1" ]; then
        : >"$work/kept/$1"
        echo "$1" >>"$work/queue"
    fi
}

# Whatever a kept manifest needs stays too, at any depth: every revision of the repository it names (an index's
# platform manifests and attestations, an index within an index), and every revision whose subject it is (its
# signatures, attestations, SBOMs). A manifest is followed once, so rings of references end.
close_kept() {
    while [ -s "$work/queue" ]; do
        mv "$work/queue" "$work/round"
        while read -r kept_hex; do
            if [ -f "$work/referrers/$kept_hex" ]; then
                while read -r referrer; do keep "$referrer"; done <"$work/referrers/$kept_hex"
            fi
            if [ -f "$work/facts/$kept_hex" ]; then
                while read -r named_hex; do
                    if [ -f "$revisions_dir/$named_hex/link" ]; then keep "$named_hex"; fi
                done <"$work/facts/$kept_hex"
            fi
        done <"$work/round"
    done
}

# Every revision of the repository and the facts of its manifest (MANIFEST_DIGESTS). Fails, naming it in
# `unreadable`, when a manifest's blob is missing or cannot be read: without it nothing tells what it needs.
read_revisions() {
    : >"$work/revisions"
    : >"$work/blobs"
    [ -d "$revisions_dir" ] || return 0
    find "$revisions_dir" -mindepth 2 -maxdepth 2 -name link >"$work/revision-links"
    while read -r link; do
        hex=${link%/link}
        hex=${hex##*/}
        is_hex64 "$hex" || continue
        blob=$DATA/docker/registry/v2/blobs/sha256/${hex%"${hex#??}"}/$hex/data
        if [ ! -f "$blob" ]; then
            unreadable="manifest sha256:$hex has no blob ($blob)"
            return 1
        fi
        echo "$hex" >>"$work/revisions"
        echo "$blob" >>"$work/blobs"
        : >"$work/facts/$hex"
    done <"$work/revision-links"
    [ -s "$work/blobs" ] || return 0
    if ! xargs awk -v dir="$work" "$MANIFEST_DIGESTS" <"$work/blobs" 2>"$work/awk.err"; then
        unreadable="its manifest blobs cannot be read ($(head -c 300 "$work/awk.err"))"
        return 1
    fi
}

# Marks in $work/candidates the manifests that may go: those of dropped tags, and those of the accessories in
# $work/pending (not kept yet).
candidates() {
    rm -rf "$work/candidates"
    mkdir "$work/candidates"
    while read -r pushed tag hex subject; do : >"$work/candidates/$hex"; done <"$work/dropped"
    while read -r pushed tag hex subject; do : >"$work/candidates/$hex"; done <"$work/pending"
}

# The accessories ($work/accessories: signatures, attestations, SBOMs, referrers) follow the manifest they belong
# to: one stays when its subject is kept or stays anyway (untagged, or no manifest of this repository at all), and
# goes when its subject goes (the manifest of a dropped tag, or of an accessory that goes, at any depth). Leaves
# the ones that go in $work/pending.
decide_accessories() {
    cp "$work/accessories" "$work/pending"
    while :; do
        while :; do
            candidates
            progress=false
            : >"$work/pending.next"
            while read -r pushed tag hex subject; do
                if [ -e "$work/kept/$subject" ] || [ ! -e "$work/candidates/$subject" ]; then
                    keep "$hex"
                    progress=true
                else
                    echo "$pushed $tag $hex $subject" >>"$work/pending.next"
                fi
            done <"$work/pending"
            mv "$work/pending.next" "$work/pending"
            close_kept
            [ "$progress" = true ] || break
        done
        rm -rf "$work/going"
        mkdir "$work/going"
        while read -r pushed tag hex subject; do
            if [ ! -e "$work/kept/$hex" ]; then : >"$work/going/$hex"; fi
        done <"$work/dropped"
        : >"$work/goes"
        while :; do
            progress=false
            : >"$work/pending.next"
            while read -r pushed tag hex subject; do
                if [ -e "$work/going/$subject" ]; then
                    echo "$pushed $tag $hex $subject" >>"$work/goes"
                    if [ ! -e "$work/kept/$hex" ]; then : >"$work/going/$hex"; fi
                    progress=true
                else
                    echo "$pushed $tag $hex $subject" >>"$work/pending.next"
                fi
            done <"$work/pending"
            mv "$work/pending.next" "$work/pending"
            [ "$progress" = true ] || break
        done
        if [ ! -s "$work/pending" ]; then
            mv "$work/goes" "$work/pending"
            return 0
        fi
        # Left: accessories of one another in a ring, none of them a dropped image's. Nothing shows they are
        # garbage: they stay, and what they name with them; then the others are decided again.
        while read -r pushed tag hex subject; do keep "$hex"; done <"$work/pending"
        close_kept
        mv "$work/goes" "$work/pending"
    done
}

# repository keepLast tagGlobs: keep the tags the rule keeps and whatever they need, delete the others.
retain() {
    repository=$1 keep_last=$2 keep_tags=$3
    tags_dir=$REPOSITORIES/$repository/_manifests/tags
    revisions_dir=$REPOSITORIES/$repository/_manifests/revisions/sha256
    work=$STATE/retain
    rm -rf "$work"
    mkdir -p "$work/kept" "$work/facts" "$work/subject_of" "$work/referrers" "$work/tagged"
    : >"$work/queue"
    unreadable=""
    if ! read_revisions; then
        log "retention: $repository: WARNING: $unreadable; not knowing what it needs, retention deletes nothing in" \
            "this repository (the run goes on)"
        return 0
    fi
    : >"$work/tags"
    : >"$work/links.timed"
    if [ -d "$tags_dir" ]; then
        find "$tags_dir" -mindepth 3 -maxdepth 3 -path '*/current/link' >"$work/links"
        # One stat for all (names have no blanks: the registry allows none in repositories or tags).
        if [ -s "$work/links" ]; then xargs stat -c '%Y %n' <"$work/links" >"$work/links.timed"; fi
    fi
    while read -r pushed link; do
        tag=${link#"$tags_dir"/}
        tag=${tag%/current/link}
        digest=""
        read -r digest <"$link" || true # a link holds the digest without a newline
        case "$digest" in sha256:*) ;; *) continue ;; esac
        is_hex64 "${digest#sha256:}" || continue
        echo "$pushed $tag ${digest#sha256:}" >>"$work/tags"
    done <"$work/links.timed"
    # Most recently pushed first; the tag name orders tags pushed in the same second.
    sort -k1,1nr -k2,2 "$work/tags" >"$work/tags.sorted"

    # An accessory's tag (cosign's, the referrers fallback, or any tag of a manifest with a subject) belongs to
    # its subject; every other tag is an image's own, for the rule to decide.
    : >"$work/normal"
    : >"$work/accessories"
    while read -r pushed tag hex; do
        : >"$work/tagged/$hex"
        subject=""
        if tag_subject "$tag"; then
            subject=$named
        elif [ -f "$work/subject_of/$hex" ]; then
            read -r subject <"$work/subject_of/$hex"
        fi
        if [ -n "$subject" ]; then
            echo "$pushed $tag $hex $subject" >>"$work/accessories"
        else
            echo "$pushed $tag $hex" >>"$work/normal"
        fi
    done <"$work/tags.sorted"
    # Untagged manifests: a referrer follows its subject; any other stays (retention deletes no untagged
    # manifest), and so does what it needs.
    while read -r hex; do
        if [ -e "$work/tagged/$hex" ]; then continue; fi
        if [ -f "$work/subject_of/$hex" ]; then
            read -r subject <"$work/subject_of/$hex"
            echo "- - $hex $subject" >>"$work/accessories"
        else
            keep "$hex"
        fi
    done <"$work/revisions"

    : >"$work/dropped"
    position=0
    while read -r pushed tag hex; do
        position=$((position + 1))
        if matches_any "$tag" "$keep_tags"; then
            keep "$hex"
        elif [ "$keep_last" != - ] && at_most "$position" "$keep_last"; then
            keep "$hex"
        else
            echo "$pushed $tag $hex -" >>"$work/dropped"
        fi
    done <"$work/normal"
    close_kept
    decide_accessories
    cat "$work/pending" >>"$work/dropped"

    dropped_tags=0
    dropped_untagged=0
    while read -r pushed tag hex subject; do
        if [ "$tag" != - ]; then
            dropped_tags=$((dropped_tags + 1))
        elif [ ! -e "$work/kept/$hex" ]; then
            dropped_untagged=$((dropped_untagged + 1))
        fi
    done <"$work/dropped"
    kept_count=$(($(wc -l <"$work/tags.sorted") - dropped_tags))
    untagged_text=""
    [ "$dropped_untagged" -eq 0 ] || untagged_text=", and $dropped_untagged untagged manifests of images that go"
    log "retention: $repository: keeping $kept_count tags, deleting $dropped_tags$untagged_text"
    # Each line: what goes (with its push time as the log shows it), and the paths that go with it. What the
    # registry's own DELETE does: the tag's directory, and the manifest's revision link when nothing kept needs
    # it (its blobs then go in the garbage collection that follows).
    [ -s "$work/dropped" ] || return 0
    awk '{ print $0, ($1 == "-" ? "-" : strftime("%Y-%m-%d_%H:%M", $1)) }' "$work/dropped" >"$work/dropped.dated"
    : >"$work/deleted"
    : >"$work/paths"
    while read -r pushed tag hex subject when; do
        digest=sha256:$hex
        belongs=""
        [ "$subject" = - ] || belongs="; it belongs to sha256:$subject, which goes"
        if [ -e "$work/kept/$hex" ]; then
            # An untagged manifest something kept needs: nothing to delete.
            [ "$tag" != - ] || continue
            echo "tag $repository:$tag (its manifest $digest stays: kept tags need it$belongs)" >>"$work/deleted"
        elif [ "$tag" = - ]; then
            echo "untagged $repository@$digest (${belongs#; })" >>"$work/deleted"
        else
            echo "$repository:$tag ($digest, pushed ${when%_*} ${when#*_}$belongs)" >>"$work/deleted"
        fi
        if [ "$tag" != - ]; then echo "$tags_dir/$tag" >>"$work/paths"; fi
        if [ ! -e "$work/kept/$hex" ]; then echo "$revisions_dir/$hex" >>"$work/paths"; fi
    done <"$work/dropped.dated"
    stamp=$(date '+%Y-%m-%dT%H:%M:%S%z')
    if [ "$RETENTION_DRY_RUN" = true ]; then
        sed "s/^/$stamp maintenance: retention: would delete /" "$work/deleted"
        return 0
    fi
    if [ -s "$work/paths" ]; then xargs rm -rf <"$work/paths"; fi
    sed "s/^/$stamp maintenance: retention: deleted /" "$work/deleted"
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
