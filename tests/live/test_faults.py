"""Faults injected on purpose; each ends with the "nothing lost" check (tests/live/integrity.py)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import requests
from docker.errors import NotFound

from harness import realizer
from harness.clients import run, wait_until
from harness.docker_provider import LIVE_STACK_LABEL
from harness.registry_api import RegistryClient, sha256_digest
from tests.live.conftest import STACKS_DIR, LiveStack, bring_up
from tests.live.integrity import assert_nothing_lost, volume_root

pytestmark = pytest.mark.live

VOLUME = "private-registry-live-registry-data"
LAYER_MB = 150


def build_random_image(engine: docker.DockerClient, tag: str, context: Path, megabytes: int) -> None:
    context.mkdir(parents=True, exist_ok=True)
    with (context / "layer.bin").open("wb") as layer:
        for _ in range(megabytes):
            layer.write(os.urandom(1024 * 1024))
    (context / "Dockerfile").write_text("FROM private-registry-test/nginx:1.22\nCOPY layer.bin /layer.bin\n")
    engine.images.build(path=str(context), tag=tag, pull=False, rm=True, labels={LIVE_STACK_LABEL: "live"})


def crash(container: docker.models.containers.Container) -> int:
    """SIGKILL the container's main process from the host (a crash, not `docker stop`); return the old restart count."""
    container.reload()
    restarts = int(container.attrs["RestartCount"])
    os.kill(int(container.attrs["State"]["Pid"]), signal.SIGKILL)
    return restarts


def restarted_on_its_own(container: docker.models.containers.Container, restarts_before: int) -> bool:
    container.reload()
    return container.status == "running" and int(container.attrs["RestartCount"]) > restarts_before


def upload_in_progress(engine: docker.DockerClient, repo: str) -> bool:
    uploads = volume_root(engine, VOLUME) / "repositories" / repo / "_uploads"
    return any(data.stat().st_size > 1024 * 1024 for data in uploads.glob("*/data")) if uploads.exists() else False


