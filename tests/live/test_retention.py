"""Tag retention on a live stack keeps what kept tags need: a multi-platform image (an OCI index tagged 1.0 over
platform manifests tagged 1.0-amd64 and 1.0-arm64, as `docker buildx imagetools create` pushes them), its cosign
signature (sha256-<index>.sig) and an SBOM that names the index as its subject; older build tags and a build's
signature go, and the garbage collection that follows takes their layers.

Everything is pushed over the registry HTTP API (no docker CLI), through nginx, to the gc stack of test_gc.py
(tests/live/stacks/gc.yaml) brought up once with one rule for multi/* and retention for real; the program's own
maintenance container runs retention and collection."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import docker
import pytest
import requests
import yaml

from harness import realizer
from harness.registry_api import RegistryClient, sha256_digest
from tests.live.conftest import STACKS_DIR, LiveStack, bring_up

pytestmark = pytest.mark.live

GC_STACK = STACKS_DIR / "gc.yaml"
REPO = "multi/app"
RULE = {"repositories": ["multi/*"], "keepLast": 1, "keepTags": ["1.0"]}
DATA_DIR = "/var/lib/registry"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
COSIGN_PAYLOAD = "application/vnd.dev.cosign.simplesigning.v1+json"
SPDX = "application/spdx+json"
ACCEPT = ", ".join(
    [
        OCI_INDEX,
        OCI_MANIFEST,
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


@pytest.fixture(scope="module")
def retention_stack(
    engine: docker.DockerClient, test_images: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveStack]:
    """The gc stack (same name, ports and state as test_gc.py's) with this module's rule, not a dry run: one
    bring-up, no second `up` to change the rules. Without its accounts: each request would cost a bcrypt check
    (cost 12) in the registry, some 20 s over this test's 60 requests, and retention does not look at accounts."""
    realizer.down(GC_STACK, volumes=True, client=engine)
    tmp = tmp_path_factory.mktemp("retention")
    document = yaml.safe_load(GC_STACK.read_text())
    document["config"]["private-registry:gc"]["retention"] = {"dryRun": False, "rules": [RULE]}
    del document["config"]["private-registry:auth"]
    config_file = tmp / GC_STACK.name
    config_file.write_text(yaml.safe_dump(document))
    yield bring_up(config_file, engine, tmp)
    realizer.down(GC_STACK, volumes=True, client=engine)


@dataclass
class Pushed:
    """A manifest as pushed: its digest and the blobs it references (with their content, to check pulls)."""

    digest: str
    media_type: str
    size: int
    blobs: dict[str, bytes]

    @property
    def hex(self) -> str:
        return self.digest.removeprefix("sha256:")


def put_manifest(api: RegistryClient, reference: str, document: dict[str, Any], blobs: dict[str, bytes]) -> Pushed:
    body = json.dumps(document).encode()
    response = api.request(
        "PUT", f"/v2/{REPO}/manifests/{reference}", data=body, headers={"Content-Type": document["mediaType"]}
    )
    assert response.status_code == 201, (reference, response.status_code, response.text)
    digest = str(response.headers["Docker-Content-Digest"])
    assert digest == sha256_digest(body)
    return Pushed(digest, document["mediaType"], len(body), blobs)


def descriptor(media_type: str, content: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha256_digest(content), "size": len(content), **extra}


def push_image(
    api: RegistryClient,
    reference: str,
    *,
    config: bytes,
    layers: list[tuple[str, bytes]],
    subject: Pushed | None = None,
    **fields: Any,
) -> Pushed:
    """Blobs first, then an OCI image manifest naming them (and its subject, if any)."""
    blobs = {sha256_digest(config): config}
    for _, content in layers:
        blobs[sha256_digest(content)] = content
    for content in blobs.values():
        api.upload_monolithic(REPO, content)
    config_type = fields.pop("config_type", OCI_CONFIG)
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        **fields,
        "config": descriptor(config_type, config),
        "layers": [descriptor(media_type, content) for media_type, content in layers],
    }
    if subject is not None:
        document["subject"] = {"mediaType": subject.media_type, "digest": subject.digest, "size": subject.size}
    return put_manifest(api, reference, document, blobs)


def platform_image(api: RegistryClient, reference: str, architecture: str) -> Pushed:
    layer = os.urandom(256 * 1024)
    config = json.dumps(
        {
            "architecture": architecture,
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [sha256_digest(layer)]},
        }
    ).encode()
    return push_image(api, reference, config=config, layers=[(OCI_LAYER, layer)])


def cosign_signature(api: RegistryClient, image: Pushed, endpoint: str) -> Pushed:
    """What `cosign sign` pushes with its default (tag) scheme: a simple-signing payload naming the image, its
    signature in an annotation, under the tag sha256-<image hex>.sig."""
    payload = json.dumps(
        {
            "critical": {
                "identity": {"docker-reference": f"{endpoint}/{REPO}"},
                "image": {"docker-manifest-digest": image.digest},
                "type": "cosign container image signature",
            },
            "optional": None,
        }
    ).encode()
    config = json.dumps(
        {"architecture": "", "os": "", "config": {}, "rootfs": {"type": "layers", "diff_ids": [sha256_digest(payload)]}}
    ).encode()
    signature = base64.b64encode(hashlib.sha512(payload).digest()).decode()
    blobs = {sha256_digest(config): config, sha256_digest(payload): payload}
    for content in blobs.values():
        api.upload_monolithic(REPO, content)
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config),
        "layers": [descriptor(COSIGN_PAYLOAD, payload, annotations={"dev.cosignproject.cosign/signature": signature})],
    }
    return put_manifest(api, f"sha256-{image.hex}.sig", document, blobs)


