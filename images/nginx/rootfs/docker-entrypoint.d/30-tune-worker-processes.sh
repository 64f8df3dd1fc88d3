#!/bin/sh
# Stand-in for the official image's 30-tune-worker-processes.sh: with
# NGINX_ENTRYPOINT_WORKER_PROCESSES_AUTOTUNE set, replace `worker_processes ...;` in nginx.conf by the
# number of CPUs the container may use (the smallest of: online CPUs, the cgroup's cpuset, the cgroup's
# CPU quota rounded up), keeping the old line commented out and a copy in nginx.conf.bak.
set -eu

ME=$(basename "$0")
CONF=/etc/nginx/nginx.conf

[ -n "${NGINX_ENTRYPOINT_WORKER_PROCESSES_AUTOTUNE:-}" ] || exit 0

touch "$CONF" 2>/dev/null || { echo >&2 "$ME: error: can not modify $CONF (read-only file system?)"; exit 0; }

count_cpuset() { # "0-3,6" -> 5
    echo "$1" | tr ',' '\n' | awk -F- 'NF == 2 { n += $2 - $1 + 1; next } NF == 1 && $1 != "" { n++ } END { print n + 0 }'
}

ncpu=$(getconf _NPROCESSORS_ONLN)
consider() {
    if [ -n "$1" ] && [ "$1" -gt 0 ] 2>/dev/null && [ "$1" -lt "$ncpu" ]; then
        ncpu=$1
    fi
}

# cgroup v2 (the container's own cgroup is mounted at /sys/fs/cgroup) or v1.
if [ -f /sys/fs/cgroup/cpu.max ]; then
    read -r quota period </sys/fs/cgroup/cpu.max || true
    [ "$quota" = max ] || consider $(( (quota + period - 1) / period ))
fi
for f in /sys/fs/cgroup/cpuset.cpus.effective /sys/fs/cgroup/cpuset/cpuset.effective_cpus; do
    [ -f "$f" ] && consider "$(count_cpuset "$(cat "$f")")"
done
if [ -f /sys/fs/cgroup/cpu/cpu.cfs_quota_us ] && [ -f /sys/fs/cgroup/cpu/cpu.cfs_period_us ]; then
    quota=$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us)
    period=$(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)
    [ "$quota" = -1 ] || [ "$period" = 0 ] || consider $(( (quota + period - 1) / period ))
fi

sed -i.bak -r 's/^(worker_processes)(.*)$/# Commented out by '"$ME"' on '"$(date)"'\n#\1\2\n\1 '"$ncpu"';/' "$CONF"
