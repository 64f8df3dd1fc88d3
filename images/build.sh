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
)

command -v mmdebstrap >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null
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
    hooks+=(--customize-hook="chroot \"\$1\" /bin/sh -e < '$HERE/$layer/customize.sh'")
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
