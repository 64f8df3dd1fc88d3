"""Shared storage and replicas: the storage/redis config, the registry config they render (2.x and 3.x), and
what the program declares for several registry replicas."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from components.redis_cache import REDIS_CONF_PATH
from components.rendering import RedisCache, RegistryConfig, S3Storage, render_registry_config
from harness.program import ProgramRun, is_secret, plain
from tests.unit.test_config import error_of, load
from tests.unit.test_program import CONTAINER, upload

pytestmark = pytest.mark.unit

Run = Callable[..., ProgramRun]
SECRET_KEY = "s3-Secret-9981-never-echo-this"
REDIS_PASSWORD = "redis-Pw-4410-never-echo-this"
S3 = {
    "driver": "s3",
    "bucket": "team-registry",
    "regionEndpoint": "http://s3.internal:9000",
    "secure": False,
    "accessKey": "AKIAEXAMPLE",
    "secretKey": SECRET_KEY,
    "rootDirectory": "/registry",
    "forcePathStyle": True,
}
CONFIG_2 = "/etc/docker/registry/config.yml"
CONFIG_3 = "/etc/distribution/config.yml"


def registry_document(run: ProgramRun, container: str = "registry-distribution-container") -> dict[str, Any]:
    inputs = plain(run.named(container).inputs)
    path = CONFIG_3 if any(u["file"] == CONFIG_3 for u in inputs["uploads"]) else CONFIG_2
    document: dict[str, Any] = yaml.safe_load(upload(inputs, path)["content"])
    return document


# ---- config


def test_filesystem_is_the_default_and_needs_no_redis() -> None:
    settings = load()
    assert not settings.storage.is_s3 and settings.registry.replicas == 1
    assert not settings.uses_redis and settings.fast_blob_downloads


def test_s3_with_replicas_is_accepted_and_turns_the_fast_path_off() -> None:
    settings = load(storage=S3, registry={"replicas": 3})
    assert settings.storage.is_s3 and settings.uses_redis
    assert settings.storage.secret_key is not None and settings.storage.secret_key.get_secret_value() == SECRET_KEY
    assert not settings.fast_blob_downloads  # blobs are not on a volume nginx could read
    assert SECRET_KEY not in repr(settings)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param(
            {"storage": {"driver": "s3"}},
            "private-registry:storage: driver 's3' needs bucket",
            id="s3-without-bucket",
        ),
        pytest.param(
            {"registry": {"replicas": 2}},
            "registry.replicas is 2 but storage.driver is 'filesystem'",
            id="replicas-on-filesystem",
        ),
        pytest.param(
            {"storage": {"bucket": "team-registry"}},
            "bucket set with driver 'filesystem'",
            id="s3-key-without-driver",
        ),
        pytest.param(
            {"storage": {**S3, "bucket": "Team_Registry"}},
            "private-registry:storage.bucket: must be an S3 bucket name",
            id="bad-bucket-name",
        ),
        pytest.param(
            {"storage": {**S3, "regionEndpoint": "s3.internal:9000"}},
            "private-registry:storage.regionEndpoint: must be a URL",
            id="endpoint-without-scheme",
        ),
        pytest.param(
            {"storage": {**S3, "secure": True}},
            "secure is true but regionEndpoint is http://s3.internal:9000",
            id="secure-disagrees-with-endpoint",
        ),
        pytest.param(
            {"storage": {**S3, "accessKey": None}},
            "accessKey and secretKey go together",
            id="secret-key-alone",
        ),
        pytest.param(
            {"storage": {**S3, "chunkSizeMib": 4}},
            "private-registry:storage.chunkSizeMib: Input should be greater than or equal to 5",
            id="parts-below-s3-minimum",
        ),
        pytest.param(
            {"storage": S3, "proxy": {"fastBlobDownloads": True}},
            "proxy.fastBlobDownloads is true but storage.driver is 's3'",
            id="fast-path-with-s3",
        ),
        pytest.param(
            {"storage": S3, "gc": {"retention": {"rules": [{"repositories": ["a/*"], "keepLast": 1}]}}},
            "gc.retention.rules need storage.driver 'filesystem'",
            id="retention-with-s3",
        ),
        pytest.param(
            {"redis": {"address": "redis.internal"}},
            "private-registry:redis.address: must be host:port",
            id="redis-address-without-port",
        ),
        pytest.param(
            {"redis": {"password": REDIS_PASSWORD}},
            "password is for an external Redis",
            id="password-for-own-redis",
        ),
        pytest.param(
            {"registry": {"replicas": 0}},
            "private-registry:registry.replicas: Input should be greater than or equal to 1",
            id="no-replicas",
        ),
    ],
)
def test_bad_storage_config_is_refused_naming_the_key(values: dict[str, Any], expected: str) -> None:
    message = error_of(**values)
    assert expected in message
    assert SECRET_KEY not in message and REDIS_PASSWORD not in message


# ---- rendering


def s3_storage(**changes: Any) -> S3Storage:
    values: dict[str, Any] = {
        "bucket": "team-registry",
        "region": "us-east-1",
        "region_endpoint": "http://s3.internal:9000",
        "access_key": "AKIAEXAMPLE",
        "secret_key": SECRET_KEY,
        "root_directory": "/registry",
        "force_path_style": True,
        "secure": False,
        "redirect": False,
        "chunk_size_bytes": 10 * 1024 * 1024,
    }
    return S3Storage(**{**values, **changes})


def rendered(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "public_url": "https://registry.example.com",
        "http_secret": "h" * 32,
        "delete_enabled": True,
        "log_level": "info",
    }
    document: dict[str, Any] = yaml.safe_load(render_registry_config(RegistryConfig(**{**values, **changes})))
    return document


def test_s3_storage_replaces_the_filesystem_and_blobs_come_through_the_registry() -> None:
    storage = rendered(s3=s3_storage())["storage"]
    assert "filesystem" not in storage
    assert storage["s3"] == {
        "bucket": "team-registry",
        "region": "us-east-1",
        "regionendpoint": "http://s3.internal:9000",
        "accesskey": "AKIAEXAMPLE",
        "secretkey": SECRET_KEY,
        "rootdirectory": "/registry",
        "secure": False,
        "v4auth": True,
        "chunksize": 10 * 1024 * 1024,
    }
    assert storage["redirect"] == {"disable": True}
    assert "cache" not in storage


def test_registry_3_gets_forcepathstyle_which_2_does_not_know() -> None:
    assert rendered(s3=s3_storage(), major_version=3)["storage"]["s3"]["forcepathstyle"] is True
    assert "forcepathstyle" not in rendered(s3=s3_storage(), major_version=2)["storage"]["s3"]


def test_redirect_on_lets_the_registry_send_clients_to_the_store() -> None:
    assert "redirect" not in rendered(s3=s3_storage(redirect=True))["storage"]


def test_no_credentials_and_the_bucket_root_leave_the_keys_out() -> None:
    section = rendered(s3=s3_storage(access_key=None, secret_key=None, root_directory="/"))["storage"]["s3"]
    assert not {"accesskey", "secretkey", "rootdirectory"} & set(section)


def test_redis_cache_in_the_spelling_of_each_major_version() -> None:
    redis = RedisCache(address="redis:6379", password=REDIS_PASSWORD, db=2)
    two = rendered(s3=s3_storage(), redis=redis, major_version=2)
    three = rendered(s3=s3_storage(), redis=redis, major_version=3)
    for document in (two, three):
        assert document["storage"]["cache"] == {"blobdescriptor": "redis"}
        assert document["redis"]["password"] == REDIS_PASSWORD and document["redis"]["db"] == 2
    # 2.x: redigo's addr and pool; 3.x: go-redis options inline (a 2.x `addr` would be ignored there).
    assert two["redis"]["addr"] == "redis:6379" and "addrs" not in two["redis"] and "pool" in two["redis"]
    assert three["redis"]["addrs"] == ["redis:6379"] and "addr" not in three["redis"]


# ---- the program


def test_a_single_registry_is_unchanged_by_the_new_settings(run: Run) -> None:
    result = run()
    names = {r.name for r in result.registrations.values() if r.typ == CONTAINER}
    assert "registry-distribution-container" in names
    assert not any("redis" in name or "distribution-2" in name for name in names)
    document = registry_document(result)
    assert document["storage"]["filesystem"] == {"rootdirectory": "/var/lib/registry"}
    assert "cache" not in document["storage"] and "redis" not in document


@pytest.fixture
def replicated(run: Run) -> ProgramRun:
    return run(storage=S3, registry={"replicas": 3})


def test_replicas_are_containers_sharing_one_name_on_the_network(replicated: ProgramRun) -> None:
    replicas = [
        plain(replicated.named(name).inputs)
        for name in (
            "registry-distribution-container",
            "registry-distribution-2-container",
            "registry-distribution-3-container",
        )
    ]
    assert [r["name"] for r in replicas] == [
        "private-registry-test-registry",
        "private-registry-test-registry-2",
        "private-registry-test-registry-3",
    ]
    for replica in replicas:
        assert replica["networksAdvanced"][0]["aliases"] == ["registry"]
        assert "volumes" not in replica  # the data is in the bucket
    # One config for all: same http.secret (upload state), same store, same cache.
    documents = [
        registry_document(replicated, f"registry-distribution{suffix}-container") for suffix in ("", "-2", "-3")
    ]
    assert documents[0] == documents[1] == documents[2]
    assert documents[0]["storage"]["cache"] == {"blobdescriptor": "redis"}
    assert documents[0]["redis"]["addr"] == "redis:6379"
    assert not any(
        r.typ == "docker:index/volume:Volume" and "registry-data" in json.dumps(plain(r.inputs))
        for r in replicated.registrations.values()
    )


def test_the_stacks_own_redis_is_a_password_protected_lru_cache(replicated: ProgramRun) -> None:
    redis = replicated.named("registry-redis-container")
    inputs = plain(redis.inputs)
    assert inputs["name"] == "private-registry-test-redis"
    assert not inputs.get("ports")  # never published
    assert inputs["networksAdvanced"][0]["aliases"] == ["redis"]
    conf = upload(inputs, REDIS_CONF_PATH)["content"]
    password = registry_document(replicated)["redis"]["password"]
    assert f"requirepass {password}\n" in conf and len(password) >= 32
    assert "maxmemory 256mb\n" in conf and "maxmemory-policy allkeys-lru\n" in conf and 'save ""\n' in conf
    assert is_secret(redis.inputs["uploads"])
    assert inputs["capabilities"] == {"drops": ["ALL"], "adds": ["CHOWN", "SETGID", "SETUID"]}


def test_an_external_redis_is_used_as_given_and_its_password_stays_secret(run: Run) -> None:
    result = run(
        storage=S3,
        registry={"replicas": 2, "image": "registry:3.0.0"},
        redis={"address": "cache.internal:6380", "password": REDIS_PASSWORD, "db": 3},
    )
    assert not any("redis" in r.name for r in result.registrations.values() if r.typ == CONTAINER)
    document = registry_document(result)
    assert document["redis"]["addrs"] == ["cache.internal:6380"] and document["redis"]["db"] == 3
    registry = result.named("registry-distribution-container")
    assert is_secret(registry.inputs["uploads"])
    maintenance = plain(result.named("registry-maintenance-container").inputs)
    cache_env = upload(maintenance, "/etc/registry-maintenance/cache.env")
    assert "REDIS_ADDRESS=cache.internal:6380\n" in cache_env["content"] and cache_env["permissions"] == "0600"
    assert is_secret(result.named("registry-maintenance-container").inputs["uploads"])
    for resource in result.registrations.values():
        if resource.typ == CONTAINER:
            assert REDIS_PASSWORD not in json.dumps(plain(resource.inputs).get("envs", []))
    assert REDIS_PASSWORD not in json.dumps(result.outputs, default=str)


def test_the_s3_secret_key_is_only_in_secret_config_files(replicated: ProgramRun) -> None:
    assert registry_document(replicated)["storage"]["s3"]["secretkey"] == SECRET_KEY
    for resource in replicated.registrations.values():
        inputs = plain(resource.inputs)
        if SECRET_KEY in json.dumps(inputs, default=str):
            assert resource.typ == CONTAINER and is_secret(resource.inputs["uploads"]), resource.name
            assert SECRET_KEY not in json.dumps(inputs.get("envs", [])) + json.dumps(inputs.get("command", []))
    assert SECRET_KEY not in json.dumps(replicated.outputs, default=str)


def test_with_s3_the_proxy_relays_blob_downloads_and_mounts_no_data(replicated: ProgramRun) -> None:
    proxy = plain(replicated.named("registry-proxy-container").inputs)
    site = upload(proxy, "/etc/nginx/conf.d/default.conf")["content"]
    assert "_registry_says_blob_exists" not in site
    assert not any(v.get("containerPath") == "/var/lib/registry" for v in proxy.get("volumes", []))
    maintenance = plain(replicated.named("registry-maintenance-container").inputs)
    assert not any(v.get("containerPath") == "/var/lib/registry" for v in maintenance["volumes"])
    assert "DATA_ON_VOLUME=false\n" in upload(maintenance, "/etc/registry-maintenance/settings.env")["content"]


def proxy_site(result: ProgramRun) -> str:
    content: str = upload(plain(result.named("registry-proxy-container").inputs), "/etc/nginx/conf.d/default.conf")[
        "content"
    ]
    return content


def test_with_replicas_nginx_fails_over_and_serves_each_replicas_metrics(replicated: ProgramRun) -> None:
    site = proxy_site(replicated)
    assert "proxy_next_upstream error timeout http_502 http_503 http_504;" in site
    assert "proxy_connect_timeout 3s;" in site
    for replica in (2, 3):
        assert f"location = /registry/replicas/{replica}/metrics {{" in site
        assert f"set $registry_metrics_upstream http://private-registry-test-registry-{replica}:5001;" in site
    assert "set $registry_metrics_upstream http://private-registry-test-registry:5001;" in site
    endpoints = replicated.outputs["metricsEndpoints"]
    assert "http://proxy:9113/registry/replicas/3/metrics" in endpoints
    jobs = yaml.safe_load(replicated.outputs["prometheusScrapeConfig"])["scrape_configs"]
    assert [job["metrics_path"] for job in jobs][:3] == [
        "/registry/metrics",
        "/registry/replicas/2/metrics",
        "/registry/replicas/3/metrics",
    ]


def test_one_registry_keeps_its_site_without_failover(run: Run) -> None:
    site = proxy_site(run())
    assert "proxy_next_upstream" not in site and "/registry/replicas/" not in site
    assert "set $registry_metrics_upstream http://registry:5001;" in site


def test_only_a_registry_off_the_volume_is_labelled_with_its_storage(replicated: ProgramRun, run: Run) -> None:
    def labels(result: ProgramRun) -> dict[str, str]:
        inputs = plain(result.named("registry-distribution-container").inputs)
        return {item["label"]: item["value"] for item in inputs["labels"]}

    assert labels(replicated)["org.private-registry.storage"] == "s3"
    # A stack on the volume keeps exactly its labels (a new label would replace its registry container).
    assert "org.private-registry.storage" not in labels(run())
