"""The pull-request preview previews the stack's real state.

`Pulumi.yaml` sets `backend.url: file://~`. The CLI takes PULUMI_BACKEND_URL first, then that key, then a
stored `pulumi login` (pkg/workspace/creds.go, GetCurrentCloudURLWithSource), so a workflow that only logs in
(the action's `cloud-url`) previews an empty local backend. The order itself is shown on the real CLI in
tests/engine/.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from harness.program import PROJECT_DIR

pytestmark = pytest.mark.unit

WORKFLOW = PROJECT_DIR / ".github" / "workflows" / "preview.yml"


def pulumi_steps() -> list[dict[str, Any]]:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    return [step for step in steps if str(step.get("uses", "")).startswith("pulumi/actions")]


def test_the_backend_reaches_the_cli_as_the_variable_that_outranks_pulumi_yaml() -> None:
    (preview,) = pulumi_steps()
    assert preview["with"]["command"] == "preview"
    assert preview["env"]["PULUMI_BACKEND_URL"] == "${{ secrets.PULUMI_BACKEND_URL }}"
    # A login alone loses to backend.url: it must not be how the backend is chosen.
    assert "cloud-url" not in preview["with"]


def test_the_project_keeps_its_embedded_default_backend() -> None:
    project = yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())
    assert project["backend"]["url"] == "file://~"
