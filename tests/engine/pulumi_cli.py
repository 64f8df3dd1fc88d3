"""The real Pulumi CLI and language host (built by scripts/build-engine.sh) with STAND-IN provider plugins.

The CLI (v3.276.0) and the Python language host are the real ones, built from Go modules. The docker, tls and
random provider plugins are NOT: their Go modules are not served to this machine, so `harness/plugins/bin`
holds stand-ins (`pulumi-resource-docker`, `-tls`, `-random`: the ResourceProvider gRPC service in Python, on
the realizer's provider functions; harness/plugins/__init__.py). The engine finds them on PATH (an ambient
plugin is used at any version while PULUMI_IGNORE_AMBIENT_PLUGINS is unset, and the CLI prints "using
pulumi-resource-docker from $PATH at ..."). So planning, diffs, aliases, replacement order, secrets, outputs,
`--diff`, `--expect-no-changes`, StackReference and `--policy-pack` are the real engine's; what a provider does
on Docker is ours. The language host is the one scripts/build-engine.sh built (v3.79.0 with host.patch, which makes
it read CLI 3.276's ProgramInfo); the CLI runs it from beside itself.

A `Workspace` is a copy of this repository's program in a temporary directory, run as a user runs it: the plain
`pulumi` CLI, with a HOME and a PULUMI_HOME of its own, no plugin downloads, and the state in a backend
directory of its own (`PULUMI_BACKEND_URL`): the project's `backend.url: file://~` would be the passwd home of
the user running the tests, whatever HOME says (the CLI resolves `~` with Go's os/user, which reads /etc/passwd),
and the tests must not write the machine's own ~/.pulumi. tests/engine/test_backend_precedence.py holds the CLI
to the order the README relies on: PULUMI_BACKEND_URL, then backend.url, then `pulumi login`.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import subprocess
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import Any

import docker
import grpc  # type: ignore[import-untyped]
import yaml
from docker.errors import DockerException, NotFound
from google.protobuf import empty_pb2  # type: ignore[import-untyped]
from pulumi.runtime.proto import language_pb2_grpc

from harness.program import PROJECT_DIR

BUILD_SCRIPT = PROJECT_DIR / "scripts" / "build-engine.sh"
STAND_IN_PLUGINS = PROJECT_DIR / "harness" / "plugins" / "bin"
"""pulumi-resource-docker, -tls, -random: stand-ins for the real plugins (see the module docstring)."""
UNPATCHED_HOST_VERSIONS = ("v3.79.0", "3.79.0")
"""What the unpatched v3.79.0 host answers to GetPluginInfo (the patched one: v3.79.0+<build metadata>). Against CLI
3.276 it ignores runtime.options (no ./venv: the program runs in the system python3) and runs a policy pack's
directory from RunPluginRequest.program, which this CLI leaves empty (the project's __main__.py runs instead)."""
STAND_IN_VERSIONS = {"docker": "5.2.0", "tls": "5.6.2", "random": "4.21.4"}
"""What the program's SDKs ask for (requirements.txt) and what the stand-ins answer to GetPluginInfo."""
# The images of the dev stack on a machine that cannot pull: the offline stand-ins (images/build.sh).
OFFLINE_IMAGES = {
    "registry": {"image": "private-registry-test/registry:2.8.2"},
    "ui": {"image": "private-registry-test/joxit-ui:2.5.7"},
    "proxy": {"image": "private-registry-test/nginx:1.22"},
}
LABEL_PREFIX = "org.private-registry"
# Files of the repository a user's checkout has and the program does not read (the test venv, caches).
NOT_COPIED = ("venv", ".git", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis", ".live-state")
# The test process's own settings that would change what the CLI does (PULUMI_*) or which Python runs.
NOT_INHERITED = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")
SYSTEM_PATH = ("/usr/local/bin", "/usr/bin", "/bin")


@dataclass(frozen=True)
class Engine:
    bin_dir: Path
    """The real `pulumi`, `pulumi-language-python` and its exec script."""
    plugins_dir: Path = STAND_IN_PLUGINS
    """The STAND-IN provider plugins."""


def first_line(process: subprocess.Popen[bytes], seconds: float) -> str:
    """The first line `process` prints, or "" when it prints none within `seconds` (or ends first)."""
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], seconds)
    return process.stdout.readline().decode().strip() if ready else ""


