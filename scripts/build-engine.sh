#!/usr/bin/env bash
# Builds the real Pulumi engine from Go modules (Go module proxy only) into a cache directory and
# prints that directory's bin/ as the last line of stdout; everything else goes to stderr:
#
#     bin=$(scripts/build-engine.sh)
#     PATH="$bin:$PATH" pulumi version
#
# What it builds (docs/testing.md, "The real engine: build from Go modules", has the figures and
# what could not be built):
#   - pulumi                       github.com/pulumi/pulumi/pkg/v3 v3.276.0 (wrapper: scripts/engine/cli)
#   - pulumi-language-python       the host of github.com/pulumi/pulumi/sdk/v3 v3.79.0 (the newest served
#                                  sdk/v3 that still carries it, pinned by scripts/engine/language-python/upstream)
#                                  with scripts/engine/language-python/host.patch applied, built against
#                                  sdk/v3 v3.276.0 (build module: scripts/engine/language-python); the patch
#                                  makes it read runtime.options and policy packs from this CLI's requests
#   - pulumi-language-python-exec  copied from sdk/v3 v3.276.0 (python/cmd/pulumi-language-python-exec)
# The provider plugins (docker 5.2.0, tls 5.6.2, random 4.21.4) are NOT built: their provider/
# modules are not served by the proxy this machine reaches (see docs/testing.md).
#
# The cache: ${PRIVATE_REGISTRY_ENGINE_CACHE:-$HOME/.cache/private-registry/engine}/<key>/bin, where
# <key> names every version and a hash of this script and the wrapper modules. A complete entry has a
# .complete marker; a run that finds one prints the bin directory and exits at once.
#
# Environment: PRIVATE_REGISTRY_ENGINE_CACHE (cache root), ENGINE_BUILD_P (go build -p, default 2),
# GOMODCACHE / GOCACHE / GOPROXY as usual for the go command.
set -euo pipefail

PULUMI_VERSION=3.276.0        # CLI: pkg/v3 and sdk/v3 (>= the Python SDK pin pulumi==3.272.0)
LANGHOST_SDK_VERSION=3.79.0   # sdk/v3 module that carries python/cmd/pulumi-language-python
MIN_GO=1.26.6                 # pkg/v3 v3.276.0's go directive

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
engine_src="$here/engine"
cache_root=${PRIVATE_REGISTRY_ENGINE_CACHE:-$HOME/.cache/private-registry/engine}
par=${ENGINE_BUILD_P:-2}

