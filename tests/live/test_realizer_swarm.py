"""The realizer's Swarm resources on a real engine, driven through `Realizer.new_resource` and `prune` as the
mocks would drive them (not the whole program): an overlay network, configs, a secret and two services.

`web` (nginx, dnsrr, a config as its page, a secret, a healthcheck, convergeConfig) sits behind `edge` (nginx
publishing port PORT in host mode, proxying to `web` by its dnsrr name). Host mode and dnsrr because this
kernel has no IPVS: the routing mesh and VIPs cannot work here (docs in ../shared/reference). A host-mode
port also binds once per node, so the replicated service is the one without it.

The engine is left as it was found: it is made a single-node swarm only if it was none, and leaves it then.
"""

from __future__ import annotations

import base64
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from docker.errors import ImageNotFound, NotFound

from harness import docker_provider, realizer, swarm_provider
from harness.clients import wait_until
from harness.docker_provider import LIVE_STACK_LABEL
from harness.program import ProgramRun
from tests.live.swarm_engine import single_node_swarm

pytestmark = pytest.mark.live

STACK = "swarm-live"
STACK_FILE = Path(f"Pulumi.{STACK}.yaml")  # names the stack and its state file only; no program runs
IMAGE = "private-registry-test/nginx:1.22"
PORT = 21080  # below the ephemeral range, used by no other test
NETWORK = "docker:index/network:Network"
EDGE_CONF = """server {
    listen 80;
    location = /healthz { return 200 "ok\\n"; }
    location / {
        resolver 127.0.0.11 valid=1s ipv6=off;
        set $web swarm-live-web;
        proxy_pass http://$web:80;
    }
}
"""


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture(scope="module")
def swarm(engine: docker.DockerClient) -> Iterator[docker.DockerClient]:
    try:
        engine.images.get(IMAGE)
    except ImageNotFound:
        pytest.fail(f"test image {IMAGE} is missing; build it with images/build.sh")
    with single_node_swarm(engine):
        realizer.down(STACK_FILE, client=engine)
        try:
            yield engine
        finally:
            realizer.down(STACK_FILE, client=engine)


def declare(
    real: realizer.Realizer, page: str, replicas: int, env: dict[str, str], options: dict[str, Any]
) -> dict[str, str]:
    """One `pulumi up` worth of registrations, in dependency order; returns the ids."""
    ids: dict[str, str] = {}
    stack_label = [{"label": "org.example.app", "value": STACK}]
    ids["net"], _ = real.new_resource(
        NETWORK, "net", {"name": f"{STACK}-net", "driver": "overlay", "attachable": True, "labels": stack_label}, "", {}
    )
    ids["page"], _ = real.new_resource(
        swarm_provider.SERVICE_CONFIG, "page", {"name": f"{STACK}-page-{page}", "data": b64(f"page {page}\n")}, "", {}
    )
    ids["edge-conf"], _ = real.new_resource(
        swarm_provider.SERVICE_CONFIG, "edge-conf", {"name": f"{STACK}-edge-conf", "data": b64(EDGE_CONF)}, "", {}
    )
    ids["token"], _ = real.new_resource(
        swarm_provider.SECRET, "token", {"name": f"{STACK}-token", "data": b64("s3cret"), "labels": stack_label}, "", {}
    )
    health = {"interval": "1s", "timeout": "2s", "retries": 3.0}
    converge = {"delay": "1s", "timeout": "90s"}
    web = {
        "name": f"{STACK}-web",
        "labels": stack_label,
        "mode": {"replicated": {"replicas": float(replicas)}},
        "taskSpec": {
            "containerSpec": {
                "image": IMAGE,
                "env": env,
                "stopGracePeriod": "2s",
                "configs": [
                    {
                        "configId": ids["page"],
                        "configName": f"{STACK}-page-{page}",
                        "fileName": "/usr/share/nginx/html/page.txt",
                    }
                ],
                "secrets": [
                    {"secretId": ids["token"], "secretName": f"{STACK}-token", "fileName": "token", "fileMode": 0o400}
                ],
                "healthcheck": {"tests": ["CMD", "curl", "-fsS", "http://localhost/page.txt"], **health},
            },
            "networksAdvanceds": [{"id": ids["net"], "aliases": ["web"]}],
            "restartPolicy": {"condition": "any", "delay": "1s"},
        },
        "updateConfig": {"parallelism": 0.0, "monitor": "2s"},
        "endpointSpec": {"mode": "dnsrr"},
        "convergeConfig": converge,
    }
    ids["web"], _ = real.new_resource(swarm_provider.SERVICE, "web", web, "", options)
    edge = {
        "name": f"{STACK}-edge",
        "taskSpec": {
            "containerSpec": {
                "image": IMAGE,
                "stopGracePeriod": "2s",
                "configs": [
                    {
                        "configId": ids["edge-conf"],
                        "configName": f"{STACK}-edge-conf",  # swarm refuses a reference without it
                        "fileName": "/etc/nginx/conf.d/default.conf",
                    }
                ],
                "healthcheck": {"tests": ["CMD", "curl", "-fsS", "http://localhost/healthz"], **health},
            },
            "networksAdvanceds": [{"id": ids["net"]}],
        },
        "mode": {"replicated": {"replicas": 1.0}},
        "endpointSpec": {
            "mode": "dnsrr",
            "ports": [{"targetPort": 80.0, "publishedPort": float(PORT), "publishMode": "host"}],
        },
        "convergeConfig": converge,
    }
    ids["edge"], _ = real.new_resource(swarm_provider.SERVICE, "edge", edge, "", {})
    return ids


