"""Run the program under Pulumi's mocks and realize every registration for real.

This stands in for the Pulumi engine plus the docker, tls and random provider plugins, which cannot be
installed here. Like the engine it keeps state (tests/live state file per stack): a resource whose inputs
did not change is kept as it is, a changed one is replaced (containers delete-before-replace, as
pulumi-docker registers them), and one the program no longer declares is deleted (unless it was declared
with retain_on_delete). Unlike the engine it does not diff computed outputs or run refresh.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pulumi
from docker.errors import NotFound

from harness import docker_provider, random_provider, tls_provider
from harness.errors import UnsupportedInput
from harness.program import PROJECT_DIR, ProgramRun, plain, run_program, secret, stack_config

STATE_DIR = PROJECT_DIR / ".live-state"

Realize = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class StackFile:
    """A Pulumi.<stack>.yaml-style file: the stack is named after the file (live.yaml -> live)."""

    path: Path

    @property
    def stack(self) -> str:
        return self.path.stem.removeprefix("Pulumi.")

    @property
    def state_path(self) -> Path:
        return STATE_DIR / f"{self.stack}.json"


class Realizer:
    def __init__(self, stack_file: StackFile, client: docker.DockerClient | None = None):
        self.stack_file = stack_file
        self.stack = stack_file.stack
        self.client = client or docker_client()
        self.lock = threading.Lock()  # new_resource runs on several threads at once
        self.state: dict[str, dict[str, Any]] = self._load_state()
        self.seen: set[str] = set()
        self.replaced: list[str] = []
        self.renamed: list[str] = []
        self.created: list[str] = []

    # ---- state ----

    def _load_state(self) -> dict[str, dict[str, Any]]:
        if self.stack_file.state_path.exists():
            loaded: dict[str, dict[str, Any]] = json.loads(self.stack_file.state_path.read_text())
            return loaded
        return {}

    def _save_state(self) -> None:
        STATE_DIR.mkdir(exist_ok=True)
        path = self.stack_file.state_path
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.state, indent=1, sort_keys=True))
        os.chmod(temporary, 0o600)  # holds keys and secrets in plain text, like an unencrypted Pulumi state
        temporary.replace(path)

    # ---- one registration ----

    def new_resource(
        self, typ: str, name: str, raw_inputs: dict[str, Any], provider: str, options: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        if provider:
            raise UnsupportedInput(f"{typ} {name}: explicit providers ({provider}) are not implemented by the realizer")
        inputs = plain(raw_inputs)
        key = f"{typ}::{name}"
        with self.lock:
            self.seen.add(key)
            self._follow_aliases(typ, key, options.get("aliases", []))
            previous = self.state.get(key)
            if previous:
                inputs = _keep_ignored(inputs, previous["inputs"], options.get("ignoreChanges", []), key)
            if previous and previous["inputs"] == inputs and self._still_exists(typ, previous):
                return previous["id"], self._outputs(typ, inputs, previous["outputs"])
            if previous:
                self._delete(typ, previous)
                self.replaced.append(key)
            else:
                self.created.append(key)
            outputs = self._create(typ, inputs)
            self.state[key] = {"typ": typ, "inputs": inputs, "id": outputs["id"], "outputs": outputs, "options": {}}
            self._save_state()
            return outputs["id"], self._outputs(typ, inputs, outputs)

    def _follow_aliases(self, typ: str, key: str, aliases: list[str]) -> None:
        """A resource known to the state under an alias (its old name) takes that entry over, as the engine
        does: renamed, not replaced."""
        if key in self.state:
            return
        for alias in aliases:
            old = f"{typ}::{alias}"
            if old in self.state:
                self.state[key] = self.state.pop(old)
                self.renamed.append(f"{old} -> {key}")
                return

    def _create(self, typ: str, inputs: dict[str, Any]) -> dict[str, Any]:
        client, stack = self.client, self.stack
        creators: dict[str, Realize] = {
            "tls:index/privateKey:PrivateKey": tls_provider.private_key,
            "tls:index/selfSignedCert:SelfSignedCert": tls_provider.self_signed_cert,
            "tls:index/certRequest:CertRequest": tls_provider.cert_request,
            "tls:index/locallySignedCert:LocallySignedCert": tls_provider.locally_signed_cert,
            "random:index/randomPassword:RandomPassword": random_provider.random_password,
            "docker:index/remoteImage:RemoteImage": lambda i: docker_provider.remote_image(client, i),
            "docker:index/network:Network": lambda i: docker_provider.network(client, i, stack),
            "docker:index/volume:Volume": lambda i: docker_provider.volume(client, i, stack),
            "docker:index/container:Container": lambda i: docker_provider.container(client, i, stack),
        }
        if typ not in creators:
            raise UnsupportedInput(f"resource type {typ} is not implemented by the realizer")
        return creators[typ](inputs)

    def _delete(self, typ: str, entry: dict[str, Any]) -> None:
        if typ == "docker:index/container:Container":
            docker_provider.delete_container(self.client, entry["id"], entry["inputs"])
        elif typ == "docker:index/network:Network":
            docker_provider.delete_network(self.client, entry["id"])
        elif typ == "docker:index/volume:Volume":
            if not entry["options"].get("retainOnDelete"):
                docker_provider.delete_volume(self.client, entry["id"])
        elif typ == "docker:index/remoteImage:RemoteImage":
            docker_provider.delete_remote_image(self.client, entry["inputs"])
        # tls and random resources live only in state.

    def _still_exists(self, typ: str, entry: dict[str, Any]) -> bool:
        """Objects removed behind the engine's back are created again (what a refresh would find)."""
        try:
            if typ == "docker:index/container:Container":
                return docker_provider.container_exists(self.client, entry["id"])
            if typ == "docker:index/network:Network":
                self.client.networks.get(entry["id"])
            elif typ == "docker:index/volume:Volume":
                self.client.volumes.get(entry["id"])
            elif typ == "docker:index/remoteImage:RemoteImage":
                return bool(self.client.images.get(entry["inputs"]["name"]).id == entry["outputs"]["imageId"])
        except NotFound:
            return False
        return True

    @staticmethod
    def _outputs(typ: str, inputs: dict[str, Any], computed: dict[str, Any]) -> dict[str, Any]:
        """Echoed inputs plus computed outputs, with the provider's secret outputs marked as the engine does."""
        outputs = {**inputs, **{k: v for k, v in computed.items() if k != "id"}}
        secret_names: tuple[str, ...] = ()
        if typ == "tls:index/privateKey:PrivateKey":
            secret_names = tls_provider.PRIVATE_KEY_SECRETS
        elif typ == "random:index/randomPassword:RandomPassword":
            secret_names = random_provider.SECRET_OUTPUTS
        for name in secret_names:
            if name in outputs:
                outputs[name] = secret(outputs[name])
        return outputs

    # ---- whole stack ----

    def remove_leftovers(self) -> list[str]:
        """Objects labelled with this stack that the state does not know (from a crashed or lost run)."""
        known = {entry["id"] for entry in self.state.values()}
        label = f"{docker_provider.LIVE_STACK_LABEL}={self.stack}"
        removed = []
        for found in self.client.containers.list(all=True, filters={"label": label}):
            if found.id not in known:
                found.remove(force=True)
                removed.append(f"container {found.name}")
        for net in self.client.networks.list(filters={"label": label}):
            if net.id not in known:
                docker_provider.delete_network(self.client, net.id)
                removed.append(f"network {net.name}")
        return removed

    def prune(self, run: ProgramRun) -> list[str]:
        """Record options and delete what the program no longer declares (containers before networks)."""
        options = {f"{r.typ}::{r.name}": r.options for r in run.registrations.values()}
        for key, entry in self.state.items():
            if key in options:
                entry["options"] = options[key]
        gone = sorted((key for key in self.state if key not in self.seen), key=_deletion_order)
        for key in gone:
            self._delete(self.state[key]["typ"], self.state[key])
            del self.state[key]
        self._save_state()
        return gone


