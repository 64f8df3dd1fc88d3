"""Fixtures for the tests on the real Pulumi CLI and language host, with STAND-IN provider plugins
(tests/engine/pulumi_cli.py says what is real): the built engine, and the dev stack deployed once per session by
the README's own command.

Nothing here skips: without the engine build or the offline images the tests fail, naming the command that
provides them (scripts/build-engine.sh, images/build.sh). Leftovers of an earlier run are found by the program's
labels (`org.private-registry.stack=dev`) and removed before the stack comes up.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml
from docker.errors import DockerException

from harness.program import PROJECT_DIR
from tests.engine.pulumi_cli import (
    OFFLINE_IMAGES,
    Engine,
    Workspace,
    build_engine,
    copy_program,
    remove_stack_leftovers,
    stack_selector,
)

README = PROJECT_DIR / "README.md"
DEPLOY_MARK = "<!-- deploy-command"
DEV_STACK = "dev"


def readme_deploy_command() -> str:
    """The sh block right after the README's deploy-command mark, as a newcomer copies it."""
    text = README.read_text()
    start = text.index(DEPLOY_MARK)
    match = re.compile(r"```sh\n(.*?)\n```", re.S).search(text, start)
    assert match is not None, "README: no sh block after the deploy-command mark"
    return match.group(1)


def readme_passphrase(command: str) -> str:
    """The passphrase the README's command exports: the later commands of the session need the same one."""
    match = re.search(r"export PULUMI_CONFIG_PASSPHRASE='([^']*)'", command)
    assert match is not None, f"the README's deploy command sets no PULUMI_CONFIG_PASSPHRASE: {command}"
    return match.group(1)


@dataclass
class DeployedStack:
    workspace: Workspace
    command: str
    """What ran: the README's block, word for word."""
    deploy: Any
    """The CompletedProcess of the README's command."""
    deploy_seconds: float
    outputs: dict[str, Any]
    password: str
    """alice's password, as `pulumi config get` gives it back."""

    @property
    def endpoint(self) -> str:
        return str(self.outputs["registryEndpoint"])

    @property
    def ca_file(self) -> Path:
        path = self.workspace.root / "ca.crt"
        path.write_text(self.outputs["caCertPem"])
        return path


@pytest.fixture(scope="session")
def engine() -> Engine:
    return build_engine()


@pytest.fixture(scope="session")
def docker_client() -> docker.DockerClient:
    client = docker.from_env(timeout=300)
    missing = [image["image"] for image in OFFLINE_IMAGES.values() if not client.images.list(name=image["image"])]
    if missing:
        raise AssertionError(f"offline images missing: {missing}; run images/build.sh")
    return client


def offline_dev_stack(project: Path) -> None:
    """The only change to the dev stack: the offline images (its ports are the README's: 8443, 8080, 5000)."""
    path = project / f"Pulumi.{DEV_STACK}.yaml"
    document = yaml.safe_load(path.read_text())
    config = document["config"]
    for block, values in OFFLINE_IMAGES.items():
        key = f"private-registry:{block}"
        config[key] = {**(config.get(key) or {}), **values}
    path.write_text(yaml.safe_dump(document, sort_keys=False))


@pytest.fixture(scope="session")
def dev_stack(
    engine: Engine, docker_client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DeployedStack]:
    """The dev stack, deployed once for the session by the README's deploy command, destroyed at the end."""

    root = tmp_path_factory.mktemp("engine-dev")
    remove_stack_leftovers(docker_client, DEV_STACK)
    command = readme_deploy_command()
    workspace = Workspace(engine=engine, root=root, passphrase=readme_passphrase(command))
    copy_program(workspace.project)
    offline_dev_stack(workspace.project)
    started = time.monotonic()
    try:
        deploy = workspace.shell(command, timeout=2400)
        seconds = time.monotonic() - started
        password = workspace.pulumi("config", "get", "--path", "private-registry:auth.users.alice").stdout.strip()
        yield DeployedStack(
            workspace=workspace,
            command=command,
            deploy=deploy,
            deploy_seconds=seconds,
            outputs=workspace.outputs(),
            password=password,
        )
    finally:
        workspace.pulumi("destroy", "--yes", "--skip-preview", check=False, timeout=900)
        remove_stack_leftovers(docker_client, DEV_STACK)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed engine test shows the state and the last log lines of the dev stack's containers."""
    report = yield
    if report.failed and item.get_closest_marker("engine"):
        with contextlib.suppress(DockerException):
            client = docker.from_env()
            for found in client.containers.list(all=True, filters=stack_selector(DEV_STACK)):
                logs = found.logs(tail=40).decode(errors="replace")
                report.sections.append((f"docker logs {found.name} ({found.status})", logs))
    return report
