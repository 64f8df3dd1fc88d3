"""pulumi-docker resources realized with docker-py, following terraform-provider-docker's create sequence.

Container: find the image (no pull here), create with the host config, leave `bridge` and connect to each
`networksAdvanced` entry with its aliases, upload the files (one tar entry each, at `/`), start, then wait for
health when `wait` is set. Provider defaults are applied where the program leaves an input out. An input
that is not implemented raises `UnsupportedInput` naming it.

Every object also gets the label `LIVE_STACK_LABEL=<stack>` (the only thing the real provider would not
add) so that `down` finds exactly the objects of a stack, even after a failed `up`. A `stack` of None adds no
such label: the stand-in provider plugins (`harness/plugins`) create objects as the real provider does.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

import docker
from docker.errors import APIError, ImageNotFound, NotFound
from docker.tls import TLSConfig
from docker.types import LogConfig

from harness.errors import UnsupportedInput, require_known

LIVE_STACK_LABEL = "org.private-registry.live-stack"

CONTAINER_INPUTS = {
    "name", "image", "networksAdvanced", "networkMode", "ports", "uploads", "volumes", "envs", "command",
    "entrypoints", "restart", "maxRetryCount", "healthcheck", "labels", "logDriver", "logOpts", "readOnly",
    "securityOpts", "capabilities", "user", "memory", "memorySwap", "destroyGraceSeconds", "stopSignal",
    "stopTimeout", "tmpfs", "init", "mustRun", "start", "wait", "waitTimeout", "hostname", "workingDir",
    "removeVolumes", "shmSize", "hosts",
}  # fmt: skip
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 10**3, "µs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


def go_duration_ns(text: str) -> int:
    """Go's time.ParseDuration for the healthcheck strings ("10s", "1m30s", "500ms")."""
    if text in ("0", ""):
        return 0
    parts = _DURATION.findall(text)
    if "".join(f"{n}{u}" for n, u in parts) != text:
        raise UnsupportedInput(f"duration {text!r} is not a Go duration")
    return int(sum(float(n) * _UNIT_NS[u] for n, u in parts))


def labels_dict(labels: list[dict[str, str]] | None, stack: str | None) -> dict[str, str]:
    """The program's `{label, value}` list as Docker labels, plus the realizer's stack label unless `stack` is
    None."""
    result = {item["label"]: item["value"] for item in labels or []}
    if stack is not None:
        result[LIVE_STACK_LABEL] = stack
    return result


# ---------------------------------------------------------------- images


def remote_image(client: docker.DockerClient, inputs: dict[str, Any]) -> dict[str, Any]:
    require_known("docker RemoteImage", inputs, {"name", "keepLocally", "forceRemove", "pullTriggers", "triggers"})
    name = inputs["name"]
    try:
        image = client.images.get(name)
    except ImageNotFound:
        # The provider would pull here; nothing can be pulled on these machines.
        raise RuntimeError(
            f"image {name!r} is not on this Docker engine and cannot be pulled here: run images/build.sh, "
            "or point the stack's image settings at local images"
        ) from None
    repo_digests = image.attrs.get("RepoDigests") or []
    return {"id": f"{image.id}{name}", "imageId": image.id, "repoDigest": repo_digests[0] if repo_digests else ""}


def delete_remote_image(client: docker.DockerClient, inputs: dict[str, Any]) -> None:
    if inputs.get("keepLocally"):
        return
    with contextlib.suppress(NotFound):
        client.images.remove(inputs["name"], force=bool(inputs.get("forceRemove")))


# ---------------------------------------------------------------- networks and volumes


def network(client: docker.DockerClient, inputs: dict[str, Any], stack: str | None) -> dict[str, Any]:
    require_known("docker Network", inputs, {"name", "driver", "labels", "internal", "attachable", "options", "ipv6"})
    created = client.networks.create(
        inputs["name"],
        driver=inputs.get("driver"),
        internal=bool(inputs.get("internal", False)),
        attachable=inputs.get("attachable"),
        options=inputs.get("options"),
        enable_ipv6=inputs.get("ipv6"),
        labels=labels_dict(inputs.get("labels"), stack),
    )
    created.reload()
    return {"id": created.id, "scope": created.attrs.get("Scope", "local")}


