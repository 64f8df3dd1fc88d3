"""Registry replicas on one host, sharing an S3 bucket and a Redis cache (tests/live/stacks/replicas.yaml).

The S3 store is moto's server (the private-registry-test/moto image), which the test starts itself and joins to
the stack's network as `s3-replicas`; the test reads the bucket straight through moto's port on loopback
for the nothing-lost check. Replicas are killed as a crash kills them (SIGKILL to the registry process from
the host), so their restart policy brings them back.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import docker
import pytest
import requests
from docker.errors import DockerException

from components.redis_cache import REDIS_CONF_PATH, REDIS_UID
from harness import realizer
from harness.attached import joining, remove_attached, start_s3_store
from harness.clients import docker_login, run, wait_until
from harness.docker_provider import LIVE_STACK_LABEL
from harness.registry_api import RegistryClient, sha256_digest
from tests.live.conftest import STACKS_DIR, LiveStack, bring_up

pytestmark = pytest.mark.live

STACK_FILE = STACKS_DIR / "replicas.yaml"
NETWORK = "private-registry-replicas-net"
S3_NAME = "s3-replicas"  # no dots: moto reads a dotted Host as <bucket>.<endpoint>
S3_CONTAINER = "private-registry-replicas-s3"
S3_PORT = 20590
BUCKET = "team-registry"
S3_ACCESS_KEY, S3_SECRET_KEY = "replicas-test", "replicas-test-secret-key"
ROOT = "registry"
ACCOUNT = ("ops", "replicas-stack-password-0123")
ENDPOINT = "127.0.0.1:20443"
MIB = 1024 * 1024
REPLICAS = ("registry", "registry-2", "registry-3")
_UPLOAD_UUID = re.compile(r"/blobs/uploads/([0-9a-f-]{36})")


@dataclass
class ReplicasStack:
    live: LiveStack
    api: RegistryClient
    docker_config: Path
    pushed: list[tuple[str, str]]
    """(repository, manifest digest) of every image pushed: the nothing-lost check pulls each."""

    def replica(self, role: str) -> docker.models.containers.Container:
        return self.live.container(role)

    def requests_by_replica(self, since: float, pattern: str) -> dict[str, list[str]]:
        """Per replica, its access log lines since `since` that contain `pattern`."""
        found = {}
        for role in REPLICAS:
            lines = self.replica(role).logs(since=int(since)).decode(errors="replace").splitlines()
            found[role] = [line for line in lines if 'msg="response completed"' in line and pattern in line]
        return found


def s3_client() -> Any:
    """The bucket through moto's loopback port, signed as the registry signs (moto refuses unsigned reads)."""
    return boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{S3_PORT}",
        region_name="us-east-1",
        aws_access_key_id=S3_ACCESS_KEY,
        aws_secret_access_key=S3_SECRET_KEY,
    )


def s3_keys(s3: Any, prefix: str) -> list[str]:
    """Every key under `prefix` in the bucket (ListObjectsV2, all pages)."""
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def assert_nothing_lost_in_the_bucket(stack: ReplicasStack) -> dict[str, int]:
    """Every blob object hashes to its name, no link object is empty, every pushed image pulls by digest with
    every blob it references (the filesystem check of tests/live/integrity.py, on the bucket)."""
    s3 = s3_client()
    blobs = [key for key in s3_keys(s3, f"{ROOT}/docker/registry/v2/blobs/") if key.endswith("/data")]
    for key in blobs:
        digest = hashlib.sha256()
        for block in s3.get_object(Bucket=BUCKET, Key=key)["Body"].iter_chunks(4 * MIB):
            digest.update(block)
        assert digest.hexdigest() == key.split("/")[-2], f"blob {key} does not hash to its name"
    links = [key for key in s3_keys(s3, f"{ROOT}/docker/registry/v2/repositories/") if key.endswith("/link")]
    for key in links:
        body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        assert body.startswith(b"sha256:"), f"link {key} is empty or damaged: {body[:80]!r}"
    referenced = 0
    for repo, digest_text in stack.pushed:
        response = stack.api.get_manifest(repo, digest_text)
        assert response.status_code == 200, f"{repo}@{digest_text} no longer pulls ({response.status_code})"
        assert sha256_digest(response.content) == digest_text
        manifest = response.json()
        for descriptor in [manifest["config"], *manifest["layers"]]:
            head = stack.api.head_blob(repo, descriptor["digest"])
            assert head.status_code == 200, f"{repo}: blob {descriptor['digest']} answers {head.status_code}"
            referenced += 1
    return {"blobs": len(blobs), "links": len(links), "images": len(stack.pushed), "referenced_blobs": referenced}