def _keep_ignored(inputs: dict[str, Any], old: dict[str, Any], ignored: list[str], key: str) -> dict[str, Any]:
    """`ignore_changes` as the engine applies it before diffing: an ignored input keeps its value from state
    (and stays absent if it was absent)."""
    kept = dict(inputs)
    for path in ignored:
        if not path.isidentifier():
            raise UnsupportedInput(f"{key}: ignoreChanges path {path!r}: only top-level inputs are implemented")
        if path in old:
            kept[path] = old[path]
        else:
            kept.pop(path, None)
    return kept


def _deletion_order(key: str) -> int:
    order = ["docker:index/container:Container", "docker:index/network:Network", "docker:index/volume:Volume"]
    typ = key.split("::", 1)[0]
    return order.index(typ) if typ in order else len(order)


class RealizingMocks(pulumi.runtime.Mocks):
    def __init__(self, realizer: Realizer, run: ProgramRun):
        self.realizer = realizer
        self.run = run

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        if not args.custom:  # component resources have nothing to realize
            return f"{args.name}-component", {}
        options = self.run.pending_options[f"{args.typ}::{args.name}"]
        return self.realizer.new_resource(args.typ, args.name, dict(args.inputs), args.provider or "", options)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        raise UnsupportedInput(f"invoke {args.token} is not implemented by the realizer")


@dataclass
class UpResult:
    outputs: dict[str, Any]
    created: list[str]
    replaced: list[str]
    deleted: list[str]
    leftovers_removed: list[str]
    warnings: list[str]
    renamed: list[str]
    """`old -> new` state keys of resources taken over through an alias."""


def docker_client() -> docker.DockerClient:
    """The engine `docker:host` would name; this harness only drives the local one (DOCKER_HOST honoured)."""
    return docker.from_env(timeout=300)


def up(config_file: Path, client: docker.DockerClient | None = None) -> UpResult:
    stack_file = StackFile(config_file)
    config = stack_config(config_file)
    if "docker:host" in config:
        raise UnsupportedInput("docker:host: the realizer drives the local engine only (set DOCKER_HOST instead)")
    realizer = Realizer(stack_file, client)
    leftovers = realizer.remove_leftovers()
    run = ProgramRun()
    run_program(config, RealizingMocks(realizer, run), stack=stack_file.stack, run=run)
    deleted = realizer.prune(run)
    return UpResult(
        run.outputs, realizer.created, realizer.replaced, deleted, leftovers, run.warnings, realizer.renamed
    )


def down(config_file: Path, *, volumes: bool = False, client: docker.DockerClient | None = None) -> list[str]:
    """Remove every object labelled with the stack (whatever the state says), and the state."""
    stack_file = StackFile(config_file)
    client = client or docker_client()
    label = f"{docker_provider.LIVE_STACK_LABEL}={stack_file.stack}"
    removed = []
    for found in client.containers.list(all=True, filters={"label": label}):
        docker_provider.delete_container(client, found.id, {"destroyGraceSeconds": 10})
        removed.append(f"container {found.name}")
    for net in client.networks.list(filters={"label": label}):
        docker_provider.delete_network(client, net.id)
        removed.append(f"network {net.name}")
    if volumes:
        for vol in client.volumes.list(filters={"label": label}):
            vol.remove(force=True)
            removed.append(f"volume {vol.name}")
    stack_file.state_path.unlink(missing_ok=True)
    return removed