def delete_network(client: docker.DockerClient, network_id: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            client.networks.get(network_id).remove()
            break
        except NotFound:
            return
        except APIError as error:  # the provider retries while endpoints are still attached
            if "active endpoints" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(1)
    # A swarm (overlay) network is gone a moment after the removal returns; wait, so that the same name can be
    # created again at once (a replacement, or `up` right after `down`).
    while time.monotonic() < deadline:
        try:
            client.networks.get(network_id)
        except NotFound:
            return
        time.sleep(0.2)


def volume(client: docker.DockerClient, inputs: dict[str, Any], stack: str | None) -> dict[str, Any]:
    require_known("docker Volume", inputs, {"name", "driver", "driverOpts", "labels"})
    created = client.volumes.create(
        name=inputs["name"],
        driver=inputs.get("driver", "local"),
        driver_opts=inputs.get("driverOpts"),
        labels=labels_dict(inputs.get("labels"), stack),
    )
    return {"id": created.name, "mountpoint": created.attrs.get("Mountpoint", "")}


def delete_volume(client: docker.DockerClient, name: str) -> None:
    with contextlib.suppress(NotFound):
        client.volumes.get(name).remove()


# ---------------------------------------------------------------- containers


def _upload_tar(upload: dict[str, Any]) -> bytes:
    require_known(
        "docker Container uploads[]",
        upload,
        {"file", "content", "contentBase64", "source", "sourceHash", "executable", "permissions"},
    )
    given = [key for key in ("content", "contentBase64", "source") if key in upload]
    if len(given) != 1:
        raise UnsupportedInput(
            f"uploads[] {upload['file']}: exactly one of content, contentBase64, source (got {given})"
        )
    if "content" in upload:
        data = upload["content"].encode()
    elif "contentBase64" in upload:
        data = base64.b64decode(upload["contentBase64"])
    else:
        data = Path(upload["source"]).read_bytes()  # read on the machine running Pulumi
    if "permissions" in upload:
        mode = int(upload["permissions"], 8)
    else:
        mode = 0o744 if upload.get("executable") else 0o644
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo(name=upload["file"])
        info.size, info.mode, info.mtime = len(data), mode, int(time.time())
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _host_config(client: docker.DockerClient, inputs: dict[str, Any]) -> dict[str, Any]:
    binds = []
    container_paths = []
    for entry in inputs.get("volumes") or []:
        require_known("docker Container volumes[]", entry, {"containerPath", "volumeName", "hostPath", "readOnly"})
        source = entry.get("hostPath") or entry.get("volumeName")
        mode = "ro" if entry.get("readOnly") else "rw"
        if source:
            binds.append(f"{source}:{entry['containerPath']}:{mode}")
        container_paths.append(entry["containerPath"])
    port_bindings: dict[str, tuple[str, int] | tuple[str]] = {}
    for port in inputs.get("ports") or []:
        require_known("docker Container ports[]", port, {"internal", "external", "ip", "protocol"})
        key = f"{port['internal']}/{port.get('protocol', 'tcp')}"
        ip = port.get("ip", "0.0.0.0")
        port_bindings[key] = (ip, int(port["external"])) if port.get("external") else (ip,)
    capabilities = inputs.get("capabilities") or {}
    require_known("docker Container capabilities", capabilities, {"adds", "drops"})
    log_config = None
    if "logDriver" in inputs or "logOpts" in inputs:
        log_config = LogConfig(type=inputs.get("logDriver", "json-file"), config=inputs.get("logOpts") or {})
    restart = inputs.get("restart", "no")
    if not re.fullmatch(r"no|on-failure|always|unless-stopped", restart):
        raise UnsupportedInput(f"restart {restart!r} (the provider accepts no, on-failure, always, unless-stopped)")
    mib = 1024 * 1024
    host_config: dict[str, Any] = client.api.create_host_config(
        binds=binds or None,
        port_bindings=port_bindings or None,
        restart_policy={"Name": restart, "MaximumRetryCount": int(inputs.get("maxRetryCount", 0))},
        network_mode=inputs.get("networkMode", "bridge"),
        log_config=log_config,
        read_only=bool(inputs.get("readOnly", False)),
        security_opt=inputs.get("securityOpts") or None,
        cap_add=capabilities.get("adds") or None,
        cap_drop=capabilities.get("drops") or None,
        mem_limit=int(inputs["memory"]) * mib if inputs.get("memory") else None,
        memswap_limit=(int(inputs["memorySwap"]) * mib if int(inputs["memorySwap"]) > 0 else -1)
        if "memorySwap" in inputs
        else None,
        tmpfs=inputs.get("tmpfs") or None,
        init=bool(inputs.get("init", False)),
        shm_size=int(inputs["shmSize"]) * mib if inputs.get("shmSize") else None,
        extra_hosts={h["host"]: h["ip"] for h in inputs.get("hosts") or []} or None,
    )
    host_config["_container_paths"] = container_paths
    return host_config


def _healthcheck(spec: dict[str, Any] | None) -> dict[str, Any] | None:
    if not spec:
        return None
    require_known(
        "docker Container healthcheck",
        spec,
        {"tests", "interval", "timeout", "startPeriod", "startInterval", "retries"},
    )
    if go_duration_ns(spec.get("startInterval", "0s")):
        raise UnsupportedInput("healthcheck.startInterval: Docker 20.10 (API 1.41) and docker-py have no StartInterval")
    return {
        "test": spec["tests"],
        "interval": go_duration_ns(spec.get("interval", "0s")),
        "timeout": go_duration_ns(spec.get("timeout", "0s")),
        "start_period": go_duration_ns(spec.get("startPeriod", "0s")),
        "retries": int(spec.get("retries", 0)),
    }


def container(client: docker.DockerClient, inputs: dict[str, Any], stack: str | None) -> dict[str, Any]:
    require_known("docker Container", inputs, CONTAINER_INPUTS)
    if any(part == "" for part in inputs.get("command") or []):
        raise UnsupportedInput("command: the provider refuses empty elements")
    api = client.api
    # 1. findImage: local inspect only (it would pull when missing).
    image_id = client.images.get(inputs["image"]).id
    host_config = _host_config(client, inputs)
    container_paths = host_config.pop("_container_paths")
    exposed = [tuple(key.split("/")) for key in (host_config.get("PortBindings") or {})]
    # 2. ContainerCreate with an empty networking config.
    created = api.create_container(
        image=image_id,
        name=inputs.get("name"),
        command=inputs.get("command"),
        entrypoint=inputs.get("entrypoints"),
        environment=sorted(set(inputs.get("envs") or [])),  # a TF set: order-insensitive, deduplicated
        labels=labels_dict(inputs.get("labels"), stack),
        user=inputs.get("user"),
        hostname=inputs.get("hostname"),
        working_dir=inputs.get("workingDir"),
        stop_signal=inputs.get("stopSignal"),
        stop_timeout=inputs.get("stopTimeout"),
        healthcheck=_healthcheck(inputs.get("healthcheck")),
        ports=[(int(port), proto) for port, proto in exposed] or None,
        volumes=container_paths or None,
        host_config=host_config,
    )
    container_id = created["Id"]
    try:
        # 3. Leave the default bridge, join each advanced network with its aliases.
        if inputs.get("networksAdvanced"):
            try:
                api.disconnect_container_from_network(container_id, "bridge")
            except APIError as error:
                if "is not connected" not in str(error):
                    raise
            for entry in inputs["networksAdvanced"]:
                require_known(
                    "docker Container networksAdvanced[]", entry, {"name", "aliases", "ipv4Address", "ipv6Address"}
                )
                api.connect_container_to_network(
                    container_id,
                    entry["name"],
                    aliases=entry.get("aliases"),
                    ipv4_address=entry.get("ipv4Address"),
                    ipv6_address=entry.get("ipv6Address"),
                )
        # 4. Uploads, before start; refused by Docker on a read-only root filesystem, as with the provider.
        for upload in inputs.get("uploads") or []:
            api.put_archive(container_id, "/", _upload_tar(upload))
        # 5. Start, then wait for health when asked.
        if inputs.get("start", True):
            api.start(container_id)
            if inputs.get("wait"):
                _wait_healthy(client, container_id, int(inputs.get("waitTimeout", 60)))
    except Exception:
        delete_container(client, container_id, inputs)
        raise
    info = api.inspect_container(container_id)
    networks = info["NetworkSettings"]["Networks"]
    return {
        "id": container_id,
        "networkDatas": [
            {
                "networkName": net,
                "ipAddress": data.get("IPAddress", ""),
                "gateway": data.get("Gateway", ""),
                "macAddress": data.get("MacAddress", ""),
            }
            for net, data in sorted(networks.items())
        ],
    }


def _wait_healthy(client: docker.DockerClient, container_id: str, timeout: int) -> None:
    deadline = time.monotonic() + timeout
    while True:
        state = client.api.inspect_container(container_id)["State"]
        health = (state.get("Health") or {}).get("Status")
        if health is None:
            raise UnsupportedInput("wait=true needs a healthcheck (the provider errors the same way)")
        if health == "healthy":
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"container {container_id[:12]} not healthy within {timeout}s (last: {health})")
        time.sleep(1)


