"""Run the program under Pulumi's mocks and realize every registration for real.

This stands in for the Pulumi engine plus the docker, tls and random provider plugins, which cannot be
installed here. Like the engine it keeps state (tests/live state file per stack): a resource whose inputs
did not change is kept as it is, and one the program no longer declares is deleted (unless it was declared
with retain_on_delete). A changed one is replaced: containers (and networks and volumes here) delete-before-
replace, as pulumi-docker registers containers; Swarm services, configs and secrets create-before-delete, the
old object being deleted at the end (`prune`), after its dependents moved to the new one, unless the resource
asks for delete_before_replace. A service whose changes are all updatable is updated in place (`updated`).
Resources of an explicit `docker.Provider` go to that provider's engine (ssh://, tcp:// with TLS, unix://),
which the state remembers. Unlike the engine it does not diff computed outputs or run refresh.
"""

from __future__ import annotations

import gc
import json
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import pulumi
from docker.errors import NotFound

from harness import docker_provider, random_provider, swarm_provider, tls_provider
from harness.errors import UnsupportedInput
from harness.program import PROJECT_DIR, ProgramRun, plain, run_program, secret, stack_config

STATE_DIR = PROJECT_DIR / ".live-state"

Realize = Callable[[dict[str, Any]], dict[str, Any]]
PROVIDER = docker_provider.PROVIDER_TYPE
CREATE_BEFORE_DELETE = set(swarm_provider.TYPES)
"""Not DeleteBeforeReplace in pulumi-docker's provider/resources.go: the engine creates the replacement,
updates the dependents, then deletes the old object."""
CONTAINER = "docker:index/container:Container"
CONTAINER_STATE_ONLY = frozenset(
    {"wait", "waitTimeout", "start", "init", "tmpfs", "destroyGraceSeconds", "removeVolumes", "rm", "healthcheck"}
)
"""Container inputs whose change the provider's Update records in state only, never touching the container
(terraform-provider-docker's resourceDockerContainerUpdate); `replaceOnChanges` still makes it a replacement. The
Update that calls the API (restart, memory, ...) is done here as a replacement."""


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
        self.updated: list[str] = []
        self.doomed: list[dict[str, Any]] = []
        """Old objects of create-before-delete replacements, deleted by `prune` once everything else ran."""
        self.clients: dict[str, docker.DockerClient] = {}
        """Engines of explicit providers by the provider's state key."""
        self.provider_keys: dict[str, str] = {}
        """Provider id (as in a dependent's `provider` reference) -> the provider's state key."""

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
        """Decide under the lock, realize outside it, record under it again: the engine runs the steps of
        independent resources at once, so two new containers wait for their health together, not in turn."""
        inputs = plain(raw_inputs)
        key = f"{typ}::{name}"
        with self.lock:
            self.seen.add(key)
            self._follow_aliases(typ, key, options.get("aliases", []))
            if typ == PROVIDER:
                return self._register_provider(key, inputs)
            engine = self._provider_key(provider, key)
            client = self._client(engine)
            previous = self.state.get(key)
            if previous:
                inputs = _keep_ignored(inputs, previous["inputs"], options.get("ignoreChanges", []), key)
            # A resource moved to another provider is replaced, as the engine replaces it.
            alive = (
                previous is not None and previous.get("provider", "") == engine and self._still_exists(typ, previous)
            )
            if previous and alive and previous["inputs"] == inputs:
                return previous["id"], self._outputs(typ, inputs, previous["outputs"])
            if previous and alive and typ == swarm_provider.SERVICE:
                # Before diffing: for the provider, a Computed input taken out of the program is no change.
                swarm_provider.check_computed_kept(previous["inputs"], inputs, key)
            update = bool(previous and alive and _updatable(typ, previous["inputs"], inputs, options))
            delete_first = None
            if previous and not update:
                if typ in CREATE_BEFORE_DELETE and not options.get("deleteBeforeReplace"):
                    self.doomed.append(previous)
                else:
                    delete_first = previous
                self.replaced.append(key)
            elif not previous:
                self.created.append(key)
        if update and typ == CONTAINER:
            assert previous is not None
            outputs = previous["outputs"]  # state only: the running container stays as it is
        elif update:
            assert previous is not None
            outputs = swarm_provider.update_service(
                client, previous["id"], inputs, self.stack, previous["outputs"]["name"]
            )
        else:
            if delete_first is not None:
                self._delete(typ, delete_first)
            outputs = self._create(typ, name, inputs, client)
        with self.lock:
            if update:
                self.updated.append(key)
            return self._record(key, typ, inputs, outputs, engine)

    def _record(
        self, key: str, typ: str, inputs: dict[str, Any], outputs: dict[str, Any], engine: str
    ) -> tuple[str, dict[str, Any]]:
        entry = {"typ": typ, "inputs": inputs, "id": outputs["id"], "outputs": outputs, "options": {}}
        if engine:
            entry["provider"] = engine
        self.state[key] = entry
        self._save_state()
        return outputs["id"], self._outputs(typ, inputs, outputs)

    # ---- explicit providers ----

    def _register_provider(self, key: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """A `docker.Provider`: a client for its engine; dependents name it as `<urn>::<id>`."""
        settings = docker_provider.provider_settings(inputs)
        previous = self.state.get(key)
        if previous and previous["inputs"] == settings:
            provider_id = previous["id"]
        else:
            users = sorted(k for k, entry in self.state.items() if entry.get("provider") == key)
            if users:
                raise UnsupportedInput(
                    f"{key}: its inputs changed while {users} are on its engine; moving resources between "
                    "engines is not implemented by the realizer"
                )
            self.clients.pop(key, None)
            provider_id = uuid.uuid4().hex
            self.created.append(key)
        self.clients.setdefault(key, docker_provider.provider_client(settings))
        self.provider_keys[provider_id] = key
        self.state[key] = {"typ": PROVIDER, "inputs": settings, "id": provider_id, "outputs": {}, "options": {}}
        self._save_state()
        return provider_id, dict(inputs)

    def _provider_key(self, reference: str, key: str) -> str:
        """The engine of a registration: `""` for the default provider (the local engine), else the state key of
        the explicit provider its `<urn>::<id>` reference names."""
        if not reference:
            return ""
        provider_id = reference.rsplit("::", 1)[-1]
        if provider_id not in self.provider_keys:
            raise UnsupportedInput(f"{key}: provider {reference} was not registered with the realizer")
        return self.provider_keys[provider_id]

    def _client(self, engine: str) -> docker.DockerClient:
        if not engine:
            return self.client
        if engine not in self.clients:  # a provider known from the state only (its resources are being deleted)
            self.clients[engine] = docker_provider.provider_client(self.state[engine]["inputs"])
        return self.clients[engine]

    def _engines(self) -> list[docker.DockerClient]:
        """The local engine and those of the explicit providers in the state, each once."""
        engines = {self.client.api.base_url: self.client}
        for key, entry in self.state.items():
            if entry["typ"] == PROVIDER:
                client = self._client(key)
                engines.setdefault(client.api.base_url, client)
        return list(engines.values())

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

    def _create(self, typ: str, name: str, inputs: dict[str, Any], client: docker.DockerClient) -> dict[str, Any]:
        stack = self.stack
        creators: dict[str, Realize] = {
            "tls:index/privateKey:PrivateKey": tls_provider.private_key,
            "tls:index/selfSignedCert:SelfSignedCert": tls_provider.self_signed_cert,
            "tls:index/certRequest:CertRequest": tls_provider.cert_request,
            "tls:index/locallySignedCert:LocallySignedCert": tls_provider.locally_signed_cert,
            "random:index/randomPassword:RandomPassword": random_provider.random_password,
            "docker:index/remoteImage:RemoteImage": lambda i: docker_provider.remote_image(client, i),
            "docker:index/network:Network": lambda i: docker_provider.network(client, i, stack),
            "docker:index/volume:Volume": lambda i: docker_provider.volume(client, i, stack),
            CONTAINER: lambda i: docker_provider.container(client, i, stack),
            swarm_provider.SERVICE_CONFIG: lambda i: swarm_provider.service_config(client, i, stack, name),
            swarm_provider.SECRET: lambda i: swarm_provider.secret(client, i, stack, name),
            swarm_provider.SERVICE: lambda i: swarm_provider.create_service(client, i, stack, name),
        }
        if typ not in creators:
            raise UnsupportedInput(f"resource type {typ} is not implemented by the realizer")
        return creators[typ](inputs)

    def _delete(self, typ: str, entry: dict[str, Any]) -> None:
        if typ == PROVIDER:
            return  # only state (and a client) here; its resources were deleted before it
        client = self._client(entry.get("provider", ""))
        if typ == CONTAINER:
            docker_provider.delete_container(client, entry["id"], entry["inputs"])
        elif typ == "docker:index/network:Network":
            docker_provider.delete_network(client, entry["id"])
        elif typ == "docker:index/volume:Volume":
            if not entry["options"].get("retainOnDelete"):
                docker_provider.delete_volume(client, entry["id"])
        elif typ == "docker:index/remoteImage:RemoteImage":
            docker_provider.delete_remote_image(client, entry["inputs"])
        elif typ == swarm_provider.SERVICE:
            swarm_provider.delete_service(client, entry["id"], entry["inputs"])
        elif typ == swarm_provider.SERVICE_CONFIG:
            swarm_provider.delete_config(client, entry["id"])
        elif typ == swarm_provider.SECRET:
            swarm_provider.delete_secret(client, entry["id"])
        # tls and random resources live only in state.

    def _still_exists(self, typ: str, entry: dict[str, Any]) -> bool:
        """Objects removed behind the engine's back are created again (what a refresh would find)."""
        client = self._client(entry.get("provider", ""))
        try:
            if typ == CONTAINER:
                return docker_provider.container_exists(client, entry["id"])
            if typ in swarm_provider.TYPES:
                return swarm_provider.exists(client, typ, entry["id"])
            if typ == "docker:index/network:Network":
                client.networks.get(entry["id"])
            elif typ == "docker:index/volume:Volume":
                client.volumes.get(entry["id"])
            elif typ == "docker:index/remoteImage:RemoteImage":
                return bool(client.images.get(entry["inputs"]["name"]).id == entry["outputs"]["imageId"])
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
        elif typ in (swarm_provider.SECRET, swarm_provider.SERVICE_CONFIG):
            secret_names = ("data", "dataRaw")  # Sensitive in the provider
        for name in secret_names:
            if name in outputs:
                outputs[name] = secret(outputs[name])
        return outputs

    # ---- whole stack ----

    def remove_leftovers(self) -> list[str]:
        """Objects labelled with this stack that the state does not know (from a crashed or lost run), on the
        local engine and on those of the providers in the state."""
        known = {entry["id"] for entry in self.state.values()}
        removed = []
        for client in self._engines():
            removed += remove_labelled(client, self.stack, keep=known, volumes=False, graceful=False)
        return removed

    def prune(self, run: ProgramRun) -> list[str]:
        """Record options, then delete what the program no longer declares and the old objects of
        create-before-delete replacements (services before containers, networks, configs and secrets)."""
        options = {f"{r.typ}::{r.name}": r.options for r in run.registrations.values()}
        for key, entry in self.state.items():
            if key in options:
                entry["options"] = options[key]
        gone = [key for key in self.state if key not in self.seen]
        doomed = [(f"{entry['typ']}::", entry) for entry in self.doomed]
        work = sorted([*((key, self.state[key]) for key in gone), *doomed], key=lambda item: _deletion_order(item[0]))
        for key, entry in work:
            self._delete(entry["typ"], entry)
            if key in gone:
                del self.state[key]
                self.clients.pop(key, None)
        self.doomed.clear()
        self._save_state()
        return sorted(gone, key=_deletion_order)


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


def _updatable(typ: str, old: dict[str, Any], new: dict[str, Any], options: dict[str, Any]) -> bool:
    """Services are updated in place unless a ForceNew input changed; containers when every changed input is
    one the provider updates in state only and none is in `replaceOnChanges`."""
    if typ == swarm_provider.SERVICE:
        return not swarm_provider.replacement_reasons(old, new)
    if typ == CONTAINER:
        changed = {name for name in old.keys() | new.keys() if old.get(name) != new.get(name)}
        return changed <= CONTAINER_STATE_ONLY and not changed & set(options.get("replaceOnChanges", []))
    return False


def _deletion_order(key: str) -> int:
    order = [
        swarm_provider.SERVICE, CONTAINER, "docker:index/network:Network",
        "docker:index/volume:Volume", swarm_provider.SERVICE_CONFIG, swarm_provider.SECRET,
    ]  # fmt: skip
    typ = key.split("::", 1)[0]
    if typ == PROVIDER:
        return len(order) + 1  # after everything on its engine
    return order.index(typ) if typ in order else len(order)


def remove_labelled(
    client: docker.DockerClient, stack: str, *, keep: set[str], volumes: bool, graceful: bool
) -> list[str]:
    """Every object labelled with the stack on one engine, except the ids in `keep`: services first (their
    task containers gone), then containers, networks (overlay ones too), configs, secrets and, if asked,
    volumes."""
    label = f"{docker_provider.LIVE_STACK_LABEL}={stack}"
    removed = []
    swarm = swarm_provider.stack_objects(client, stack)
    for service in swarm["services"]:
        if service["ID"] not in keep:
            swarm_provider.delete_service(client, service["ID"], {})
            removed.append(f"service {service['Spec']['Name']}")
    for found in client.containers.list(all=True, filters={"label": label}):
        if found.id not in keep:
            if graceful:
                docker_provider.delete_container(client, found.id, {"destroyGraceSeconds": 10})
            else:
                found.remove(force=True)
            removed.append(f"container {found.name}")
    for net in client.networks.list(filters={"label": label}):
        if net.id not in keep:
            docker_provider.delete_network(client, net.id)
            removed.append(f"network {net.name}")
    for config in swarm["configs"]:
        if config["ID"] not in keep:
            swarm_provider.delete_config(client, config["ID"])
            removed.append(f"config {config['Spec']['Name']}")
    for found_secret in swarm["secrets"]:
        if found_secret["ID"] not in keep:
            swarm_provider.delete_secret(client, found_secret["ID"])
            removed.append(f"secret {found_secret['Spec']['Name']}")
    if volumes:
        for vol in client.volumes.list(filters={"label": label}):
            if vol.name not in keep:
                vol.remove(force=True)
                removed.append(f"volume {vol.name}")
    return removed


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
    updated: list[str] = field(default_factory=list)
    """Resources updated in place: Swarm services whose changed inputs are all updatable, and containers whose
    changed inputs the provider records in state only."""


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
    try:
        run_program(config, RealizingMocks(realizer, run), stack=stack_file.stack, run=run)
    finally:
        # Whatever the run left for the garbage collector goes now, not later. Seen once at the end of a live
        # run (pytest importing a module): "SystemError: AST constructor recursion depth mismatch". The likely
        # path: a collection inside that import's ast.parse frees a future whose exception was never read;
        # asyncio logs it with a traceback, whose caret line runs a nested ast.parse (CPython 3.11).
        gc.collect()
    deleted = realizer.prune(run)
    return UpResult(
        run.outputs, realizer.created, realizer.replaced, deleted, leftovers, run.warnings, realizer.renamed,
        realizer.updated,
    )  # fmt: skip


def down(config_file: Path, *, volumes: bool = False, client: docker.DockerClient | None = None) -> list[str]:
    """Remove every object labelled with the stack (whatever the state says) on the local engine and on the
    engines of the explicit providers the state knows, then the state."""
    stack_file = StackFile(config_file)
    realizer = Realizer(stack_file, client)
    removed = []
    for engine in realizer._engines():
        removed += remove_labelled(engine, stack_file.stack, keep=set(), volumes=volumes, graceful=True)
    stack_file.state_path.unlink(missing_ok=True)
    return removed
