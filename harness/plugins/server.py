"""The ResourceProvider gRPC service that every STAND-IN plugin serves (see the package docstring).

What the engine sends and expects, as the Pulumi provider protocol defines it (`provider.proto` in the pulumi
wheel): property maps as `google.protobuf.Struct`, secrets as `{SIG: SECRET, "value": ...}`, unknown values
(in a preview) as the UNKNOWN string. A resource's outputs are its checked inputs, echoed as they came (so a
secret input stays a secret output, as the Terraform bridge's annotateSecrets keeps it), plus what the provider
computes, the provider's sensitive outputs wrapped as secrets. The provider functions themselves see plain
values (`provider_view`).

A plugin serves on 127.0.0.1 on a free port and prints the port as the first line of stdout; after that stdout
goes to stderr, and the engine shows what a plugin writes to stderr, so nothing else is written there but
errors. No error message carries a secret: every secret string of the request is replaced before it is sent.
"""

from __future__ import annotations

import re
import sys
import traceback
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any, NoReturn

import grpc  # type: ignore[import-untyped]
from google.protobuf import empty_pb2, json_format, struct_pb2  # type: ignore[import-untyped]
from pulumi.runtime import rpc
from pulumi.runtime.proto import plugin_pb2, provider_pb2, provider_pb2_grpc

SIG = rpc._special_sig_key
SECRET = rpc._special_secret_sig
RESOURCE = rpc._special_resource_sig
UNKNOWN = rpc.UNKNOWN
MAX_MESSAGE = 400 * 1024 * 1024  # what the engine allows itself

State = dict[str, Any]
"""A property map in the provider's view: plain values, secrets unwrapped."""


# ---------------------------------------------------------------- values


def from_struct(struct: struct_pb2.Struct | None) -> dict[str, Any]:
    if struct is None:
        return {}
    return dict(json_format.MessageToDict(struct))


