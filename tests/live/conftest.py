"""Fixtures for the live tests: a real Docker engine, the offline images and a stack brought up by the realizer.

Nothing here skips: without an engine or the test images a live test fails, naming the command that
provides them (scripts/docker-engine.sh, images/build.sh). Leftovers of earlier runs are removed by label
before the stack comes up; on a failed test the stack's container logs are printed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml
from docker.errors import DockerException, ImageNotFound

from harness import realizer
from harness.clients import docker_login, hosts_entry
from harness.docker_provider import LIVE_STACK_LABEL
from harness.program import PROJECT_DIR, stack_config
from harness.registry_api import RegistryClient
from tests.live.swarm_engine import SWARM_TEST_MODULES

STACKS_DIR = PROJECT_DIR / "tests" / "live" / "stacks"
LIVE_STACK = STACKS_DIR / "live.yaml"
HOSTS_MARK = "# private-registry live tests"


@dataclass
class LiveStack:
    config_file: Path
    outputs: dict[str, Any]
    config: dict[str, str]
    ca_file: Path
    client: docker.DockerClient

    @property
    def hostname(self) -> str:
        return self.config["private-registry:hostname"]

    @property
    def https_port(self) -> int:
        return int(self.config["private-registry:httpsPort"])

    @property
    def http_port(self) -> int:
        return int(self.config["private-registry:httpPort"])

    @property
    def registry_port(self) -> int:
        return int(self.config["private-registry:registryPort"])

    @property
    def endpoint(self) -> str:
        return str(self.outputs["registryEndpoint"])

    @property
    def users(self) -> dict[str, str]:
        users: dict[str, str] = json.loads(self.config.get("private-registry:auth", "{}")).get("users", {})
        return users

    @property
    def login(self) -> tuple[str, str]:
        """The first configured account (user, password)."""
        user = sorted(self.users)[0]
        return user, self.users[user]

    def container(self, role: str) -> Any:
        return self.client.containers.get(f"private-registry-{self.config_file.stem}-{role}")


@pytest.fixture(scope="session")
def engine() -> docker.DockerClient:
    try:
        client = realizer.docker_client()
        client.ping()
    except DockerException as error:
        pytest.fail(f"no Docker engine answers ({error}); start one with scripts/docker-engine.sh")
    return client


@pytest.fixture(scope="session")
def test_images(engine: docker.DockerClient) -> None:
    config = stack_config(LIVE_STACK)
    for key in ("registry", "ui", "proxy"):
        image = json.loads(config[f"private-registry:{key}"])["image"]
        try:
            engine.images.get(image)
        except ImageNotFound:
            pytest.fail(f"test image {image} is missing; build it with images/build.sh")


def bring_up(config_file: Path, client: docker.DockerClient, tmp_dir: Path) -> LiveStack:
    result = realizer.up(config_file, client)
    ca_file = tmp_dir / f"{config_file.stem}-ca.crt"
    ca_file.write_text(result.outputs["caCertPem"])
    return LiveStack(config_file, result.outputs, stack_config(config_file), ca_file, client)


@contextlib.contextmanager
def changed_stack(stack: LiveStack, tmp_path: Path, **blocks: Any) -> Iterator[Path]:
    """The stack's file with some config blocks changed (a dict is merged into the block, any other value
    replaces the key; same stem: same stack, same state); the original config is brought back afterwards."""
    document = yaml.safe_load(stack.config_file.read_text())
    for block, values in blocks.items():
        key = f"private-registry:{block}"
        document["config"][key] = {**document["config"].get(key, {}), **values} if isinstance(values, dict) else values
    changed = tmp_path / stack.config_file.name
    changed.write_text(yaml.safe_dump(document))
    try:
        yield changed
    finally:
        restored = realizer.up(stack.config_file, stack.client)
        stack.outputs = restored.outputs
        stack.ca_file.write_text(restored.outputs["caCertPem"])


def remove_test_client_images(client: docker.DockerClient, hostname: str) -> None:
    """Images the tests built (labelled) and the tags they pushed or pulled; the engine outlives sessions."""
    for image in client.images.list(all=True, filters={"label": LIVE_STACK_LABEL}):
        with contextlib.suppress(DockerException):
            client.images.remove(image.id, force=True)
    for image in client.images.list():
        # Tags and digest references (an image pulled by digest has no tag) under the test registry's name.
        references = [*image.tags, *(image.attrs.get("RepoDigests") or [])]
        for reference in references:
            if reference.startswith(f"{hostname}:"):
                with contextlib.suppress(DockerException):
                    client.images.remove(reference)  # untag only: the test images themselves stay


@pytest.fixture(scope="session")
def stack(
    engine: docker.DockerClient, test_images: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveStack]:
    """The live stack from a clean slate (leftovers of any earlier run removed, data volume too)."""
    hostname = stack_config(LIVE_STACK)["private-registry:hostname"]
    realizer.down(LIVE_STACK, volumes=True, client=engine)
    remove_test_client_images(engine, hostname)
    live = bring_up(LIVE_STACK, engine, tmp_path_factory.mktemp("live"))
    yield live
    realizer.down(LIVE_STACK, volumes=True, client=engine)
    remove_test_client_images(engine, hostname)


@pytest.fixture(scope="session")
def api(stack: LiveStack) -> RegistryClient:
    """The registry API through our nginx, logged in, verified against the stack's CA (IP SAN 127.0.0.1)."""
    return RegistryClient(f"https://127.0.0.1:{stack.https_port}", auth=stack.login, verify=str(stack.ca_file))