def new_run(engine: docker.DockerClient) -> realizer.Realizer:
    return realizer.Realizer(realizer.StackFile(STACK_FILE), engine)


def page_through_edge() -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/page.txt", timeout=5) as response:
        return str(response.read().decode())


def serves(expected: str) -> bool:
    try:
        return all(page_through_edge() == expected for _ in range(6))  # every web replica, round robin
    except OSError:
        return False


def running_tasks(engine: docker.DockerClient, service_id: str) -> int:
    tasks = engine.api.tasks(filters={"service": service_id, "desired-state": "running"})
    return sum(1 for task in tasks if task["Status"]["State"] == "running")


def web_containers(engine: docker.DockerClient) -> list[Any]:
    found: list[Any] = engine.containers.list(filters={"label": f"com.docker.swarm.service.name={STACK}-web"})
    return found


def test_swarm_services_configs_and_secrets_follow_the_provider(swarm: docker.DockerClient) -> None:
    engine = swarm
    # 1. Create: everything new, both services converged (running = healthy for a task with a healthcheck).
    first = new_run(engine)
    ids = declare(first, "v1", 2, {"GREETING": "hello"}, {})
    first.prune(ProgramRun())
    assert len(first.created) == 6 and not first.replaced and not first.updated
    assert running_tasks(engine, ids["web"]) == 2 and running_tasks(engine, ids["edge"]) == 1
    wait_until(lambda: serves("page v1\n"), 30, f"edge on 127.0.0.1:{PORT} serves web's config v1")
    for container in web_containers(engine):
        assert container.exec_run("cat /run/secrets/token").output == b"s3cret"
    web = engine.api.inspect_service(ids["web"])
    assert web["Spec"]["Labels"][LIVE_STACK_LABEL] == STACK
    assert web["Spec"]["EndpointSpec"]["Mode"] == "dnsrr"

    # 2. An updatable change (env) updates the service in place: same id, tasks rolled.
    second = new_run(engine)
    after = declare(second, "v1", 2, {"GREETING": "bonjour"}, {})
    second.prune(ProgramRun())
    assert after["web"] == ids["web"] and second.updated == [f"{swarm_provider.SERVICE}::web"] and not second.replaced
    assert all("GREETING=bonjour" in c.attrs["Config"]["Env"] for c in web_containers(engine))
    assert len(web_containers(engine)) == 2

    # 3. A new replica count is an in-place update too (`mode` is ForceNew only on the block's item count):
    #    the same service, scaled.
    third = new_run(engine)
    replaced = declare(third, "v1", 3, {"GREETING": "bonjour"}, {})
    third.prune(ProgramRun())
    assert replaced["web"] == ids["web"] and third.updated == [f"{swarm_provider.SERVICE}::web"] and not third.replaced
    assert running_tasks(engine, ids["web"]) == 3
    wait_until(lambda: serves("page v1\n"), 30, "edge serves the scaled web service")

    # 4. A new config (content-derived name): created first, the service moves to it in place, and the old
    #    config is deleted only at the end (prune), after no task uses it.
    fifth = new_run(engine)
    moved = declare(fifth, "v2", 3, {"GREETING": "bonjour"}, {"deleteBeforeReplace": True})
    assert moved["page"] != ids["page"] and moved["web"] == replaced["web"]
    assert fifth.replaced == [f"{swarm_provider.SERVICE_CONFIG}::page"]
    assert fifth.updated == [f"{swarm_provider.SERVICE}::web"]
    assert engine.api.inspect_config(ids["page"])["Spec"]["Name"] == f"{STACK}-page-v1"  # still there
    fifth.prune(ProgramRun())
    with pytest.raises(NotFound):
        engine.api.inspect_config(ids["page"])
    wait_until(lambda: serves("page v2\n"), 30, "edge serves web's config v2 from every replica")

    # 5. Nothing declared any more: prune deletes services, then the network, configs and secret.
    last = new_run(engine)
    gone = last.prune(ProgramRun())
    assert set(gone[:2]) == {f"{swarm_provider.SERVICE}::edge", f"{swarm_provider.SERVICE}::web"}  # services first
    label = {"label": f"{LIVE_STACK_LABEL}={STACK}"}
    assert not engine.api.services(filters=label) and not engine.api.configs(filters=label)
    assert not engine.api.secrets(filters=label) and not engine.networks.list(filters=label)
    assert not serves("page v2\n")