def delete_container(client: docker.DockerClient, container_id: str, inputs: dict[str, Any]) -> None:
    """Stop with the grace period (provider default 0), then remove (anonymous volumes unless told not to)."""
    try:
        client.api.stop(container_id, timeout=int(inputs.get("destroyGraceSeconds", 0)))
    except NotFound:
        return
    except APIError:
        pass  # already stopped or restarting: removal below forces it
    with contextlib.suppress(NotFound):
        client.api.remove_container(container_id, force=True, v=bool(inputs.get("removeVolumes", True)))


def container_exists(client: docker.DockerClient, container_id: str) -> bool:
    try:
        client.api.inspect_container(container_id)
    except NotFound:
        return False
    return True


# ---------------------------------------------------------------- explicit providers (remote engines)

PROVIDER_TYPE = "pulumi:providers:docker"
PROVIDER_INPUTS = {
    "host", "sshOpts", "caMaterial", "certMaterial", "keyMaterial", "certPath", "registryAuth",
    "disableDockerDaemonCheck",
}  # fmt: skip
REGISTRY_AUTH_INPUTS = {"address", "username", "password", "configFile", "configFileContent", "authDisabled"}
DEFAULT_HOST = "unix:///var/run/docker.sock"  # pulumi-docker's provider/resources.go default (else DOCKER_HOST)