@pytest.fixture(scope="session")
def direct(stack: LiveStack) -> RegistryClient:
    """The registry API straight at the registry's published port (plain HTTP on loopback), logged in."""
    return RegistryClient(f"http://127.0.0.1:{stack.registry_port}", auth=stack.login)


@pytest.fixture(scope="session")
def pushed() -> list[tuple[str, str]]:
    """(repository, manifest digest) of every image pushed in this session: the "nothing lost" check pulls each."""
    return []


@pytest.fixture(scope="session")
def docker_trusts_registry(stack: LiveStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """What the README tells users to do: the CA in <dockerCertsDir>/ca.crt, a hosts entry for the name, and
    `docker login` with a configured account."""
    certs_dir = Path(stack.outputs["dockerCertsDir"])
    certs_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(stack.ca_file, certs_dir / "ca.crt")
    # The docker CLI's credentials go to a config dir of the test session, not the machine's.
    docker_config = tmp_path_factory.mktemp("docker-config")
    previous = os.environ.get("DOCKER_CONFIG")
    os.environ["DOCKER_CONFIG"] = str(docker_config)
    try:
        with hosts_entry(stack.hostname, HOSTS_MARK):
            login = docker_login(stack.endpoint, *stack.login, docker_config)
            assert login.returncode == 0, login.stderr
            yield stack.endpoint
    finally:
        if previous is None:
            os.environ.pop("DOCKER_CONFIG", None)
        else:
            os.environ["DOCKER_CONFIG"] = previous
        shutil.rmtree(certs_dir, ignore_errors=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The Swarm tests last: leaving the Swarm they make breaks the DNS of containers that were already running
    (tests/live/swarm_engine.py), such as the session's live stack."""

    def makes_a_swarm(item: pytest.Item) -> bool:
        return item.path.parent == Path(__file__).parent and item.path.name in SWARM_TEST_MODULES

    swarm = [item for item in items if makes_a_swarm(item)]
    items[:] = [item for item in items if not makes_a_swarm(item)] + swarm


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.skipped and item.get_closest_marker("live"):
        # A live test that did not run proves nothing: count it as a failure, never as a pass.
        report.outcome = "failed"
        report.longrepr = f"live test skipped ({report.longrepr}); a skipped live test is a failure"
    if report.failed and item.get_closest_marker("live"):
        with contextlib.suppress(DockerException):
            client = docker.from_env()
            for found in client.containers.list(all=True, filters={"label": LIVE_STACK_LABEL}):
                logs = found.logs(tail=60).decode(errors="replace")
                report.sections.append((f"docker logs {found.name} ({found.status})", logs))
    return report
