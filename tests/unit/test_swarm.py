"""engine: swarm and dockerHost: the config errors, and what the program declares for a Swarm (services, configs
and secrets named after their content, rolling updates, host-mode ports) and for another Docker host."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pulumi
import pytest
import yaml

from components.swarm_service import file_object_name
from harness.program import ProgramRun, is_secret, plain
from tests.unit.test_config import error_of

pytestmark = pytest.mark.unit

Run = Callable[..., ProgramRun]
SECRET_KEY = "swarm-s3-Secret-5150-never-echo"
TLS_KEY = "-----BEGIN PRIVATE KEY-----\nMIIswarmkey\n-----END PRIVATE KEY-----\n"
CERT = "-----BEGIN CERTIFICATE-----\nMIIBclient\n-----END CERTIFICATE-----\n"
S3 = {
    "driver": "s3",
    "bucket": "team-registry",
    "regionEndpoint": "http://s3.internal:9000",
    "secure": False,
    "accessKey": "AKIAEXAMPLE",
    "secretKey": SECRET_KEY,
}
EDGE = "node.hostname==edge-1"
SWARM = {
    "engine": "swarm",
    "bindAddress": "0.0.0.0",
    "storage": S3,
    "registry": {"replicas": 3},
    "swarm": {"edgeConstraints": [EDGE]},
}
SWARM_PLACEMENT: dict[str, Any] = {"edgeConstraints": [EDGE]}
SERVICE = "docker:index/service:Service"


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param(
            {**SWARM, "bindAddress": "127.0.0.1"},
            "bindAddress is 127.0.0.1 but engine is 'swarm'",
            id="swarm-with-a-bind-address",
        ),
        pytest.param(
            {**SWARM, "storage": {"driver": "filesystem"}, "registry": {"replicas": 1}},
            "engine 'swarm' needs storage.driver 's3'",
            id="swarm-on-a-volume",
        ),
        pytest.param(
            {**SWARM, "mirrors": [{"name": "dockerhub", "port": 5443}]},
            "mirrors are not available with engine 'swarm'",
            id="swarm-with-mirrors",
        ),
        pytest.param(
            {"swarm": {"edgeConstraints": ["node.role==manager"]}},
            "the swarm settings are for engine: swarm",
            id="swarm-block-without-swarm",
        ),
        pytest.param(
            {**SWARM, "swarm": {"registryConstraints": ["role=manager"]}},
            "private-registry:swarm.registryConstraints: Value error, 'role=manager' is not a placement constraint".replace(
                "Value error, ", ""
            ),
            id="bad-constraint",
        ),
        pytest.param(
            {"engine": "nomad"}, "private-registry:engine: Input should be 'docker' or 'swarm'", id="unknown-engine"
        ),
        pytest.param(
            {"dockerHost": {"host": "tcp://ops-host:2376"}}, "needs tls (caPem, certPem, keyPem)", id="tcp-without-tls"
        ),
        pytest.param(
            {"dockerHost": {"host": "http://ops-host"}},
            "must be unix:///path, tcp://host:2376 or ssh://user@host",
            id="not-a-docker-host",
        ),
        pytest.param(
            {"dockerHost": {"host": "unix:///var/run/docker.sock", "sshOpts": ["-p", "2222"]}},
            "sshOpts are for ssh:// hosts",
            id="ssh-options-for-a-socket",
        ),
    ],
)
def test_bad_placement_config_is_refused_naming_the_key(values: dict[str, Any], expected: str) -> None:
    message = error_of(**values)
    assert expected in message
    assert SECRET_KEY not in message


def test_config_and_secret_names_follow_their_content() -> None:
    one = file_object_name("private-registry-prod-proxy", "/etc/nginx/conf.d/default.conf", "a")
    assert one == file_object_name("private-registry-prod-proxy", "/etc/nginx/conf.d/default.conf", "a")
    assert one != file_object_name("private-registry-prod-proxy", "/etc/nginx/conf.d/default.conf", "b")
    assert one.startswith("private-registry-prod-proxy-default-conf-") and len(one) <= 64
    assert len(file_object_name("x" * 80, "/a/config.yml", "a")) <= 64


@pytest.fixture
def swarm(run: Run) -> ProgramRun:
    return run(**SWARM)


def services(result: ProgramRun) -> dict[str, dict[str, Any]]:
    return {plain(r.inputs)["name"]: plain(r.inputs) for r in result.registrations.values() if r.typ == SERVICE}


def test_a_swarm_stack_is_services_on_an_attachable_overlay(swarm: ProgramRun) -> None:
    types = {r.typ for r in swarm.registrations.values()}
    assert "docker:index/container:Container" not in types and "docker:index/remoteImage:RemoteImage" not in types
    network = plain(swarm.named("registry-net").inputs)
    assert network["driver"] == "overlay" and network["attachable"] is True
    assert sorted(services(swarm)) == [
        "private-registry-test-maintenance",
        "private-registry-test-proxy",
        "private-registry-test-redis",
        "private-registry-test-registry",
        "private-registry-test-ui",
    ]


def test_the_registry_is_one_service_of_n_replicas_rolling_start_first(swarm: ProgramRun) -> None:
    registry = services(swarm)["private-registry-test-registry"]
    assert registry["mode"] == {"replicated": {"replicas": 3}}
    assert registry["endpointSpec"] == {"mode": "dnsrr"}
    assert registry["updateConfig"] == {
        "parallelism": 1, "delay": "5s", "order": "start-first", "failureAction": "pause", "monitor": "20s"
    }  # fmt: skip
    assert registry["convergeConfig"]["timeout"] == "5m"
    spec = registry["taskSpec"]
    assert spec["networksAdvanceds"][0]["aliases"] == ["registry"]
    assert spec["containerSpec"]["capDrops"] == ["ALL"] and spec["containerSpec"]["args"] == [
        "/etc/docker/registry/config.yml"
    ]
    assert spec["containerSpec"]["healthcheck"]["tests"][0] == "CMD-SHELL"
    assert spec["resources"]["limits"]["memoryBytes"] == 512 * 1024 * 1024
    # config.yml holds http.secret and the S3 key: a Swarm secret, mounted where the image reads it.
    (secret,) = [s for s in spec["containerSpec"]["secrets"] if s["fileName"] == "/etc/docker/registry/config.yml"]
    assert secret["fileMode"] == 0o600 and secret["fileUid"] == "0"
    assert "configs" not in spec["containerSpec"]


def test_the_proxy_publishes_in_host_mode_on_the_edge_and_stops_first(swarm: ProgramRun) -> None:
    proxy = services(swarm)["private-registry-test-proxy"]
    assert {"targetPort": 443, "publishedPort": 443, "publishMode": "host", "protocol": "tcp"} in proxy["endpointSpec"][
        "ports"
    ]
    assert proxy["updateConfig"]["order"] == "stop-first"
    assert proxy["taskSpec"]["placement"]["constraints"] == [EDGE]
    spec = proxy["taskSpec"]["containerSpec"]
    assert {c["fileName"] for c in spec["configs"]} == {"/etc/nginx/conf.d/default.conf", "/etc/nginx/tls/server.crt"}
    assert [s["fileName"] for s in spec["secrets"]] == ["/etc/nginx/tls/server.key"]
    maintenance = services(swarm)["private-registry-test-maintenance"]
    assert maintenance["taskSpec"]["placement"]["constraints"] == [EDGE]
    assert maintenance["mode"] == {"replicated": {"replicas": 1}}


def test_swarm_configs_hold_the_rendered_files_and_secrets_stay_secret(swarm: ProgramRun) -> None:
    configs = {
        plain(r.inputs)["name"]: r
        for r in swarm.registrations.values()
        if r.typ == "docker:index/serviceConfig:ServiceConfig"
    }
    site = next(r for name, r in configs.items() if "-proxy-default-conf-" in name)
    text = base64.b64decode(plain(site.inputs)["data"]).decode()
    assert "server_name registry.example.com;" in text and "proxy_next_upstream" in text
    secrets = [r for r in swarm.registrations.values() if r.typ == "docker:index/secret:Secret"]
    assert secrets and all(is_secret(r.inputs["data"]) for r in secrets)
    registry_secret = next(r for r in secrets if "-registry-config-yml-" in plain(r.inputs)["name"])
    document = yaml.safe_load(base64.b64decode(plain(registry_secret.inputs)["data"]))
    assert document["storage"]["s3"]["secretkey"] == SECRET_KEY
    for resource in configs.values():
        assert SECRET_KEY not in base64.b64decode(plain(resource.inputs)["data"]).decode()


def test_a_changed_file_gets_a_new_config_name(run: Run) -> None:
    def site_config_name(result: ProgramRun) -> str:
        return str(
            next(
                plain(r.inputs)["name"]
                for r in result.registrations.values()
                if r.typ == "docker:index/serviceConfig:ServiceConfig"
                and "-proxy-default-conf-" in plain(r.inputs)["name"]
            )
        )

    before = site_config_name(run(**SWARM))
    after = site_config_name(run(**{**SWARM, "httpsPort": 8443}))
    assert before != after


def test_swarm_outputs_keep_their_names(swarm: ProgramRun) -> None:
    assert swarm.outputs["registryUrl"] == "https://registry.example.com"
    assert swarm.outputs["maintenanceContainer"] == "private-registry-test-maintenance"
    assert swarm.outputs["gcRunCommand"] == (
        "docker exec $(docker ps -q --filter label=com.docker.swarm.service.name=private-registry-test-maintenance"
        " | head -n 1) /usr/local/sbin/maintenance.sh run"
    )


def test_a_docker_host_gets_an_explicit_provider_and_its_key_stays_secret(run: Run) -> None:
    result = run(dockerHost={"host": "tcp://ops-host:2376", "tls": {"caPem": CERT, "certPem": CERT, "keyPem": TLS_KEY}})
    (provider,) = [r for r in result.registrations.values() if r.typ == "pulumi:providers:docker"]
    inputs = plain(provider.inputs)
    assert inputs["host"] == "tcp://ops-host:2376" and inputs["caMaterial"] == CERT
    assert is_secret(provider.inputs["keyMaterial"])
    docker_resources = [r for r in result.registrations.values() if r.typ.startswith("docker:index/")]
    assert docker_resources and all(r.options["provider"].startswith(provider.urn) for r in docker_resources)


@pytest.mark.parametrize(
    ("docker_host", "cli"),
    [
        pytest.param({"host": "ssh://deploy@build-host"}, "docker --host ssh://deploy@build-host", id="ssh"),
        pytest.param(
            {"host": "tcp://ops-host:2376", "tls": {"caPem": CERT, "certPem": CERT, "keyPem": TLS_KEY}},
            "docker --host tcp://ops-host:2376 --tlsverify",
            id="tcp-tls",
        ),
    ],
)
def test_gc_run_command_reaches_the_docker_host_the_stack_is_on(
    run: Run, docker_host: dict[str, Any], cli: str
) -> None:
    # A bare `docker exec` would run against the operator's local engine, where no such container is.
    result = run(dockerHost=docker_host)
    assert result.outputs["gcRunCommand"] == (
        f"{cli} exec private-registry-test-maintenance /usr/local/sbin/maintenance.sh run"
    )


def test_without_a_docker_host_there_is_no_explicit_provider(run: Run) -> None:
    result = run()
    assert not [r for r in result.registrations.values() if r.typ == "pulumi:providers:docker"]


@pytest.mark.parametrize(
    ("stack", "problem"),
    [
        pytest.param("prod.eu", "'private-registry-prod.eu-net'", id="a-dot"),
        pytest.param("s" * 40, "at most 63 characters", id="too-long"),
    ],
)
def test_a_stack_name_swarm_would_refuse_is_a_config_error(run: Run, stack: str, problem: str) -> None:
    with pytest.raises(pulumi.RunError, match="engine 'swarm'") as caught:
        run(stack=stack, **SWARM)
    assert problem in str(caught.value)


def test_the_ui_port_is_refused_on_swarm() -> None:
    assert "uiPort is set with engine 'swarm'" in error_of(**SWARM, uiPort=8080)


def test_replicas_finish_their_requests_when_stopped_a_single_registry_as_before(run: Run) -> None:
    def drain(result: ProgramRun, secret_name: str | None = None) -> Any:
        if secret_name is None:
            inputs = plain(result.named("registry-distribution-container").inputs)
            (config,) = [u for u in inputs["uploads"] if u["file"] == "/etc/docker/registry/config.yml"]
            return yaml.safe_load(config["content"])["http"].get("draintimeout")
        secret = next(
            r
            for r in result.registrations.values()
            if r.typ == "docker:index/secret:Secret" and secret_name in plain(r.inputs)["name"]
        )
        return yaml.safe_load(base64.b64decode(plain(secret.inputs)["data"]))["http"].get("draintimeout")

    assert drain(run()) is None
    assert drain(run(storage=S3, registry={"replicas": 2})) == "8s"  # the 10 s stop grace, less 2 s to exit
    assert (
        drain(run(**{**SWARM, "swarm": {**SWARM_PLACEMENT, "stopGraceSeconds": 30}}), "-registry-config-yml-") == "28s"
    )


def test_updates_pause_on_failure_and_host_ports_stop_first(swarm: ProgramRun) -> None:
    for name, service in services(swarm).items():
        assert service["updateConfig"]["failureAction"] == "pause", name
        assert service["rollbackConfig"]["failureAction"] == "pause", name
        if service["endpointSpec"].get("ports"):
            assert service["updateConfig"]["order"] == "stop-first", name


def test_path_style_follows_the_endpoint_unless_set(run: Run) -> None:
    def s3_section(**storage: Any) -> dict[str, Any]:
        result = run(registry={"image": "registry:3.0.0"}, storage={**S3, **storage})
        inputs = plain(result.named("registry-distribution-container").inputs)
        (config,) = [u for u in inputs["uploads"] if u["file"] == "/etc/distribution/config.yml"]
        section: dict[str, Any] = yaml.safe_load(config["content"])["storage"]["s3"]
        return section

    assert s3_section()["forcepathstyle"] is True  # an S3-compatible endpoint: path style, as registry 2 does
    assert s3_section(forcePathStyle=False)["forcepathstyle"] is False
    aws = {key: value for key, value in S3.items() if key not in ("regionEndpoint", "secure")}
    result = run(registry={"image": "registry:3.0.0"}, storage=aws)
    inputs = plain(result.named("registry-distribution-container").inputs)
    (config,) = [u for u in inputs["uploads"] if u["file"] == "/etc/distribution/config.yml"]
    assert yaml.safe_load(config["content"])["storage"]["s3"]["forcepathstyle"] is False  # AWS: virtual-host
