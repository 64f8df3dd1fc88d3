"""Blob downloads sent from disk after the registry said yes (proxy.fastBlobDownloads): the same requests get the
same answers as when nginx relays the registry's own, and the repository boundary, the login and the
filesystem hold."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from harness import realizer
from harness.registry_api import RegistryClient, sha256_digest
from tests.live.conftest import LiveStack, changed_stack

pytestmark = pytest.mark.live

# Headers a client may act on; Date, Server and Connection are the transport's.
COMPARED = (
    "content-length",
    "content-type",
    "content-range",
    "docker-content-digest",
    "etag",
    "docker-distribution-api-version",
    "accept-ranges",
    "cache-control",
    "www-authenticate",
    "x-content-type-options",
    "last-modified",
)


def answer(response: requests.Response) -> dict[str, Any]:
    headers = {name: response.headers[name] for name in COMPARED if name in response.headers}
    if response.status_code == 416:
        # Registry 2.8 answers an unsatisfiable range with a 33-byte body under a Content-Length of the whole
        # blob (its own answer, relayed or not): compare what it says, the body cannot be read.
        response.close()
        return {"status": 416, "headers": headers}
    return {"status": response.status_code, "headers": headers, "body": hashlib.sha256(response.content).hexdigest()}


def ask(stack: LiveStack, blobs: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Every request of the comparison, through the proxy's TLS port; name -> answer."""
    base = f"https://127.0.0.1:{stack.https_port}"
    login = stack.login
    layer, config, only_elsewhere, deleted = blobs["layer"], blobs["config"], blobs["elsewhere"], blobs["deleted"]

    def get(path: str, auth: tuple[str, str] | None = login, **headers: str) -> requests.Response:
        return requests.get(base + path, auth=auth, headers=headers, verify=str(stack.ca_file), timeout=60, stream=True)

    def head(path: str) -> requests.Response:
        return requests.head(base + path, auth=login, verify=str(stack.ca_file), timeout=60)

    upper = "sha256:" + layer.removeprefix("sha256:").upper()
    answers = {
        "layer": get(f"/v2/fast/app/blobs/{layer}"),
        "config": get(f"/v2/fast/app/blobs/{config}"),
        "layer HEAD": head(f"/v2/fast/app/blobs/{layer}"),
        "range start": get(f"/v2/fast/app/blobs/{layer}", Range="bytes=0-99"),
        "range middle to end": get(f"/v2/fast/app/blobs/{layer}", Range="bytes=1000000-"),
        "range suffix": get(f"/v2/fast/app/blobs/{layer}", Range="bytes=-500"),
        "range past the end": get(f"/v2/fast/app/blobs/{layer}", Range="bytes=99999999-"),
        "blob of another repository": get(f"/v2/fast/app/blobs/{only_elsewhere}"),
        "no login": get(f"/v2/fast/app/blobs/{layer}", auth=None),
        "wrong password": get(f"/v2/fast/app/blobs/{layer}", auth=(login[0], "not-the-password")),
        "deleted blob": get(f"/v2/fast/app/blobs/{deleted}"),
        "unknown repository": get(f"/v2/fast/nothing/blobs/{layer}"),
        "uppercase hex": get(f"/v2/fast/app/blobs/{upper}"),
        "other algorithm": get(f"/v2/fast/app/blobs/sha512:{'ab' * 64}"),
        "short digest": get(f"/v2/fast/app/blobs/{layer[:-1]}"),
        "dot-dot": get("/v2/fast/app/blobs/sha256:../../../../../etc/passwd"),
        "encoded slash": get(f"/v2/fast%2Fapp/blobs/{layer}"),
        "encoded dot-dot": get("/v2/fast/app/blobs/sha256:%2e%2e%2f%2e%2e%2fetc%2fpasswd"),
    }
    return {name: answer(response) for name, response in answers.items()}


def test_blob_answers_from_disk_equal_the_registrys(stack: LiveStack, api: RegistryClient, tmp_path: Path) -> None:
    layer_bytes = os.urandom(3 * 1024 * 1024 + 17)
    digest = api.push_image("fast/app", "1", [layer_bytes])
    manifest = api.get_manifest("fast/app", digest).json()
    elsewhere = api.upload_monolithic("fast/elsewhere", os.urandom(4096))
    deleted = api.upload_monolithic("fast/app", os.urandom(2048))
    assert api.request("DELETE", f"/v2/fast/app/blobs/{deleted}").status_code == 202
    blobs = {
        "layer": manifest["layers"][0]["digest"],
        "config": manifest["config"]["digest"],
        "elsewhere": elsewhere,
        "deleted": deleted,
    }
    registry = stack.container("registry")

    started = time.time() - 1
    fast = ask(stack, blobs)
    served_log = registry.logs(since=int(started)).decode()
    # From disk: the registry saw a HEAD for the layer download, not a GET.
    layer_uri = f'http.request.uri="/v2/fast/app/blobs/{blobs["layer"]}"'
    assert "http.request.method=HEAD" in served_log and layer_uri in served_log
    get_lines = [line for line in served_log.splitlines() if "http.request.method=GET" in line and layer_uri in line]
    # Only the refused ones (no login, wrong password) reached the registry as GETs.
    assert len([line for line in get_lines if 'msg="response completed"' in line]) <= 2, get_lines

    with changed_stack(stack, tmp_path, proxy={"fastBlobDownloads": False}) as relayed_config:
        realizer.up(relayed_config, stack.client)
        proxy = stack.container("proxy")
        assert not [m for m in proxy.attrs["Mounts"] if m["Destination"] == "/var/lib/registry"]
        relayed = ask(stack, blobs)

    assert fast == relayed
    assert fast["layer"]["status"] == 200
    assert fast["layer"]["headers"]["content-length"] == str(len(layer_bytes))
    assert fast["layer"]["body"] == blobs["layer"].removeprefix("sha256:")
    assert fast["range start"]["status"] == 206
    assert fast["range start"]["headers"]["content-range"] == f"bytes 0-99/{len(layer_bytes)}"
    assert fast["range start"]["body"] == hashlib.sha256(layer_bytes[:100]).hexdigest()
    assert fast["blob of another repository"]["status"] == 404
    assert fast["no login"]["status"] == 401 and "www-authenticate" in fast["no login"]["headers"]
    assert fast["deleted blob"]["status"] == 404
    for name in ("dot-dot", "encoded dot-dot", "uppercase hex", "other algorithm", "short digest"):
        assert fast[name]["status"] != 200, name
    assert sha256_digest(layer_bytes) == blobs["layer"]


def test_the_proxy_mounts_the_data_volume_read_only(stack: LiveStack) -> None:
    proxy = stack.container("proxy")
    mounts = {mount["Destination"]: mount for mount in proxy.attrs["Mounts"]}
    data = mounts["/var/lib/registry"]
    assert data["Name"] == f"private-registry-{stack.config_file.stem}-registry-data"
    assert data["RW"] is False
    written = proxy.exec_run(["sh", "-c", "touch /var/lib/registry/x 2>&1; echo $?"]).output.decode()
    assert "Read-only file system" in written
