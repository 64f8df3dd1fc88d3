#!/usr/bin/env bash
# Build the offline test images from Debian's packages (mmdebstrap rootfs + docker import), then set the
# image config (ENTRYPOINT, CMD, ENV, STOPSIGNAL, ...) with a tiny offline `docker build` FROM the imported
# rootfs: `docker import --change` cannot set STOPSIGNAL.
# An image is rebuilt only when it is missing or its recipe (this script + its image folders) changed:
# each image carries the recipe's hash in the label org.private-registry.recipe.
#
# Image folder images/<name>/:
#   base          optional: the image folder this one is layered on (its packages, rootfs, customize.sh
#                 and changes come first; e.g. joxit-ui is the nginx layout plus Joxit's own traits)
#   packages      Debian packages, one a line
#   rootfs/       synced into the root filesystem after the packages are installed
#   customize.sh  run inside the rootfs (chroot) after its rootfs/ was synced
#   network       optional, empty: this layer's customize.sh installs from the network (pip). It then runs
#                 with a clean environment (env -i: the host's PIP_*/REQUESTS_CA_BUNDLE would point at host
#                 files) plus the two things a host behind a TLS-inspecting proxy or a private index needs:
#                 the host's CA bundle (/etc/ssl/certs/ca-certificates.crt), copied in, with PIP_CERT,
#                 REQUESTS_CA_BUNDLE and SSL_CERT_FILE naming it (pip's --cert alone loses to an inherited
#                 REQUESTS_CA_BUNDLE), and the host's pip index settings (index-url, extra-index-url,
#                 trusted-host from its pip config files and PIP_* environment, as `pip config list` shows
#                 them; local paths and file: URLs dropped, they do not exist in the rootfs) as
#                 PIP_CONFIG_FILE. Both are removed from the rootfs afterwards. Pin what such a step
#                 installs: the recipe's hash covers these files, not what an index serves.
#   changes       Dockerfile instructions for the image config, one a line
#
#   images/build.sh            build what is missing or stale, print the tags
#   images/build.sh --force    rebuild all
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
FORCE=${1:-}

# name -> tag; the tags are what tests/live/stacks/*.yaml point the program's images at.
declare -A TAGS=(
  [registry]=private-registry-test/registry:2.8.2
  [nginx]=private-registry-test/nginx:1.22
  [joxit-ui]=private-registry-test/joxit-ui:2.5.7
  [redis]=private-registry-test/redis:7
  [moto]=private-registry-test/moto:5
)

command -v mmdebstrap >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null
}

# Where a network layer's customize.sh finds the host's CA bundle and pip config (removed afterwards).
NETWORK_DIR=/tmp/build-network
HOST_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt

# The host's pip index settings as a pip.conf for inside the rootfs (see "network" above). Precedence as pip
# applies it to `pip install`: environment, then the [install] section, then [global].
host_pip_conf() {
  python3 - <<'PY'
import ast
import os
import subprocess
import sys

KEYS = ("index-url", "extra-index-url", "trusted-host")
try:
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False
    ).stdout
except OSError:
    listed = ""
settings = {}
for line in listed.splitlines():
    name, sep, value = line.partition("=")
    section, _, key = name.rpartition(".")
    if sep and key in KEYS:
        settings[(section, key)] = ast.literal_eval(value)
for key in KEYS:  # pip without a config command (or none at all): the environment is still honoured
    env = os.environ.get("PIP_" + key.upper().replace("-", "_"))
    if env:
        settings[(":env:", key)] = env
print("[global]")
for key in KEYS:
    value = next((settings[s, key] for s in (":env:", "install", "global") if (s, key) in settings), "")
    kept = [v for v in value.split() if not v.startswith(("file:", "/"))]
    if kept:
        print(f"{key} = {' '.join(kept)}")
PY
}

# The image folders of $1, base first.
layers() {
  local name=$1
  if [ -f "$HERE/$name/base" ]; then
    layers "$(tr -d '[:space:]' <"$HERE/$name/base")"
  fi
  echo "$name"
}