def crash(container: docker.models.containers.Container) -> None:
    """SIGKILL to the container's main process from the host: a crash, so the restart policy brings it back
    (`docker kill` would count as stopped on purpose)."""
    container.reload()
    os.kill(container.attrs["State"]["Pid"], signal.SIGKILL)


def wait_healthy(container: docker.models.containers.Container, seconds: float = 90) -> None:
    def healthy() -> bool:
        container.reload()
        return bool(container.attrs["State"].get("Health", {}).get("Status") == "healthy")

    wait_until(healthy, seconds, f"{container.name} is healthy again")


def build_image(engine: docker.DockerClient, tmp: Path, tag: str, layers: int, layer_mib: int) -> str:
    """An image FROM scratch with `layers` layers of random (incompressible) bytes; returns its local tag."""
    context = tmp / tag.replace("/", "_").replace(":", "_")
    context.mkdir()
    lines = ["FROM scratch"]
    for index in range(layers):
        (context / f"layer-{index}.bin").write_bytes(os.urandom(layer_mib * MIB))
        lines.append(f"COPY layer-{index}.bin /layer-{index}.bin")
    (context / "Dockerfile").write_text("\n".join(lines) + "\n")
    local = f"{ENDPOINT}/{tag}"
    engine.images.build(path=str(context), tag=local, pull=False, rm=True, labels={LIVE_STACK_LABEL: "replicas"})
    return local


