"""Run `__main__.py` under Pulumi's mocks and capture what it declares.

Shared by the unit tests (fake computed outputs) and the live realizer (real TLS material and Docker
objects). What it captures is what the Pulumi engine would receive: every registration's type, name,
parent, options and inputs (secrets still wrapped), the warnings, and the stack outputs with their
secretness.
"""

from __future__ import annotations

import json
import logging
import runpy
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.settings import get_root_resource

PROJECT_DIR = Path(__file__).resolve().parent.parent
MAIN = PROJECT_DIR / "__main__.py"
PROJECT = "private-registry"
SIG, SECRET = rpc._special_sig_key, rpc._special_secret_sig


def plain(value: Any) -> Any:
    """Inputs as the provider sees them: secrets unwrapped, whole floats back to ints."""
    if isinstance(value, dict):
        if value.get(SIG) == SECRET:
            return plain(value["value"])
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SIG) == SECRET


def secret(value: Any) -> dict[str, Any]:
    """Wrap a mock output the way the engine marks a provider's secret outputs."""
    return {SIG: SECRET, "value": value}


def contains_secret(value: Any) -> bool:
    if is_secret(value):
        return True
    if isinstance(value, dict):
        return any(contains_secret(item) for item in value.values())
    if isinstance(value, list):
        return any(contains_secret(item) for item in value)
    return False


@dataclass
class Registration:
    urn: str
    typ: str
    name: str
    parent: str
    custom: bool
    inputs: dict[str, Any]
    """As the engine receives them: secrets wrapped, numbers as floats. `plain()` for provider semantics."""
    options: dict[str, Any]


@dataclass
class ProgramRun:
    registrations: dict[str, Registration] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    """Stack outputs, plain values."""
    secret_outputs: set[str] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)
    pending_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Resource options by `type::name`, recorded as each registration arrives."""

    def of_type(self, typ: str) -> list[Registration]:
        return sorted((r for r in self.registrations.values() if r.typ == typ), key=lambda r: r.name)

    def named(self, name: str) -> Registration:
        matches = [r for r in self.registrations.values() if r.name == name]
        if len(matches) != 1:
            raise KeyError(f"{len(matches)} registrations named {name!r}: {sorted(self.registrations)}")
        return matches[0]


class CapturingMonitor(pulumi_mocks.MockMonitor):
    """The mock monitor, also recording each registration's parent and resource options."""

    def __init__(self, mocks: pulumi.runtime.Mocks, run: ProgramRun):
        super().__init__(mocks)
        self.run = run

    def RegisterResource(self, request: Any) -> Any:
        options = {
            "deleteBeforeReplace": request.deleteBeforeReplace,
            "retainOnDelete": request.retainOnDelete if request.HasField("retainOnDelete") else False,
            "protect": request.protect if request.HasField("protect") else False,
            "ignoreChanges": list(request.ignoreChanges),
            "replaceOnChanges": list(request.replaceOnChanges),
            "additionalSecretOutputs": list(request.additionalSecretOutputs),
            "dependencies": sorted(request.dependencies),
            "aliases": [_alias_name(alias) for alias in request.aliases],
            "provider": request.provider,
        }
        # Known before the mocks create the resource, as the engine knows them before it diffs.
        self.run.pending_options[f"{request.type}::{request.name}"] = options
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type != "pulumi:pulumi:Stack":
            self.run.registrations[response.urn] = Registration(
                urn=response.urn,
                typ=request.type,
                name=request.name,
                parent=request.parent,
                custom=bool(request.custom),
                inputs=rpc.deserialize_properties(request.object, keep_unknowns=True),
                options=options,
            )
        return response


def _alias_name(alias: Any) -> str:
    """The old name an alias gives; only name-only aliases (same type, parent, stack and project) are used."""
    spec = alias.spec
    if alias.urn or spec.type or spec.stack or spec.project or spec.parentUrn or spec.noParent:
        raise ValueError(f"only name-only aliases are implemented, got {alias}")
    return str(spec.name)


class _WarningCollector(logging.Handler):
    def __init__(self, run: ProgramRun):
        super().__init__(level=logging.WARNING)
        self.run = run

    def emit(self, record: logging.LogRecord) -> None:
        self.run.warnings.append(record.getMessage())


def run_program(
    config: Mapping[str, str],
    mocks: pulumi.runtime.Mocks,
    *,
    stack: str = "test",
    preview: bool = False,
    run: ProgramRun | None = None,
) -> ProgramRun:
    """Execute __main__.py once, as `pulumi up` (or preview) would, under `mocks`.

    `config` maps namespaced keys (`private-registry:hostname`) to the strings Pulumi stores. `run` collects
    what happens; pass one when the mocks need to read it while the program runs.
    """
    run = run if run is not None else ProgramRun()
    logger = logging.getLogger(f"private-registry-program-{id(run)}")
    logger.propagate = False
    logger.addHandler(_WarningCollector(run))
    # set_mocks keeps an existing root Stack (with the previous run's stack name and exports): start afresh.
    pulumi_settings.ROOT.set(None)
    pulumi.runtime.set_mocks(
        mocks, project=PROJECT, stack=stack, preview=preview, logger=logger, monitor=CapturingMonitor(mocks, run)
    )
    pulumi.runtime.set_all_config(dict(config))

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def execute() -> pulumi.Output[None]:
        runpy.run_path(str(MAIN), run_name="__main__")
        exported = dict(getattr(get_root_resource(), "outputs", {}))

        async def collect() -> None:
            # What the engine stores as the stack's outputs: each value and whether it is secret.
            for name, value in exported.items():
                output = pulumi.Output.from_input(value)
                run.outputs[name] = plain(await output.future())
                if await output.is_secret():
                    run.secret_outputs.add(name)

        return pulumi.Output.from_input(collect())  # the decorator waits for it

    execute()  # returns once every registration and every Output has resolved
    return run


def project_config_defaults() -> dict[str, str]:
    """The defaults Pulumi.yaml declares, as the CLI injects them for keys a stack leaves unset."""
    project = yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())
    defaults = {}
    for key, schema in (project.get("config") or {}).items():
        if "default" in schema:
            defaults[f"{PROJECT}:{key}"] = _config_string(schema["default"])
    return defaults


def stack_config(path: Path) -> dict[str, str]:
    """A `Pulumi.<stack>.yaml` file's config, merged over the project defaults, as the CLI hands it over.

    `secure:` values cannot be decrypted without the Pulumi CLI: test stacks carry plain test secrets.
    """
    document = yaml.safe_load(path.read_text()) or {}
    config = project_config_defaults()
    for key, value in (document.get("config") or {}).items():
        if _encrypted(value):
            raise ValueError(f"{path}: {key} is or holds an encrypted value (secure:); test stacks need plain values")
        config[key if ":" in key else f"{PROJECT}:{key}"] = _config_string(value)
    return config


def _encrypted(value: Any) -> bool:
    """Pulumi stores a secret as a mapping of the one key `secure` to its ciphertext, at any depth (`--path`).
    A setting that is merely named `secure` (storage.secure: false) is not one."""
    if isinstance(value, dict):
        if set(value) == {"secure"} and isinstance(value["secure"], str):
            return True
        return any(_encrypted(item) for item in value.values())
    if isinstance(value, list):
        return any(_encrypted(item) for item in value)
    return False


def _config_string(value: Any) -> str:
    """Pulumi stores scalars as their text and structured values as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value)
