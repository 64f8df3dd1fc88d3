#!/usr/bin/env bash
# The whole test suite, from a fresh machine: system packages, venv, Docker engine, offline test images,
# lint and type checks, unit tests and live tests. `.ci/run` calls exactly this.
#
#   scripts/test.sh                 everything
#   scripts/test.sh -m unit         extra arguments go to pytest (here: unit tests only)
#
# The opt-in Automation API test (real `pulumi up`, needs the Pulumi CLI) is not part of it:
#   venv/bin/python -m pytest -m automation
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v curl >/dev/null || need+=(curl)
command -v openssl >/dev/null || need+=(openssl)
command -v skopeo >/dev/null || need+=(skopeo)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v chromium >/dev/null || need+=(chromium)  # the live UI tests drive it with Playwright
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
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

scripts/docker-engine.sh
images/build.sh

venv/bin/ruff check .
venv/bin/ruff format --check .
venv/bin/mypy

exec venv/bin/python -m pytest -m "not automation" "$@"
