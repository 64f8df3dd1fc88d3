"""Which state backend the real Pulumi CLI (v3.276.0) uses: PULUMI_BACKEND_URL, then the project's
`backend.url`, then the stored `pulumi login`. The pull-request workflow (.github/workflows/preview.yml,
docs/policy.md) relies on the first step: its backend reaches the CLI as PULUMI_BACKEND_URL, which outranks the
project's `backend.url: file://~`.

Each backend is a directory of its own (a stack's state is `<dir>/.pulumi/stacks/<project>/<stack>.json`); the
project here is a minimal one, so no program runs and no provider plugin starts. `file://~` itself is not used:
the CLI resolves `~` to the passwd home of the user (Go's os/user reads /etc/passwd; $HOME does not change it),
which a test must not write.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.engine.pulumi_cli import Engine, Workspace

pytestmark = pytest.mark.engine

PROJECT = "backend-probe"


def _state_file(backend: Path, stack: str) -> Path:
    return backend / ".pulumi" / "stacks" / PROJECT / f"{stack}.json"


def test_the_backend_url_variable_outranks_the_project_key_which_outranks_the_login(
    engine: Engine, tmp_path: Path
) -> None:
    env_dir, project_dir, login_dir = (tmp_path / name for name in ("from-env", "from-project", "from-login"))
    for directory in (env_dir, project_dir, login_dir):
        directory.mkdir()
    workspace = Workspace(engine=engine, root=tmp_path / "machine", project_dir=tmp_path / "project")
    workspace.project.mkdir()
    project_file = workspace.project / "Pulumi.yaml"
    project: dict[str, object] = {"name": PROJECT, "runtime": "python", "backend": {"url": f"file://{project_dir}"}}
    project_file.write_text(yaml.safe_dump(project))
    no_variable: dict[str, str | None] = {"PULUMI_BACKEND_URL": None}  # the workspace sets one

    workspace.pulumi("login", f"file://{login_dir}", env=no_variable)

    # 1. The variable wins over the project's key (and the login).
    workspace.pulumi("stack", "init", "a", env={"PULUMI_BACKEND_URL": f"file://{env_dir}"})
    assert _state_file(env_dir, "a").is_file()
    # 2. Without it, the project's backend.url wins over the login.
    workspace.pulumi("stack", "init", "b", env=no_variable)
    assert _state_file(project_dir, "b").is_file()
    whoami = workspace.pulumi("whoami", "--verbose", env=no_variable).stdout
    assert f"file://{project_dir}" in whoami, whoami
    # 3. Without either, the stored login.
    del project["backend"]
    project_file.write_text(yaml.safe_dump(project))
    workspace.pulumi("stack", "init", "c", env=no_variable)
    assert _state_file(login_dir, "c").is_file()

    assert not _state_file(project_dir, "a").exists() and not _state_file(login_dir, "a").exists()
    assert not _state_file(env_dir, "b").exists() and not _state_file(login_dir, "b").exists()
    assert not _state_file(env_dir, "c").exists() and not _state_file(project_dir, "c").exists()