def provider_settings(inputs: dict[str, Any]) -> dict[str, Any]:
    """A `pulumi:providers:docker` registration's inputs as the provider reads them: under mocks every
    non-string input arrives JSON-encoded (`"sshOpts": "[\\"-o\\", ...]"`)."""
    if "context" in inputs:
        raise UnsupportedInput("docker provider context: Docker CLI contexts are not implemented by the realizer")
    require_known("docker provider", inputs, PROVIDER_INPUTS)
    settings = dict(inputs)
    for key in ("sshOpts", "registryAuth", "disableDockerDaemonCheck"):
        if isinstance(settings.get(key), str):
            settings[key] = json.loads(settings[key])
    for entry in settings.get("registryAuth") or []:
        # Only used to pull images (and to resolve a service's image digest), which never happens here.
        require_known("docker provider registryAuth[]", entry, REGISTRY_AUTH_INPUTS)
    return settings


def ssh_command(host: str, ssh_opts: list[str]) -> list[str]:
    """docker/cli's connhelper (what the provider uses for ssh://): `ssh <sshOpts> [-o ConnectTimeout=30]
    [-T] [-l user] [-p port] -- host docker system dial-stdio`."""
    url = urllib.parse.urlparse(host)
    if url.scheme != "ssh" or not url.hostname or url.path not in ("", "/"):
        raise UnsupportedInput(f"docker provider host {host!r}: expected ssh://[user@]host[:port]")
    flags = list(ssh_opts)
    if not any("ConnectTimeout" in flag for flag in flags):
        flags += ["-o", "ConnectTimeout=30"]
    if not any(flag in ("-t", "-T", "-tt") for flag in flags):
        flags.append("-T")
    if url.username:
        flags += ["-l", url.username]
    if url.port:
        flags += ["-p", str(url.port)]
    return ["ssh", *flags, "--", url.hostname, "docker", "system", "dial-stdio"]