recipe_hash() {
  local dirs
  mapfile -t dirs < <(layers "$1")
  (cd "$HERE" && { sha256sum build.sh; find "${dirs[@]}" -type f -print0 | sort -z | xargs -0 sha256sum; } \
    | sha256sum | cut -c1-16)
}

build_one() {
  local name=$1 tag=${TAGS[$1]} hash have work layer
  local dirs=() hooks=() packages=()
  hash=$(recipe_hash "$name")
  have=$(docker image inspect -f '{{index .Config.Labels "org.private-registry.recipe"}}' "$tag" 2>/dev/null || true)
  if [ "$have" = "$hash" ] && [ "$FORCE" != "--force" ]; then
    echo "images: $tag is up to date ($hash)"
    return 0
  fi
  mapfile -t dirs < <(layers "$name")
  work=$(mktemp -d)
  mkdir "$work/context"
  echo "FROM $tag-rootfs" >"$work/context/Dockerfile"
  for layer in "${dirs[@]}"; do
    mapfile -t -O "${#packages[@]}" packages < <(grep -v '^[[:space:]]*$' "$HERE/$layer/packages")
    hooks+=(--customize-hook="sync-in '$HERE/$layer/rootfs' /")
    if [ -f "$HERE/$layer/network" ]; then
      if [ ! -d "$work/network" ]; then
        [ -f "$HOST_CA_BUNDLE" ] || { echo "images: $layer needs the host's CA bundle $HOST_CA_BUNDLE" >&2; return 1; }
        mkdir "$work/network"
        cp "$HOST_CA_BUNDLE" "$work/network/ca.crt"
        host_pip_conf >"$work/network/pip.conf"
      fi
      hooks+=(--customize-hook="mkdir -p \"\$1$NETWORK_DIR\" && cp '$work/network/ca.crt' '$work/network/pip.conf' \"\$1$NETWORK_DIR/\"")
      hooks+=(--customize-hook="chroot \"\$1\" env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
HOME=/root LANG=C.UTF-8 PIP_CONFIG_FILE=$NETWORK_DIR/pip.conf PIP_CERT=$NETWORK_DIR/ca.crt \
REQUESTS_CA_BUNDLE=$NETWORK_DIR/ca.crt SSL_CERT_FILE=$NETWORK_DIR/ca.crt PIP_DISABLE_PIP_VERSION_CHECK=1 \
/bin/sh -e < '$HERE/$layer/customize.sh'")
      hooks+=(--customize-hook="rm -rf \"\$1$NETWORK_DIR\"")
    else
      hooks+=(--customize-hook="chroot \"\$1\" /bin/sh -e < '$HERE/$layer/customize.sh'")
    fi
    grep -v '^[[:space:]]*$' "$HERE/$layer/changes" >>"$work/context/Dockerfile"
  done
  echo "LABEL org.private-registry.recipe=$hash" >>"$work/context/Dockerfile"
  echo "images: building $tag ($hash) from ${dirs[*]}"
  mmdebstrap --quiet --mode=root --variant=apt --format=tar \
    --include="$(printf '%s\n' "${packages[@]}" | sort -u | paste -sd,)" \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    "${hooks[@]}" \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    "$SUITE" "$work/rootfs.tar" \
    "deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main" "deb $SECURITY_MIRROR $SUITE-security main"
  docker import "$work/rootfs.tar" "$tag-rootfs" >/dev/null
  # The legacy builder: FROM a local image never pulls, and the context is just the Dockerfile.
  # (Its deprecation notice is printed only when the build fails.)
  DOCKER_BUILDKIT=0 docker build -q -t "$tag" "$work/context" >/dev/null 2>"$work/build.err" || {
    cat "$work/build.err" >&2
    return 1
  }
  docker rmi "$tag-rootfs" >/dev/null
  rm -rf "$work"
  echo "images: built $tag"
}

pids=()
for name in "${!TAGS[@]}"; do
  build_one "$name" >"/tmp/images-build-$name.log" 2>&1 &
  pids+=("$!:$name")
done
status=0
for entry in "${pids[@]}"; do
  if ! wait "${entry%%:*}"; then
    echo "images: building ${entry#*:} failed:" >&2
    status=1
  fi
  cat "/tmp/images-build-${entry#*:}.log"
done
exit $status
