"""pulumi-docker's Swarm resources (Service, ServiceConfig, Secret) realized with docker-py's low-level API.

Sources followed (read with the search tool; the installed SDK is pulumi_docker 5.2.0, built from
terraform-provider-docker v4.x, whose wire names are the ones accepted here):

* kreuzwerker/terraform-provider-docker `internal/provider/resource_docker_service_structures.go`
  (createServiceSpec and its helpers): which API field every input becomes, and the quirks kept here
  (an empty `Healthcheck`/`DNSConfig` object always sent, `StopGracePeriod` 0 when unset, a given
  `restart_policy` block sends delay/window/max_attempts 0 for what it leaves out, bind/volume/tmpfs
  options sent whatever the mount type, extra hosts as "IP HOST").
* `resource_docker_service_funcs.go`: create (then converge if `converge_config`; on failure the service
  is deleted and "did not converge" returned), update in place with the current version index (then
  converge, 7 s initial delay), delete (with `stop_grace_period` != 0s: wait that long for each task
  container, then force-remove it), and the replicated convergence count (tasks with desired state
  running, one per slot, on nodes that are not down, in state `running`).
* `resource_docker_service.go` and pulumi-docker's `schema.json` (`willReplaceOnChanges`): the inputs whose
  change replaces the service instead of updating it (`REPLACE_ON_CHANGES` below) and the schema defaults.
* `resource_docker_config.go`, `resource_docker_secret.go`: no Update function, so every input replaces.
* pulumi-docker `provider/resources.go`: Service, ServiceConfig and Secret are *not* DeleteBeforeReplace
  (Container is) and names are auto-generated (`<logical name>-<7 hex>`) when left out.

Deliberate differences, none of them an input: the image is used as given (the provider asks the registry
for its digest, `QueryRegistry`, which cannot work here: the CLI's `--no-resolve-image`) and must exist on
the engine; convergence is polled every second (the provider: at least every 5 s); after a delete the
realizer waits for the service's task containers to be gone, so that a network can be removed next.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import re
import secrets
import time
from collections.abc import Iterable
from typing import Any

import docker
from docker.errors import APIError, ImageNotFound, NotFound

from harness.docker_provider import LIVE_STACK_LABEL, go_duration_ns, labels_dict
from harness.errors import UnsupportedInput, require_known

SERVICE = "docker:index/service:Service"
SERVICE_CONFIG = "docker:index/serviceConfig:ServiceConfig"
SECRET = "docker:index/secret:Secret"
TYPES = (SERVICE, SERVICE_CONFIG, SECRET)

SERVICE_INPUTS = {
    "name",
    "labels",
    "mode",
    "taskSpec",
    "updateConfig",
    "rollbackConfig",
    "endpointSpec",
    "convergeConfig",
}
TASK_SPEC_INPUTS = {
    "containerSpec", "resources", "restartPolicy", "placement", "networksAdvanceds", "logDriver", "forceUpdate",
    "runtime",
}  # fmt: skip
CONTAINER_SPEC_INPUTS = {
    "image", "commands", "args", "env", "user", "dir", "hostname", "labels", "groups", "mounts", "configs",
    "secrets", "healthcheck", "stopSignal", "stopGracePeriod", "readOnly", "capAdds", "capDrops", "sysctl",
    "hosts", "dnsConfig", "init", "isolation",
}  # fmt: skip
# Refused with a reason: nothing here can reproduce them faithfully.
REFUSED = {
    "auth": "registry credentials for pulling the service's image; nothing is pulled here",
    "taskSpec.containerSpec.privileges": "credential specs are Windows-only and SELinux labels are not set up here",
}

REPLACE_ON_CHANGES = (
    "name", "auth", "labels", "taskSpec.containerSpec.labels", "taskSpec.containerSpec.hosts",
    "taskSpec.containerSpec.sysctl", "taskSpec.containerSpec.mounts[].volumeOptions.labels",
    "taskSpec.networksAdvanceds",
)  # fmt: skip
"""Service inputs whose change replaces the service (pulumi-docker schema.json `willReplaceOnChanges`, TF
`ForceNew`): `name` and `auth` on the resource; every field of the label items, of `hosts`, of `sysctl` and
of the `networksAdvanceds` items. Every other change is an in-place ServiceUpdate. `mode` is ForceNew in
terraform-provider-docker too, but on the block: the plugin SDK (helper/schema `diffList`) then forces a new
resource only when the block itself appears or goes (its item count), while a nested field (`replicas`)
follows its own schema, which has no ForceNew: a new replica count is an in-place update (`docker service
scale`), as Terraform users see it."""

COMPUTED = (
    "labels", "mode", "endpointSpec", "taskSpec.resources", "taskSpec.restartPolicy", "taskSpec.placement",
    "taskSpec.forceUpdate", "taskSpec.runtime", "taskSpec.containerSpec.stopGracePeriod",
    "taskSpec.containerSpec.healthcheck", "taskSpec.containerSpec.dnsConfig",
)  # fmt: skip
"""Optional + Computed in the provider: taken out of the program, they keep their last value (read back from
the service), which the realizer does not track."""

TASK_STATES = {
    "new": 1, "allocated": 2, "pending": 3, "assigned": 4, "accepted": 5, "preparing": 6, "ready": 7,
    "starting": 8, "running": 9, "complete": 10, "shutdown": 11, "failed": 12, "rejected": 13, "remove": 14,
    "orphaned": 15,
}  # fmt: skip
"""The provider's `numberedStates` (swarm's task state machine order)."""


# ---------------------------------------------------------------- small helpers


def autoname(logical_name: str) -> str:
    """pulumi-docker's autonaming (`SetAutonaming(255, "-")`) for a `name` the program leaves out."""
    return f"{logical_name}-{secrets.token_hex(4)[:7]}"[:255]