log() { printf '[build-engine] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# The key: versions plus a hash of what decides the result (this script, the wrapper modules, the patch).
src_hash=$(
  cd "$here" &&
    { printf '%s\n' build-engine.sh; find engine -type f \( -name '*.go' -o -name go.mod -o -name go.sum -o -name '*.patch' \) | LC_ALL=C sort; } |
    xargs sha256sum | sha256sum | cut -c1-12
)
langhost_patch="$engine_src/language-python/host.patch"
# The host's version (GetPluginInfo, `pulumi about`): v3.79.0 plus semver build metadata naming the patch.
langhost_version="v${LANGHOST_SDK_VERSION}+privateregistry.$(sha256sum "$langhost_patch" | cut -c1-8)"
key="pulumi-v${PULUMI_VERSION}-langpython-sdk-v${LANGHOST_SDK_VERSION}-${src_hash}"
dest="$cache_root/$key"

if [[ -f "$dest/.complete" ]]; then
  log "cached: $dest"
  echo "$dest/bin"
  exit 0
fi

command -v go >/dev/null || die "the go command is not on PATH"
command -v patch >/dev/null || command -v git >/dev/null ||
  die "neither patch nor git is on PATH (apt-get install patch)"
go_have=$(go env GOVERSION | sed 's/^go//')
if [[ $(printf '%s\n%s\n' "$MIN_GO" "$go_have" | sort -V | head -1) != "$MIN_GO" ]]; then
  die "go $go_have is older than $MIN_GO (pkg/v3 v$PULUMI_VERSION needs it): export GOTOOLCHAIN=go1.27.3"
fi

mkdir -p "$cache_root"
# One build at a time per cache root; a second caller waits and then finds the result.
exec 9>"$cache_root/.build.lock"
if ! flock -n 9; then
  log "another build holds $cache_root/.build.lock; waiting"
  flock 9
fi
if [[ -f "$dest/.complete" ]]; then
  log "cached (built by the other caller): $dest"
  echo "$dest/bin"
  exit 0
fi

stage="$cache_root/.stage-$key-$$"
rm -rf "$stage"
mkdir -p "$stage/bin"
trap 'rm -rf "$stage"' EXIT

export CGO_ENABLED=0
# go.sum files are committed: -mod=readonly, so a build never rewrites them; no VCS stamping (the
# wrapper modules sit in this repository, whose state must not change the binaries).
gobuild=(go build -mod=readonly -buildvcs=false -p "$par" -trimpath -tags osusergo,grpcnotrace)
ldflags="-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v${PULUMI_VERSION}"
t0=$SECONDS

log "building pulumi v$PULUMI_VERSION (cold: 10-20 min on 2 cores)"
(cd "$engine_src/cli" &&
  "${gobuild[@]}" -ldflags "$ldflags" \
    -o "$stage/bin/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi) >&2
log "pulumi built after $((SECONDS - t0)) s"

t1=$SECONDS
log "building pulumi-language-python $langhost_version: sdk/v3 v$LANGHOST_SDK_VERSION's host + host.patch, against sdk/v3 v$PULUMI_VERSION"
# The host's source: main.go of sdk/v3 v3.79.0 (verified against upstream/go.sum), the only file of the
# package. It is copied, with the build module's go.mod and go.sum, into <entry>/src/, patched and built
# there; src/ stays in the cache entry, so the compiled source can be read.
upstream_dir=$(cd "$engine_src/language-python/upstream" &&
  go mod download github.com/pulumi/pulumi/sdk/v3 >&2 &&
  go list -mod=readonly -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)
host_pkg="$upstream_dir/python/cmd/pulumi-language-python"
[[ -f "$host_pkg/main.go" ]] || die "sdk/v3 v$LANGHOST_SDK_VERSION has no python/cmd/pulumi-language-python/main.go ($upstream_dir)"
host_src="$stage/src/pulumi-language-python"
mkdir -p "$host_src"
install -m 0644 "$host_pkg/main.go" "$host_src/main.go"
install -m 0644 "$engine_src/language-python/go.mod" "$engine_src/language-python/go.sum" "$langhost_patch" "$host_src/"
if command -v patch >/dev/null; then
  patch -p1 --fuzz=0 --batch --no-backup-if-mismatch -d "$host_src" -i "$langhost_patch" >&2 ||
    die "host.patch does not apply to sdk/v3 v$LANGHOST_SDK_VERSION's main.go"
else
  (cd "$host_src" && git apply -p1 "$langhost_patch") >&2 ||
    die "host.patch does not apply to sdk/v3 v$LANGHOST_SDK_VERSION's main.go"
fi
(cd "$host_src" &&
  "${gobuild[@]}" -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=${langhost_version}" \
    -o "$stage/bin/pulumi-language-python" .) >&2
log "pulumi-language-python built after $((SECONDS - t1)) s"

# The exec shim the host runs (it refuses to start without it next to its binary), from the same
# sdk/v3 as the CLI, so that it matches the Python SDK pin's runtime API.
sdk_dir=$(cd "$engine_src/cli" && go list -mod=readonly -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)
[[ -n "$sdk_dir" && -f "$sdk_dir/python/cmd/pulumi-language-python-exec" ]] ||
  die "sdk/v3 v$PULUMI_VERSION has no python/cmd/pulumi-language-python-exec ($sdk_dir)"
install -m 0755 "$sdk_dir/python/cmd/pulumi-language-python-exec" "$stage/bin/pulumi-language-python-exec"

got=$("$stage/bin/pulumi" version 2>/dev/null) || die "the built pulumi does not run"
[[ "$got" == "v$PULUMI_VERSION" ]] || die "the built pulumi says $got, not v$PULUMI_VERSION"

cat >"$stage/versions.txt" <<EOF
key=$key
pulumi=v$PULUMI_VERSION (github.com/pulumi/pulumi/pkg/v3, sdk/v3 v$PULUMI_VERSION)
pulumi-language-python=$langhost_version (github.com/pulumi/pulumi/sdk/v3 v$LANGHOST_SDK_VERSION python/cmd/pulumi-language-python + scripts/engine/language-python/host.patch, built against sdk/v3 v$PULUMI_VERSION; source: src/pulumi-language-python)
pulumi-language-python-exec=v$PULUMI_VERSION (sdk/v3 python/cmd/pulumi-language-python-exec)
providers=none (docker 5.2.0, tls 5.6.2, random 4.21.4: provider modules not served)
go=$(go env GOVERSION)
built=$(date -u +%Y-%m-%dT%H:%M:%SZ) in $((SECONDS - t0)) s
EOF
touch "$stage/.complete"

rm -rf "$dest"
mv "$stage" "$dest"
trap - EXIT
log "done in $((SECONDS - t0)) s: $dest"
echo "$dest/bin"
