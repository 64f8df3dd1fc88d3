"""The registry's s3 storage driver on the S3 stand-in (moto) and its redis blob descriptor cache on the redis
stand-in, proven with plain docker-py before anything builds on them (#13): no Pulumi program here, only the
Debian registry 2.8.2 image with a hand-written config.yml.

What is shown: blobs larger than the driver's 5 MB chunk (multipart in the driver, and a multipart copy past
32 MB) pushed whole and in 3 MB PATCH pieces come back byte-identical and are objects in the bucket; manifests go in and out; the catalog lists
1,120 repositories, more than one S3 listing answer holds (1,000), through its `n`/`last` pages; a second
registry with the same config and http.secret reads what the first wrote and finishes an upload the first
started; and a registry with `blobdescriptor: redis` fills redis with its `blobs::*` keys. docs/stand-ins-s3-redis.md says what
the stand-ins reproduce and what moto cannot prove.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import docker
import pytest
import requests
import yaml
from docker.errors import DockerException, ImageNotFound, NotFound

from harness.clients import wait_until
from harness.docker_provider import LIVE_STACK_LABEL
from harness.registry_api import MANIFEST_V2, RegistryClient, sha256_digest

pytestmark = pytest.mark.live

STACK = "s3-store"
"""The value of LIVE_STACK_LABEL on everything this module makes: how leftovers of a crashed run are found."""
NETWORK = f"private-registry-{STACK}-net"
MOTO, REDIS = f"private-registry-{STACK}-moto", f"private-registry-{STACK}-redis"
FIRST, SECOND, CACHED = (f"private-registry-{STACK}-{role}" for role in ("first", "second", "cached"))
REGISTRY_IMAGE = "private-registry-test/registry:2.8.2"
MOTO_IMAGE = "private-registry-test/moto:5"
REDIS_IMAGE = "private-registry-test/redis:7"
# Published on loopback, below the ephemeral range (32768-60999), used by no other test.
PORTS = {FIRST: 22500, SECOND: 22501, CACHED: 22502, MOTO: 22503}
BUCKET = "registry"
ROOT_DIRECTORY = "/registry"
CHUNK_SIZE = 5 * 1024 * 1024
"""The driver's multipart part size (also S3's minimum part size); blobs larger than it go up in several parts."""
HTTP_SECRET = "s3-store-live-test-shared-secret"
MIB = 1024 * 1024
S3_XML = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def registry_config(*, redis: bool = False) -> dict[str, Any]:
    """config.yml of a registry on the moto bucket; with `redis`, the blob descriptor cache in the redis stand-in."""
    storage: dict[str, Any] = {
        "s3": {
            # moto checks no signature, but the driver needs keys (else it asks the instance metadata service).
            "accesskey": "stand-in",
            "secretkey": "stand-in",
            "region": "us-east-1",
            "regionendpoint": f"http://{MOTO}:5000",
            "bucket": BUCKET,
            "secure": False,
            "v4auth": True,
            "chunksize": CHUNK_SIZE,
            "rootdirectory": ROOT_DIRECTORY,
        },
        # Blob GETs are served by the registry, not redirected to pre-signed URLs of a host clients cannot reach.
        "redirect": {"disable": True},
    }
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "info", "fields": {"service": "registry"}},
        "storage": storage,
        "http": {"addr": ":5000", "secret": HTTP_SECRET, "headers": {"X-Content-Type-Options": ["nosniff"]}},
        "health": {"storagedriver": {"enabled": True, "interval": "10s", "threshold": 3}},
    }
    if redis:
        storage["cache"] = {"blobdescriptor": "redis"}
        config["redis"] = {"addr": f"{REDIS}:6379", "db": 0, "dialtimeout": "5s"}
    return config


@dataclass
class S3Store:
    engine: docker.DockerClient
    first: RegistryClient
    second: RegistryClient
    cached: RegistryClient
    moto_url: str

    def container(self, name: str) -> Any:
        return self.engine.containers.get(name)

    def object_size(self, key: str) -> int | None:
        """Size of an object in the bucket (None: no such object), from moto's ListObjectsV2. Unsigned: moto
        answers an anonymous listing, but an anonymous HEAD on a private object is 403."""
        answer = requests.get(f"{self.moto_url}/{BUCKET}", params={"list-type": "2", "prefix": key}, timeout=30)
        answer.raise_for_status()
        for contents in ElementTree.fromstring(answer.content).iter(f"{S3_XML}Contents"):
            if contents.findtext(f"{S3_XML}Key") == key:
                return int(contents.findtext(f"{S3_XML}Size") or -1)
        return None

    def moto_requests(self, *needles: str) -> int:
        """Requests in moto's log whose request line contains every one of `needles`."""
        log = self.container(MOTO).logs().decode(errors="replace")
        lines = (line.partition('"')[2].partition('"')[0] for line in log.splitlines())
        return sum(1 for line in lines if all(needle in line for needle in needles))

    def parts(self, key_part: str) -> int:
        """Multipart parts moto was sent (PUTs with a partNumber, uploaded or copied) on keys containing
        `key_part`, from moto's request log."""
        return self.moto_requests("PUT ", key_part, "partNumber=")


