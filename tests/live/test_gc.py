"""Garbage collection and tag retention on a live stack, with real clients: space comes back, writes pause while
reads go on, no stale cache after a collection, retention deletes exactly what its rules select, a killed run
loses nothing, and a failed run shows in the container's health."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
import requests
from docker.errors import ImageNotFound
from prometheus_client.parser import text_string_to_metric_families

from harness import realizer
from harness.clients import docker_login, run, wait_until
from harness.docker_provider import LIVE_STACK_LABEL
from harness.registry_api import RegistryClient, sha256_digest
from tests.live.conftest import STACKS_DIR, LiveStack, bring_up, changed_stack, remove_test_client_images
from tests.live.integrity import assert_nothing_lost, volume_root

pytestmark = pytest.mark.live

GC_STACK = STACKS_DIR / "gc.yaml"
DATA_DIR = "/var/lib/registry"
FLAGS_DIR = "/run/registry-maintenance"


@dataclass
class GcStack:
    live: LiveStack
    api: RegistryClient
    docker_config: Path
    certs_dir: Path

    @property
    def endpoint(self) -> str:
        return self.live.endpoint

    def maintenance(self) -> subprocess.CompletedProcess[str]:
        """The operator's command from the stack's outputs: one run now; output also in the container's log."""
        command = str(self.live.outputs["gcRunCommand"]).split()
        return subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)

    def volume_usage(self) -> int:
        """Bytes the data volume uses, by `du` inside a container on the volume (the maintenance container)."""
        output = self.live.container("maintenance").exec_run(["du", "-sk", DATA_DIR]).output.decode()
        return int(output.split()[0]) * 1024

    def docker(self, *args: str, timeout: int = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run("docker", "--config", str(self.docker_config), *args, timeout=timeout, check=check)

    def skopeo_copy(self, reference: str, destination: Path) -> dict[str, object]:
        """A clean client: skopeo copies every blob to a directory (verifying digests) and inspects it."""
        user, password = self.live.login
        run(
            "skopeo", "copy", "--src-cert-dir", str(self.certs_dir), "--src-creds", f"{user}:{password}",
            f"docker://{self.endpoint}/{reference}", f"dir:{destination}",
        )  # fmt: skip
        inspected: dict[str, object] = json.loads(run("skopeo", "inspect", f"dir:{destination}").stdout)
        return inspected


@pytest.fixture(scope="module")
def gc_stack(
    engine: docker.DockerClient, test_images: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GcStack]:
    """Accounts on, no schedule (the tests run it), writes paused 3 s before each collection."""
    realizer.down(GC_STACK, volumes=True, client=engine)
    tmp = tmp_path_factory.mktemp("gc")
    live = bring_up(GC_STACK, engine, tmp)
    remove_test_client_images(engine, "127.0.0.1")
    certs = tmp / "certs"
    certs.mkdir()
    shutil.copy(live.ca_file, certs / "ca.crt")
    docker_config = tmp / "docker-config"
    docker_config.mkdir()
    login = docker_login(live.endpoint, *live.login, docker_config)
    assert login.returncode == 0, login.stderr
    api = RegistryClient(f"https://127.0.0.1:{live.https_port}", auth=live.login, verify=str(live.ca_file))
    yield GcStack(live, api, docker_config, certs)
    realizer.down(GC_STACK, volumes=True, client=engine)
    remove_test_client_images(engine, "127.0.0.1")


def layer(mib: float) -> bytes:
    return os.urandom(int(mib * 1024 * 1024))


def digest_of(api: RegistryClient, repository: str, reference: str) -> str:
    response = api.get_manifest(repository, reference)
    response.raise_for_status()
    return str(response.headers["Docker-Content-Digest"])


def assert_pulls_intact(api: RegistryClient, repository: str, digest: str) -> None:
    """The manifest and every blob it names come back with the right digests."""
    manifest = api.get_manifest(repository, digest)
    assert manifest.status_code == 200, (repository, digest, manifest.text)
    assert sha256_digest(manifest.content) == digest
    document = manifest.json()
    for descriptor in [document["config"], *document["layers"]]:
        blob = api.get_blob(repository, descriptor["digest"])
        assert blob.status_code == 200, (repository, descriptor["digest"], blob.status_code)
        assert sha256_digest(blob.content) == descriptor["digest"]


def build_two_layer_image(engine: docker.DockerClient, context: Path, tag: str) -> None:
    """FROM scratch with two layers of random bytes (X and Y); no base image to pull."""
    context.mkdir(parents=True, exist_ok=True)
    (context / "x.bin").write_bytes(layer(3))
    (context / "y.bin").write_bytes(layer(2))
    (context / "Dockerfile").write_text("FROM scratch\nCOPY x.bin /x.bin\nCOPY y.bin /y.bin\n")
    engine.images.build(path=str(context), tag=tag, pull=False, rm=True, labels={LIVE_STACK_LABEL: "gc"})


def logs_since(container: docker.models.containers.Container, since: float) -> str:
    return str(container.logs(since=int(since)).decode())


# ---- space comes back ----


def test_space_comes_back_and_kept_images_still_pull(
    gc_stack: GcStack, engine: docker.DockerClient, tmp_path: Path
) -> None:
    api = gc_stack.api
    build_two_layer_image(engine, tmp_path / "context", "private-registry-gc/space-kept:1")
    remote = f"{gc_stack.endpoint}/space/kept:1"
    engine.images.get("private-registry-gc/space-kept:1").tag(remote)
    gc_stack.docker("push", remote)
    kept = digest_of(api, "space/kept", "1")
    deleted = [api.push_image(f"space/gone-{index}", "1", [layer(8)]) for index in range(2)]
    for index, digest in enumerate(deleted):
        assert api.request("DELETE", f"/v2/space/gone-{index}/manifests/{digest}").status_code == 202
    before = gc_stack.volume_usage()
    started = time.time()

    result = gc_stack.maintenance()

    assert result.returncode == 0, result.stdout + result.stderr
    freed = before - gc_stack.volume_usage()
    # The two deleted 8 MiB layers (their configs and manifests are a few hundred bytes).
    assert 16 * 2**20 <= freed <= 16 * 2**20 + 512 * 1024, freed
    logged = logs_since(gc_stack.live.container("maintenance"), started - 1)
    assert "blob eligible for deletion" in logged
    assert f"freed {freed} bytes" in logged
    assert "run finished; writes resumed" in logged
    # The operator's terminal got the same report.
    assert "run finished; writes resumed" in result.stdout
    # And Prometheus gets the figures from the proxy's metrics listener.
    scraped = gc_stack.live.container("proxy").exec_run(["curl", "-fsS", "http://127.0.0.1:9113/maintenance/metrics"])
    assert scraped.exit_code == 0, scraped.output
    figures = {
        sample.name: sample.value
        for family in text_string_to_metric_families(scraped.output.decode())
        for sample in family.samples
    }
    assert figures["registry_maintenance_last_run_success"] == 1
    assert figures["registry_maintenance_last_run_freed_bytes"] == freed
    assert figures["registry_maintenance_last_run_deleted_blobs"] >= 2
    assert abs(figures["registry_maintenance_last_run_timestamp_seconds"] - time.time()) < 120

    assert_pulls_intact(api, "space/kept", kept)
    inspected = gc_stack.skopeo_copy(f"space/kept@{kept}", tmp_path / "kept")
    assert inspected["Digest"] == kept
    for reference in ("private-registry-gc/space-kept:1", remote):  # the pull below must download every layer
        with contextlib.suppress(ImageNotFound):
            engine.images.remove(reference, force=True)
    gc_stack.docker("pull", f"{gc_stack.endpoint}/space/kept@{kept}")
    for index, digest in enumerate(deleted):
        assert api.get_manifest(f"space/gone-{index}", digest).status_code == 404


# ---- writes pause, reads go on ----


def test_writes_pause_while_reads_and_the_ui_go_on(
    gc_stack: GcStack, engine: docker.DockerClient, tmp_path: Path
) -> None:
    api = gc_stack.api
    kept = api.push_image("pause/kept", "1", [layer(2)])
    blob = api.get_manifest("pause/kept", kept).json()["layers"][0]["digest"]
    reads: list[tuple[str, int]] = []
    done = threading.Event()

    def read_loop() -> None:
        session = RegistryClient(api.base, auth=api.auth, verify=api.verify)
        while not done.is_set():
            reads.append(("manifest", session.get_manifest("pause/kept", kept).status_code))
            reads.append(("blob", session.get_blob("pause/kept", blob).status_code))
            reads.append(("catalog", session.request("GET", "/v2/_catalog").status_code))
            reads.append(("ui", session.request("GET", "/").status_code))

    maintenance: list[subprocess.CompletedProcess[str]] = []
    gc_thread = threading.Thread(target=lambda: maintenance.append(gc_stack.maintenance()))
    readers = threading.Thread(target=read_loop)
    readers.start()
    gc_thread.start()
    refused: list[requests.Response] = []

    def write_refused() -> bool:
        response = api.start_upload("pause/new")
        if response.status_code == 503:
            refused.append(response)
            return True
        return False

    wait_until(write_refused, 30, "a write refused while the run pauses writes", every=0.2)
    plain = requests.post(
        f"http://127.0.0.1:{gc_stack.live.registry_port}/v2/pause/new/blobs/uploads/", auth=api.auth, timeout=30
    )
    delete = api.request("DELETE", f"/v2/pause/kept/manifests/{kept}")
    gc_thread.join(timeout=300)
    done.set()
    readers.join(timeout=60)

    assert maintenance and maintenance[0].returncode == 0, maintenance
    answer = refused[0]
    assert answer.headers["Retry-After"].isdigit()
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.headers["Docker-Distribution-Api-Version"] == "registry/2.0"
    assert answer.json()["errors"][0]["code"] == "UNAVAILABLE"
    # The plain port and deletes pause too: nothing writes around the proxy.
    assert (plain.status_code, delete.status_code) == (503, 503)
    assert len(reads) >= 8, reads
    assert {status for _, status in reads} == {200}, [read for read in reads if read[1] != 200]
    # After the run, writes work again: a real push, pulled back by digest.
    tag = "private-registry-gc/after-pause:1"
    build_two_layer_image(engine, tmp_path / "context", tag)
    remote = f"{gc_stack.endpoint}/pause/after:1"
    engine.images.get(tag).tag(remote)
    gc_stack.docker("push", remote)
    assert_pulls_intact(api, "pause/after", digest_of(api, "pause/after", "1"))
    assert_pulls_intact(api, "pause/kept", kept)


def test_a_push_under_way_when_writes_pause_ends_intact(
    gc_stack: GcStack, engine: docker.DockerClient, tmp_path: Path
) -> None:
    """docker push started just after the pause begins: it retries the 503s; the push either succeeds by itself
    once writes resume, or fails cleanly and succeeds when run again. Either way the image pulls intact."""
    tag = "private-registry-gc/under-way:1"
    build_two_layer_image(engine, tmp_path / "context", tag)
    remote = f"{gc_stack.endpoint}/underway/app:1"
    engine.images.get(tag).tag(remote)
    maintenance: list[subprocess.CompletedProcess[str]] = []
    gc_thread = threading.Thread(target=lambda: maintenance.append(gc_stack.maintenance()))
    gc_thread.start()
    wait_until(lambda: gc_stack.api.start_upload("underway/probe").status_code == 503, 30, "writes paused", 0.2)

    first = gc_stack.docker("push", remote, check=False)
    gc_thread.join(timeout=300)
    assert maintenance and maintenance[0].returncode == 0
    if first.returncode != 0:
        assert "503" in first.stderr + first.stdout or "unavailable" in (first.stderr + first.stdout).lower()
        gc_stack.docker("push", remote)
    digest = digest_of(gc_stack.api, "underway/app", "1")
    assert_pulls_intact(gc_stack.api, "underway/app", digest)
    inspected = gc_stack.skopeo_copy(f"underway/app@{digest}", tmp_path / "copy")
    assert inspected["Digest"] == digest


def test_writes_pause_only_for_the_current_flags(gc_stack: GcStack) -> None:
    """nginx refuses writes only while a flag of the current 100-second span exists: flags a killed run left
    behind stop counting by themselves."""
    maintenance = gc_stack.live.container("maintenance")
    span = int(time.time()) // 100
    try:
        maintenance.exec_run(
            ["touch", f"{FLAGS_DIR}/writes-paused-{span - 2}", f"{FLAGS_DIR}/writes-paused-{span - 1}"]
        )
        assert gc_stack.api.start_upload("flags/app").status_code == 202
        maintenance.exec_run(["touch", f"{FLAGS_DIR}/writes-paused-{span}", f"{FLAGS_DIR}/writes-paused-{span + 1}"])
        assert gc_stack.api.start_upload("flags/app").status_code == 503
        assert gc_stack.api.get_manifest("flags/app", "none").status_code == 404  # reads still reach the registry
    finally:
        maintenance.exec_run(["sh", "-c", f"rm -f {FLAGS_DIR}/writes-paused-*"])
    assert gc_stack.api.start_upload("flags/app").status_code == 202


# ---- no stale cache ----


def test_a_layer_collected_away_is_uploaded_again_on_the_next_push(
    gc_stack: GcStack, engine: docker.DockerClient, tmp_path: Path
) -> None:
    """push A (layers X, Y), delete A, collect, push A again: the registry must not claim X and Y still exist,
    and A pulls intact by digest on a clean client."""
    api = gc_stack.api
    tag = "private-registry-gc/stale:1"
    build_two_layer_image(engine, tmp_path / "context", tag)
    remote = f"{gc_stack.endpoint}/stale/app:1"
    engine.images.get(tag).tag(remote)
    gc_stack.docker("push", remote)
    digest = digest_of(api, "stale/app", "1")
    layers = [item["digest"] for item in api.get_manifest("stale/app", digest).json()["layers"]]
    assert len(layers) == 2
    for blob in layers:  # warm whatever cache there is
        assert api.head_blob("stale/app", blob).status_code == 200
    assert api.request("DELETE", f"/v2/stale/app/manifests/{digest}").status_code == 202

    assert gc_stack.maintenance().returncode == 0

    for blob in layers:
        assert api.head_blob("stale/app", blob).status_code == 404, "the registry answered from a stale cache"
    pushed = gc_stack.docker("push", remote)
    assert "Layer already exists" not in pushed.stdout
    assert digest_of(api, "stale/app", "1") == digest
    assert_pulls_intact(api, "stale/app", digest)
    inspected = gc_stack.skopeo_copy(f"stale/app@{digest}", tmp_path / "clean-client")
    assert inspected["Digest"] == digest
    for blob in layers:
        data = (tmp_path / "clean-client" / blob.removeprefix("sha256:")).read_bytes()
        assert hashlib.sha256(data).hexdigest() == blob.removeprefix("sha256:")


# ---- retention ----


RULES = {"rules": [{"repositories": ["retained/*"], "keepLast": 2, "keepTags": ["v*"]}]}
"""The gc stack's retention rules (tests/live/stacks/gc.yaml)."""


def push_tags(api: RegistryClient, repository: str, tags: list[str]) -> dict[str, str]:
    """One image per tag, one second apart (retention orders tags by push time, to the second)."""
    digests = {}
    for tag in tags:
        digests[tag] = api.push_image(repository, tag, [layer(0.5)])
        time.sleep(1.1)
    return digests


def retention_lines(log: str, verb: str) -> set[str]:
    """The repository:tag of each 'retention: <verb> ...' line."""
    found = set()
    for line in log.splitlines():
        marker = f"retention: {verb} "
        if marker in line:
            words = line.split(marker, 1)[1].split()
            found.add(words[1] if words[0] == "tag" else words[0])
    return found


def test_retention_dry_run_lists_what_the_real_run_deletes(gc_stack: GcStack, tmp_path: Path) -> None:
    """Rule for retained/*: keep the 2 most recently pushed tags and every v* tag; other repositories untouched."""
    api = gc_stack.api
    digests = push_tags(api, "retained/app", ["old-1", "old-2", "v1.0", "new-1", "new-2"])
    # A tag the rule drops that points to the manifest of a kept tag: only the tag goes.
    shared = api.put_manifest("retained/app", "alias-old", api.get_manifest("retained/app", "new-2").json())
    assert shared.status_code == 201
    # Pushed last, it is made the oldest tag: its link file's time is the push time retention reads.
    link = f"{DATA_DIR}/docker/registry/v2/repositories/retained/app/_manifests/tags/alias-old/current/link"
    gc_stack.live.container("maintenance").exec_run(["touch", "-d", "2020-01-01 00:00:00", link])
    other = push_tags(api, "elsewhere/app", ["a", "b", "c"])
    expected_gone = {"retained/app:old-1", "retained/app:old-2", "retained/app:alias-old"}

    started = time.time()
    dry = gc_stack.maintenance()
    assert dry.returncode == 0, dry.stdout
    assert retention_lines(dry.stdout, "would delete") == expected_gone
    assert retention_lines(dry.stdout, "deleted") == set()
    tags = set(api.tags("retained/app").json()["tags"])
    assert tags == {"old-1", "old-2", "v1.0", "new-1", "new-2", "alias-old"}

    with changed_stack(gc_stack.live, tmp_path, gc={"retention": {**RULES, "dryRun": False}}) as changed:
        realizer.up(changed, gc_stack.live.client)
        real = gc_stack.maintenance()
        assert real.returncode == 0, real.stdout
        assert retention_lines(real.stdout, "deleted") == expected_gone
        assert set(api.tags("retained/app").json()["tags"]) == {"v1.0", "new-1", "new-2"}
        for tag in ("old-1", "old-2"):
            assert api.get_manifest("retained/app", digests[tag]).status_code == 404
        for tag in ("v1.0", "new-1", "new-2"):
            assert_pulls_intact(api, "retained/app", digests[tag])
        for digest in other.values():
            assert_pulls_intact(api, "elsewhere/app", digest)
        assert set(api.tags("elsewhere/app").json()["tags"]) == {"a", "b", "c"}
        logged = logs_since(gc_stack.live.container("maintenance"), started - 1)
        assert "retention: deleted retained/app:old-1" in logged


# ---- a killed run, a failed run ----


def plant_garbage(root: Path, count: int) -> list[Path]:
    """Blobs no manifest references, written straight into the volume (content-addressed, as the registry
    stores them): enough for the sweep to take seconds."""
    planted = []
    for index in range(count):
        content = f"garbage {index}\n".encode()
        hex_digest = hashlib.sha256(content).hexdigest()
        directory = root / "blobs" / "sha256" / hex_digest[:2] / hex_digest
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "data").write_bytes(content)
        planted.append(directory)
    return planted


