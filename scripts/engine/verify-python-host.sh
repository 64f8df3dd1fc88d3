#!/usr/bin/env bash
# Checks what scripts/engine/language-python/host.patch gives the Python language host, with the
# pulumi CLI of scripts/build-engine.sh, a file backend and no PULUMI_PYTHON_CMD, in a temporary
# directory (needs PyPI for pip):
#   1. a project with runtime.options {toolchain: pip, virtualenv: venv} and requirements.txt
#      (pulumi==3.272.0) and no venv: `pulumi up` makes ./venv and installs requirements.txt into it
#      (what the CLI's own host does on a first run), then runs the program in it;
#      a second `up` does not install again; `pulumi about` names the venv's python;
#   2. `pulumi install` makes the venv again after it is removed;
#   3. the repository's policy pack (a copy of policy/ without its venv, or POLICY_PACK=DIR as it is):
#      `pulumi install` in it makes its venv from policy/requirements.txt, and
#      `pulumi preview --policy-pack` starts it and lists it as passed; a second pack made here with a
#      mandatory stack policy against the program's component must be reported as violated.
# The program has only a ComponentResource and exports: no provider plugin exists here.
#
#     scripts/engine/verify-python-host.sh [BIN_DIR]   (default: the output of scripts/build-engine.sh)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
bin=${1:-$("$repo/scripts/build-engine.sh")}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

export PATH="$bin:$PATH"
export PULUMI_HOME="$work/pulumi-home"
export PULUMI_SKIP_UPDATE_CHECK=1
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
export PULUMI_CONFIG_PASSPHRASE=verify-passphrase
unset PULUMI_PYTHON_CMD VIRTUAL_ENV

step() { printf '[verify-python-host] %s\n' "$*" >&2; }
fail() { step "FAILED: $*"; exit 1; }
# The pulumi version installed in ./venv (empty if none).
venv_pulumi() { venv/bin/python -m pip show pulumi 2>/dev/null | sed -n 's/^Version: //p' || true; }

mkdir -p "$work/state" "$work/app"
cd "$work/app"
cat >Pulumi.yaml <<'EOF'
name: verify-python-host
runtime:
  name: python
  options:
    toolchain: pip
    virtualenv: venv
EOF
echo 'pulumi==3.272.0' >requirements.txt
cat >__main__.py <<'EOF'
import sys

import pulumi


class Box(pulumi.ComponentResource):
    def __init__(self, name, opts=None):
        super().__init__("verify:index:Box", name, None, opts)
        self.register_outputs({})


Box("box")
pulumi.export("python", sys.executable)
EOF

step "pulumi $(pulumi version) and its Python language host in $bin"
pulumi login "file://$work/state" >&2
pulumi stack init dev >&2

step "1. up without a venv: the CLI's host must make ./venv from requirements.txt"
t=$SECONDS
pulumi up --yes >"$work/up1.log" 2>&1 || { cat "$work/up1.log" >&2; fail "first up"; }
step "   first up: $((SECONDS - t)) s"
grep -q "Creating virtual environment" "$work/up1.log" || fail "first up did not create the venv"
[[ -x venv/bin/python ]] || fail "no ./venv/bin/python"
[[ $(venv_pulumi) == 3.272.0 ]] || fail "pulumi 3.272.0 not in ./venv"
[[ $(pulumi stack output python) == "$work/app/venv/bin/python" ]] ||
  fail "the program ran in $(pulumi stack output python), not in ./venv"
pulumi up --yes >"$work/up2.log" 2>&1 || { cat "$work/up2.log" >&2; fail "second up"; }
if grep -q "Creating virtual environment" "$work/up2.log"; then fail "second up installed again"; fi
pulumi preview --expect-no-changes >&2
about=$(pulumi about 2>&1)
grep -q "executable='$work/app/venv/bin/python'" <<<"$about" || fail "pulumi about does not name ./venv's python"
step "   $(grep -E '^language +python' <<<"$about" | tr -s ' ')"

step "2. pulumi install makes the venv again"
rm -rf venv
pulumi install >"$work/install.log" 2>&1 || { cat "$work/install.log" >&2; fail "pulumi install"; }
[[ $(venv_pulumi) == 3.272.0 ]] || fail "pulumi install did not fill ./venv"

step "3. policy packs"
if [[ -n ${POLICY_PACK:-} ]]; then
  pack=$(cd "$POLICY_PACK" && pwd)
else
  pack="$work/policy"
  mkdir "$pack"
  (cd "$repo/policy" && tar --exclude=./venv --exclude=__pycache__ -cf - .) | (cd "$pack" && tar -xf -)
fi
if [[ ! -x "$pack/venv/bin/python" ]]; then
  step "   pulumi install in $pack (its venv from requirements.txt)"
  (cd "$pack" && pulumi install >"$work/policy-install.log" 2>&1) ||
    { cat "$work/policy-install.log" >&2; fail "pulumi install of the policy pack"; }
  [[ -x "$pack/venv/bin/python" ]] || fail "pulumi install made no $pack/venv"
fi
mkdir "$work/no-boxes"
cat >"$work/no-boxes/PulumiPolicy.yaml" <<'EOF'
description: Flags every verify:index:Box (a check that violations come through).
runtime:
  name: python
  options:
    toolchain: pip
    virtualenv: venv
EOF
cat >"$work/no-boxes/__main__.py" <<'EOF'
from pulumi_policy import EnforcementLevel, PolicyPack, StackValidationPolicy


def no_boxes(args, report_violation):
    for r in args.resources:
        if r.resource_type == "verify:index:Box":
            report_violation(f"box {r.name} is not allowed")


PolicyPack(
    name="no-boxes",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=[StackValidationPolicy(name="no-boxes", description="No Box components.", validate=no_boxes)],
)
EOF
ln -s "$pack/venv" "$work/no-boxes/venv" # same requirements (pulumi, pulumi-policy)

pulumi preview --policy-pack "$pack" >"$work/policy.log" 2>&1 || { cat "$work/policy.log" >&2; fail "preview with $pack"; }
grep -E '✅ .*\(local: '"$pack"'\)' "$work/policy.log" >&2 || { cat "$work/policy.log" >&2; fail "the pack is not reported as passed"; }
if pulumi preview --policy-pack "$pack" --policy-pack "$work/no-boxes" >"$work/policy2.log" 2>&1; then
  cat "$work/policy2.log" >&2
  fail "a mandatory violation did not fail the preview"
fi
grep -q '❌ no-boxes' "$work/policy2.log" && grep -q 'box box is not allowed' "$work/policy2.log" ||
  { cat "$work/policy2.log" >&2; fail "the violation is not reported"; }
sed -n '/^Policies:/,/^$/p' "$work/policy2.log" >&2

pulumi destroy --yes >&2
step "OK: venv from requirements.txt by up and install, policy pack $pack started, violations reported"
