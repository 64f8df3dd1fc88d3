"""The registry API through our nginx, section by section of the OCI distribution spec, and bad input.

The OCI conformance suite (a Go program) cannot be built here, so these tests follow its sections: pull,
push (monolithic and chunked), cross-repository mount, tag listing with pagination, and delete (allowed when
enabled, refused when disabled). They show the proxy breaks no part of the protocol.
"""

from __future__ import annotations

import os
import re
import socket
import ssl
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
import pytest

from harness import realizer
from harness.registry_api import RegistryClient, sha256_digest
from tests.live.conftest import STACKS_DIR, LiveStack, bring_up
from tests.live.integrity import assert_nothing_lost, volume_root

pytestmark = pytest.mark.live

VOLUME = "private-registry-live-registry-data"


def random_layer(size: int) -> bytes:
    return os.urandom(size)


# ---- pull ----


def test_pull_manifest_by_tag_and_digest_and_blobs(api: RegistryClient, pushed: list[tuple[str, str]]) -> None:
    layer = random_layer(3 * 1024 * 1024)
    digest = api.push_image("spec/pull", "v1", [layer])
    pushed.append(("spec/pull", digest))
    by_tag = api.get_manifest("spec/pull", "v1")
    assert by_tag.status_code == 200 and by_tag.headers["Docker-Content-Digest"] == digest
    assert api.get_manifest("spec/pull", digest).content == by_tag.content
    assert api.request("HEAD", f"/v2/spec/pull/manifests/{digest}").status_code == 200
    assert api.get_blob("spec/pull", sha256_digest(layer)).content == layer
    assert api.get_manifest("spec/pull", "no-such-tag").status_code == 404
    missing = api.get_blob("spec/pull", sha256_digest(b"never pushed"))
    assert missing.status_code == 404 and missing.json()["errors"][0]["code"] == "BLOB_UNKNOWN"


# ---- push ----


def test_push_monolithic(api: RegistryClient) -> None:
    started = api.start_upload("spec/monolithic")
    assert started.status_code == 202
    assert started.headers["Docker-Upload-UUID"] and started.headers["Location"]
    data = random_layer(5 * 1024 * 1024)
    done = api.request("PUT", started.headers["Location"], params={"digest": sha256_digest(data)}, data=data)
    assert done.status_code == 201
    assert done.headers["Docker-Content-Digest"] == sha256_digest(data)
    assert api.get_blob("spec/monolithic", sha256_digest(data)).content == data


def test_push_chunked(api: RegistryClient, pushed: list[tuple[str, str]]) -> None:
    layer = random_layer(5 * 1024 * 1024 + 12345)
    digest = api.push_image("spec/chunked", "v1", [layer], chunk_size=1024 * 1024)
    pushed.append(("spec/chunked", digest))
    assert api.get_blob("spec/chunked", sha256_digest(layer)).content == layer


def test_cross_repository_mount(api: RegistryClient) -> None:
    data = random_layer(1024 * 1024)
    digest = api.upload_monolithic("spec/mount-source", data)
    mounted = api.start_upload("spec/mount-target", mount=digest, **{"from": "spec/mount-source"})
    assert mounted.status_code == 201
    assert mounted.headers["Docker-Content-Digest"] == digest
    assert api.head_blob("spec/mount-target", digest).status_code == 200


def pages_of(client: RegistryClient, path: str, key: str, n: int) -> list[list[str]]:
    """Follow the Link headers of a paginated list (tags or catalog), at most 20 pages."""
    pages: list[list[str]] = []
    page = client.request("GET", path, params={"n": str(n)})
    for _ in range(20):
        assert page.status_code == 200, page.text
        pages.append(page.json()[key])
        link = page.headers.get("Link")
        if not link:
            return pages
        next_url = re.match(r"<([^>]+)>;\s*rel=\"next\"", link)
        assert next_url, link
        page = client.request("GET", next_url.group(1))
    raise AssertionError(f"more than 20 pages: {pages}")


