"""Files that hold a secret are uploaded 0600, readable by the user their container's process runs as.

The registry's config.yml (http.secret, the S3 key, the Redis password), the htpasswd file, redis.conf (the
password), a mirror's config (the upstream account) and the maintenance copies. Live proof that the images
still start with them: tests/live/test_stack.py (registry), tests/live/test_replicas.py (Redis).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from components.redis_cache import REDIS_CONF_PATH, REDIS_UID
from harness.program import ProgramRun, plain

pytestmark = pytest.mark.unit

S3 = {"driver": "s3", "bucket": "images", "regionEndpoint": "https://s3.lan", "accessKey": "AK", "secretKey": "sk-123"}
EVERY_SECRET_FILE = {
    "auth": {"users": {"alice": "correct-horse-battery"}},
    "registry": {"replicas": 2},
    "storage": S3,
    "proxy": {"fastBlobDownloads": False},
    "mirrors": [
        {"name": "ghcr", "remoteUrl": "https://ghcr.io", "port": 5443, "username": "bot", "password": "tok-12345678"}
    ],
}


# What the secrets above look like inside a rendered file: themselves, a generated password (the fakes start
# those with "generated-"), or a bcrypt hash of an account's password.
SECRET_MARKS = ("sk-123", "tok-12345678", "generated-", "$2b$")


def uploads(run: ProgramRun) -> list[tuple[str, dict[str, Any]]]:
    return [
        (container.name, upload)
        for container in run.of_type("docker:index/container:Container")
        for upload in plain(container.inputs).get("uploads", [])
    ]


def test_every_upload_that_holds_a_secret_is_0600(run: Callable[..., ProgramRun]) -> None:
    result = run(**EVERY_SECRET_FILE)
    secret_uploads = [
        (name, upload) for name, upload in uploads(result) if any(mark in upload["content"] for mark in SECRET_MARKS)
    ]
    files = {upload["file"] for _, upload in secret_uploads}
    # The class, and that the config reaches each kind of secret file.
    assert {"/etc/docker/registry/config.yml", "/auth/htpasswd", REDIS_CONF_PATH} <= files, files
    loose = [(name, upload["file"], upload["permissions"]) for name, upload in secret_uploads]
    assert all(mode == "0600" for _, _, mode in loose), [entry for entry in loose if entry[2] != "0600"]


def test_redis_conf_lies_where_the_entrypoint_gives_it_to_redis(run: Callable[..., ProgramRun]) -> None:
    # Root owns an upload; the upstream entrypoint chowns what is in its working directory /data to redis.
    result = run(**EVERY_SECRET_FILE)
    (redis,) = [r for r in result.of_type("docker:index/container:Container") if r.name.startswith("registry-redis")]
    inputs = plain(redis.inputs)
    assert REDIS_CONF_PATH.startswith("/data/")
    assert inputs["command"] == ["redis-server", REDIS_CONF_PATH]
    # The healthcheck runs as root without DAC_OVERRIDE: it must not read redis's 0600 file.
    assert REDIS_CONF_PATH not in " ".join(inputs["healthcheck"]["tests"])


def test_swarm_secrets_are_owned_by_the_user_of_their_process(run: Callable[..., ProgramRun]) -> None:
    result = run(
        **{
            **EVERY_SECRET_FILE,
            "mirrors": [],
            "engine": "swarm",
            "bindAddress": "0.0.0.0",
            "swarm": {"edgeConstraints": ["node.hostname==edge-1"]},
        }
    )
    owners = {}
    for service in result.of_type("docker:index/service:Service"):
        spec = plain(service.inputs)["taskSpec"]["containerSpec"]
        for secret in spec.get("secrets", []):
            owners[(service.name, secret["fileName"])] = (secret["fileUid"], secret["fileGid"], secret["fileMode"])
    assert owners[("registry-redis-service", REDIS_CONF_PATH)] == (str(REDIS_UID), str(REDIS_UID), 0o600)
    assert owners[("registry-distribution-service", "/etc/docker/registry/config.yml")] == ("0", "0", 0o600)
