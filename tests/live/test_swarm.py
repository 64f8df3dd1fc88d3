"""The stack as Swarm services (tests/live/stacks/swarm.yaml) on a single-node Swarm made on the test engine.

The engine is left as found: the test inits a Swarm only when the engine is not in one, and leaves it after.
The S3 store is moto (a plain container joined to the stack's attachable overlay network as s3-swarm).
This kernel has no IPVS, so the stack runs as it is built to: dnsrr endpoints and a host-mode proxy port.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import requests
import yaml
from docker.errors import APIError

from harness import realizer
from harness.attached import joining, remove_attached, start_s3_store
from harness.clients import wait_until
from harness.docker_provider import LIVE_STACK_LABEL
from harness.registry_api import RegistryClient, sha256_digest
from tests.live.conftest import STACKS_DIR, LiveStack, bring_up
from tests.live.swarm_engine import single_node_swarm

pytestmark = pytest.mark.live

STACK_FILE = STACKS_DIR / "swarm.yaml"
NETWORK = "private-registry-swarm-net"
REGISTRY_SERVICE = "private-registry-swarm-registry"
S3_NAME = "s3-swarm"  # no dots: moto reads a dotted Host as <bucket>.<endpoint>
S3_CONTAINER = "private-registry-swarm-s3"
S3_PORT = 18590
BUCKET = "swarm-registry"
ACCOUNT = ("ops", "swarm-stack-password-0123")
MIB = 1024 * 1024


def pinned(tmp: Path) -> Path:
    """The stack's file with the proxy and maintenance pinned to this Swarm's one node (swarm.edgeConstraints must
    name one node: the write-pause flags are on a volume of the proxy's node); same stem: same stack, same state."""
    return tmp / "pinned" / STACK_FILE.name


def pin_to_node(tmp: Path, engine: docker.DockerClient) -> Path:
    document = yaml.safe_load(STACK_FILE.read_text())
    node = engine.info()["Swarm"]["NodeID"]
    document["config"]["private-registry:swarm"] = {"edgeConstraints": [f"node.id=={node}"]}
    path = pinned(tmp)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document))
    return path


def changed_config(tmp: Path, **blocks: dict[str, Any]) -> Path:
    """The stack's file with some blocks changed (same stem: same stack, same state)."""
    document = yaml.safe_load(pinned(tmp).read_text())
    for block, values in blocks.items():
        key = f"private-registry:{block}"
        document["config"][key] = {**document["config"].get(key, {}), **values}
    changed = tmp / STACK_FILE.name
    changed.write_text(yaml.safe_dump(document))
    return changed


def running_tasks(client: docker.DockerClient, service: str) -> list[dict[str, Any]]:
    tasks = client.services.get(service).tasks(filters={"desired-state": "running"})
    return [task for task in tasks if task["Status"]["State"] == "running"]


@pytest.fixture(scope="module")
def swarm_stack(
    engine: docker.DockerClient, test_images: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveStack, RegistryClient, Path]]:
    tmp = tmp_path_factory.mktemp("swarm")
    with single_node_swarm(engine):
        # The store first: attached to the stack's network, it would keep the network from going.
        remove_attached(engine, S3_CONTAINER)
        realizer.down(STACK_FILE, volumes=True, client=engine)
        s3 = start_s3_store(engine, S3_CONTAINER, "swarm-s3", S3_PORT, (BUCKET,))
        with joining(engine, s3, NETWORK, [S3_NAME]):
            live = bring_up(pin_to_node(tmp, engine), engine, tmp)
        api = RegistryClient(f"https://127.0.0.1:{live.https_port}", auth=ACCOUNT, verify=str(live.ca_file))
        try:
            yield live, api, tmp
        finally:
            remove_attached(engine, S3_CONTAINER)
            realizer.down(STACK_FILE, volumes=True, client=engine)


def test_the_stack_runs_as_services_with_three_registry_tasks(
    swarm_stack: tuple[LiveStack, RegistryClient, Path], engine: docker.DockerClient
) -> None:
    live, _, _ = swarm_stack
    names = {service.name for service in engine.services.list(filters={"label": f"{LIVE_STACK_LABEL}=swarm"})}
    assert names == {
        "private-registry-swarm-registry",
        "private-registry-swarm-redis",
        "private-registry-swarm-proxy",
        "private-registry-swarm-maintenance",
    }
    assert len(running_tasks(engine, REGISTRY_SERVICE)) == 3
    assert engine.networks.get(NETWORK).attrs["Driver"] == "overlay"
    response = requests.get(
        f"https://127.0.0.1:{live.https_port}/v2/", auth=ACCOUNT, verify=str(live.ca_file), timeout=30
    )
    assert response.status_code == 200 and response.json() == {}
    assert live.outputs["registryUrl"] == "https://127.0.0.1:18443"
    assert live.outputs["maintenanceContainer"] == "private-registry-swarm-maintenance"