def push_with_crash(
    stack: LiveStack, engine: docker.DockerClient, endpoint: str, role: str, repo: str, tmp_path: Path
) -> str:
    """docker push a large image, crash `role` while its layer is being uploaded, then push again."""
    local = f"private-registry-live/{repo.replace('/', '-')}:1"
    build_random_image(engine, local, tmp_path / "image", LAYER_MB)
    remote = f"{endpoint}/{repo}:1"
    engine.images.get(local).tag(remote)
    container = stack.container(role)
    with subprocess.Popen(
        ["docker", "push", remote], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as push:
        wait_until(lambda: upload_in_progress(engine, repo), 120, f"the upload of {repo} to be under way")
        restarts = crash(container)
        wait_until(lambda: restarted_on_its_own(container, restarts), 60, f"{role} restarted by its restart policy")
        first_output, _ = push.communicate(timeout=600)  # the client retries; it may or may not get through
    again = run("docker", "push", remote, timeout=600)
    assert "digest: sha256:" in again.stdout, first_output + again.stdout
    repo_digest: str = next(d for d in engine.images.get(remote).attrs["RepoDigests"] if d.startswith(endpoint))
    return repo_digest.split("@", 1)[1]


@pytest.mark.parametrize(("role", "repo"), [("registry", "faults/registry-kill"), ("proxy", "faults/nginx-kill")])
def test_killed_mid_push_restarts_and_the_retry_succeeds(
    role: str, repo: str, stack: LiveStack, docker_trusts_registry: str, engine: docker.DockerClient,
    api: RegistryClient, pushed: list[tuple[str, str]], tmp_path: Path,
) -> None:  # fmt: skip
    """The registry (the fixed http.secret matters here) or nginx dies while a layer uploads."""
    digest = push_with_crash(stack, engine, docker_trusts_registry, role, repo, tmp_path)
    pushed.append((repo, digest))
    assert_nothing_lost(engine, VOLUME, api, pushed)


def test_nginx_killed_mid_pull_and_the_pull_resumes(
    stack: LiveStack, docker_trusts_registry: str, engine: docker.DockerClient, api: RegistryClient,
    pushed: list[tuple[str, str]], tmp_path: Path,
) -> None:  # fmt: skip
    repo = "faults/nginx-kill"
    manifest = api.get_manifest(repo, "1").json()
    layer = max(manifest["layers"], key=lambda descriptor: descriptor["size"])
    target = tmp_path / "layer"
    url = f"https://{docker_trusts_registry}/v2/{repo}/blobs/{layer['digest']}"
    curl = ["curl", "-sS", "-L", "--cacert", str(stack.ca_file), "-u", ":".join(stack.login), "-o", str(target)]
    proxy = stack.container("proxy")
    # A rate-limited download, so that nginx dies in the middle of it.
    with subprocess.Popen(
        [*curl, "--limit-rate", "20M", url], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as download:
        wait_until(
            lambda: target.exists() and target.stat().st_size > 10 * 1024 * 1024, 60, "the download to be under way"
        )
        restarts = crash(proxy)
        download.wait(timeout=120)
        assert download.returncode != 0, "the download should have been cut off"
    partial = target.stat().st_size
    assert 0 < partial < layer["size"]
    wait_until(lambda: restarted_on_its_own(proxy, restarts), 60, "nginx restarted by its restart policy")
    # The image's entrypoint runs its start scripts before nginx listens: a client retries until it answers.
    probe = ["curl", "-sS", "--cacert", str(stack.ca_file), "-o", "/dev/null", f"https://{docker_trusts_registry}/v2/"]
    wait_until(lambda: run(*probe, check=False).returncode == 0, 60, "nginx answering again")
    run(*curl, "-C", "-", url, timeout=300)  # resume with a Range request through the new nginx
    assert target.stat().st_size == layer["size"]
    assert "sha256:" + hashlib.sha256(target.read_bytes()).hexdigest() == layer["digest"]
    # And a real client pulls the whole image by digest.
    digest = dict(pushed)[repo]
    with contextlib.suppress(NotFound):
        engine.images.remove(f"{docker_trusts_registry}/{repo}:1", force=True)
    run("docker", "pull", f"{docker_trusts_registry}/{repo}@{digest}", timeout=600)
    assert_nothing_lost(engine, VOLUME, api, pushed)


# ---- a full disk ----

FULL_STACK = STACKS_DIR / "full.yaml"
FULL_VOLUME = "private-registry-full-registry-data"


def remove_volume(engine: docker.DockerClient, name: str) -> None:
    with contextlib.suppress(NotFound):
        engine.volumes.get(name).remove(force=True)


@pytest.fixture
def full_stack(engine: docker.DockerClient, test_images: None, tmp_path: Path) -> Iterator[LiveStack]:
    """The `full` stack on a 128 MB tmpfs volume, made before `up` under the name the program uses."""
    realizer.down(FULL_STACK, volumes=True, client=engine)
    remove_volume(engine, FULL_VOLUME)
    engine.volumes.create(
        name=FULL_VOLUME, driver="local", driver_opts={"type": "tmpfs", "device": "tmpfs", "o": "size=128m"}
    )
    try:
        yield bring_up(FULL_STACK, engine, tmp_path)
    finally:
        realizer.down(FULL_STACK, volumes=True, client=engine)
        remove_volume(engine, FULL_VOLUME)


def test_a_full_volume_fails_the_push_cleanly_and_recovers(full_stack: LiveStack, engine: docker.DockerClient) -> None:
    api = RegistryClient(f"https://127.0.0.1:{full_stack.https_port}", verify=str(full_stack.ca_file), timeout=120)
    earlier = api.push_image("full/earlier", "v1", [os.urandom(8 * 1024 * 1024)])
    data_dir = Path(engine.volumes.get(FULL_VOLUME).attrs["Mountpoint"])
    filler = data_dir / "filler.bin"
    with filler.open("wb") as handle:  # leave about 10 MB free
        while os.statvfs(data_dir).f_bavail * os.statvfs(data_dir).f_frsize > 10 * 1024 * 1024:
            handle.write(b"\0" * (1024 * 1024))
            handle.flush()
    big = os.urandom(40 * 1024 * 1024)
    # The registry answers an error (or cuts the upload off); either way the push fails.
    with pytest.raises(requests.RequestException) as refused:
        api.push_image("full/big", "v1", [big])
    print(f"push into a full volume: {refused.value!r}")
    registry = full_stack.container("registry")
    assert registry.status == "running" and registry.attrs["RestartCount"] == 0
    assert api.get_manifest("full/earlier", earlier).status_code == 200  # everything pushed before still pulls
    filler.unlink()
    after = api.push_image("full/big", "v1", [big])
    counts = assert_nothing_lost(engine, FULL_VOLUME, api, [("full/earlier", earlier), ("full/big", after)])
    assert counts["tags"] == 2
    assert sha256_digest(api.get_blob("full/big", sha256_digest(big)).content) == sha256_digest(big)
