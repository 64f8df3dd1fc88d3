"""The realizer's container diff, as pulumi-docker's: inputs its Update records in state only (waitTimeout,
destroyGraceSeconds, a healthcheck without replaceOnChanges, ...) leave the running container alone; every
other change, and a change named in replaceOnChanges, replaces it (delete first: DeleteBeforeReplace)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness import docker_provider, realizer

pytestmark = pytest.mark.unit

CONTAINER = realizer.CONTAINER
HEALTHCHECK = {"tests": ["CMD", "true"], "interval": "10s"}


class Engine:
    def __init__(self) -> None:
        self.log: list[str] = []
        self.alive: set[str] = set()

    def create(self, inputs: dict[str, Any]) -> dict[str, Any]:
        container_id = f"c{len(self.log)}"
        self.alive.add(container_id)
        self.log.append(f"create {container_id}")
        return {"id": container_id}

    def delete(self, container_id: str) -> None:
        self.alive.discard(container_id)
        self.log.append(f"delete {container_id}")


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Engine:
    fake = Engine()
    monkeypatch.setattr(realizer, "STATE_DIR", tmp_path)
    monkeypatch.setattr(docker_provider, "container", lambda client, inputs, stack: fake.create(inputs))
    monkeypatch.setattr(docker_provider, "delete_container", lambda client, cid, inputs: fake.delete(cid))
    monkeypatch.setattr(docker_provider, "container_exists", lambda client, cid: cid in fake.alive)
    return fake


def up(changes: dict[str, Any], options: dict[str, Any] | None = None) -> realizer.Realizer:
    real = realizer.Realizer(realizer.StackFile(Path("Pulumi.unit-containers.yaml")), client=object())
    inputs = {"name": "web", "image": "sha256:1", "wait": True, "waitTimeout": 120, "healthcheck": HEALTHCHECK}
    real.new_resource(CONTAINER, "web", {**inputs, **changes}, "", options or {})
    return real


@pytest.mark.parametrize(
    "change",
    [{"waitTimeout": 30}, {"destroyGraceSeconds": 10}, {"healthcheck": {**HEALTHCHECK, "interval": "5s"}}],
)
def test_a_state_only_input_updates_state_and_keeps_the_container(engine: Engine, change: dict[str, Any]) -> None:
    up({})
    again = up(change)
    assert engine.log == ["create c0"] and engine.alive == {"c0"}
    assert again.updated == [f"{CONTAINER}::web"] and not again.replaced
    stored = again.state[f"{CONTAINER}::web"]
    assert stored["id"] == "c0" and all(stored["inputs"][key] == value for key, value in change.items())


@pytest.mark.parametrize(
    ("change", "options"),
    [
        ({"healthcheck": {**HEALTHCHECK, "interval": "5s"}}, {"replaceOnChanges": ["healthcheck"]}),
        ({"image": "sha256:2"}, {}),
        ({"waitTimeout": 30, "image": "sha256:2"}, {}),
        ({"memory": 256}, {}),  # the provider's Update calls the API for it; the realizer replaces instead
    ],
)
def test_any_other_change_replaces_the_container_delete_first(
    engine: Engine, change: dict[str, Any], options: dict[str, Any]
) -> None:
    up({}, options)
    again = up(change, options)
    assert engine.log == ["create c0", "delete c0", "create c2"]
    assert again.replaced == [f"{CONTAINER}::web"] and not again.updated
