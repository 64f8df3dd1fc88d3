"""A small client of the registry HTTP API (OCI distribution spec), for tests and the benchmark.

Upload locations are followed by path only, against the client's own base URL: the registry builds them
from http.host (the proxy's URL), which would send a client talking straight to the registry through the proxy.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_V1 = "application/vnd.docker.container.image.v1+json"
LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def location_path(url_or_path: str) -> str:
    """The path and query of a registry Location, to follow it against one's own base URL."""
    parts = urlsplit(url_or_path)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class RegistryClient:
    base: str
    """https://host:port (through a proxy) or http://127.0.0.1:port (straight to the registry)."""
    auth: tuple[str, str] | None = None
    verify: str | bool = True
    session: requests.Session = field(default_factory=requests.Session)
    timeout: int = 900

    def __post_init__(self) -> None:
        self.session.auth = self.auth
        self.session.verify = self.verify

    def request(self, method: str, path_or_url: str, **kwargs: Any) -> requests.Response:
        path = location_path(path_or_url)
        # verify per request: requests lets REQUESTS_CA_BUNDLE override a session's verify.
        kwargs.setdefault("verify", self.verify)
        return self.session.request(method, self.base + path, timeout=self.timeout, **kwargs)

    # ---- blobs ----

    def start_upload(self, repo: str, **params: str) -> requests.Response:
        return self.request("POST", f"/v2/{repo}/blobs/uploads/", params=params or None)

    def upload_monolithic(self, repo: str, data: bytes | Iterable[bytes], digest: str | None = None) -> str:
        """POST then one PUT carrying the whole blob."""
        started = self.start_upload(repo)
        started.raise_for_status()
        if digest is None:
            assert isinstance(data, bytes)
            digest = sha256_digest(data)
        done = self.request(
            "PUT", started.headers["Location"], params={"digest": digest}, data=data,
            headers={"Content-Type": "application/octet-stream"},
        )  # fmt: skip
        done.raise_for_status()
        return digest

    def upload_chunked(self, repo: str, chunks: Iterable[bytes], digest: str) -> str:
        """POST, one PATCH per chunk with its Content-Range, then the closing PUT."""
        started = self.start_upload(repo)
        started.raise_for_status()
        location, offset = started.headers["Location"], 0
        for chunk in chunks:
            patched = self.request(
                "PATCH", location, data=chunk,
                headers={"Content-Type": "application/octet-stream", "Content-Range": f"{offset}-{offset + len(chunk) - 1}"},
            )  # fmt: skip
            patched.raise_for_status()
            location, offset = patched.headers["Location"], offset + len(chunk)
        done = self.request("PUT", location, params={"digest": digest})
        done.raise_for_status()
        return digest

    def get_blob(self, repo: str, digest: str, stream: bool = False) -> requests.Response:
        return self.request("GET", f"/v2/{repo}/blobs/{digest}", stream=stream)

    def head_blob(self, repo: str, digest: str) -> requests.Response:
        return self.request("HEAD", f"/v2/{repo}/blobs/{digest}")

    # ---- manifests ----

    def put_manifest(self, repo: str, reference: str, manifest: dict[str, Any]) -> requests.Response:
        body = json.dumps(manifest).encode()
        return self.request(
            "PUT", f"/v2/{repo}/manifests/{reference}", data=body, headers={"Content-Type": MANIFEST_V2}
        )

    def get_manifest(self, repo: str, reference: str) -> requests.Response:
        return self.request("GET", f"/v2/{repo}/manifests/{reference}", headers={"Accept": MANIFEST_V2})

    def push_image(self, repo: str, tag: str, layers: list[bytes], chunk_size: int | None = None) -> str:
        """Upload the layers and a config, put a schema 2 manifest; return the manifest digest."""
        descriptors = []
        for layer in layers:
            digest = sha256_digest(layer)
            if chunk_size:
                self.upload_chunked(repo, _chunks(layer, chunk_size), digest)
            else:
                self.upload_monolithic(repo, layer)
            descriptors.append({"mediaType": LAYER_GZIP, "size": len(layer), "digest": digest})
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": [d["digest"] for d in descriptors]},
            }
        ).encode()
        config_digest = self.upload_monolithic(repo, config)
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST_V2,
            "config": {"mediaType": CONFIG_V1, "size": len(config), "digest": config_digest},
            "layers": descriptors,
        }
        put = self.put_manifest(repo, tag, manifest)
        put.raise_for_status()
        return str(put.headers["Docker-Content-Digest"])

    def tags(self, repo: str, **params: str) -> requests.Response:
        return self.request("GET", f"/v2/{repo}/tags/list", params=params or None)


def _chunks(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]