def get_manifest(api: RegistryClient, reference: str) -> requests.Response:
    return api.request("GET", f"/v2/{REPO}/manifests/{reference}", headers={"Accept": ACCEPT})


def assert_pulls(api: RegistryClient, pushed: Pushed) -> None:
    """The manifest by digest and every blob it names, each hashing to its digest."""
    manifest = get_manifest(api, pushed.digest)
    assert manifest.status_code == 200, (pushed.digest, manifest.status_code, manifest.text)
    assert sha256_digest(manifest.content) == pushed.digest
    for digest, content in pushed.blobs.items():
        blob = api.get_blob(REPO, digest)
        assert blob.status_code == 200, (digest, blob.status_code)
        assert sha256_digest(blob.content) == digest and blob.content == content


def run_maintenance(stack: LiveStack) -> tuple[int, str]:
    """One run in the maintenance container: the operator's command (gcRunCommand: `maintenance.sh run`) without
    its `tee` to the container's log, its report written to a file there and read back. `run` returns only when
    its output's last writer is gone, and a run leaves its write-pause heartbeat's `sleep 20` behind: read
    straight, the report would end up to 20 s after the run (about 4 s here)."""
    command = str(stack.outputs["gcRunCommand"]).split()
    assert command[:2] == ["docker", "exec"] and command[-1] == "run", command
    script = command[-2]
    maintenance = stack.container("maintenance")
    result = maintenance.exec_run(["sh", "-c", f'{script} once >/tmp/retention-test.log 2>&1; echo "exit $?"'])
    status = int(result.output.decode().split()[-1])
    report = maintenance.exec_run(["cat", "/tmp/retention-test.log"]).output.decode()
    return status, report


def set_pushed_time(stack: LiveStack, tag: str, when: str) -> None:
    """Retention orders tags by their link file's time: an older push, without waiting for it."""
    link = f"{DATA_DIR}/docker/registry/v2/repositories/{REPO}/_manifests/tags/{tag}/current/link"
    result = stack.container("maintenance").exec_run(["touch", "-d", when, link])
    assert result.exit_code == 0, result.output


def test_retention_keeps_every_platform_signature_and_sbom_of_a_kept_index(retention_stack: LiveStack) -> None:
    stack = retention_stack
    api = RegistryClient(f"https://127.0.0.1:{stack.https_port}", verify=str(stack.ca_file))

    # Older builds (made older by their link's time), one with a signature that goes with it.
    builds = [platform_image(api, f"build-{n}", "amd64") for n in (1, 2)]
    build_signature = cosign_signature(api, builds[0], stack.endpoint)
    for n, when in ((1, "2024-01-01 00:00:00"), (2, "2024-01-02 00:00:00")):
        set_pushed_time(stack, f"build-{n}", when)
    set_pushed_time(stack, f"sha256-{builds[0].hex}.sig", "2024-01-03 00:00:00")

    # The multi-platform image, pushed as buildx's imagetools does: platform manifests by tag, then the index.
    platforms = {arch: platform_image(api, f"1.0-{arch}", arch) for arch in ("amd64", "arm64")}
    index_document = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": pushed.digest,
                "size": pushed.size,
                "platform": {"architecture": arch, "os": "linux"},
            }
            for arch, pushed in platforms.items()
        ],
    }
    index = put_manifest(api, "1.0", index_document, {})
    signature = cosign_signature(api, index, stack.endpoint)
    # An SBOM as an OCI 1.1 artifact: an empty config, the document as its layer, the index as its subject;
    # tagged with a name like any build's (it must follow the index, not count as the newest tag).
    sbom = push_image(
        api,
        "1.0-sbom",
        config=b"{}",
        config_type=OCI_EMPTY,
        layers=[(SPDX, json.dumps({"spdxVersion": "SPDX-2.3", "name": "multi/app 1.0"}).encode())],
        subject=index,
        artifactType=SPDX,
    )
    tags_before = set(api.tags(REPO).json()["tags"])
    assert tags_before == {
        "build-1", "build-2", f"sha256-{builds[0].hex}.sig", "1.0-amd64", "1.0-arm64", "1.0",
        f"sha256-{index.hex}.sig", "1.0-sbom",
    }  # fmt: skip

    status, report = run_maintenance(stack)
    assert status == 0, report

    # Kept: the index by its tag, every platform manifest and blob, the signature and the SBOM.
    by_tag = get_manifest(api, "1.0")
    assert by_tag.status_code == 200 and by_tag.headers["Docker-Content-Digest"] == index.digest
    assert json.loads(by_tag.content)["mediaType"] == OCI_INDEX
    for pushed in platforms.values():
        assert_pulls(api, pushed)
    assert get_manifest(api, f"sha256-{index.hex}.sig").headers["Docker-Content-Digest"] == signature.digest
    assert_pulls(api, signature)
    assert get_manifest(api, "1.0-sbom").headers["Docker-Content-Digest"] == sbom.digest
    assert_pulls(api, sbom)
    assert set(api.tags(REPO).json()["tags"]) == {"1.0", f"sha256-{index.hex}.sig", "1.0-sbom"}

    # Gone: the builds, their layers and configs (collected), and the build's signature with them.
    for pushed in (*builds, build_signature):
        assert get_manifest(api, pushed.digest).status_code == 404, pushed.digest
        for digest in pushed.blobs:
            assert api.head_blob(REPO, digest).status_code == 404, f"{digest} was not collected"
    assert "blob eligible for deletion" in report
    assert "retention: multi/app: keeping 3 tags, deleting 5" in report, report
    for arch, pushed in platforms.items():
        assert f"retention: deleted tag multi/app:1.0-{arch} (its manifest {pushed.digest} stays" in report