def test_leftovers_of_a_lost_run_are_removed_services_first(swarm: docker.DockerClient) -> None:
    """Objects labelled with the stack that the state does not know (a crashed run) go before the next `up`;
    objects of other stacks stay."""
    engine = swarm
    net = docker_provider.network(engine, {"name": f"{STACK}-lost-net", "driver": "overlay", "attachable": True}, STACK)
    config = swarm_provider.service_config(engine, {"name": f"{STACK}-lost-conf", "dataRaw": "x"}, STACK, "conf")
    other = swarm_provider.secret(engine, {"name": f"{STACK}-other-stack", "data": b64("y")}, "another-stack", "s")
    service = swarm_provider.create_service(
        engine,
        {
            "name": f"{STACK}-lost",
            "taskSpec": {"containerSpec": {"image": IMAGE}, "networksAdvanceds": [{"id": net["id"]}]},
            "convergeConfig": {"delay": "0s", "timeout": "60s"},
        },
        STACK,
        "lost",
    )
    try:
        removed = new_run(engine).remove_leftovers()
        assert removed == [f"service {STACK}-lost", f"network {STACK}-lost-net", f"config {STACK}-lost-conf"]
        for inspect, object_id in [
            (engine.api.inspect_service, service["id"]),
            (engine.api.inspect_network, net["id"]),
            (engine.api.inspect_config, config["id"]),
        ]:
            with pytest.raises(NotFound):
                inspect(object_id)
        assert engine.api.inspect_secret(other["id"])["Spec"]["Name"] == f"{STACK}-other-stack"
    finally:
        swarm_provider.delete_secret(engine, other["id"])