def docker_cli(stack: ReplicasStack, *args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", "--config", str(stack.docker_config), *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def docker_while_crashing(
    stack: ReplicasStack, args: tuple[str, ...], victim: docker.models.containers.Container, request: str
) -> tuple[int, str]:
    """Run `docker <args>`, crash `victim` as soon as the replicas' logs show a `request` of it (while it still
    runs), and return its exit status and output."""
    since = time.time() - 1
    process = subprocess.Popen(
        ["docker", "--config", str(stack.docker_config), *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        wait_until(
            lambda: any(stack.requests_by_replica(since, request).values()) or process.poll() is not None,
            120,
            f"docker {args[0]}'s requests reach the replicas",
            every=0.2,
        )
        assert process.poll() is None, f"docker {args[0]} ended before a replica could crash: make the layers larger"
        crash(victim)
        output, _ = process.communicate(timeout=600)
    finally:
        if process.poll() is None:
            process.kill()
    return process.returncode, output


def manifest_digest(stack: ReplicasStack, repo: str, tag: str) -> str:
    response = stack.api.get_manifest(repo, tag)
    assert response.status_code == 200, response.text
    return str(response.headers["Docker-Content-Digest"])


@pytest.fixture(scope="module")
def replicas_stack(
    engine: docker.DockerClient, test_images: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ReplicasStack]:
    tmp = tmp_path_factory.mktemp("replicas")
    # The store first: attached to the stack's network, it would keep the network from going.
    remove_attached(engine, S3_CONTAINER)
    realizer.down(STACK_FILE, volumes=True, client=engine)
    s3 = start_s3_store(engine, S3_CONTAINER, "replicas-s3", S3_PORT, (BUCKET,))
    with joining(engine, s3, NETWORK, [S3_NAME]):
        live = bring_up(STACK_FILE, engine, tmp)
    docker_config = tmp / "docker-config"
    docker_config.mkdir()
    login = docker_login(ENDPOINT, *ACCOUNT, docker_config)
    assert login.returncode == 0, login.stderr
    api = RegistryClient(f"https://{ENDPOINT}", auth=ACCOUNT, verify=str(live.ca_file))
    yield ReplicasStack(live, api, docker_config, [])
    remove_attached(engine, S3_CONTAINER)
    realizer.down(STACK_FILE, volumes=True, client=engine)
    for image in engine.images.list(filters={"label": f"{LIVE_STACK_LABEL}=replicas"}):
        with contextlib.suppress(DockerException):
            engine.images.remove(image.id, force=True)


def test_three_replicas_and_a_redis_run_and_the_registry_answers(replicas_stack: ReplicasStack) -> None:
    for role in (*REPLICAS, "redis", "proxy"):
        container = replicas_stack.replica(role)
        assert container.status == "running", role
    response = requests.get(
        f"https://{ENDPOINT}/v2/", auth=ACCOUNT, verify=str(replicas_stack.live.ca_file), timeout=30
    )
    assert response.status_code == 200 and response.json() == {}
    plain = requests.get("http://127.0.0.1:20500/v2/", auth=ACCOUNT, timeout=30)
    assert plain.status_code == 200 and plain.json() == {}
    # redis.conf (its password) is redis's alone, and the server that reads it asks for the password.
    redis = replicas_stack.replica("redis")
    owner = redis.exec_run(["stat", "-c", "%a %u", REDIS_CONF_PATH]).output.decode().split()
    assert owner == ["600", str(REDIS_UID)], owner
    assert "NOAUTH" in redis.exec_run(["redis-cli", "ping"]).output.decode()


def test_one_upload_lands_on_several_replicas_and_any_replica_serves_it(replicas_stack: ReplicasStack) -> None:
    """A 64 MiB blob in 8 MiB PATCHes: its POST, PATCHes and PUT spread over the replicas (one upload, shared
    state in the bucket, one http.secret); downloads come back intact from several replicas."""
    blob = os.urandom(64 * MIB)
    digest = sha256_digest(blob)
    since = time.time() - 1
    started = replicas_stack.api.start_upload("spread/blob")
    assert started.status_code == 202, started.text
    uuid = _UPLOAD_UUID.search(started.headers["Location"])
    assert uuid is not None
    location, offset = started.headers["Location"], 0
    for start in range(0, len(blob), 8 * MIB):
        chunk = blob[start : start + 8 * MIB]
        patched = replicas_stack.api.request(
            "PATCH", location, data=chunk,
            headers={"Content-Type": "application/octet-stream", "Content-Range": f"{offset}-{offset + len(chunk) - 1}"},
        )  # fmt: skip
        assert patched.status_code == 202, patched.text
        location, offset = patched.headers["Location"], offset + len(chunk)
    done = replicas_stack.api.request("PUT", location, params={"digest": digest})
    assert done.status_code == 201, done.text
    by_replica = replicas_stack.requests_by_replica(since, uuid.group(1))
    served = {role: len(lines) for role, lines in by_replica.items()}
    assert sum(served.values()) >= 8 + 1, served  # every PATCH and the PUT name the upload in their URL
    assert sum(1 for count in served.values() if count) >= 2, f"one upload's requests all on one replica: {served}"

    since = time.time() - 1
    for _ in range(6):
        body = replicas_stack.api.get_blob("spread/blob", digest)
        assert body.status_code == 200 and sha256_digest(body.content) == digest
    downloads = replicas_stack.requests_by_replica(since, f"/blobs/{digest}")
    assert sum(1 for lines in downloads.values() if lines) >= 2, {r: len(v) for r, v in downloads.items()}
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 2,
            "digest": replicas_stack.api.upload_monolithic("spread/blob", b"{}"),
        },
        "layers": [
            {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": len(blob), "digest": digest}
        ],
    }
    put = replicas_stack.api.put_manifest("spread/blob", "v1", manifest)
    assert put.status_code == 201, put.text
    replicas_stack.pushed.append(("spread/blob", put.headers["Docker-Content-Digest"]))


def test_docker_push_survives_a_replica_crashing_mid_push(
    replicas_stack: ReplicasStack, engine: docker.DockerClient, tmp_path: Path
) -> None:
    """docker push of two 64 MiB layers; one replica crashes while the layers upload. Docker retries what
    failed, the push ends well, and the image pulls back whole after the local copy is gone."""
    local = build_image(engine, tmp_path, "crash/push:1", layers=2, layer_mib=64)
    victim = replicas_stack.replica("registry-2")
    returncode, output = docker_while_crashing(replicas_stack, ("push", local), victim, "PATCH")
    assert returncode == 0, output
    wait_healthy(victim)
    digest = manifest_digest(replicas_stack, "crash/push", "1")
    replicas_stack.pushed.append(("crash/push", digest))
    image_id = engine.images.get(local).id
    engine.images.remove(local, force=True)
    pull = docker_cli(replicas_stack, "pull", local)
    assert pull.returncode == 0, pull.stdout + pull.stderr
    assert engine.images.get(local).id == image_id


def test_docker_pull_survives_a_replica_crashing_mid_pull(
    replicas_stack: ReplicasStack, engine: docker.DockerClient, tmp_path: Path
) -> None:
    local = build_image(engine, tmp_path, "crash/pull:1", layers=2, layer_mib=64)
    push = docker_cli(replicas_stack, "push", local)
    assert push.returncode == 0, push.stdout + push.stderr
    replicas_stack.pushed.append(("crash/pull", manifest_digest(replicas_stack, "crash/pull", "1")))
    image_id = engine.images.get(local).id
    engine.images.remove(local, force=True)
    victim = replicas_stack.replica("registry-3")
    returncode, output = docker_while_crashing(replicas_stack, ("pull", local), victim, "/blobs/sha256:")
    assert returncode == 0, output
    assert engine.images.get(local).id == image_id
    wait_healthy(victim)


def test_nginx_fails_over_for_a_client_that_never_retries(replicas_stack: ReplicasStack) -> None:
    """A replica dies (and stays down) while a client that retries nothing downloads for 15 s, longer than
    nginx keeps a name's addresses (valid=10s): requests nginx sends to the dead replica's address fail to
    connect and are passed to another replica (its error log says so); the client sees only 200s."""
    layer = os.urandom(MIB)
    digest = replicas_stack.api.push_image("failover/app", "1", [layer])
    replicas_stack.pushed.append(("failover/app", digest))
    proxy = replicas_stack.replica("proxy")
    victim = replicas_stack.replica("registry-2")
    session = requests.Session()
    url = f"https://{ENDPOINT}/v2/failover/app/blobs/{sha256_digest(layer)}"
    verify = str(replicas_stack.live.ca_file)
    for _ in range(10):  # nginx has resolved the name, with the victim among its addresses
        assert session.get(url, auth=ACCOUNT, verify=verify, timeout=60).status_code == 200
    since = time.time() - 1
    victim.kill()  # SIGKILL; `docker kill` counts as stopped on purpose, so it stays down
    answers: list[int] = []
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            response = session.get(url, auth=ACCOUNT, verify=verify, timeout=60)
            answers.append(response.status_code)
            assert response.status_code != 200 or response.content == layer
    finally:
        victim.start()
        wait_healthy(victim)
    errors = proxy.logs(since=int(since), stdout=False, stderr=True).decode(errors="replace")
    assert answers and answers.count(200) == len(answers), [status for status in answers if status != 200]
    assert "while connecting to upstream" in errors, "no request went to the dead replica: nothing was passed over"


def test_with_redis_down_the_registry_keeps_serving(replicas_stack: ReplicasStack) -> None:
    redis = replicas_stack.replica("redis")
    redis.kill()  # SIGKILL, and `docker kill` counts as stopped on purpose: it stays down until started
    try:
        blob = os.urandom(6 * MIB)
        digest = replicas_stack.api.push_image("redis-down/app", "1", [blob])
        replicas_stack.pushed.append(("redis-down/app", digest))
        for _ in range(3):
            layer = replicas_stack.api.get_blob("redis-down/app", sha256_digest(blob))
            assert layer.status_code == 200 and layer.content == blob
        assert replicas_stack.api.get_manifest("redis-down/app", "1").status_code == 200
    finally:
        redis.start()
        wait_healthy(redis)
    again = replicas_stack.api.get_manifest("redis-down/app", digest)
    assert again.status_code == 200


def test_garbage_collection_on_the_bucket_empties_the_redis_cache(replicas_stack: ReplicasStack) -> None:
    """A deleted image's blobs go from the bucket; the Redis cache, which still names them, is emptied, so a
    HEAD answers 404 on every replica and a re-push uploads again (not "already exists")."""
    layer = os.urandom(6 * MIB)
    layer_digest = sha256_digest(layer)
    digest = replicas_stack.api.push_image("gc/app", "1", [layer])
    for _ in range(3):  # every replica has seen it, so the cache names it
        assert replicas_stack.api.head_blob("gc/app", layer_digest).status_code == 200
    deleted = replicas_stack.api.request("DELETE", f"/v2/gc/app/manifests/{digest}")
    assert deleted.status_code == 202, deleted.text
    command = replicas_stack.live.outputs["gcRunCommand"].split()
    result = run(*command, timeout=600)
    assert "cache: Redis database 0 at redis:6379 emptied" in result.stdout, result.stdout
    assert f"blob eligible for deletion: {layer_digest}" in result.stdout, result.stdout
    for _ in range(6):
        assert replicas_stack.api.head_blob("gc/app", layer_digest).status_code == 404
    again = replicas_stack.api.push_image("gc/app", "2", [layer])
    replicas_stack.pushed.append(("gc/app", again))
    assert replicas_stack.api.get_blob("gc/app", layer_digest).content == layer


def test_nothing_is_lost_in_the_bucket(replicas_stack: ReplicasStack) -> None:
    counts = assert_nothing_lost_in_the_bucket(replicas_stack)
    assert counts["images"] >= 4 and counts["blobs"] >= 8, counts
