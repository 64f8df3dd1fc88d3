"""The realizer's Swarm and remote-engine logic without an engine: the ServiceSpec the provider would send,
which changes replace a service, the convergence count, explicit providers' settings, and the engine-like
ordering (create-before-delete for services, configs and secrets; in-place service updates)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from harness import docker_provider, realizer, swarm_provider
from harness.docker_provider import LIVE_STACK_LABEL
from harness.errors import UnsupportedInput
from harness.program import SECRET, SIG, ProgramRun, plain

pytestmark = pytest.mark.unit

SERVICE_TYPE = swarm_provider.SERVICE
CONFIG_TYPE = swarm_provider.SERVICE_CONFIG
SECRET_TYPE = swarm_provider.SECRET


def web_service(**changes: Any) -> dict[str, Any]:
    """Service inputs as they arrive under mocks (numbers as floats), plain()-ed by the realizer."""
    inputs: dict[str, Any] = {
        "name": "web",
        "labels": [{"label": "role", "value": "web"}],
        "mode": {"replicated": {"replicas": 2.0}},
        "taskSpec": {
            "containerSpec": {
                "image": "private-registry-test/nginx:1.22",
                "env": {"B": "2", "A": "1"},
                "configs": [{"configId": "cfg1", "configName": "page-v1", "fileName": "/srv/page.txt"}],
                "secrets": [{"secretId": "sec1", "fileName": "token", "fileMode": 256.0}],
                "hosts": [{"host": "db", "ip": "10.0.0.5"}],
                "healthcheck": {"tests": ["CMD", "true"], "interval": "1s", "retries": 3.0},
            },
            "networksAdvanceds": [{"id": "net1", "aliases": ["www"], "driverOpts": ["a=b"]}],
        },
        "endpointSpec": {
            "mode": "dnsrr",
            "ports": [{"targetPort": 80.0, "publishedPort": 21080.0, "publishMode": "host"}],
        },
        "convergeConfig": {"delay": "1s", "timeout": "60s"},
    }
    inputs.update(changes)
    result: dict[str, Any] = plain(inputs)
    return result


def test_service_spec_follows_the_providers_create_service_spec() -> None:
    spec = swarm_provider.service_spec(web_service(), "web", "teststack")
    assert spec["Name"] == "web"
    assert spec["Labels"] == {"role": "web", LIVE_STACK_LABEL: "teststack"}
    assert spec["Mode"] == {"Replicated": {"Replicas": 2}}
    assert spec["EndpointSpec"] == {
        "Mode": "dnsrr",
        "Ports": [{"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 21080, "PublishMode": "host"}],
    }
    task = spec["TaskTemplate"]
    assert task["Networks"] == [{"Target": "net1", "Aliases": ["www"], "DriverOpts": {"a": "b"}}]
    # Optional + Computed blocks the program left out are sent empty, as the provider sends them.
    assert task["Resources"] == {} and task["RestartPolicy"] == {} and task["Placement"] == {}
    container = task["ContainerSpec"]
    assert container["Env"] == ["A=1", "B=2"]
    assert container["Hosts"] == ["10.0.0.5 db"]  # "IP HOST", the provider's extraHostsSetToServiceExtraHosts
    assert container["Healthcheck"] == {"Test": ["CMD", "true"], "Interval": 10**9, "Retries": 3}
    assert container["StopGracePeriod"] == 0  # unset: "" parses to 0 in the provider
    assert container["DNSConfig"] == {}
    assert container["Configs"] == [
        {
            "ConfigID": "cfg1",
            "ConfigName": "page-v1",
            "File": {"Name": "/srv/page.txt", "UID": "0", "GID": "0", "Mode": 0o444},
        }
    ]
    assert container["Secrets"] == [
        {"SecretID": "sec1", "File": {"Name": "token", "UID": "0", "GID": "0", "Mode": 0o400}}
    ]
    assert container["Isolation"] == "default"
    assert "UpdateConfig" not in spec


def test_update_and_rollback_config_defaults_and_restart_policy_zeros() -> None:
    inputs = web_service(updateConfig={"order": "start-first"}, rollbackConfig={})
    inputs["taskSpec"]["restartPolicy"] = {"condition": "on-failure"}
    spec = swarm_provider.service_spec(inputs, "web", "s")
    assert spec["UpdateConfig"] == {
        "Parallelism": 1, "Delay": 0, "FailureAction": "pause", "Monitor": 5 * 10**9, "MaxFailureRatio": 0.0,
        "Order": "start-first",
    }  # fmt: skip
    assert spec["RollbackConfig"]["FailureAction"] == "pause"
    assert spec["TaskTemplate"]["RestartPolicy"] == {
        "Condition": "on-failure",
        "Delay": 0,
        "MaxAttempts": 0,
        "Window": 0,
    }


def test_mounts_map_every_option_and_validate_the_type() -> None:
    inputs = web_service()
    inputs["taskSpec"]["containerSpec"]["mounts"] = [
        {
            "target": "/data",
            "source": "vol",
            "type": "volume",
            "volumeOptions": {"noCopy": True, "driverName": "local"},
        },
        {"target": "/run/x", "type": "tmpfs", "tmpfsOptions": {"sizeBytes": 1024, "mode": 448}},
        {"target": "/etc/x", "source": "/etc/hostname", "type": "bind", "readOnly": True, "bindOptions": {}},
    ]
    mounts = swarm_provider.service_spec(inputs, "web", "s")["TaskTemplate"]["ContainerSpec"]["Mounts"]
    assert mounts[0]["VolumeOptions"] == {
        "NoCopy": True,
        "Labels": {},
        "DriverConfig": {"Name": "local", "Options": {}},
    }
    assert mounts[1]["TmpfsOptions"] == {"SizeBytes": 1024, "Mode": 448}
    assert mounts[2] == {
        "Type": "bind",
        "Target": "/etc/x",
        "Source": "/etc/hostname",
        "ReadOnly": True,
        "BindOptions": {},
    }
    inputs["taskSpec"]["containerSpec"]["mounts"] = [{"target": "/x", "type": "npipe"}]
    with pytest.raises(UnsupportedInput, match=r"mounts\[\]\.type 'npipe'"):
        swarm_provider.service_spec(inputs, "web", "s")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"auth": {"serverAddress": "r"}}, "auth"),
        ({"mode": {"global": True}}, "conflicts with convergeConfig"),
        ({"endpointSpec": {"mode": "round-robin"}}, "endpointSpec.mode"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_refused_inputs_name_themselves(change: dict[str, Any], message: str) -> None:
    with pytest.raises(UnsupportedInput, match=message):
        swarm_provider.service_spec(web_service(**change), "web", "s")


def test_container_spec_refuses_privileges_and_unknown_fields() -> None:
    inputs = web_service()
    inputs["taskSpec"]["containerSpec"]["privileges"] = {"seLinuxContext": {"disable": True}}
    with pytest.raises(UnsupportedInput, match="privileges"):
        swarm_provider.service_spec(inputs, "web", "s")
    inputs["taskSpec"]["containerSpec"] = {"image": "x", "entrypoint": ["sh"]}
    with pytest.raises(UnsupportedInput, match="entrypoint"):
        swarm_provider.service_spec(inputs, "web", "s")


def test_replacement_follows_will_replace_on_changes() -> None:
    old = web_service()
    assert swarm_provider.replacement_reasons(old, web_service()) == []
    # Updatable: env, the config reference (a new config id), the published port.
    changed = web_service()
    changed["taskSpec"]["containerSpec"]["env"] = {"A": "9"}
    changed["taskSpec"]["containerSpec"]["configs"][0]["configId"] = "cfg2"
    changed["endpointSpec"]["ports"][0]["publishedPort"] = 21081
    assert swarm_provider.replacement_reasons(old, changed) == []
    # mode is ForceNew on the block only (its item count): a new replica count is an in-place update.
    assert swarm_provider.replacement_reasons(old, web_service(mode={"replicated": {"replicas": 3}})) == []
    assert swarm_provider.replacement_reasons(old, web_service(name="web2")) == ["name"]
    changed = web_service()
    changed["taskSpec"]["containerSpec"]["hosts"] = [{"host": "db", "ip": "10.0.0.6"}]
    assert swarm_provider.replacement_reasons(old, changed) == ["taskSpec.containerSpec.hosts"]
    # Label lists are sets: the order does not matter, a value does.
    two = web_service(labels=[{"label": "a", "value": "1"}, {"label": "b", "value": "2"}])
    assert swarm_provider.replacement_reasons(two, web_service(labels=list(reversed(two["labels"])))) == []
    assert swarm_provider.replacement_reasons(two, web_service(labels=[{"label": "a", "value": "1"}])) == ["labels"]


def test_removing_a_computed_input_is_refused_loudly() -> None:
    with pytest.raises(UnsupportedInput, match="endpointSpec was removed"):
        swarm_provider.check_computed_kept(
            web_service(), {k: v for k, v in web_service().items() if k != "endpointSpec"}, "svc"
        )


def task(slot: int, state: str, desired: str = "running", node: str = "n1") -> dict[str, Any]:
    return {"Slot": slot, "DesiredState": desired, "Status": {"State": state}, "NodeID": node}


def test_running_replicas_counts_one_task_per_slot_on_active_nodes() -> None:
    tasks = [
        task(1, "running"),
        task(2, "starting"),  # healthcheck not passed yet: not running
        task(3, "running", node="gone"),
        task(4, "running", desired="shutdown"),
        task(5, "running"),
        task(5, "failed", desired="shutdown"),
    ]
    assert swarm_provider.running_replicas(tasks, {"n1"}) == 2
    assert swarm_provider.running_replicas([task(1, "running"), task(2, "running")], {"n1"}) == 2


def test_go_durations_print_like_go() -> None:
    assert swarm_provider.go_duration_string(180 * 10**9) == "3m0s"
    assert swarm_provider.go_duration_string(7 * 10**9) == "7s"
    assert swarm_provider.go_duration_string(3750 * 10**9) == "1h2m30s"


def test_provider_settings_decode_the_json_encoded_inputs() -> None:
    settings = docker_provider.provider_settings(
        {"host": "ssh://deploy@build:2222", "sshOpts": '["-o", "StrictHostKeyChecking=no"]',
         "registryAuth": '[{"address": "r.local", "username": "u", "password": "p"}]',
         "disableDockerDaemonCheck": "true"}
    )  # fmt: skip
    assert settings["sshOpts"] == ["-o", "StrictHostKeyChecking=no"]
    assert settings["registryAuth"][0]["address"] == "r.local"
    assert settings["disableDockerDaemonCheck"] is True
    with pytest.raises(UnsupportedInput, match="context"):
        docker_provider.provider_settings({"context": "remote"})
    with pytest.raises(UnsupportedInput, match="version"):
        docker_provider.provider_settings({"host": "unix:///x", "version": "5.2.0"})


def test_ssh_command_is_docker_clis_connection_helper() -> None:
    assert docker_provider.ssh_command("ssh://deploy@build:2222", ["-o", "StrictHostKeyChecking=no"]) == [
        "ssh", "-o", "StrictHostKeyChecking=no", "-o", "ConnectTimeout=30", "-T", "-l", "deploy", "-p", "2222",
        "--", "build", "docker", "system", "dial-stdio",
    ]  # fmt: skip
    assert docker_provider.ssh_command("ssh://build", ["-T", "-o", "ConnectTimeout=5"])[-6:] == [
        "-o", "ConnectTimeout=5", "--", "build", "docker", "system", "dial-stdio"
    ][-6:]  # fmt: skip


def test_tls_material_as_the_provider_reads_it() -> None:
    with pytest.raises(UnsupportedInput, match="key_material must be specified"):
        docker_provider.provider_client({"host": "tcp://127.0.0.1:1", "certMaterial": "CERT"})
    with pytest.raises(UnsupportedInput, match="cert_path must not be specified"):
        docker_provider.provider_client(
            {"host": "tcp://127.0.0.1:1", "certMaterial": "C", "keyMaterial": "K", "certPath": "/x"}
        )
    tls = docker_provider._tls_files({"certMaterial": "CERT", "keyMaterial": "KEY", "caMaterial": "CA"})
    assert tls is not None and tls.verify == tls.ca_cert
    ca, cert = Path(str(tls.ca_cert)), Path(tls.cert[0])
    assert ca.read_text() == "CA" and cert.read_text() == "CERT" and oct(cert.stat().st_mode & 0o777) == "0o600"
    without_ca = docker_provider._tls_files({"certMaterial": "CERT", "keyMaterial": "KEY"})
    assert without_ca is not None and without_ca.verify is False  # the provider's InsecureSkipVerify
    assert docker_provider._tls_files({"caMaterial": "CA"}) is None  # CA alone: ignored by the provider


def test_config_and_secret_data_must_be_base64() -> None:
    with pytest.raises(UnsupportedInput, match="not base64"):
        swarm_provider.secret(None, {"name": "s", "data": "not base64!"}, "stack", "sec")
    with pytest.raises(UnsupportedInput, match="exactly one of data, dataRaw"):
        swarm_provider.service_config(None, {"name": "c", "data": "eA==", "dataRaw": "x"}, "s", "cfg")


# ---------------------------------------------------------------- ordering, with the Docker calls recorded


class Calls:
    """Records what the realizer asks of the swarm provider, and keeps the objects it "created"."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.alive: set[str] = set()
        self.counter = 0

    def make(self, kind: str, inputs: dict[str, Any]) -> dict[str, Any]:
        self.counter += 1
        object_id = f"{kind}{self.counter}"
        self.alive.add(object_id)
        self.log.append(f"create {object_id}")
        return {"id": object_id, "name": inputs.get("name", kind)}


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Calls:
    recorded = Calls()
    monkeypatch.setattr(realizer, "STATE_DIR", tmp_path)
    monkeypatch.setattr(swarm_provider, "service_config", lambda c, i, s, n: recorded.make("cfg", i))
    monkeypatch.setattr(swarm_provider, "secret", lambda c, i, s, n: recorded.make("sec", i))
    monkeypatch.setattr(swarm_provider, "create_service", lambda c, i, s, n: recorded.make("svc", i))

    def update(client: Any, service_id: str, inputs: dict[str, Any], stack: str, name: str) -> dict[str, Any]:
        recorded.log.append(f"update {service_id}")
        return {"id": service_id, "name": name}

    def delete(kind: str) -> Any:
        def remove(client: Any, object_id: str, *rest: Any) -> None:
            recorded.alive.discard(object_id)
            recorded.log.append(f"delete {object_id}")

        return remove

    monkeypatch.setattr(swarm_provider, "update_service", update)
    monkeypatch.setattr(swarm_provider, "delete_service", delete("svc"))
    monkeypatch.setattr(swarm_provider, "delete_config", delete("cfg"))
    monkeypatch.setattr(swarm_provider, "delete_secret", delete("sec"))
    monkeypatch.setattr(swarm_provider, "exists", lambda c, t, object_id: object_id in recorded.alive)
    return recorded