STORE_PREFIX = f"{ROOT_DIRECTORY.strip('/')}/docker/registry/v2"
"""Object keys under the driver's rootdirectory follow the filesystem driver's layout."""


def blob_key(digest: str) -> str:
    """The object key of a blob's data."""
    algorithm, hex_digest = digest.split(":")
    return f"{STORE_PREFIX}/blobs/{algorithm}/{hex_digest[:2]}/{hex_digest}/data"


def layer_link_key(repo: str, digest: str) -> str:
    """The object key of the link that puts a blob in a repository (its `_layers` directory)."""
    algorithm, hex_digest = digest.split(":")
    return f"{STORE_PREFIX}/repositories/{repo}/_layers/{algorithm}/{hex_digest}/link"


def remove_leftovers(engine: docker.DockerClient) -> None:
    """Everything labelled with this module's STACK, containers before the network (the engine outlives runs)."""
    label = {"label": f"{LIVE_STACK_LABEL}={STACK}"}
    for found in engine.containers.list(all=True, filters=label):
        with contextlib.suppress(NotFound):
            found.remove(force=True, v=True)
    for net in engine.networks.list(filters=label):
        with contextlib.suppress(NotFound):
            net.remove()


def start(
    engine: docker.DockerClient, name: str, image: str, command: list[str], port: int | None = None, **options: Any
) -> Any:
    """A container of this module on its network; `port` of the container published on 127.0.0.1:PORTS[name]."""
    ports = {f"{port}/tcp": ("127.0.0.1", PORTS[name])} if port else None
    labels = {LIVE_STACK_LABEL: STACK}
    return engine.containers.run(
        image, command, name=name, detach=True, network=NETWORK, labels=labels, ports=ports, **options
    )


def start_registry(engine: docker.DockerClient, name: str, config_file: Path) -> RegistryClient:
    start(engine, name, REGISTRY_IMAGE, ["/etc/docker/registry/config.yml"], port=5000,
          volumes={str(config_file): {"bind": "/etc/docker/registry/config.yml", "mode": "ro"}})  # fmt: skip
    client = RegistryClient(f"http://127.0.0.1:{PORTS[name]}", timeout=60)

    def answers() -> bool:
        with contextlib.suppress(requests.RequestException):
            return client.request("GET", "/v2/").status_code == 200
        return False

    wait_until(answers, 30, f"{name} answers /v2/")
    return client


@pytest.fixture(scope="module")
def s3_store(engine: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Store]:
    for image in (REGISTRY_IMAGE, MOTO_IMAGE, REDIS_IMAGE):
        try:
            engine.images.get(image)
        except ImageNotFound:
            pytest.fail(f"test image {image} is missing; build it with images/build.sh")
    remove_leftovers(engine)
    tmp = tmp_path_factory.mktemp(STACK)
    plain, cached = tmp / "config.yml", tmp / "config-redis.yml"
    plain.write_text(yaml.safe_dump(registry_config(), sort_keys=False))
    cached.write_text(yaml.safe_dump(registry_config(redis=True), sort_keys=False))
    try:
        engine.networks.create(NETWORK, driver="bridge", labels={LIVE_STACK_LABEL: STACK})
        start(engine, MOTO, MOTO_IMAGE, [], port=5000)
        start(engine, REDIS, REDIS_IMAGE, ["redis-server", "--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"])
        moto_url = f"http://127.0.0.1:{PORTS[MOTO]}"

        def moto_answers() -> bool:
            with contextlib.suppress(requests.RequestException):
                return requests.get(f"{moto_url}/", timeout=5).status_code == 200
            return False

        wait_until(moto_answers, 60, "moto answers")
        # The bucket first: a plain, unsigned PUT /<bucket> (moto checks no signature).
        made = requests.put(f"{moto_url}/{BUCKET}", timeout=30)
        assert made.status_code == 200, made.text
        wait_until(lambda: engine.containers.get(REDIS).exec_run(["redis-cli", "ping"]).output == b"PONG\n",
                   30, "redis answers PONG")  # fmt: skip
        yield S3Store(
            engine,
            first=start_registry(engine, FIRST, plain),
            second=start_registry(engine, SECOND, plain),
            cached=start_registry(engine, CACHED, cached),
            moto_url=moto_url,
        )
    finally:
        with contextlib.suppress(DockerException):
            remove_leftovers(engine)