def test_tag_listing_with_pagination(api: RegistryClient, direct: RegistryClient) -> None:
    layer = random_layer(1024)
    tags = [f"t{i}" for i in range(5)]
    for tag in tags:
        api.push_image("spec/tags", tag, [layer])
    pages = pages_of(api, "/v2/spec/tags/tags/list", "tags", 2)
    listed = [tag for page in pages for tag in page]
    assert sorted(listed) == tags  # every tag once, none lost or repeated
    if len(pages) > 1:
        assert all(len(page) <= 2 for page in pages), pages
    # Registry 2.8.2 ignores n on tag lists (one page, all tags, in its storage order); registry 3 pages
    # them. Either way the proxy passes the answer through unchanged.
    assert pages == pages_of(direct, "/v2/spec/tags/tags/list", "tags", 2)


def test_catalog_pagination_follows_link_headers(api: RegistryClient, direct: RegistryClient) -> None:
    for index in range(3):
        api.upload_monolithic(f"spec/catalog-{index}", random_layer(64))  # a repository exists once it has data
        api.push_image(f"spec/catalog-{index}", "v1", [random_layer(64)])
    pages = pages_of(api, "/v2/_catalog", "repositories", 2)
    assert len(pages) >= 2 and all(len(page) <= 2 for page in pages), pages
    listed = [repo for page in pages for repo in page]
    assert listed == sorted(listed) and len(set(listed)) == len(listed)
    assert {f"spec/catalog-{index}" for index in range(3)} <= set(listed)
    assert pages == pages_of(direct, "/v2/_catalog", "repositories", 2)


def test_delete_when_enabled(api: RegistryClient) -> None:
    digest = api.push_image("spec/delete", "v1", [random_layer(1024)])
    assert api.request("DELETE", f"/v2/spec/delete/manifests/{digest}").status_code == 202
    assert api.get_manifest("spec/delete", digest).status_code == 404


@pytest.fixture(scope="module")
def nodelete_stack(
    engine: docker.DockerClient, test_images: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveStack]:
    config = STACKS_DIR / "nodelete.yaml"
    realizer.down(config, volumes=True, client=engine)
    yield bring_up(config, engine, tmp_path_factory.mktemp("nodelete"))
    realizer.down(config, volumes=True, client=engine)


def test_delete_refused_when_disabled(nodelete_stack: LiveStack) -> None:
    api = RegistryClient(f"https://127.0.0.1:{nodelete_stack.https_port}", verify=str(nodelete_stack.ca_file))
    digest = api.push_image("spec/keep", "v1", [random_layer(1024)])
    refused = api.request("DELETE", f"/v2/spec/keep/manifests/{digest}")
    assert refused.status_code == 405
    assert refused.json()["errors"][0]["code"] == "UNSUPPORTED"
    assert api.get_manifest("spec/keep", digest).status_code == 200


# ---- bad input ----


def test_a_wrong_digest_is_refused(api: RegistryClient) -> None:
    started = api.start_upload("bad/digest")
    wrong = api.request(
        "PUT", started.headers["Location"], params={"digest": sha256_digest(b"other")}, data=b"these bytes"
    )
    assert wrong.status_code == 400
    assert wrong.json()["errors"][0]["code"] == "DIGEST_INVALID"


def test_a_manifest_naming_a_missing_blob_is_refused(api: RegistryClient) -> None:
    config = api.upload_monolithic("bad/manifest", b"{}")
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 2, "digest": config},
        "layers": [
            {
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "size": 9,
                "digest": sha256_digest(b"not there"),
            }
        ],
    }
    refused = api.put_manifest("bad/manifest", "v1", manifest)
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN"


def out_of_order_upload(client: RegistryClient, repo: str) -> tuple[int, int]:
    """PATCH bytes 100-199 into an empty upload, then try to commit them as if 0-99 had been sent."""
    started = client.start_upload(repo)
    patched = client.request(
        "PATCH", started.headers["Location"], data=b"x" * 100,
        headers={"Content-Type": "application/octet-stream", "Content-Range": "100-199"},
    )  # fmt: skip
    if patched.status_code == 416:
        return 416, 0
    intended = sha256_digest(b"\0" * 100 + b"x" * 100)
    committed = client.request("PUT", patched.headers["Location"], params={"digest": intended})
    if committed.status_code == 400:
        assert committed.json()["errors"][0]["code"] == "DIGEST_INVALID"
    assert client.head_blob(repo, intended).status_code == 404  # nothing stored
    return patched.status_code, committed.status_code