def round_of(
    config_data: str, replicas: int, *, delete_before_replace: bool = False
) -> tuple[realizer.Realizer, dict[str, str]]:
    """One `up`: a config, a secret and a service using both, declared in dependency order."""
    real = realizer.Realizer(realizer.StackFile(Path("Pulumi.unit-swarm.yaml")), client=object())
    ids = {}
    ids["cfg"], _ = real.new_resource(CONFIG_TYPE, "page", {"name": f"page-{config_data}", "data": config_data}, "", {})
    secret_data = {SIG: SECRET, "value": base64.b64encode(b"token").decode()}
    ids["sec"], outputs = real.new_resource(SECRET_TYPE, "token", {"name": "token", "data": secret_data}, "", {})
    assert outputs["data"][SIG] == SECRET  # Sensitive: marked secret as the engine marks it
    inputs = web_service(mode={"replicated": {"replicas": replicas}})
    inputs["taskSpec"]["containerSpec"]["configs"][0]["configId"] = ids["cfg"]
    inputs["taskSpec"]["containerSpec"]["secrets"][0]["secretId"] = ids["sec"]
    options = {"deleteBeforeReplace": delete_before_replace}
    ids["svc"], _ = real.new_resource(SERVICE_TYPE, "web", inputs, "", options)
    return real, ids


