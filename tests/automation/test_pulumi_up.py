"""Opt-in: a real `pulumi up` of the program through the Automation API, then an idempotency check.

Needs the Pulumi CLI with the docker, tls and random provider plugins, and a Docker engine with the images
of tests/live/stacks/automation.yaml. The CLI cannot be installed on the project's own machines, so this is
skipped there with the reason; wherever the CLI exists it runs:

    pytest -m automation
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from harness.program import PROJECT_DIR, stack_config

pytestmark = [
    pytest.mark.automation,
    pytest.mark.skipif(
        shutil.which("pulumi") is None, reason="needs the Pulumi CLI and provider plugins (not installable here)"
    ),
]

STACK_FILE = PROJECT_DIR / "tests" / "live" / "stacks" / "automation.yaml"


def test_up_is_idempotent_and_destroys_cleanly(tmp_path: Path) -> None:
    from pulumi import automation as auto

    env = {
        "PULUMI_BACKEND_URL": f"file://{tmp_path}",
        "PULUMI_CONFIG_PASSPHRASE": "automation-test-only",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
    }
    os.environ.update(env)
    stack = auto.create_or_select_stack(
        "automation",
        work_dir=str(PROJECT_DIR),
        opts=auto.LocalWorkspaceOptions(env_vars=env, secrets_provider="passphrase"),
    )
    for key, value in stack_config(STACK_FILE).items():
        stack.set_config(key, auto.ConfigValue(value, secret=key.endswith("registry")))
    try:
        up = stack.up(on_output=print)
        assert up.summary.result == "succeeded"
        assert up.outputs["registryEndpoint"].value == "registry.automation.test:18443"
        assert not up.outputs["caCertPem"].secret
        # The second run must see nothing to change: the inputs are deterministic.
        stack.preview(expect_no_changes=True, on_output=print)
        # Certificate rotation path: a refresh reads the certs' renewal state.
        stack.refresh(on_output=print)
        stack.preview(expect_no_changes=True, on_output=print)
    finally:
        stack.destroy(on_output=print)
        stack.workspace.remove_stack("automation")