def _get(inputs: dict[str, Any], path: str) -> Any:
    value: Any = inputs
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _canonical(value: Any, path: str) -> Any:
    """Values as the provider compares them: label lists, hosts and network attachments are TF sets."""
    if value is None:
        return None
    if path.endswith("mounts[].volumeOptions.labels"):
        return sorted(_canonical((m.get("volumeOptions") or {}).get("labels"), "labels") or [] for m in value)
    if isinstance(value, list):
        return sorted(json.dumps(item, sort_keys=True) for item in value)
    return value


def replacement_reasons(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The `REPLACE_ON_CHANGES` inputs that differ between the state's inputs and the program's."""
    reasons = []
    for path in REPLACE_ON_CHANGES:
        lookup = path.replace("mounts[].volumeOptions.labels", "mounts")
        if _canonical(_get(old, lookup), path) != _canonical(_get(new, lookup), path):
            reasons.append(path)
    return reasons


def check_computed_kept(old: dict[str, Any], new: dict[str, Any], what: str) -> None:
    for path in COMPUTED:
        if _get(old, path) is not None and _get(new, path) is None:
            raise UnsupportedInput(
                f"{what}: {path} was removed from the program; the provider keeps its last value (Optional + "
                "Computed), which the realizer does not track: set it explicitly"
            )


def _match(what: str, value: str, pattern: str, *, anchored: bool = True) -> str:
    found = re.fullmatch(pattern, value) if anchored else re.search(pattern, value)
    if not found:
        raise UnsupportedInput(f"{what} {value!r}: the provider accepts {pattern}")
    return value


def _duration(what: str, text: str | None) -> int:
    """The provider's validateDurationGeq0 then time.ParseDuration (an unset duration parses to 0)."""
    if not text:
        return 0
    nanoseconds = go_duration_ns(text)
    if nanoseconds < 0:
        raise UnsupportedInput(f"{what} {text!r}: must be >= 0")
    return nanoseconds


def go_duration_string(nanoseconds: int) -> str:
    """Go's time.Duration.String() for whole seconds and above ("3m0s", "1m30s", "7s")."""
    seconds = nanoseconds // 10**9
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def _label_map(labels: list[dict[str, str]] | None) -> dict[str, str]:
    return {item["label"]: item["value"] for item in labels or []}


def _key_values(items: Iterable[str]) -> dict[str, str]:
    """The provider's stringSetToMapStringString: "k=v" items (driver options, generic resources)."""
    result = {}
    for item in items:
        key, _, value = item.partition("=")
        result[key] = value
    return result


def _decode_base64(what: str, data: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise UnsupportedInput(f"{what}: data is not base64 (the provider's validateStringIsBase64Encoded)") from None


def _swarm_labels(inputs: dict[str, Any], stack: str | None) -> dict[str, str]:
    return labels_dict(inputs.get("labels"), stack)


# ---------------------------------------------------------------- configs and secrets


def service_config(
    client: docker.DockerClient, inputs: dict[str, Any], stack: str | None, logical: str
) -> dict[str, Any]:
    """docker_config: ConfigCreate with the decoded data (every input replaces: no Update in the provider)."""
    require_known("docker ServiceConfig", inputs, {"name", "data", "dataRaw", "labels"})
    given = [key for key in ("data", "dataRaw") if key in inputs]
    if len(given) != 1:
        raise UnsupportedInput(f"docker ServiceConfig {logical}: exactly one of data, dataRaw (got {given})")
    data = (
        _decode_base64(f"ServiceConfig {logical}", inputs["data"]) if "data" in inputs else inputs["dataRaw"].encode()
    )
    name = inputs.get("name") or autoname(logical)
    created = client.api.create_config(name, data, labels=_swarm_labels(inputs, stack))
    return {"id": created["ID"], "name": name}


def secret(client: docker.DockerClient, inputs: dict[str, Any], stack: str | None, logical: str) -> dict[str, Any]:
    """docker_secret: SecretCreate with the decoded data and the labels (every input replaces)."""
    require_known("docker Secret", inputs, {"name", "data", "labels"})
    data = _decode_base64(f"Secret {logical}", inputs["data"])
    name = inputs.get("name") or autoname(logical)
    created = client.api.create_secret(name, data, labels=_swarm_labels(inputs, stack))
    return {"id": created["ID"], "name": name}


def delete_config(client: docker.DockerClient, config_id: str) -> None:
    with contextlib.suppress(NotFound):
        client.api.remove_config(config_id)


def delete_secret(client: docker.DockerClient, secret_id: str) -> None:
    with contextlib.suppress(NotFound):
        client.api.remove_secret(secret_id)


def exists(client: docker.DockerClient, typ: str, object_id: str) -> bool:
    inspect = {
        SERVICE: client.api.inspect_service,
        SERVICE_CONFIG: client.api.inspect_config,
        SECRET: client.api.inspect_secret,
    }[typ]
    try:
        inspect(object_id)
    except NotFound:
        return False
    return True


# ---------------------------------------------------------------- the service spec (pure)


def _healthcheck(spec: dict[str, Any] | None) -> dict[str, Any]:
    """Always an object: `{}` (inherit the image's) when the program sets none, as the provider sends it."""
    if not spec:
        return {}
    require_known("docker Service healthcheck", spec, {"tests", "interval", "timeout", "startPeriod", "retries"})
    retries = int(spec.get("retries", 0))
    if retries < 0:
        raise UnsupportedInput(f"healthcheck.retries {retries}: must be >= 0")
    result: dict[str, Any] = {
        "Test": spec.get("tests") or None,
        "Interval": _duration("healthcheck.interval", spec.get("interval", "0s")),
        "Timeout": _duration("healthcheck.timeout", spec.get("timeout", "0s")),
        "StartPeriod": _duration("healthcheck.startPeriod", spec.get("startPeriod", "0s")),
        "Retries": retries,
    }
    return {key: value for key, value in result.items() if value}


def _mount(mount: dict[str, Any]) -> dict[str, Any]:
    require_known(
        "docker Service mounts[]", mount,
        {"target", "source", "type", "readOnly", "bindOptions", "volumeOptions", "tmpfsOptions"},
    )  # fmt: skip
    result: dict[str, Any] = {
        "Type": _match("mounts[].type", mount["type"], r"bind|volume|tmpfs"),
        "Target": mount["target"],
        "Source": mount.get("source", ""),
        "ReadOnly": bool(mount.get("readOnly", False)),
    }
    # Sent whatever the mount type, as the provider's createContainerSpec does (Docker refuses a mismatch).
    if "bindOptions" in mount:
        bind = mount["bindOptions"] or {}
        require_known("docker Service mounts[].bindOptions", bind, {"propagation"})
        result["BindOptions"] = {}
        if bind.get("propagation"):
            propagation = _match(
                "bindOptions.propagation", bind["propagation"], r"private|rprivate|shared|rshared|slave|rslave"
            )
            result["BindOptions"]["Propagation"] = propagation
    if "volumeOptions" in mount:
        volume = mount["volumeOptions"] or {}
        require_known(
            "docker Service mounts[].volumeOptions", volume, {"noCopy", "labels", "driverName", "driverOptions"}
        )
        options: dict[str, Any] = {
            "NoCopy": bool(volume.get("noCopy", False)),
            "Labels": _label_map(volume.get("labels")),
        }
        if "driverName" in volume or "driverOptions" in volume:
            options["DriverConfig"] = {
                "Name": volume.get("driverName", ""),
                "Options": volume.get("driverOptions") or {},
            }
        result["VolumeOptions"] = options
    if "tmpfsOptions" in mount:
        tmpfs = mount["tmpfsOptions"] or {}
        require_known("docker Service mounts[].tmpfsOptions", tmpfs, {"sizeBytes", "mode"})
        result["TmpfsOptions"] = {"SizeBytes": int(tmpfs.get("sizeBytes", 0)), "Mode": int(tmpfs.get("mode", 0))}
    return result


def _file_reference(kind: str, ref: dict[str, Any]) -> dict[str, Any]:
    """A config or secret reference; file uid/gid "0" and mode 0o444 are the schema defaults."""
    lower = kind.lower()
    require_known(
        f"docker Service {lower}s[]", ref, {f"{lower}Id", f"{lower}Name", "fileName", "fileUid", "fileGid", "fileMode"}
    )
    mode = int(ref.get("fileMode", 0o444))
    if mode < 0:
        raise UnsupportedInput(f"{lower}s[].fileMode {mode}: must be >= 0")
    result: dict[str, Any] = {
        f"{kind}ID": ref[f"{lower}Id"],
        "File": {"Name": ref["fileName"], "UID": ref.get("fileUid", "0"), "GID": ref.get("fileGid", "0"), "Mode": mode},
    }
    if ref.get(f"{lower}Name"):
        result[f"{kind}Name"] = ref[f"{lower}Name"]
    return result


def container_spec(spec: dict[str, Any]) -> dict[str, Any]:
    for path, reason in REFUSED.items():
        if path.startswith("taskSpec.containerSpec.") and path.rsplit(".", 1)[1] in spec:
            raise UnsupportedInput(f"docker Service {path}: not implemented by the realizer ({reason})")
    require_known("docker Service taskSpec.containerSpec", spec, CONTAINER_SPEC_INPUTS)
    dns = spec.get("dnsConfig")
    if dns:
        require_known("docker Service dnsConfig", dns, {"nameservers", "searches", "options"})
    result: dict[str, Any] = {
        "Image": spec["image"],
        "Labels": _label_map(spec.get("labels")),
        "Command": spec.get("commands"),
        "Args": spec.get("args"),
        "Hostname": spec.get("hostname"),
        "Env": [f"{key}={value}" for key, value in sorted((spec.get("env") or {}).items())],
        "Dir": spec.get("dir"),
        "User": spec.get("user"),
        "Groups": spec.get("groups"),
        "ReadOnly": bool(spec.get("readOnly", False)),
        "Mounts": [_mount(mount) for mount in spec.get("mounts") or []],
        "StopSignal": spec.get("stopSignal"),
        # Computed in the schema, so unset means "" for the provider, which parses to 0: tasks get no grace.
        "StopGracePeriod": _duration("stopGracePeriod", spec.get("stopGracePeriod")),
        "Healthcheck": _healthcheck(spec.get("healthcheck")),
        "Hosts": [f"{host['ip']} {host['host']}" for host in spec.get("hosts") or []],
        "DNSConfig": {
            key: value
            for key, value in {
                "Nameservers": (dns or {}).get("nameservers"),
                "Search": (dns or {}).get("searches"),
                "Options": (dns or {}).get("options"),
            }.items()
            if value
        },
        "Secrets": [_file_reference("Secret", ref) for ref in spec.get("secrets") or []],
        "Configs": [_file_reference("Config", ref) for ref in spec.get("configs") or []],
        "Isolation": _match("isolation", spec.get("isolation", "default"), r"default|process|hyperv"),
        "Sysctls": {key: str(value) for key, value in (spec.get("sysctl") or {}).items()},
        "CapabilityAdd": spec.get("capAdds"),
        "CapabilityDrop": spec.get("capDrops"),
        "Init": spec.get("init"),
    }
    # Pointers in the Go struct are sent even when zero; the rest is `omitempty`.
    pointers = {"Healthcheck", "DNSConfig", "StopGracePeriod"}
    return {
        key: value
        for key, value in result.items()
        if key in pointers or (key == "Init" and value is not None) or value not in (None, "", [], {}, False)
    }


def _resources(spec: dict[str, Any] | None) -> dict[str, Any]:
    result: dict[str, Any] = {}
    if not spec:
        return result
    require_known("docker Service resources", spec, {"limits", "reservation"})
    if spec.get("limits") is not None:
        limits = spec["limits"]
        require_known("docker Service resources.limits", limits, {"nanoCpus", "memoryBytes"})
        result["Limits"] = {
            "NanoCPUs": int(limits.get("nanoCpus", 0)),
            "MemoryBytes": int(limits.get("memoryBytes", 0)),
        }
    if spec.get("reservation") is not None:
        reservation = spec["reservation"]
        require_known(
            "docker Service resources.reservation", reservation, {"nanoCpus", "memoryBytes", "genericResources"}
        )
        reserved: dict[str, Any] = {
            "NanoCPUs": int(reservation.get("nanoCpus", 0)),
            "MemoryBytes": int(reservation.get("memoryBytes", 0)),
        }
        generic = reservation.get("genericResources")
        if generic is not None:
            require_known(
                "resources.reservation.genericResources", generic, {"namedResourcesSpecs", "discreteResourcesSpecs"}
            )
            named = _key_values(generic.get("namedResourcesSpecs") or [])
            discrete = _key_values(generic.get("discreteResourcesSpecs") or [])
            reserved["GenericResources"] = [
                *({"NamedResourceSpec": {"Kind": kind, "Value": value}} for kind, value in named.items()),
                *({"DiscreteResourceSpec": {"Kind": kind, "Value": int(value)}} for kind, value in discrete.items()),
            ]
        result["Reservations"] = reserved
    return result


def _restart_policy(spec: dict[str, Any] | None) -> dict[str, Any]:
    if not spec:
        return {}
    require_known("docker Service restartPolicy", spec, {"condition", "delay", "maxAttempts", "window"})
    result: dict[str, Any] = {
        # A given block sends all three (the provider reads them with their zero values).
        "Delay": _duration("restartPolicy.delay", spec.get("delay")),
        "MaxAttempts": int(spec.get("maxAttempts", 0)),
        "Window": _duration("restartPolicy.window", spec.get("window")),
    }
    if spec.get("condition"):
        result["Condition"] = _match("restartPolicy.condition", spec["condition"], r"none|on-failure|any")
    return result


def _placement(spec: dict[str, Any] | None) -> dict[str, Any]:
    if not spec:
        return {}
    require_known("docker Service placement", spec, {"constraints", "prefs", "platforms", "maxReplicas"})
    result: dict[str, Any] = {}
    if spec.get("constraints"):
        result["Constraints"] = list(spec["constraints"])
    if spec.get("prefs"):
        result["Preferences"] = [{"Spread": {"SpreadDescriptor": pref}} for pref in spec["prefs"]]
    if spec.get("platforms"):
        result["Platforms"] = [{"Architecture": p["architecture"], "OS": p["os"]} for p in spec["platforms"]]
    if spec.get("maxReplicas"):
        result["MaxReplicas"] = int(spec["maxReplicas"])
    return result


def _network(entry: dict[str, Any]) -> dict[str, Any]:
    require_known("docker Service networksAdvanceds[]", entry, {"id", "name", "aliases", "driverOpts"})
    if ("id" in entry) == ("name" in entry):
        raise UnsupportedInput("networksAdvanceds[]: exactly one of id, name (name is deprecated; they conflict)")
    result: dict[str, Any] = {"Target": entry.get("id") or entry["name"]}
    if entry.get("aliases"):
        result["Aliases"] = list(entry["aliases"])
    if entry.get("driverOpts"):
        result["DriverOpts"] = _key_values(entry["driverOpts"])
    return result


def task_template(spec: dict[str, Any]) -> dict[str, Any]:
    require_known("docker Service taskSpec", spec, TASK_SPEC_INPUTS)
    result: dict[str, Any] = {
        "ContainerSpec": container_spec(spec["containerSpec"]),
        # Optional + Computed blocks: always sent, empty when the program sets none.
        "Resources": _resources(spec.get("resources")),
        "RestartPolicy": _restart_policy(spec.get("restartPolicy")),
        "Placement": _placement(spec.get("placement")),
        "ForceUpdate": int(spec.get("forceUpdate", 0)),
    }
    if spec.get("runtime"):
        runtime = _match("taskSpec.runtime", spec["runtime"], r"container|plugin")
        if runtime == "plugin":
            raise UnsupportedInput("taskSpec.runtime 'plugin': plugin services are not implemented by the realizer")
        result["Runtime"] = runtime
    if spec.get("networksAdvanceds"):
        result["Networks"] = [_network(entry) for entry in spec["networksAdvanceds"]]
    if spec.get("logDriver") is not None:
        driver = spec["logDriver"]
        require_known("docker Service taskSpec.logDriver", driver, {"name", "options"})
        result["LogDriver"] = {
            "Name": driver["name"],
            **({"Options": driver["options"]} if driver.get("options") else {}),
        }
    return result


def service_mode(mode: dict[str, Any] | None, converge: bool) -> dict[str, Any]:
    if mode is None:
        return {}  # the engine's default: replicated, 1 replica
    require_known("docker Service mode", mode, {"replicated", "global"})
    if mode.get("global") and "replicated" in mode:
        raise UnsupportedInput("mode: global conflicts with replicated (the provider's ConflictsWith)")
    if mode.get("global"):
        if converge:
            raise UnsupportedInput("mode.global conflicts with convergeConfig (the provider's ConflictsWith)")
        return {"Global": {}}
    if "replicated" in mode:
        replicated = mode["replicated"] or {}
        require_known("docker Service mode.replicated", replicated, {"replicas"})
        replicas = int(replicated.get("replicas", 1))
        if replicas < 0:
            raise UnsupportedInput(f"mode.replicated.replicas {replicas}: must be >= 0")
        return {"Replicated": {"Replicas": replicas}}
    return {}


def _update_config(what: str, spec: dict[str, Any], actions: str, anchored: bool) -> dict[str, Any]:
    """updateConfig / rollbackConfig with the schema defaults (parallelism 1, delay 0s, failure action pause,
    monitor 5s, max failure ratio 0.0, order stop-first). The provider's rollback patterns are unanchored."""
    require_known(
        f"docker Service {what}", spec, {"parallelism", "delay", "failureAction", "monitor", "maxFailureRatio", "order"}
    )
    ratio = spec.get("maxFailureRatio", "0.0")
    try:
        ratio_value = float(ratio)
    except ValueError:
        raise UnsupportedInput(f"{what}.maxFailureRatio {ratio!r}: not a float") from None
    if not 0 <= ratio_value <= 1:
        raise UnsupportedInput(f"{what}.maxFailureRatio {ratio!r}: must be between 0.0 and 1.0")
    parallelism = int(spec.get("parallelism", 1))
    if parallelism < 0:
        raise UnsupportedInput(f"{what}.parallelism {parallelism}: must be >= 0")
    return {
        "Parallelism": parallelism,
        "Delay": _duration(f"{what}.delay", spec.get("delay", "0s")),
        "FailureAction": _match(
            f"{what}.failureAction", spec.get("failureAction", "pause"), actions, anchored=anchored
        ),
        "Monitor": _duration(f"{what}.monitor", spec.get("monitor", "5s")),
        "MaxFailureRatio": ratio_value,
        "Order": _match(f"{what}.order", spec.get("order", "stop-first"), r"stop-first|start-first", anchored=anchored),
    }


def endpoint_spec(spec: dict[str, Any] | None) -> dict[str, Any]:
    result: dict[str, Any] = {}
    if not spec:
        return result
    require_known("docker Service endpointSpec", spec, {"mode", "ports"})
    if spec.get("mode"):
        result["Mode"] = _match("endpointSpec.mode", spec["mode"], r"vip|dnsrr")
    if "ports" in spec:
        ports = []
        for port in spec["ports"] or []:
            require_known(
                "docker Service endpointSpec.ports[]", port,
                {"name", "protocol", "targetPort", "publishedPort", "publishMode"},
            )  # fmt: skip
            entry: dict[str, Any] = {
                "Protocol": _match("ports[].protocol", port.get("protocol", "tcp"), r"tcp|udp|sctp"),
                "TargetPort": int(port["targetPort"]),
                "PublishedPort": int(port.get("publishedPort", 0)),
                "PublishMode": _match("ports[].publishMode", port.get("publishMode", "ingress"), r"host|ingress"),
            }
            if port.get("name"):
                entry["Name"] = port["name"]
            ports.append(entry)
        result["Ports"] = ports
    return result


def service_spec(inputs: dict[str, Any], name: str, stack: str | None) -> dict[str, Any]:
    """createServiceSpec: the ServiceSpec the provider sends on create and on every update."""
    for path, reason in REFUSED.items():
        if "." not in path and path in inputs:
            raise UnsupportedInput(f"docker Service {path}: not implemented by the realizer ({reason})")
    require_known("docker Service", inputs, SERVICE_INPUTS)
    spec: dict[str, Any] = {
        "Name": name,
        "Labels": _swarm_labels(inputs, stack),
        "TaskTemplate": task_template(inputs["taskSpec"]),
        "Mode": service_mode(inputs.get("mode"), converge="convergeConfig" in inputs),
        "EndpointSpec": endpoint_spec(inputs.get("endpointSpec")),
    }
    if inputs.get("updateConfig") is not None:
        spec["UpdateConfig"] = _update_config("updateConfig", inputs["updateConfig"], r"pause|continue|rollback", True)
    if inputs.get("rollbackConfig") is not None:
        spec["RollbackConfig"] = _update_config("rollbackConfig", inputs["rollbackConfig"], r"(pause|continue)", False)
    return spec


def converge_settings(spec: dict[str, Any] | None) -> tuple[int, int] | None:
    """(delay, timeout) in ns; the schema defaults are 7s and 3m."""
    if spec is None:
        return None
    require_known("docker Service convergeConfig", spec, {"delay", "timeout"})
    return _duration("convergeConfig.delay", spec.get("delay", "7s")), _duration(
        "convergeConfig.timeout", spec.get("timeout", "3m")
    )


# ---------------------------------------------------------------- convergence (pure counting)


def running_replicas(tasks: list[dict[str, Any]], active_nodes: set[str]) -> int:
    """The provider's replicatedConsoleLogUpdater: one task per slot (the lowest desired state wins, then the
    lowest observed state), on an active node, counted when its desired state is not past running and its
    observed state is running."""
    by_slot: dict[int, dict[str, Any]] = {}
    for task in tasks:
        desired = TASK_STATES.get(task.get("DesiredState", ""), 0)
        observed = TASK_STATES.get(task.get("Status", {}).get("State", ""), 0)
        if not desired or not observed:
            continue
        slot = int(task.get("Slot", 0))
        existing = by_slot.get(slot)
        if existing is not None:
            existing_desired = TASK_STATES[existing["DesiredState"]]
            if existing_desired < desired:
                continue
            if existing_desired == desired and TASK_STATES[existing["Status"]["State"]] <= observed:
                continue
        if task.get("NodeID") and task["NodeID"] not in active_nodes:
            continue
        by_slot[slot] = task
    return sum(
        1
        for task in by_slot.values()
        if TASK_STATES[task["DesiredState"]] <= TASK_STATES["running"] and task["Status"]["State"] == "running"
    )


def _task_errors(client: docker.DockerClient, service_id: str) -> str:
    lines = []
    for task in client.api.tasks(filters={"service": service_id}):
        status = task.get("Status", {})
        if status.get("Err") or status.get("State") != "running":
            lines.append(
                f"task {task['ID'][:12]} slot {task.get('Slot', '-')}: {status.get('State')} "
                f"{status.get('Message', '')} {status.get('Err', '')}".rstrip()
            )
    return "; ".join(lines[-10:]) or "no task errors reported"


def _wait_converged(
    client: docker.DockerClient, service_id: str, name: str, delay_ns: int, timeout_ns: int, updating: bool
) -> None:
    """Create: until `running` replicas equal the desired count. Update: also until the UpdateStatus says
    completed; a finished rollback or a paused update or rollback is an error, as in the provider."""
    deadline = time.monotonic() + timeout_ns / 1e9
    time.sleep(min(delay_ns / 1e9, max(0.0, deadline - time.monotonic())))
    while True:
        service = client.api.inspect_service(service_id)
        state = (service.get("UpdateStatus") or {}).get("State") if updating else None
        message = (service.get("UpdateStatus") or {}).get("Message", "")
        if state == "completed":
            return
        if state in ("rollback_completed", "paused", "rollback_paused"):
            label = {"rollback_completed": "rollback completed", "paused": "update paused"}.get(
                state, "rollback paused"
            )
            raise RuntimeError(
                f"service {name} ({service_id[:12]}): {label}: {message} ({_task_errors(client, service_id)})"
            )
        replicated = (service["Spec"].get("Mode") or {}).get("Replicated")
        if replicated is None or "Replicas" not in replicated:
            raise RuntimeError(f"service {name} ({service_id[:12]}): no replica count")
        tasks = client.api.tasks(filters={"service": service_id, "desired-state": "running"})
        active = {node["ID"] for node in client.api.nodes() if node.get("Status", {}).get("State") != "down"}
        if running_replicas(tasks, active) == int(replicated["Replicas"]):
            if state == "rollback_started":
                raise RuntimeError(f"service {name} ({service_id[:12]}): rollback completed: {message}")
            return
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"Service with ID ({service_id}) did not converge after {go_duration_string(timeout_ns)}: "
                f"service {name}: {_task_errors(client, service_id)}"
            )
        time.sleep(1)


# ---------------------------------------------------------------- create, update, delete


def _check_image(client: docker.DockerClient, image: str) -> None:
    try:
        client.images.get(image)
    except ImageNotFound:
        raise RuntimeError(
            f"image {image!r} is not on this Docker engine and cannot be pulled here: run images/build.sh, "
            "or point the service at a local image"
        ) from None


def create_service(
    client: docker.DockerClient, inputs: dict[str, Any], stack: str | None, logical: str
) -> dict[str, Any]:
    name = inputs.get("name") or autoname(logical)
    spec = service_spec(inputs, name, stack)
    converge = converge_settings(inputs.get("convergeConfig"))
    _check_image(client, spec["TaskTemplate"]["ContainerSpec"]["Image"])
    created = client.api.create_service(
        spec["TaskTemplate"], name=name, labels=spec["Labels"], mode=spec["Mode"],
        update_config=spec.get("UpdateConfig"), endpoint_spec=spec["EndpointSpec"],
        rollback_config=spec.get("RollbackConfig"),
    )  # fmt: skip
    service_id = created["ID"]
    if converge:
        try:
            _wait_converged(client, service_id, name, *converge, updating=False)
        except Exception:
            delete_service(client, service_id, inputs)  # "the service will be deleted in case it cannot be converged"
            raise
    return {"id": service_id, "name": name}


def update_service(
    client: docker.DockerClient, service_id: str, inputs: dict[str, Any], stack: str | None, name: str
) -> dict[str, Any]:
    """ServiceUpdate with the whole spec rebuilt from the inputs and the current version index."""
    spec = service_spec(inputs, name, stack)
    converge = converge_settings(inputs.get("convergeConfig"))
    _check_image(client, spec["TaskTemplate"]["ContainerSpec"]["Image"])
    version = client.api.inspect_service(service_id)["Version"]["Index"]
    client.api.update_service(
        service_id, version, task_template=spec["TaskTemplate"], name=name, labels=spec["Labels"],
        mode=spec["Mode"], update_config=spec.get("UpdateConfig"), endpoint_spec=spec["EndpointSpec"],
        rollback_config=spec.get("RollbackConfig"),
    )  # fmt: skip
    if converge:
        _wait_converged(client, service_id, name, 7 * 10**9, converge[1], updating=True)  # Delay: 7 * time.Second
    return {"id": service_id, "name": name}


def _service_containers(client: docker.DockerClient, service_id: str) -> list[str]:
    found = client.api.containers(all=True, filters={"label": f"com.docker.swarm.service.id={service_id}"})
    return [str(item["Id"]) for item in found]


def delete_service(client: docker.DockerClient, service_id: str, inputs: dict[str, Any]) -> None:
    grace = _duration("stopGracePeriod", _get(inputs, "taskSpec.containerSpec.stopGracePeriod"))
    try:
        client.api.remove_service(service_id)
    except NotFound:
        return
    deadline = time.monotonic() + grace / 1e9
    if grace:  # the provider: wait up to the grace period for each task container, then force-remove it
        while _service_containers(client, service_id) and time.monotonic() < deadline:
            time.sleep(0.5)
        for container_id in _service_containers(client, service_id):
            with contextlib.suppress(NotFound, APIError):
                client.api.remove_container(container_id, force=True, v=True)
    wait_service_gone(client, service_id)


def wait_service_gone(client: docker.DockerClient, service_id: str, seconds: float = 60) -> None:
    """Realizer-side: the service's task containers are gone, so its networks can be removed next."""
    deadline = time.monotonic() + seconds
    while _service_containers(client, service_id):
        if time.monotonic() > deadline:
            raise TimeoutError(f"task containers of service {service_id[:12]} still there after {seconds}s")
        time.sleep(0.5)


def is_swarm_manager(client: docker.DockerClient) -> bool:
    return bool(client.info().get("Swarm", {}).get("ControlAvailable"))


def stack_objects(client: docker.DockerClient, stack: str) -> dict[str, list[dict[str, Any]]]:
    """Services, configs and secrets labelled with the stack (none when the engine is no swarm manager)."""
    if not is_swarm_manager(client):
        return {"services": [], "configs": [], "secrets": []}
    label = {"label": f"{LIVE_STACK_LABEL}={stack}"}
    return {
        "services": client.api.services(filters=label),
        "configs": client.api.configs(filters=label),
        "secrets": client.api.secrets(filters=label),
    }