def test_a_run_killed_midway_loses_no_referenced_blob(gc_stack: GcStack, engine: docker.DockerClient) -> None:
    api = gc_stack.api
    kept = [(f"killed/keep-{index}", api.push_image(f"killed/keep-{index}", "1", [layer(1)])) for index in range(3)]
    volume = f"private-registry-{GC_STACK.stem}-registry-data"
    planted = plant_garbage(volume_root(engine, volume), 20000)
    maintenance = gc_stack.live.container("maintenance")
    started = time.time()
    runner = threading.Thread(target=gc_stack.maintenance)
    runner.start()
    wait_until(
        lambda: sum(not path.exists() for path in planted[:200]) > 0, 120, "the sweep deletes garbage", every=0.1
    )
    maintenance.kill()
    runner.join(timeout=60)
    log = logs_since(maintenance, started - 1)
    remaining = sum((path / "data").exists() for path in planted)
    assert "run finished" not in log and 0 < remaining < len(planted), (remaining, log[-2000:])

    maintenance.start()  # what restarting it (or the next `pulumi up`) does: stale flags and lock cleared
    wait_until(lambda: api.start_upload("killed/after").status_code == 202, 30, "writes resume after the restart")
    for repository, digest in kept:
        assert_pulls_intact(api, repository, digest)
    assert_nothing_lost(engine, volume, api, kept)
    finished = gc_stack.maintenance()
    assert finished.returncode == 0, finished.stdout
    # Every planted blob is gone (a sweep killed inside one deletion may leave that blob's empty directory,
    # which the registry never lists: it names blobs by their data files).
    assert not [path for path in planted if (path / "data").exists()]
    assert_nothing_lost(engine, volume, api, kept)


