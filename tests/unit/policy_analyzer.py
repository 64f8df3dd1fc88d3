"""Drive the policy pack as the Pulumi engine does: as an analyzer plugin, over gRPC.

The CLI starts a Python policy pack with `python -u -m pulumi.policy <engine address> <pack directory>`
(its `pulumi-analyzer-policy-python` shim does exactly this inside the pack's virtualenv). The pack's
`PolicyPack(...)` then serves the Analyzer service on a free port of 127.0.0.1 and prints the port as the
first line of stdout. The engine reads it, asks `GetAnalyzerInfo`, sends `Configure` with each policy's
enforcement level and config, then calls `Analyze` for every resource it registers (with its inputs) and
`AnalyzeStack` once at the end (with every resource's planned outputs).

`PolicyAnalyzer` does the same with the registrations the program makes under the unit tests' mocks. What it
does not do as the CLI does is in docs/policy.md (what the tests cover).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped]  # no stubs in the venv
from google.protobuf import empty_pb2, json_format, struct_pb2  # type: ignore[import-untyped]
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from harness.program import PROJECT_DIR, ProgramRun, Registration

POLICY_DIR = PROJECT_DIR / "policy"
# The pack never dials the engine (pulumi-policy reads the address and ignores it); any address does.
ENGINE_ADDRESS = "127.0.0.1:1"
STARTUP_SECONDS = 30

LEVELS = {
    analyzer_pb2.ADVISORY: "advisory",
    analyzer_pb2.MANDATORY: "mandatory",
    analyzer_pb2.DISABLED: "disabled",
    analyzer_pb2.REMEDIATE: "remediate",
}
LEVEL_VALUES = {name: value for value, name in LEVELS.items()}


@dataclass(frozen=True)
class Violation:
    policy: str
    resource: str
    """The name of the resource the diagnostic is about ('' for the stack as a whole)."""
    level: str
    message: str


def _struct(values: Mapping[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    json_format.ParseDict(dict(values), struct)
    return struct


def _options(registration: Registration) -> analyzer_pb2.AnalyzerResourceOptions:
    """The options the engine sends an analyzer: every field AnalyzerResourceOptions has. Aliases are URNs
    there; the harness records old names, and the program's aliases keep type and parent."""
    options = registration.options
    stem = registration.urn.rsplit("::", 1)[0]
    return analyzer_pb2.AnalyzerResourceOptions(
        protect=options["protect"],
        ignoreChanges=options["ignoreChanges"],
        deleteBeforeReplace=options["deleteBeforeReplace"],
        deleteBeforeReplaceDefined=options["deleteBeforeReplace"],
        additionalSecretOutputs=options["additionalSecretOutputs"],
        aliases=[f"{stem}::{name}" for name in options["aliases"]],
        parent=registration.parent,
    )


class PolicyAnalyzer:
    """The policy pack running as a plugin process, and a gRPC client to it."""

    def __init__(self, process: subprocess.Popen[bytes], port: int):
        self.process = process
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = analyzer_pb2_grpc.AnalyzerStub(self.channel)

    @classmethod
    def start(cls, *, preview: bool = True) -> PolicyAnalyzer:
        environment = {
            **os.environ,
            # What the CLI sets for its plugins; pulumi-policy configures its runtime settings from them.
            "PULUMI_PROJECT": "private-registry",
            "PULUMI_STACK": "test",
            "PULUMI_DRY_RUN": "true" if preview else "false",
        }
        process = subprocess.Popen(
            [sys.executable, "-u", "-m", "pulumi.policy", ENGINE_ADDRESS, str(POLICY_DIR)],
            cwd=POLICY_DIR,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        port = _first_line(process, STARTUP_SECONDS)
        return cls(process, int(port))

    def stop(self) -> None:
        self.channel.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()

    # ---- the engine's calls ----

    def info(self) -> analyzer_pb2.AnalyzerInfo:
        info: analyzer_pb2.AnalyzerInfo = self.stub.GetAnalyzerInfo(empty_pb2.Empty())
        return info

    def configure(self, config: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        """Configure every policy, as the CLI does before analyzing: each gets its enforcement level (the
        policy's own unless the config names one) and its config properties (none unless given)."""
        given = dict(config or {})
        request = analyzer_pb2.ConfigureAnalyzerRequest()
        for policy in self.info().policies:
            properties = dict(given.pop(policy.name, {}))
            level = properties.pop("enforcementLevel", None)
            entry = request.policyConfig[policy.name]
            entry.enforcementLevel = LEVEL_VALUES[level] if level else policy.enforcementLevel
            entry.properties.CopyFrom(_struct(properties))
        if given:
            raise KeyError(f"no such policies in the pack: {sorted(given)}")
        self.stub.Configure(request)

    def analyze(self, registration: Registration) -> list[Violation]:
        """`Analyze`: one resource, with its inputs, as the engine sends it before each step."""
        response = self.stub.Analyze(
            analyzer_pb2.AnalyzeRequest(
                type=registration.typ,
                properties=_struct(registration.inputs),
                urn=registration.urn,
                name=registration.name,
                options=_options(registration),
            )
        )
        return [_violation(d, registration.name) for d in response.diagnostics]

    def analyze_stack(self, registrations: Iterable[Registration]) -> list[Violation]:
        """`AnalyzeStack`: every resource at once, with parents and dependencies. Under the mocks the outputs
        are the inputs (plus fakes), as the engine's planned outputs are in a preview."""
        names = {}
        resources = []
        for registration in registrations:
            names[registration.urn] = registration.name
            resources.append(
                analyzer_pb2.AnalyzerResource(
                    type=registration.typ,
                    properties=_struct(registration.inputs),
                    urn=registration.urn,
                    name=registration.name,
                    options=_options(registration),
                    parent=registration.parent,
                    dependencies=registration.options["dependencies"],
                )
            )
        response = self.stub.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=resources))
        return [_violation(d, names.get(d.urn, "")) for d in response.diagnostics]

    def preview(self, run: ProgramRun, config: Mapping[str, Mapping[str, Any]] | None = None) -> list[Violation]:
        """What `pulumi preview --policy-pack policy` reports for the program's registrations."""
        self.configure(config)
        registrations = list(run.registrations.values())
        violations = [violation for r in registrations for violation in self.analyze(r)]
        return violations + self.analyze_stack(registrations)


def _violation(diagnostic: analyzer_pb2.AnalyzeDiagnostic, resource: str) -> Violation:
    return Violation(
        policy=diagnostic.policyName,
        resource=resource,
        level=LEVELS[diagnostic.enforcementLevel],
        message=diagnostic.message,
    )


def _first_line(process: subprocess.Popen[bytes], timeout: float) -> str:
    """The port the plugin prints, or an error with what it wrote to stderr."""
    assert process.stdout is not None and process.stderr is not None
    lines: list[bytes] = []
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    if lines and lines[0].strip().isdigit():
        return lines[0].decode().strip()
    process.kill()
    process.wait()
    raise RuntimeError(
        f"the policy pack printed no port within {timeout} s: stdout {lines!r}, stderr "
        f"{process.stderr.read().decode(errors='replace')[-3000:]}"
    )


def pack_requirements(path: Path) -> dict[str, str]:
    """name -> pinned version of a requirements file's `name==version` lines."""
    pins = {}
    for line in path.read_text().splitlines():
        requirement = line.split("#", 1)[0].strip()
        if "==" in requirement:
            name, version = requirement.split("==", 1)
            pins[name.strip().lower()] = version.strip()
    return pins