def _ssh_client(host: str, ssh_opts: list[str], version: str | None) -> docker.DockerClient:
    """docker-py's shell-out ssh transport (`use_ssh_client=True`), running the provider's ssh command line
    (docker-py itself has no ssh options)."""
    command = ssh_command(host, ssh_opts)
    try:
        from docker.transport import sshconn  # imports paramiko, even to shell out to ssh
    except ImportError as error:
        raise UnsupportedInput(
            f"docker provider host {host!r}: docker-py's ssh transport needs paramiko ({error}); add it to "
            "requirements-dev.txt"
        ) from None

    class CommandSocket(sshconn.SSHSocket):  # type: ignore[misc]
        def connect(self, **kwargs: Any) -> None:
            env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "SSL_CERT_FILE")}
            self.proc = subprocess.Popen(
                command, env=env, stdout=subprocess.PIPE, stdin=subprocess.PIPE,
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
            )  # fmt: skip

    class CommandConnection(sshconn.SSHConnection):  # type: ignore[misc]
        def connect(self) -> None:
            sock = CommandSocket("localhost")
            sock.settimeout(self.timeout)
            sock.connect()
            self.sock = sock

    class CommandPool(sshconn.SSHConnectionPool):  # type: ignore[misc]
        def _new_conn(self) -> Any:
            return CommandConnection(timeout=self.timeout)

    client = docker.DockerClient(base_url=host, use_ssh_client=True, timeout=300, version=version or "1.41")
    adapter = client.api._custom_adapter
    adapter.get_connection = lambda url, proxies=None: CommandPool(
        timeout=adapter.timeout, maxsize=adapter.max_pool_size
    )
    if version is None:  # negotiate as the provider does (WithAPIVersionNegotiation), through the ssh command
        client.api._version = client.api._retrieve_server_version()
    return client


def _tls_files(settings: dict[str, Any]) -> TLSConfig | None:
    """The provider's Config.NewClient: cert + key material (CA optional: without it the daemon's certificate
    is NOT verified, InsecureSkipVerify), else cert_path's ca.pem/cert.pem/key.pem (verified), else no TLS.
    CA material alone is ignored, as the provider ignores it."""
    cert, key = settings.get("certMaterial", ""), settings.get("keyMaterial", "")
    if cert or key:
        if not (cert and key):
            raise UnsupportedInput("docker provider: cert_material, and key_material must be specified")
        if settings.get("certPath"):
            raise UnsupportedInput("docker provider: cert_path must not be specified (with cert/key material)")
        directory = Path(tempfile.mkdtemp(prefix="realizer-docker-tls-"))
        atexit.register(shutil.rmtree, directory, True)
        files = {"ca.pem": settings.get("caMaterial", ""), "cert.pem": cert, "key.pem": key}
        for file_name, content in files.items():
            if content:
                path = directory / file_name
                path.touch(mode=0o600)
                path.write_text(content)
        ca = str(directory / "ca.pem") if files["ca.pem"] else None
        return TLSConfig(
            client_cert=(str(directory / "cert.pem"), str(directory / "key.pem")), ca_cert=ca, verify=ca or False
        )
    if settings.get("certPath"):
        base = Path(settings["certPath"])
        return TLSConfig(
            client_cert=(str(base / "cert.pem"), str(base / "key.pem")), ca_cert=str(base / "ca.pem"), verify=True
        )
    return None


def provider_client(settings: dict[str, Any]) -> docker.DockerClient:
    """A client for an explicit provider; it pings the engine unless `disableDockerDaemonCheck`."""
    host = settings.get("host") or os.environ.get("DOCKER_HOST") or DEFAULT_HOST
    check = not settings.get("disableDockerDaemonCheck")
    tls = _tls_files(settings)
    if tls is None and host.startswith("ssh://"):
        client = _ssh_client(host, settings.get("sshOpts") or [], None if check else "1.41")
    else:  # sshOpts only matter to ssh:// hosts (connhelper ignores them otherwise)
        # The API version is fixed before the first request: requests (docker-py's transport) would otherwise let
        # REQUESTS_CA_BUNDLE replace the provider's CA for that request (psf/requests #3829); the Go provider
        # verifies against its CA alone, so the environment is not trusted here.
        client = docker.DockerClient(base_url=host, tls=tls or False, timeout=300, version="1.41")
        client.api.trust_env = False
        if check:
            client.api._version = client.api._retrieve_server_version()
    if check:
        client.ping()
    return client