def health(container: docker.models.containers.Container) -> str:
    container.reload()
    return str(container.attrs["State"]["Health"]["Status"])


def test_a_failed_run_exits_non_zero_and_shows_unhealthy_until_a_run_succeeds(gc_stack: GcStack) -> None:
    maintenance = gc_stack.live.container("maintenance")
    blobs = f"{DATA_DIR}/docker/registry/v2/blobs"
    # Root without capabilities cannot read a directory it made unreadable: the collection fails.
    maintenance.exec_run(["chmod", "000", blobs])
    try:
        failed = gc_stack.maintenance()
    finally:
        maintenance.exec_run(["chmod", "755", blobs])
    assert failed.returncode == 1, failed.stdout
    assert "run FAILED" in failed.stdout
    wait_until(lambda: health(maintenance) == "unhealthy", 60, "docker ps shows the maintenance unhealthy")
    assert gc_stack.api.start_upload("failed/after").status_code == 202  # writes resumed all the same

    assert gc_stack.maintenance().returncode == 0
    wait_until(lambda: health(maintenance) == "healthy", 60, "healthy again after a run succeeds")


# ---- the schedule ----


def test_the_schedule_runs_it_at_the_configured_minute_of_the_hosts_clock(gc_stack: GcStack, tmp_path: Path) -> None:
    """A schedule two minutes ahead of the host's clock (the container reads the host's /etc/localtime): the run
    starts in that minute, by itself."""
    maintenance = gc_stack.live.container("maintenance")
    host_now = time.localtime()
    container_now = maintenance.exec_run(["date", "+%H:%M"]).output.decode().strip()
    assert container_now in {time.strftime("%H:%M", host_now), time.strftime("%H:%M", time.localtime(time.time() + 5))}
    target = time.localtime(time.time() + 120)
    schedule = f"{target.tm_min} {target.tm_hour} * * *"
    with changed_stack(gc_stack.live, tmp_path, gc={"schedule": schedule}) as changed:
        realizer.up(changed, gc_stack.live.client)
        scheduled = gc_stack.live.container("maintenance")
        assert f"scheduled at '{schedule}'" in scheduled.logs().decode()
        wait_until(lambda: "run finished" in scheduled.logs().decode(), 240, "the scheduled run", every=2)
        log = scheduled.logs().decode()
        started = next(line for line in log.splitlines() if "run started" in line)
        assert started[11:16] == f"{target.tm_hour:02d}:{target.tm_min:02d}", started