def to_struct(values: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(values)
    return struct


def secret(value: Any) -> dict[str, Any]:
    return {SIG: SECRET, "value": value}


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and bool(value.get(SIG) == SECRET)


def provider_view(value: Any) -> Any:
    """What a Terraform provider would see: secrets unwrapped, resource references as their id (else URN),
    whole floats (protobuf numbers) as ints, internal `__` keys left out."""
    if isinstance(value, dict):
        if value.get(SIG) == SECRET:
            return provider_view(value.get("value"))
        if value.get(SIG) == RESOURCE:
            return value.get("id") or value.get("urn")
        return {key: provider_view(item) for key, item in value.items() if not key.startswith("__")}
    if isinstance(value, list):
        return [provider_view(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def has_unknown(value: Any) -> bool:
    if isinstance(value, dict):
        return any(has_unknown(item) for item in value.values())
    if isinstance(value, list):
        return any(has_unknown(item) for item in value)
    return isinstance(value, str) and value == UNKNOWN


def secret_strings(value: Any, inside: bool = False) -> Iterator[str]:
    """Every string under a secret (and every piece of it on its own line), to be kept out of messages."""
    if isinstance(value, dict):
        nested = inside or value.get(SIG) == SECRET
        for item in value.values():
            yield from secret_strings(item, nested)
    elif isinstance(value, list):
        for item in value:
            yield from secret_strings(item, inside)
    elif inside and isinstance(value, str | int | float) and not isinstance(value, bool):
        text = str(value)
        if len(text) >= 4:
            yield text
            yield from (line.strip() for line in text.splitlines() if len(line.strip()) >= 8)


def scrub(message: str, secrets: set[str]) -> str:
    for text in sorted(secrets, key=len, reverse=True):
        message = message.replace(text, "[secret]")
    return message


# ---------------------------------------------------------------- diffs


@dataclass
class Diff:
    """A Diff answer: the inputs that changed (top-level), those of them that replace, extra replacement reasons
    that are not inputs (a certificate ready for renewal), and whether the old object goes first."""

    changed: list[str] = field(default_factory=list)
    replaces: list[str] = field(default_factory=list)
    delete_before_replace: bool = False
    paths: dict[str, str] = field(default_factory=dict)
    """Detailed diff: property path -> the name of its PropertyDiff kind (ADD, UPDATE_REPLACE, ...)."""


ADD, DELETE, UPDATE = "ADD", "DELETE", "UPDATE"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _path(prefix: str, key: str) -> str:
    if _IDENTIFIER.fullmatch(key):
        return f"{prefix}.{key}" if prefix else key
    return f'{prefix}["{key}"]'


def changed_paths(old: Any, new: Any, prefix: str, found: dict[str, str], depth: int = 0) -> None:
    """Where `new` differs from `old`, as Pulumi property paths (`uploads[3].content`), for `pulumi preview --diff`."""
    if old == new:
        return
    if depth < 6 and isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(old.keys() | new.keys()):
            path = _path(prefix, key)
            if key not in old:
                found[path] = ADD
            elif key not in new:
                found[path] = DELETE
            else:
                changed_paths(old[key], new[key], path, found, depth + 1)
        return
    if depth < 6 and isinstance(old, list) and isinstance(new, list):
        for index in range(max(len(old), len(new))):
            path = f"{prefix}[{index}]"
            if index >= len(old):
                found[path] = ADD
            elif index >= len(new):
                found[path] = DELETE
            else:
                changed_paths(old[index], new[index], path, found, depth + 1)
        return
    found[prefix] = UPDATE


def input_diff(old: State, new: State) -> tuple[list[str], dict[str, str]]:
    """The top-level inputs that differ and the detailed paths (kinds without replacement yet)."""
    changed = sorted(key for key in old.keys() | new.keys() if old.get(key) != new.get(key))
    paths: dict[str, str] = {}
    for key in changed:
        if key not in old:
            paths[key] = ADD
        elif key not in new:
            paths[key] = DELETE
        else:
            changed_paths(old[key], new[key], key, paths, 1)
    return changed, paths


def _top(path: str) -> str:
    return re.split(r"[.\[]", path, maxsplit=1)[0]


# ---------------------------------------------------------------- resource types


@dataclass(frozen=True)
class ResourceType:
    """One resource type of a stand-in: how it is created, read, updated and deleted, and which input changes
    replace it. Every callable takes and returns the provider's view (plain values)."""

    token: str
    create: Callable[[State], State]
    """Checked inputs -> the computed outputs, "id" among them."""
    computed: tuple[str, ...] = ()
    """Outputs a create computes: unknown in a preview."""
    secret_outputs: tuple[str, ...] = ()
    """Sensitive outputs in the provider's schema: secrets in the state."""
    in_place: frozenset[str] = frozenset()
    """Inputs whose change is an update (the provider has an Update for them), not a replacement."""
    replace_reasons: Callable[[State, State], list[str]] | None = None
    """Instead of "every changed input not in `in_place`": the replacing property paths for (old, new) inputs."""
    forced_replace: Callable[[State], list[str]] | None = None
    """Replacement reasons found in the old outputs alone (a certificate ready for renewal)."""
    update: Callable[[str, State, State, State], State] | None = None
    """(id, old outputs, old inputs, new inputs) -> the computed outputs after an in-place update."""
    read: Callable[[str, State], State | None] | None = None
    """(id, outputs) -> the computed outputs now, None when the object is gone. None: it never goes (state only)."""
    delete: Callable[[str, State], None] | None = None
    """(id, outputs); None: the resource lives in the state only."""
    delete_before_replace: Callable[[str, State], bool] = lambda name, inputs: False
    """(the resource's logical name, new inputs) -> whether a replacement deletes the old object first."""
    check: Callable[[str, dict[str, Any], dict[str, Any]], dict[str, Any]] | None = None
    """(logical name, old inputs, new inputs) as sent (secrets wrapped) -> the checked inputs."""

    def diff(self, name: str, old_inputs: State, new_inputs: State, old_outputs: State) -> Diff:
        changed, paths = input_diff(old_inputs, new_inputs)
        if self.replace_reasons is not None:
            reasons = self.replace_reasons(old_inputs, new_inputs) if changed else []
            replaces = sorted({_top(path) for path in reasons})
        else:
            replaces = [key for key in changed if key not in self.in_place]
        forced = self.forced_replace(old_outputs) if self.forced_replace else []
        for reason in forced:
            paths[reason] = UPDATE
        replaces = sorted({*replaces, *forced})
        paths = {path: f"{kind}_REPLACE" if _top(path) in replaces else kind for path, kind in paths.items()}
        return Diff(
            changed=sorted({*changed, *forced}),
            replaces=replaces,
            delete_before_replace=bool(replaces) and self.delete_before_replace(name, new_inputs),
            paths=paths,
        )


class ProviderError(Exception):
    """An error the engine shows the user as it is (no traceback)."""


BUG_ERRORS = (KeyError, AttributeError, TypeError, IndexError, AssertionError, NameError)
"""Errors shown with the end of their traceback: they mean a bug of the stand-in, not a refusal."""


class StandInProvider:
    """A stand-in plugin: its name and version (what the SDK asks for), its resource types, its configuration."""

    name = ""
    version = ""

    def __init__(self) -> None:
        self.types: dict[str, ResourceType] = {}

    def configure(self, settings: State) -> None:
        """The provider's configuration (the stack's `<name>:` config, or an explicit provider's inputs)."""

    def type_of(self, token: str) -> ResourceType:
        if token not in self.types:
            raise ProviderError(f"{token}: not implemented by the {self.name} stand-in plugin")
        return self.types[token]


def _type_token(urn: str) -> str:
    return urn.split("::")[2].rsplit("$", 1)[-1]


def _name(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


class Servicer(provider_pb2_grpc.ResourceProviderServicer):
    def __init__(self, provider: StandInProvider):
        self.provider = provider

    # ---- errors

    def _fail(self, context: grpc.ServicerContext, error: BaseException, *requests: Any) -> NoReturn:
        secrets: set[str] = set()
        for request in requests:
            secrets.update(secret_strings(request))
        if isinstance(error, ProviderError):
            message = str(error)
        elif isinstance(error, BUG_ERRORS):  # a fault of the stand-in itself: where it happened
            message = "".join(traceback.format_exception(error)[-6:])
        else:  # what the provider functions raise (UnsupportedInput, TimeoutError, Docker's APIError, ...)
            message = f"{type(error).__name__}: {error}"
        context.abort(grpc.StatusCode.UNKNOWN, scrub(message, secrets))
        raise AssertionError("unreachable")  # context.abort raises

    # ---- plugin and configuration

    def GetPluginInfo(self, request: empty_pb2.Empty, context: grpc.ServicerContext) -> plugin_pb2.PluginInfo:
        return plugin_pb2.PluginInfo(version=self.provider.version)

    def Handshake(
        self, request: provider_pb2.ProviderHandshakeRequest, context: grpc.ServicerContext
    ) -> provider_pb2.ProviderHandshakeResponse:
        return provider_pb2.ProviderHandshakeResponse(accept_secrets=True, accept_resources=True)

    def CheckConfig(
        self, request: provider_pb2.CheckRequest, context: grpc.ServicerContext
    ) -> provider_pb2.CheckResponse:
        return provider_pb2.CheckResponse(inputs=request.news)

    def DiffConfig(self, request: provider_pb2.DiffRequest, context: grpc.ServicerContext) -> provider_pb2.DiffResponse:
        """A changed provider setting is an update of the provider (no provider input is ForceNew)."""
        old = _settings(from_struct(request.old_inputs) or from_struct(request.olds))
        new = _settings(from_struct(request.news))
        changed, _ = input_diff(old, new)
        changes = provider_pb2.DiffResponse.DIFF_SOME if changed else provider_pb2.DiffResponse.DIFF_NONE
        return provider_pb2.DiffResponse(changes=changes, diffs=changed)

    def Configure(
        self, request: provider_pb2.ConfigureRequest, context: grpc.ServicerContext
    ) -> provider_pb2.ConfigureResponse:
        raw = from_struct(request.args) if request.HasField("args") else {}
        if not raw:  # older engines: "docker:config:host" keys
            raw = {key.rsplit(":", 1)[-1]: value for key, value in request.variables.items()}
        try:
            settings = _settings(raw)
            if not has_unknown(settings):  # a preview may not know an explicit provider's inputs yet
                self.provider.configure(settings)
        except Exception as error:
            self._fail(context, error, raw)
        return provider_pb2.ConfigureResponse(acceptSecrets=True, supportsPreview=True, acceptResources=True)

    def Cancel(self, request: empty_pb2.Empty, context: grpc.ServicerContext) -> empty_pb2.Empty:
        return empty_pb2.Empty()

    # ---- resources

    def Check(self, request: provider_pb2.CheckRequest, context: grpc.ServicerContext) -> provider_pb2.CheckResponse:
        news = from_struct(request.news)
        try:
            kind = self.provider.type_of(_type_token(request.urn))
            if kind.check is not None:
                news = kind.check(_name(request.urn), from_struct(request.olds), news)
        except Exception as error:
            self._fail(context, error, news)
        return provider_pb2.CheckResponse(inputs=to_struct(news))

    def Diff(self, request: provider_pb2.DiffRequest, context: grpc.ServicerContext) -> provider_pb2.DiffResponse:
        olds, news = from_struct(request.olds), from_struct(request.news)
        old_inputs = from_struct(request.old_inputs) if request.HasField("old_inputs") else {}
        try:
            kind = self.provider.type_of(_type_token(request.urn))
            if not old_inputs:  # a state from before old inputs were sent: the outputs echo the inputs
                old_inputs = {key: value for key, value in olds.items() if key not in kind.computed}
            diff = kind.diff(_name(request.urn), provider_view(old_inputs), provider_view(news), provider_view(olds))
        except Exception as error:
            self._fail(context, error, olds, news)
        return provider_pb2.DiffResponse(
            changes=provider_pb2.DiffResponse.DIFF_SOME if diff.changed else provider_pb2.DiffResponse.DIFF_NONE,
            replaces=diff.replaces,
            diffs=diff.changed,
            deleteBeforeReplace=diff.delete_before_replace,
            detailedDiff={
                path: provider_pb2.PropertyDiff(
                    kind=provider_pb2.PropertyDiff.Kind.Value(kind_), inputDiff=_top(path) != "readyForRenewal"
                )
                for path, kind_ in diff.paths.items()
            },
            hasDetailedDiff=True,
        )

    def Create(self, request: provider_pb2.CreateRequest, context: grpc.ServicerContext) -> provider_pb2.CreateResponse:
        news = from_struct(request.properties)
        try:
            kind = self.provider.type_of(_type_token(request.urn))
            if request.preview:
                return provider_pb2.CreateResponse(
                    id="", properties=to_struct(_outputs(kind, news, dict.fromkeys(kind.computed, UNKNOWN)))
                )
            if has_unknown(news):
                raise ProviderError(f"{request.urn}: an input is still unknown at create")
            computed = kind.create(provider_view(news))
        except Exception as error:
            self._fail(context, error, news)
        return provider_pb2.CreateResponse(id=str(computed["id"]), properties=to_struct(_outputs(kind, news, computed)))

    def Read(self, request: provider_pb2.ReadRequest, context: grpc.ServicerContext) -> provider_pb2.ReadResponse:
        """Refresh: the state as it is when the object still exists (computed outputs brought up to date), an
        empty id when it is gone. Inputs are given back as they were: what the provider does not read back (most
        of a container's inputs, uploads, labels) can show no drift, as with the real provider."""
        outputs, inputs = from_struct(request.properties), from_struct(request.inputs)
        try:
            kind = self.provider.type_of(_type_token(request.urn))
            view = provider_view(outputs)
            now = kind.read(request.id, view) if kind.read else {key: view.get(key) for key in kind.computed}
        except Exception as error:
            self._fail(context, error, outputs, inputs)
        if now is None:
            return provider_pb2.ReadResponse(id="")
        refreshed = dict(outputs)
        for key, value in now.items():
            if key != "id" and key in outputs and provider_view(outputs[key]) != value:
                refreshed[key] = secret(value) if is_secret(outputs[key]) or key in kind.secret_outputs else value
        return provider_pb2.ReadResponse(id=request.id, properties=to_struct(refreshed), inputs=to_struct(inputs))

    def Update(self, request: provider_pb2.UpdateRequest, context: grpc.ServicerContext) -> provider_pb2.UpdateResponse:
        olds, news = from_struct(request.olds), from_struct(request.news)
        old_inputs = from_struct(request.old_inputs) if request.HasField("old_inputs") else {}
        try:
            kind = self.provider.type_of(_type_token(request.urn))
            old_view = provider_view(olds)
            computed = {key: old_view[key] for key in kind.computed if key in old_view}
            if not request.preview:
                if kind.update is None:
                    raise ProviderError(f"{request.urn}: {kind.token} has no in-place update")
                computed = kind.update(request.id, old_view, provider_view(old_inputs), provider_view(news))
        except Exception as error:
            self._fail(context, error, olds, news)
        return provider_pb2.UpdateResponse(properties=to_struct(_outputs(kind, news, computed)))

    def Delete(self, request: provider_pb2.DeleteRequest, context: grpc.ServicerContext) -> empty_pb2.Empty:
        outputs = from_struct(request.properties)
        try:
            kind = self.provider.type_of(_type_token(request.urn))
            if kind.delete is not None:
                kind.delete(request.id, provider_view(outputs))
        except Exception as error:
            self._fail(context, error, outputs)
        return empty_pb2.Empty()


def _settings(raw: dict[str, Any]) -> State:
    """Provider configuration without the engine's own keys (the plugin's version, its download URL)."""
    skipped = {"version", "pluginDownloadURL"}
    view: State = provider_view({key: value for key, value in raw.items() if key not in skipped})
    return view


def _outputs(kind: ResourceType, news: dict[str, Any], computed: State) -> dict[str, Any]:
    """The inputs as sent (secrets kept) plus the computed outputs, the sensitive ones as secrets."""
    outputs = dict(news)
    for key, value in computed.items():
        if key == "id":
            continue
        outputs[key] = secret(value) if key in kind.secret_outputs and value != UNKNOWN else value
    return outputs


def serve(provider: StandInProvider) -> None:
    """Serve on 127.0.0.1, print the port (the engine reads it from the first line), run until killed."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=32),
        options=[("grpc.max_receive_message_length", MAX_MESSAGE), ("grpc.max_send_message_length", MAX_MESSAGE)],
    )
    provider_pb2_grpc.add_ResourceProviderServicer_to_server(Servicer(provider), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    sys.stdout = sys.stderr  # nothing else may reach the engine's stdout pipe
    server.wait_for_termination()