def test_config_replacement_creates_first_updates_the_service_and_deletes_the_old_one_last(calls: Calls) -> None:
    first, ids = round_of("djE=", 2)
    first.prune(ProgramRun())
    assert calls.log == ["create cfg1", "create sec2", "create svc3"]
    calls.log.clear()

    second, new_ids = round_of("djI=", 2)
    assert new_ids["cfg"] != ids["cfg"] and new_ids["svc"] == ids["svc"]
    assert calls.log == ["create cfg4", "update svc3"]  # the old config is still there for the old tasks
    assert second.replaced == [f"{CONFIG_TYPE}::page"] and second.updated == [f"{SERVICE_TYPE}::web"]
    second.prune(ProgramRun())
    assert calls.log[-1] == "delete cfg1" and calls.alive == {"cfg4", "sec2", "svc3"}


def test_a_new_replica_count_updates_the_service_in_place(calls: Calls) -> None:
    round_of("djE=", 2)[0].prune(ProgramRun())
    calls.log.clear()
    again, ids = round_of("djE=", 3)
    assert calls.log == ["update svc3"] and again.updated == [f"{SERVICE_TYPE}::web"] and not again.replaced
    again.prune(ProgramRun())
    assert calls.log == ["update svc3"] and ids["svc"] == "svc3"


