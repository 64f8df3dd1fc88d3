#!/usr/bin/env bash
# Regenerates go.mod and go.sum of this build module after host.patch (or a version) changed:
# takes main.go of sdk/v3 v3.79.0 (upstream/), applies host.patch, raises every requirement to the
# CLI wrapper's version (../cli/go.mod) so the host links the same modules as the pulumi binary and
# reuses its build cache, runs `go mod tidy` in a temporary directory and copies go.mod (keeping the
# comment block at its top) and go.sum back here. Needs the Go module proxy and patch(1).
#
#     scripts/engine/language-python/tidy.sh
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

upstream_dir=$(cd "$here/upstream" && go mod download github.com/pulumi/pulumi/sdk/v3 &&
  go list -mod=readonly -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)
install -m 0644 "$upstream_dir/python/cmd/pulumi-language-python/main.go" "$tmp/main.go"
patch -p1 --fuzz=0 --batch --no-backup-if-mismatch -d "$tmp" -i "$here/host.patch"

sdk=$(cd "$here/../cli" && go list -mod=readonly -m -f '{{.Version}}' github.com/pulumi/pulumi/sdk/v3)
(
  cd "$tmp"
  go mod init privateregistry.local/engine/languagepython
  go mod edit -go=1.26.6 -require="github.com/pulumi/pulumi/sdk/v3@$sdk"
  # The CLI's versions (not pkg/v3 itself: the host does not import it).
  (cd "$here/../cli" && go list -mod=readonly -m -f '{{if not .Main}}{{.Path}}@{{.Version}}{{end}}' all) |
    grep -v '^github.com/pulumi/pulumi/pkg/v3@' |
    sed 's/^/-require=/' | xargs go mod edit
  cp "$here/../cli/go.sum" go.sum
  go mod tidy
)

{
  sed -n '1,/^module /p' "$here/go.mod" | sed '$d'
  cat "$tmp/go.mod"
} >"$tmp/go.mod.new"
install -m 0644 "$tmp/go.mod.new" "$here/go.mod"
install -m 0644 "$tmp/go.sum" "$here/go.sum"
echo "tidied: $here/go.mod, $here/go.sum (sdk/v3 $sdk)" >&2