def test_out_of_order_chunks_are_refused(api: RegistryClient, direct: RegistryClient) -> None:
    # Registry 3 refuses the PATCH (416); 2.8 takes it (it does not check Content-Range) and refuses the
    # commit (DIGEST_INVALID). Either way nothing is stored, and the proxy answers as the registry does.
    through_proxy = out_of_order_upload(api, "bad/chunks")
    assert through_proxy in ((416, 0), (202, 400))
    assert through_proxy == out_of_order_upload(direct, "bad/chunks-direct")


def raw_https(stack: LiveStack, request: bytes) -> bytes:
    context = ssl.create_default_context(cafile=str(stack.ca_file))
    with (
        socket.create_connection(("127.0.0.1", stack.https_port), timeout=30) as plain,
        context.wrap_socket(plain, server_hostname=stack.hostname) as tls,
    ):
        tls.sendall(request)
        chunks = []
        while chunk := tls.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_oversized_and_malformed_headers_break_nothing(stack: LiveStack, api: RegistryClient) -> None:
    before = {
        role: (stack.container(role).id, stack.container(role).attrs["RestartCount"]) for role in ("registry", "proxy")
    }
    huge = api.request("GET", "/v2/", headers={"X-Huge": "a" * 70000})
    assert huge.status_code in (400, 431, 494)
    malformed = raw_https(stack, b"GET /v2/ HTTP/1.1\r\nHost: x\r\nthis line is no header\r\nConnection: close\r\n\r\n")
    assert malformed.startswith(b"HTTP/1.1 400")
    garbage = raw_https(stack, b"\x00\xff\xfe not http at all \r\n\r\n")
    assert garbage.startswith(b"HTTP/1.1 400")
    assert api.request("GET", "/v2/").status_code == 200
    after = {
        role: (stack.container(role).id, stack.container(role).attrs["RestartCount"]) for role in ("registry", "proxy")
    }
    assert after == before


# ---- concurrency ----


def test_eight_clients_upload_the_same_blob_at_once(
    stack: LiveStack, api: RegistryClient, engine: docker.DockerClient, pushed: list[tuple[str, str]]
) -> None:
    blob = random_layer(16 * 1024 * 1024)
    digest = sha256_digest(blob)

    def upload(_: int) -> str:
        client = RegistryClient(api.base, auth=api.auth, verify=api.verify)
        return client.upload_monolithic("concurrent/same", blob)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(upload, range(8)))
    assert results == [digest] * 8
    stored = list(volume_root(engine, VOLUME).glob(f"blobs/sha256/{digest[7:9]}/{digest[7:]}/data"))
    assert len(stored) == 1 and stored[0].stat().st_size == len(blob)
    assert api.get_blob("concurrent/same", digest).content == blob
    counts = assert_nothing_lost(engine, VOLUME, api, pushed)
    assert counts["blob_files"] > 0


def test_nothing_lost_check_finds_a_corrupted_blob(
    stack: LiveStack, api: RegistryClient, engine: docker.DockerClient, tmp_path: Path
) -> None:
    """The check itself can fail: flip one byte in a stored blob, then restore it."""
    data = random_layer(4096)
    digest = api.upload_monolithic("integrity/probe", data)
    blob = volume_root(engine, VOLUME) / f"blobs/sha256/{digest[7:9]}/{digest[7:]}/data"
    original = blob.read_bytes()
    blob.write_bytes(bytes([original[0] ^ 0xFF]) + original[1:])
    try:
        with pytest.raises(AssertionError, match="does not hash to its name"):
            assert_nothing_lost(engine, VOLUME, api, [])
    finally:
        blob.write_bytes(original)
    assert_nothing_lost(engine, VOLUME, api, [])