def test_prune_deletes_services_before_the_configs_they_use(calls: Calls) -> None:
    round_of("djE=", 2)[0].prune(ProgramRun())
    calls.log.clear()
    empty = realizer.Realizer(realizer.StackFile(Path("Pulumi.unit-swarm.yaml")), client=object())
    gone = empty.prune(ProgramRun())
    assert calls.log == ["delete svc3", "delete cfg1", "delete sec2"]
    assert gone == [f"{SERVICE_TYPE}::web", f"{CONFIG_TYPE}::page", f"{SECRET_TYPE}::token"]


def test_resources_of_an_explicit_provider_use_its_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(realizer, "STATE_DIR", tmp_path)
    engines: dict[str, Any] = {}

    class FakeClient:
        def __init__(self, host: str) -> None:
            self.host = host

    monkeypatch.setattr(
        docker_provider, "provider_client", lambda s: engines.setdefault(s["host"], FakeClient(s["host"]))
    )
    used: list[str] = []

    def secret(client: FakeClient, inputs: dict[str, Any], stack: str, name: str) -> dict[str, Any]:
        used.append(client.host)
        return {"id": "sec1", "name": inputs["name"]}

    monkeypatch.setattr(swarm_provider, "secret", secret)
    local = FakeClient("local")
    real = realizer.Realizer(realizer.StackFile(Path("Pulumi.unit-remote.yaml")), client=local)
    provider_id, _ = real.new_resource(
        docker_provider.PROVIDER_TYPE, "remote", {"host": "ssh://deploy@build", "sshOpts": '["-v"]'}, "", {}
    )
    reference = f"urn:pulumi:s::p::pulumi:providers:docker::remote::{provider_id}"
    real.new_resource(SECRET_TYPE, "token", {"name": "t", "data": "eA=="}, reference, {})
    assert used == ["ssh://deploy@build"]
    state = json.loads((tmp_path / "unit-remote.json").read_text())
    assert state[f"{SECRET_TYPE}::token"]["provider"] == "pulumi:providers:docker::remote"
    assert state["pulumi:providers:docker::remote"]["inputs"]["sshOpts"] == ["-v"]
    with pytest.raises(UnsupportedInput, match="inputs changed"):
        real.new_resource(docker_provider.PROVIDER_TYPE, "remote", {"host": "ssh://other"}, "", {})
    with pytest.raises(UnsupportedInput, match="was not registered"):
        real.new_resource(SECRET_TYPE, "other", {"name": "o", "data": "eA=="}, "urn::unknown-id", {})