def pull(client: RegistryClient, repo: str, digest: str) -> bytes:
    answer = client.get_blob(repo, digest)
    assert answer.status_code == 200, answer.text
    assert sha256_digest(answer.content) == digest
    return answer.content


# ---- the s3 driver on moto ----


def test_big_blobs_whole_and_in_pieces_come_back_identical_from_the_bucket(s3_store: S3Store) -> None:
    first = s3_store.first
    # Over the driver's multipart copy threshold (32 MB) too: committing it copies the upload in parts.
    whole = os.urandom(40 * MIB)
    digest = first.upload_monolithic("s3/monolithic", whole)
    assert pull(first, "s3/monolithic", digest) == whole
    # The bytes are an object of the bucket, under the rootdirectory; nothing went to the container's disk.
    assert s3_store.object_size(blob_key(digest)) == len(whole)
    listing = s3_store.container(FIRST).exec_run(["find", "/var/lib/registry", "-type", "f"]).output.decode()
    assert listing.strip() == "", listing

    pieces = [os.urandom(3_000_000) for _ in range(4)]
    joined = b"".join(pieces)
    chunked = first.upload_chunked("s3/chunked", pieces, sha256_digest(joined))
    assert pull(first, "s3/chunked", chunked) == joined
    assert s3_store.object_size(blob_key(chunked)) == len(joined)
    # Both are larger than the chunk size: the driver wrote each as a multipart upload of several parts (it sends
    # a part once it holds more than a chunk, so 12 MB goes as 2 parts; 3 MB pieces restart the upload). The
    # big one was then copied to its blob key part by part (UploadPartCopy), the small one in one copy.
    assert s3_store.parts("/repositories/s3/monolithic/_uploads/") >= 2
    assert s3_store.parts("/repositories/s3/chunked/_uploads/") >= 2
    assert s3_store.parts(blob_key(digest)) >= 2
    assert s3_store.parts(blob_key(chunked)) == 0


def test_a_manifest_goes_in_and_comes_out(s3_store: S3Store) -> None:
    first = s3_store.first
    layers = [os.urandom(6 * MIB), os.urandom(200_000)]
    digest = first.push_image("s3/image", "1", layers, chunk_size=2 * MIB)
    by_tag = first.get_manifest("s3/image", "1")
    assert by_tag.status_code == 200, by_tag.text
    assert by_tag.headers["Content-Type"] == MANIFEST_V2
    assert by_tag.headers["Docker-Content-Digest"] == digest == sha256_digest(by_tag.content)
    by_digest = first.get_manifest("s3/image", digest)
    assert by_digest.content == by_tag.content
    for layer, descriptor in zip(layers, json.loads(by_tag.content)["layers"], strict=True):
        assert pull(first, "s3/image", descriptor["digest"]) == layer
    assert first.tags("s3/image").json() == {"name": "s3/image", "tags": ["1"]}


def catalog_pages(client: RegistryClient, n: int) -> list[list[str]]:
    """The catalog page by page, following the Link header (`n`/`last`) until there is none."""
    pages: list[list[str]] = []
    path: str | None = f"/v2/_catalog?n={n}"
    while path:
        answer = client.request("GET", path)
        assert answer.status_code == 200, answer.text
        pages.append(answer.json()["repositories"])
        link = answer.headers.get("Link", "")
        path = link.split(";")[0].strip("<> ") if 'rel="next"' in link else None
        assert len(pages) < 100, "the catalog pages never end"
    return pages


def test_the_catalog_lists_repositories_past_one_page_of_s3_keys(s3_store: S3Store) -> None:
    """110 repositories made through the API, and 1,010 more written into the bucket as the registry lays them
    out (a `_layers` link each: all the catalog looks for), so that one directory holds more entries than one
    ListObjectsV2 answer (at most 1,000): the driver's walk must follow S3's continuation, and the catalog its
    own `n`/`last` pages."""
    first = s3_store.first
    source = first.upload_monolithic("s3/catalog-source", b"a layer every catalog repository links")
    through_api = [f"s3/catalog-{i:03d}" for i in range(110)]
    for name in through_api:
        # A cross-repository mount: one request links the blob into the repository (its _layers directory).
        mounted = first.request(
            "POST", f"/v2/{name}/blobs/uploads/", params={"mount": source, "from": "s3/catalog-source"}
        )
        assert mounted.status_code == 201, mounted.text
    seeded = [f"seeded/repo-{i:04d}" for i in range(1010)]
    with requests.Session() as moto:
        for name in seeded:
            put = moto.put(
                f"{s3_store.moto_url}/{BUCKET}/{layer_link_key(name, source)}", data=source.encode(), timeout=30
            )
            assert put.status_code == 200, put.text

    pages = catalog_pages(first, 1000)
    listed = [name for page in pages for name in page]
    assert [len(page) for page in pages[:-1]] == [1000] * (len(pages) - 1) and len(pages) >= 2
    assert set(through_api) | set(seeded) <= set(listed)
    assert listed == sorted(listed) and len(listed) == len(set(listed))
    assert s3_store.moto_requests("continuation-token=") > 0, "the walk never needed a second ListObjectsV2 page"