def language_host_version(host: Path) -> str:
    """The host's own answer to GetPluginInfo, then stopped. It is given an engine address nobody serves: it
    only dials it for its first health check, minutes later (v3.79.0 refuses to start with none)."""
    process = subprocess.Popen([str(host), "127.0.0.1:1"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        port = first_line(process, 30)
        if not port.isdigit():
            raise AssertionError(f"{host} printed no port (got {port!r})")
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            info = language_pb2_grpc.LanguageRuntimeStub(channel).GetPluginInfo(empty_pb2.Empty(), timeout=30)
        return str(info.version)
    finally:
        process.terminate()
        process.wait(timeout=30)


ENGINE_BIN = "PRIVATE_REGISTRY_ENGINE_BIN"
"""A bin directory scripts/build-engine.sh made, to use as it is instead of running the script."""


def build_engine() -> Engine:
    """scripts/build-engine.sh: builds once into its cache and prints the bin directory as its last line (at
    once when it is cached; it waits for a build another caller runs). $PRIVATE_REGISTRY_ENGINE_BIN names a
    bin directory to use instead."""
    if os.environ.get(ENGINE_BIN):
        bin_dir = Path(os.environ[ENGINE_BIN])
    else:
        done = subprocess.run(["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=5400, check=False)
        if done.returncode != 0:
            raise AssertionError(f"scripts/build-engine.sh exited {done.returncode}:\n{done.stderr[-5000:]}")
        bin_dir = Path(done.stdout.strip().splitlines()[-1])
    for name in ("pulumi", "pulumi-language-python", "pulumi-language-python-exec"):
        if not (bin_dir / name).is_file():
            raise AssertionError(f"{bin_dir} (the engine's bin directory) has no {name}")
    for name in STAND_IN_VERSIONS:
        if not os.access(STAND_IN_PLUGINS / f"pulumi-resource-{name}", os.X_OK):
            raise AssertionError(f"the stand-in plugin {STAND_IN_PLUGINS}/pulumi-resource-{name} is not executable")
    version = language_host_version(bin_dir / "pulumi-language-python")
    if version in UNPATCHED_HOST_VERSIONS:
        raise AssertionError(
            f"{bin_dir}/pulumi-language-python is the unpatched {version} host, which cannot serve CLI 3.276 "
            "(UNPATCHED_HOST_VERSIONS says why): build it with scripts/build-engine.sh (host.patch)"
        )
    return Engine(bin_dir=bin_dir)


def copy_program(target: Path, *, source: Path = PROJECT_DIR) -> Path:
    """The program as a user's checkout holds it (tracked and new files), without the test venv and caches."""
    listed = subprocess.run(
        ["git", "-C", str(source), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.decode()
    for relative in filter(None, listed.split("\0")):
        if relative.split("/", 1)[0] in NOT_COPIED:
            continue
        origin = source / relative
        if not origin.is_file():
            continue  # deleted in the work tree
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(origin, destination)
    return target


@dataclass
class Workspace:
    """One user's machine: HOME, PULUMI_HOME and the state backend under `root`, the program in `project`."""

    engine: Engine
    root: Path
    """Holds home/ (HOME: ~/.docker and the like), pulumi-home/, backend/ (the state) and project/."""
    project_dir: InitVar[Path | None] = None
    """The program's directory; `root/project` unless given (a second program on the same machine)."""
    passphrase: str = "engine-tests-only"
    extra_env: dict[str, str] = field(default_factory=dict)
    project: Path = field(init=False)

    def __post_init__(self, project_dir: Path | None) -> None:
        self.project = project_dir or self.root / "project"
        for directory in (self.home, self.pulumi_home, self.backend):
            directory.mkdir(parents=True, exist_ok=True)

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def pulumi_home(self) -> Path:
        return self.root / "pulumi-home"

    @property
    def backend(self) -> Path:
        return self.root / "backend"

    @property
    def env(self) -> dict[str, str]:
        """The machine's environment (pip's index and CA settings, DOCKER_HOST, ...) without the test process's
        Pulumi and Python settings, then what makes this workspace: its PATH (the STAND-IN plugins, the built CLI
        and language host), HOME, PULUMI_HOME, backend and passphrase."""
        inherited = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("PULUMI_", "PYTEST_")) and key not in NOT_INHERITED
        }
        return {
            **inherited,
            "HOME": str(self.home),
            "PATH": os.pathsep.join([str(self.engine.plugins_dir), str(self.engine.bin_dir), *SYSTEM_PATH]),
            "PULUMI_HOME": str(self.pulumi_home),
            "PULUMI_BACKEND_URL": f"file://{self.backend}",
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            # What a user answers at the prompt of `pulumi up` ("yes"): the README's command has no --yes.
            "PULUMI_SKIP_CONFIRMATIONS": "true",
            "PULUMI_CONFIG_PASSPHRASE": self.passphrase,
            **self.extra_env,
        }

    def shell(self, script: str, *, timeout: int = 1800, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A command line as a user types it, in the project directory."""
        return self._run(["bash", "-c", script], script, self.env, timeout=timeout, check=check)

    def pulumi(
        self, *args: str, timeout: int = 1800, check: bool = True, env: dict[str, str | None] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`pulumi --non-interactive <args>` in the project; `env` changes the workspace's environment (None
        removes a variable)."""
        environment = {**self.env, **(env or {})}
        return self._run(
            [str(self.engine.bin_dir / "pulumi"), "--non-interactive", *args],
            f"pulumi {' '.join(args)}",
            {key: value for key, value in environment.items() if value is not None},
            timeout=timeout,
            check=check,
        )

    def _run(
        self, argv: list[str], what: str, env: dict[str, str], *, timeout: int, check: bool
    ) -> subprocess.CompletedProcess[str]:
        """`argv` in the project directory, no stdin; with `check`, a failure shows `what` and both outputs' ends."""
        done = subprocess.run(
            argv,
            cwd=self.project,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{what}\nexited {done.returncode}:\n{done.stdout[-8000:]}\n{done.stderr[-8000:]}")
        return done

    def outputs(self, *, show_secrets: bool = False) -> dict[str, Any]:
        flags = ["--show-secrets"] if show_secrets else []
        return dict(json.loads(self.pulumi("stack", "output", "--json", *flags).stdout))

    def stack_file(self, stack: str) -> Path:
        return self.project / f"Pulumi.{stack}.yaml"

    def set_config(self, stack: str, blocks: dict[str, Any]) -> None:
        """Merge config blocks into `Pulumi.<stack>.yaml` of the copy (top-level keys of the namespace), as an
        operator edits the file."""
        path = self.stack_file(stack)
        document = yaml.safe_load(path.read_text()) or {}
        config = document.setdefault("config", {})
        for key, value in blocks.items():
            name = f"private-registry:{key}"
            if isinstance(value, dict) and isinstance(config.get(name), dict):
                config[name] = {**config[name], **value}
            else:
                config[name] = value
        path.write_text(yaml.safe_dump(document, sort_keys=False))

    def preview_steps(self, *extra: str) -> list[dict[str, Any]]:
        """`pulumi preview --json --diff`: one entry per step (op, urn, the keys that differ and why)."""
        done = self.pulumi("preview", "--json", "--diff", *extra)
        return list(json.loads(done.stdout).get("steps", []))


def changes(steps: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Resource names by operation, same steps and the stack itself left out; a replacement (whatever its
    order: create-replacement, replace, delete-replaced) counts once, as `replace`."""
    found: dict[str, set[str]] = {}
    for step in steps:
        op = step["op"]
        urn = step["urn"]
        if op == "same" or "::pulumi:pulumi:Stack::" in urn:
            continue
        if op in ("create-replacement", "delete-replaced", "replace"):
            op = "replace"
        found.setdefault(op, set()).add(urn.rsplit("::", 1)[-1])
    return found


def stack_selector(stack: str) -> dict[str, list[str]]:
    return {"label": [f"{LABEL_PREFIX}.project=private-registry", f"{LABEL_PREFIX}.stack={stack}"]}


def remove_stack_leftovers(client: docker.DockerClient, stack: str, *, volumes: bool = True) -> list[str]:
    """Docker objects the program labels with this stack (the engine outlives test sessions): a run that died
    leaves them, and the next `up` would collide with their fixed names (or reuse an old data volume)."""
    selector = stack_selector(stack)
    removed = []
    for container in client.containers.list(all=True, filters=selector):
        removed.append(f"container {container.name}")
        with contextlib.suppress(NotFound):
            container.remove(force=True, v=True)
    for network in client.networks.list(filters=selector):
        removed.append(f"network {network.name}")
        with contextlib.suppress(NotFound):
            network.remove()
    if volumes:
        for volume in client.volumes.list(filters=selector):
            removed.append(f"volume {volume.name}")
            with contextlib.suppress(DockerException):
                volume.remove(force=True)
    return removed
