"""The STAND-IN provider plugins (harness/plugins) without the engine or Docker: the replacement rules their Diff
answers, how outputs keep secrets, what an error may say, and one plugin served over gRPC as the engine calls it.
The real engine's use of them is tests/engine."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc  # type: ignore[import-untyped]
import pytest
from google.protobuf import empty_pb2  # type: ignore[import-untyped]
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

from harness import swarm_provider
from harness.plugins import server
from harness.plugins.docker import NETWORK, REMOTE_IMAGE, DockerStandIn
from harness.plugins.random import RANDOM_PASSWORD, RandomStandIn
from harness.plugins.tls import LOCALLY_SIGNED, PRIVATE_KEY, TlsStandIn
from harness.realizer import CONTAINER

pytestmark = pytest.mark.unit

URN = "urn:pulumi:dev::private-registry::private-registry:index:PrivateRegistry$"


def container(**changes: Any) -> dict[str, Any]:
    inputs: dict[str, Any] = {
        "name": "private-registry-dev-ui",
        "image": "sha256:abc",
        "envs": ["REGISTRY_TITLE=Dev Registry"],
        "uploads": [{"file": "/etc/a.conf", "content": "a"}, {"file": "/etc/b.conf", "content": "b"}],
        "healthcheck": {"tests": ["CMD", "true"], "interval": "10s"},
        "wait": True,
        "waitTimeout": 120,
        "restart": "unless-stopped",
        "memory": 64,
    }
    return {**inputs, **changes}


def diff(provider: server.StandInProvider, token: str, old: dict[str, Any], new: dict[str, Any]) -> server.Diff:
    return provider.type_of(token).diff("registry-ui-container", old, new, old)


def test_a_container_change_the_provider_cannot_update_replaces_it_deleting_the_old_one_first() -> None:
    found = diff(DockerStandIn(), CONTAINER, container(), container(envs=["REGISTRY_TITLE=Team Registry"]))
    assert found.replaces == ["envs"] and found.delete_before_replace
    assert found.paths == {"envs[0]": "UPDATE_REPLACE"}
    uploads = container(uploads=[{"file": "/etc/a.conf", "content": "a"}, {"file": "/etc/b.conf", "content": "B"}])
    assert diff(DockerStandIn(), CONTAINER, container(), uploads).paths == {"uploads[1].content": "UPDATE_REPLACE"}


def test_state_only_and_container_update_fields_are_updates_and_a_healthcheck_is_left_to_replace_on_changes() -> None:
    docker = DockerStandIn()
    for changed in ({"waitTimeout": 30}, {"restart": "always"}, {"memory": 128}):
        found = diff(docker, CONTAINER, container(), container(**changed))
        assert found.changed == list(changed) and found.replaces == [] and not found.delete_before_replace
    # The provider updates a healthcheck in state only; the program's replace_on_changes makes the engine replace
    # it, from the changed key (and then without delete-before-replace: the bridge sets that only for its own
    # replacements).
    found = diff(docker, CONTAINER, container(), container(healthcheck={"tests": ["CMD", "false"], "interval": "10s"}))
    assert found.changed == ["healthcheck"] and found.replaces == []
    assert found.paths == {"healthcheck.tests[1]": "UPDATE"}


def test_no_change_is_no_diff_and_an_unknown_input_is_a_change() -> None:
    docker = DockerStandIn()
    assert diff(docker, CONTAINER, container(), container()).changed == []
    found = diff(docker, CONTAINER, container(), container(image=server.UNKNOWN))
    assert found.replaces == ["image"]


def test_named_objects_are_deleted_before_their_replacement_and_autonamed_ones_are_not() -> None:
    docker = DockerStandIn()
    named = diff(
        docker, NETWORK, {"name": "private-registry-dev-net"}, {"name": "private-registry-dev-net", "internal": True}
    )
    assert named.replaces == ["internal"] and named.delete_before_replace
    config = docker.type_of(swarm_provider.SERVICE_CONFIG)
    checked = config.check("registry-proxy-conf", {}, {"data": "YQ=="})  # type: ignore[misc]
    assert (
        checked["name"].startswith("registry-proxy-conf-") and len(checked["name"]) == len("registry-proxy-conf-") + 7
    )
    assert config.check("registry-proxy-conf", checked, {"data": "Yg=="})["name"] == checked["name"]  # type: ignore[misc]
    autonamed = config.diff("registry-proxy-conf", checked, {**checked, "data": "Yg=="}, checked)
    assert autonamed.replaces == ["data"] and not autonamed.delete_before_replace
    image = diff(
        docker, REMOTE_IMAGE, {"name": "nginx:1.22", "keepLocally": True}, {"name": "nginx:1.23", "keepLocally": True}
    )
    assert image.replaces == ["name"] and not image.delete_before_replace
    assert (
        diff(docker, REMOTE_IMAGE, {"name": "nginx:1.22"}, {"name": "nginx:1.22", "keepLocally": True}).replaces == []
    )


def test_a_service_updates_in_place_unless_a_force_new_input_changed() -> None:
    docker = DockerStandIn()
    service: dict[str, Any] = {
        "name": "private-registry-swarm-registry",
        "labels": [{"label": "role", "value": "registry"}],
        "mode": {"replicated": {"replicas": 1}},
        "taskSpec": {"containerSpec": {"image": "registry:2.8.3"}},
    }
    scaled = {**service, "mode": {"replicated": {"replicas": 3}}}
    assert diff(docker, swarm_provider.SERVICE, service, scaled).replaces == []
    relabelled = {**service, "labels": [{"label": "role", "value": "edge"}]}
    found = diff(docker, swarm_provider.SERVICE, service, relabelled)
    assert found.replaces == ["labels"] and found.delete_before_replace


def test_a_certificate_renews_only_when_its_state_says_it_is_ready() -> None:
    certificate = TlsStandIn().type_of(LOCALLY_SIGNED)
    inputs = {"validityPeriodHours": 8760, "earlyRenewalHours": 720, "allowedUses": ["server_auth"]}
    outputs = {**inputs, "validityEndTime": "2099-01-01T00:00:00Z", "readyForRenewal": False}
    assert certificate.diff("registry-tls-cert", inputs, inputs, outputs).changed == []
    longer = {**inputs, "earlyRenewalHours": 1440}
    assert certificate.diff("registry-tls-cert", inputs, longer, outputs).replaces == []
    assert certificate.update is not None
    assert certificate.update("1", outputs, inputs, longer)["readyForRenewal"] is False
    due = certificate.diff("registry-tls-cert", inputs, inputs, {**outputs, "readyForRenewal": True})
    assert due.replaces == ["readyForRenewal"] and due.paths == {"readyForRenewal": "UPDATE_REPLACE"}
    # A refresh inside the window finds it ready (the provider's Read).
    soon = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=100)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert certificate.read is not None
    assert certificate.read("1", {**outputs, "validityEndTime": soon})["readyForRenewal"] is True  # type: ignore[index]


def test_outputs_echo_secret_inputs_and_wrap_sensitive_outputs() -> None:
    key = TlsStandIn().type_of(PRIVATE_KEY)
    outputs = server._outputs(key, {"algorithm": "ECDSA"}, {"id": "x", "privateKeyPem": "PEM", "publicKeyPem": "PUB"})
    assert outputs == {"algorithm": "ECDSA", "privateKeyPem": server.secret("PEM"), "publicKeyPem": "PUB"}
    news = {"uploads": [{"file": "/auth/htpasswd", "content": server.secret("alice:$2b$...")}]}
    assert server._outputs(DockerStandIn().type_of(CONTAINER), news, {"networkDatas": []})["uploads"] == news["uploads"]


def test_an_error_message_never_carries_a_secret_of_the_request() -> None:
    request = {"content": server.secret("line one\nthe-password-0123\n"), "plain": "visible"}
    secrets = set(server.secret_strings(request))
    message = "refused: line one\nthe-password-0123\n; also the-password-0123 alone; visible"
    assert server.scrub(message, secrets) == "refused: [secret]; also [secret] alone; visible"


@pytest.fixture
def random_plugin() -> Iterator[provider_pb2_grpc.ResourceProviderStub]:
    """The random stand-in served over gRPC on 127.0.0.1, as `serve` runs it."""
    grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    provider_pb2_grpc.add_ResourceProviderServicer_to_server(server.Servicer(RandomStandIn()), grpc_server)
    port = grpc_server.add_insecure_port("127.0.0.1:0")
    grpc_server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield provider_pb2_grpc.ResourceProviderStub(channel)
    finally:
        grpc_server.stop(grace=None)


def test_a_plugin_over_grpc_creates_reads_and_diffs_as_the_engine_asks(
    random_plugin: provider_pb2_grpc.ResourceProviderStub,
) -> None:
    plugin = random_plugin
    assert plugin.GetPluginInfo(empty_pb2.Empty(), timeout=10).version == "4.21.4"
    configured = plugin.Configure(provider_pb2.ConfigureRequest(acceptSecrets=True), timeout=10)
    assert configured.acceptSecrets and configured.supportsPreview and configured.acceptResources
    urn = f"{URN}{RANDOM_PASSWORD}::registry-http-secret"
    news = server.to_struct({"length": 32, "special": False})
    checked = plugin.Check(provider_pb2.CheckRequest(urn=urn, news=news), timeout=10).inputs
    preview = plugin.Create(provider_pb2.CreateRequest(urn=urn, properties=checked, preview=True), timeout=10)
    assert server.from_struct(preview.properties)["result"] == server.UNKNOWN
    created = plugin.Create(provider_pb2.CreateRequest(urn=urn, properties=checked), timeout=10)
    outputs = server.from_struct(created.properties)
    assert server.is_secret(outputs["result"]) and len(outputs["result"]["value"]) == 32
    read = plugin.Read(
        provider_pb2.ReadRequest(id=created.id, urn=urn, properties=created.properties, inputs=checked), timeout=10
    )
    assert read.id == created.id and server.from_struct(read.properties) == outputs
    same = plugin.Diff(provider_pb2.DiffRequest(urn=urn, olds=created.properties, news=checked, old_inputs=checked))
    assert same.changes == provider_pb2.DiffResponse.DIFF_NONE
    longer = server.to_struct({"length": 40, "special": False})
    changed = plugin.Diff(provider_pb2.DiffRequest(urn=urn, olds=created.properties, news=longer, old_inputs=checked))
    assert changed.changes == provider_pb2.DiffResponse.DIFF_SOME and list(changed.replaces) == ["length"]
    assert changed.detailedDiff["length"].kind == provider_pb2.PropertyDiff.UPDATE_REPLACE
    with pytest.raises(grpc.RpcError) as refused:
        plugin.Check(
            provider_pb2.CheckRequest(urn=f"{URN}random:index/randomUuid:RandomUuid::x", news=news), timeout=10
        )
    assert "not implemented by the random stand-in plugin" in refused.value.details()