def test_push_and_pull_through_the_proxy(swarm_stack: tuple[LiveStack, RegistryClient, Path]) -> None:
    _, api, _ = swarm_stack
    layers = [os.urandom(12 * MIB), os.urandom(3 * MIB)]
    digest = api.push_image("swarm/app", "1", layers, chunk_size=4 * MIB)
    manifest = api.get_manifest("swarm/app", digest)
    assert manifest.status_code == 200 and sha256_digest(manifest.content) == digest
    for layer in layers:
        assert api.get_blob("swarm/app", sha256_digest(layer)).content == layer


def test_scaling_changes_only_the_registry_service(
    swarm_stack: tuple[LiveStack, RegistryClient, Path], engine: docker.DockerClient
) -> None:
    _, api, tmp = swarm_stack
    service_id = engine.services.get(REGISTRY_SERVICE).id
    for replicas, config_file in ((2, changed_config(tmp, registry={"replicas": 2})), (3, pinned(tmp))):
        result = realizer.up(config_file, engine)
        assert result.updated == ["docker:index/service:Service::registry-distribution-service"], result
        assert (result.created, result.replaced, result.deleted) == ([], [], []), result
        assert engine.services.get(REGISTRY_SERVICE).id == service_id
        wait_until(
            functools.partial(lambda n: len(running_tasks(engine, REGISTRY_SERVICE)) == n, replicas),
            60,
            f"{replicas} tasks",
        )
        assert api.get_manifest("swarm/app", "1").status_code == 200


def test_a_config_change_rolls_the_replicas_one_at_a_time_with_no_failed_pull(
    swarm_stack: tuple[LiveStack, RegistryClient, Path], engine: docker.DockerClient
) -> None:
    live, api, tmp = swarm_stack
    layer = os.urandom(2 * MIB)
    digest = api.push_image("swarm/loop", "1", [layer])
    failures: list[str] = []
    pulls = 0
    fewest_running = 3
    stop = threading.Event()

    def pull_loop() -> None:
        nonlocal pulls
        client = RegistryClient(f"https://127.0.0.1:{live.https_port}", auth=ACCOUNT, verify=str(live.ca_file))
        while not stop.is_set():
            try:
                manifest = client.get_manifest("swarm/loop", digest)
                blob = client.get_blob("swarm/loop", sha256_digest(layer))
                if manifest.status_code != 200 or blob.status_code != 200 or blob.content != layer:
                    failures.append(f"{manifest.status_code} {blob.status_code}")
            except requests.RequestException as error:
                failures.append(repr(error))
            pulls += 1

    def count_loop() -> None:
        nonlocal fewest_running
        while not stop.is_set():
            with contextlib.suppress(APIError):
                fewest_running = min(fewest_running, len(running_tasks(engine, REGISTRY_SERVICE)))
            time.sleep(0.2)

    before = {task["ID"] for task in running_tasks(engine, REGISTRY_SERVICE)}
    threads = [threading.Thread(target=pull_loop), threading.Thread(target=count_loop)]
    for thread in threads:
        thread.start()
    try:
        result = realizer.up(changed_config(tmp, registry={"logLevel": "debug"}), engine)
        # The provider's convergence check (as the realizer's) counts running tasks per slot: between two slots
        # of a rolling update every slot runs, and `up` may return before the last slot is replaced. Swarm's
        # own update status says when the update is done.
        wait_until(
            lambda: (
                (engine.api.inspect_service(REGISTRY_SERVICE).get("UpdateStatus") or {}).get("State") == "completed"
            ),
            240,
            "the rolling update completes",
            every=1,
        )
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert "docker:index/service:Service::registry-distribution-service" in result.updated, result
    after = {task["ID"] for task in running_tasks(engine, REGISTRY_SERVICE)}
    assert len(after) == 3 and not before & after, "every replica was replaced by a task with the new config"
    assert pulls > 20 and failures == [], f"{len(failures)} failed pulls of {pulls}: {failures[:5]}"
    assert fewest_running >= 3, f"start-first keeps every replica serving, yet only {fewest_running} ran at a time"
    restored = realizer.up(pinned(tmp), engine)
    assert "docker:index/service:Service::registry-distribution-service" in restored.updated
