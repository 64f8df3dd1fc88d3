#!/usr/bin/env bash
# Make a Docker engine available on this machine: install Debian's docker.io if dockerd is missing,
# start dockerd in the background if it does not answer, wait (bounded) until `docker info` works.
# Safe to run any number of times.
set -euo pipefail

LOG=${DOCKERD_LOG:-/var/log/dockerd.log}
WAIT_SECONDS=${DOCKERD_WAIT_SECONDS:-60}

if ! command -v dockerd >/dev/null 2>&1; then
  echo "docker-engine: installing docker.io" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi

if docker info >/dev/null 2>&1; then
  echo "docker-engine: already running" >&2
  exit 0
fi

# A previous dockerd that died leaves its pid file behind and refuses to start again.
if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
  rm -f /var/run/docker.pid
fi

if ! pgrep -x dockerd >/dev/null 2>&1; then
  echo "docker-engine: starting dockerd (log: $LOG)" >&2
  nohup dockerd >>"$LOG" 2>&1 &
fi

for _ in $(seq "$WAIT_SECONDS"); do
  if docker info >/dev/null 2>&1; then
    echo "docker-engine: ready" >&2
    exit 0
  fi
  sleep 1
done
echo "docker-engine: dockerd did not answer within ${WAIT_SECONDS}s; last log lines:" >&2
tail -n 30 "$LOG" >&2 || true
exit 1
