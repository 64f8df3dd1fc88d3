#!/usr/bin/env bash
# Build the offline test images from Debian's packages (mmdebstrap rootfs + docker import).
# An image is rebuilt only when it is missing or its recipe (this script + images/<name>/) changed:
# each image carries the recipe's hash in the label org.private-registry.recipe.
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
  [ui]=private-registry-test/ui-standin:1
)

command -v mmdebstrap >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null
}

recipe_hash() {
  (cd "$HERE" && { sha256sum build.sh; find "$1" -type f -print0 | sort -z | xargs -0 sha256sum; } \
    | sha256sum | cut -c1-16)
}

build_one() {
  local name=$1 tag=${TAGS[$1]} hash have work
  hash=$(recipe_hash "$name")
  have=$(docker image inspect -f '{{index .Config.Labels "org.private-registry.recipe"}}' "$tag" 2>/dev/null || true)
  if [ "$have" = "$hash" ] && [ "$FORCE" != "--force" ]; then
    echo "images: $tag is up to date ($hash)"
    return 0
  fi
  work=$(mktemp -d)
  local changes=(--change "LABEL org.private-registry.recipe=$hash")
  while IFS= read -r line; do
    [ -n "$line" ] && changes+=(--change "$line")
  done <"$HERE/$name/changes"
  echo "images: building $tag ($hash)"
  mmdebstrap --quiet --mode=root --variant=apt --format=tar \
    --include="$(paste -sd, "$HERE/$name/packages")" \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook="sync-in '$HERE/$name/rootfs' /" \
    --customize-hook="chroot \"\$1\" /bin/sh -e < '$HERE/$name/customize.sh'" \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    "$SUITE" "$work/rootfs.tar" \
    "deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main" "deb $SECURITY_MIRROR $SUITE-security main"
  docker import "${changes[@]}" "$work/rootfs.tar" "$tag" >/dev/null
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
