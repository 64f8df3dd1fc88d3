#!/usr/bin/env bash
# Smoke test of what scripts/build-engine.sh built: the pulumi CLI and the Python language host
# running a small Python program (a component, config, a secret, a stack reference) through
# login, stack init, up, preview --expect-no-changes, destroy, with a file backend in a temporary
# directory. Needs the project's venv (default /work/main/venv;
# VENV=... for another) with the pulumi SDK, named as runtime.options.virtualenv. No provider plugin
# is used: none could be built. verify-python-host.sh checks what the host's patch adds (a venv made
# from requirements.txt by the CLI, `pulumi install`, policy packs).
#
#     scripts/engine/verify.sh [BIN_DIR]      (default: the output of scripts/build-engine.sh)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
bin=${1:-$("$repo/scripts/build-engine.sh")}
venv=${VENV:-$repo/venv}
[[ -x "$venv/bin/python" ]] || { echo "no venv at $venv" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# What a caller sets (docs/testing.md, "The real engine: build from Go modules").
export PATH="$bin:$PATH"
export PULUMI_HOME="$work/pulumi-home"
export PULUMI_SKIP_UPDATE_CHECK=1
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
export PULUMI_CONFIG_PASSPHRASE=verify-passphrase
# No PULUMI_PYTHON_CMD: the (patched) host runs runtime.options.virtualenv's python.
unset PULUMI_PYTHON_CMD

mkdir -p "$work/state" "$work/base" "$work/app"
cat >"$work/base/Pulumi.yaml" <<EOF
name: verify-base
runtime:
  name: python
  options:
    toolchain: pip
    virtualenv: $venv
EOF
cat >"$work/base/__main__.py" <<'EOF'
import pulumi

pulumi.export("endpoint", "registry.internal:5000")
EOF

cat >"$work/app/Pulumi.yaml" <<EOF
name: verify-app
runtime:
  name: python
  options:
    toolchain: pip
    virtualenv: $venv
EOF
cat >"$work/app/__main__.py" <<'EOF'
import pulumi

cfg = pulumi.Config()


class Pair(pulumi.ComponentResource):
    def __init__(self, name, opts=None):
        super().__init__("verify:index:Pair", name, None, opts)
        self.first = pulumi.Output.from_input(cfg.get("greeting") or "hello")
        self.register_outputs({"first": self.first})


pair = Pair("pair")
if cfg.get_bool("second"):
    Pair("second")
base = pulumi.StackReference(f"organization/verify-base/{pulumi.get_stack()}")
pulumi.export("greeting", pair.first)
pulumi.export("token", cfg.require_secret("token"))
pulumi.export("endpoint", base.get_output("endpoint"))
EOF

step() { printf '[verify] %s\n' "$*" >&2; }
step "pulumi version: $(pulumi version)"
pulumi login "file://$work/state" >&2
(cd "$work/base" && pulumi stack init dev >&2 && pulumi up --yes --skip-preview >&2)
cd "$work/app"
pulumi stack init dev >&2
pulumi config set greeting hi >&2
pulumi config set --secret token s3cr3t >&2
step "up"
pulumi up --yes >&2
[[ $(pulumi stack output endpoint) == registry.internal:5000 ]] || { step "stack reference output wrong"; exit 1; }
[[ $(pulumi stack output --show-secrets token) == s3cr3t ]] || { step "secret output wrong"; exit 1; }
if grep -q s3cr3t "$work/state/.pulumi/stacks/verify-app/dev.json"; then step "secret in plain text in state"; exit 1; fi
step "preview --expect-no-changes"
pulumi preview --expect-no-changes >&2
step "preview --expect-no-changes with one more resource must fail"
pulumi config set second true >&2
if pulumi preview --expect-no-changes >/dev/null 2>&1; then step "a new resource went unnoticed"; exit 1; fi
pulumi config rm second >&2
# Policy packs: verify-python-host.sh.
step "destroy"
pulumi destroy --yes >&2
(cd "$work/base" && pulumi destroy --yes >&2)
step "OK: pulumi $(pulumi version) with the Python language host and exec shim in $bin"