def test_a_second_registry_on_the_bucket_reads_and_finishes_what_the_first_did(s3_store: S3Store) -> None:
    first, second = s3_store.first, s3_store.second
    layer = os.urandom(7 * MIB)
    digest = first.push_image("s3/shared", "v1", [layer])
    manifest = second.get_manifest("s3/shared", "v1")
    assert manifest.status_code == 200, manifest.text
    assert manifest.headers["Docker-Content-Digest"] == digest
    assert manifest.content == first.get_manifest("s3/shared", digest).content
    assert pull(second, "s3/shared", sha256_digest(layer)) == layer
    assert second.tags("s3/shared").json() == {"name": "s3/shared", "tags": ["v1"]}

    # An upload begun on the first and finished on the second: the shared http.secret signs the upload state,
    # and the driver resumes the multipart upload it finds in the bucket.
    pieces = [os.urandom(3_000_000) for _ in range(3)]
    joined = b"".join(pieces)
    started = first.start_upload("s3/relay")
    assert started.status_code == 202, started.text
    location, offset = started.headers["Location"], 0
    for index, piece in enumerate(pieces):
        replica = (first, second)[index % 2]
        patched = replica.request(
            "PATCH", location, data=piece,
            headers={"Content-Type": "application/octet-stream", "Content-Range": f"{offset}-{offset + len(piece) - 1}"},
        )  # fmt: skip
        assert patched.status_code == 202, (index, patched.text)
        location, offset = patched.headers["Location"], offset + len(piece)
    done = second.request("PUT", location, params={"digest": sha256_digest(joined)})
    assert done.status_code == 201, done.text
    assert pull(first, "s3/relay", sha256_digest(joined)) == joined


# ---- the redis stand-in as the blob descriptor cache ----


def test_the_redis_stand_in_runs_as_upstream_does(s3_store: S3Store) -> None:
    redis = s3_store.container(REDIS)
    top = redis.top()
    pids = [process[top["Titles"].index("PID")] for process in top["Processes"]]
    # Real, effective, saved and filesystem uid of every process (the server, dropped from root), from /proc.
    uids = {Path(f"/proc/{pid}/status").read_text().split("Uid:")[1].split("\n")[0].strip() for pid in pids}
    assert pids and uids == {"999\t999\t999\t999"}, uids
    assert redis.exec_run(["stat", "-c", "%u:%g", "/data"]).output.decode().strip() == "999:999"
    config = redis.exec_run(["redis-cli", "config", "get", "protected-mode"]).output.decode().split()
    assert config == ["protected-mode", "no"]
    policy = redis.exec_run(["redis-cli", "config", "get", "maxmemory-policy"]).output.decode().split()
    assert policy == ["maxmemory-policy", "allkeys-lru"]


def test_a_registry_with_the_redis_cache_fills_it(s3_store: S3Store) -> None:
    cached = s3_store.cached
    blob = os.urandom(300_000)
    digest = cached.upload_monolithic("s3/cached", blob)
    assert cached.head_blob("s3/cached", digest).status_code == 200
    assert pull(cached, "s3/cached", digest) == blob
    redis = s3_store.container(REDIS)
    keys = redis.exec_run(["redis-cli", "--scan", "--pattern", "blobs::*"]).output.decode().split()
    assert f"blobs::{digest}" in keys, keys
    fields = redis.exec_run(["redis-cli", "hgetall", f"blobs::{digest}"]).output.decode().split()
    descriptor = dict(zip(fields[::2], fields[1::2], strict=True))
    assert descriptor["digest"] == digest and descriptor["size"] == str(len(blob)), descriptor
    # The repository-scoped entries of the same cache.
    assert redis.exec_run(["redis-cli", "sismember", "repository::s3/cached::blobs", digest]).output == b"1\n"
