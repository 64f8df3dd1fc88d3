#!/usr/bin/env bash
# The whole test suite, from a fresh machine: system packages, venv, Docker engine, offline test images,
# lint and type checks, unit tests and live tests. `.ci/run` calls exactly this.
#
#   scripts/test.sh                 everything
#   scripts/test.sh -k registry     extra arguments go to pytest
#   scripts/test.sh --unit          lint, types and unit tests only: no Docker engine, images or browser
#
# The tests on the real Pulumi CLI (tests/engine/) are part of it: scripts/build-engine.sh builds the CLI first.
set -euo pipefail
cd "$(dirname "$0")/.."

unit_only=false
if [ "${1:-}" = "--unit" ]; then
  unit_only=true
  shift
fi

need=()
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
# The maintenance script's unit tests run it under busybox, the shell of the registry's (Alpine) image.
command -v busybox >/dev/null || need+=(busybox)
# The rendered nginx site's unit tests run `nginx -t` with a real nginx (Debian puts it in /usr/sbin).
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
if ! $unit_only; then
  command -v curl >/dev/null || need+=(curl)
  command -v openssl >/dev/null || need+=(openssl)
  command -v skopeo >/dev/null || need+=(skopeo)
  command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
  command -v chromium >/dev/null || need+=(chromium)  # the live UI tests drive it with Playwright
  command -v ip >/dev/null || need+=(iproute2)  # the mirror tests' second dockerd gets a bridge of its own
  command -v patch >/dev/null || need+=(patch)  # scripts/build-engine.sh patches the Python language host
  command -v flock >/dev/null || need+=(util-linux)  # ... and builds under a lock
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "test: installing ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# The venv, reinstalled only when the pinned requirements change.
stamp=venv/.requirements.sha256
want=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
if [ ! -x venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "test: preparing venv" >&2
  python3 -m venv venv
  venv/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
  echo "$want" >"$stamp"
fi

if ! $unit_only; then
  scripts/docker-engine.sh
  images/build.sh
  # The real Pulumi CLI and Python language host for tests/engine/, from Go modules (cached by version: a warm
  # run does nothing; a fresh machine builds for about 20 minutes, docs/testing.md).
  scripts/build-engine.sh >/dev/null
fi

venv/bin/ruff check .
venv/bin/ruff format --check .
venv/bin/mypy

if $unit_only; then
  exec venv/bin/python -m pytest -m unit "$@"
fi
exec venv/bin/python -m pytest --durations=15 "$@"
