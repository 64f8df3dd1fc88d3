"""The "nothing lost" check after a fault (registry-deployment.md section 7).

Every blob file in the volume hashes to its name, no `link` file is empty, every tag resolves to a stored
manifest, HEAD on every blob a manifest references answers 200, and each previously pushed image still
pulls by digest with the same digest.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import docker

from harness.registry_api import RegistryClient, sha256_digest

STORAGE = Path("docker/registry/v2")


def volume_root(client: docker.DockerClient, volume: str) -> Path:
    """The volume's directory on this (local) engine's host."""
    return Path(client.volumes.get(volume).attrs["Mountpoint"]) / STORAGE


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(4 * 1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def assert_nothing_lost(
    engine: docker.DockerClient, volume: str, api: RegistryClient, pushed: list[tuple[str, str]]
) -> dict[str, int]:
    """Raise AssertionError naming what is broken; return counts of what was checked."""
    root = volume_root(engine, volume)
    blobs = sorted(root.glob("blobs/sha256/*/*/data"))
    for data in blobs:
        assert file_sha256(data) == data.parent.name, f"blob {data} does not hash to its name"
    links = list(root.glob("repositories/**/link"))
    empty = [str(link) for link in links if link.stat().st_size == 0]
    assert not empty, f"empty link files (a crash mid-write): {empty}"

    tags_checked = blobs_checked = 0
    for tag_link in sorted(root.glob("repositories/**/_manifests/tags/*/current/link")):
        repo = str(tag_link.relative_to(root / "repositories")).split("/_manifests/")[0]
        tag = tag_link.parent.parent.name
        response = api.get_manifest(repo, tag)
        assert response.status_code == 200, f"tag {repo}:{tag} does not resolve ({response.status_code})"
        assert response.headers["Docker-Content-Digest"] == tag_link.read_text().strip()
        manifest = json.loads(response.content)
        for descriptor in [manifest["config"], *manifest["layers"]]:
            head = api.head_blob(repo, descriptor["digest"])
            assert head.status_code == 200, f"{repo}: blob {descriptor['digest']} answers {head.status_code}"
            blobs_checked += 1
        tags_checked += 1

    for repo, digest in pushed:
        response = api.get_manifest(repo, digest)
        assert response.status_code == 200, f"{repo}@{digest} no longer pulls ({response.status_code})"
        assert sha256_digest(response.content) == digest, f"{repo}@{digest} came back with another digest"
    return {"blob_files": len(blobs), "links": len(links), "tags": tags_checked, "referenced_blobs": blobs_checked}
