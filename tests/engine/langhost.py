"""An adapter between CLI 3.276 and the UNPATCHED v3.79.0 Python language host, used by the engine tests only
when scripts/build-engine.sh built that host (`build_engine` asks the host its version; a host built with
scripts/engine/language-python/host.patch serves CLI 3.276 itself and runs without it).

The host's own module, `sdk/python/cmd/pulumi-language-python/v3`, is refused by the Go proxy (403) and nothing
else that builds it is reachable; sdk/v3 v3.79.0 is the newest served module that carries the host. Against CLI
3.276 that host, unpatched, fails in two ways:

* It reads `runtime.options` (`virtualenv`) from command-line flags, as the CLIs of its time passed them; CLI
  3.276 passes none and sends the options inside each request (`ProgramInfo`). So the host ignores
  `virtualenv: venv`: it runs the system `python3` and never makes `./venv` from requirements.txt.
* It runs a plugin (a policy pack) from `RunPluginRequest.program`, which CLI 3.276 no longer sets (it sends
  `info.program_directory`): `python ""` in the project directory runs the project's `__main__.py` instead of
  the pack, and `pulumi preview --policy-pack` fails with "could not read plugin".

No environment variable or option of CLI 3.276 passes either (PULUMI_PYTHON_CMD picks one interpreter for program
and pack alike, makes no venv and does not fix the second). The fix is a host that reads `ProgramInfo`: built from
its own module at the CLI's release, or v3.79.0 patched to (host.patch). Without one, this adapter stands between
the CLI and the real v3.79.0 host. It
serves the LanguageRuntime service and forwards every call, unchanged but for `RunPluginRequest.program` (set from
`info.program_directory` when empty), to a v3.79.0 host started with the flags that request's `ProgramInfo` implies
(`-virtualenv`, `-root`): one host per program root and virtualenv, as the new hosts read them per request. The
venv is then made and used by the v3.79.0 host's own code (prepareVirtualEnvironment: `python3 -m venv`, `pip
install -r requirements.txt`); everything the engine does stays the real CLI's.
"""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped]
from google.protobuf import json_format  # type: ignore[import-untyped]
from pulumi.runtime.proto import language_pb2

REAL_HOST = "PRIVATE_REGISTRY_LANGUAGE_HOST"
SERVICE = language_pb2.DESCRIPTOR.services_by_name["LanguageRuntime"]
MAX_MESSAGE = 400 * 1024 * 1024
DIE_WITH_PARENT = ("setpriv", "--pdeathsig", "TERM", "--")
"""A backend host ends when this adapter does: the engine kills the adapter, not what the adapter started (util-linux
setpriv, not a preexec_fn: forking Python code next to gRPC's threads is unsafe)."""


PORT_SECONDS = 60
"""How long a host gets to print its port (bounded: a host that hangs fails the command, not the test run)."""


def first_line(process: subprocess.Popen[bytes], seconds: float) -> str:
    """The first line `process` prints, or "" when it prints none within `seconds` (or ends first)."""
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], seconds)
    return process.stdout.readline().decode().strip() if ready else ""


class Backends:
    """The real v3.79.0 hosts, one per (virtualenv, root), started when a request first needs one."""

    def __init__(self, real_host: str, engine_address: str) -> None:
        self.real_host = real_host
        self.engine_address = engine_address
        self.lock = threading.Lock()
        self.channels: dict[tuple[str, str], grpc.Channel] = {}
        self.processes: list[subprocess.Popen[bytes]] = []

    def channel(self, virtualenv: str, root: str) -> grpc.Channel:
        key = (virtualenv, root)
        with self.lock:
            if key not in self.channels:
                flags = [f"-virtualenv={virtualenv}", f"-root={root}"] if virtualenv else []
                process = subprocess.Popen(
                    [*DIE_WITH_PARENT, self.real_host, *flags, self.engine_address],
                    cwd=root or None,  # it looks for requirements.txt in its working directory
                    stdout=subprocess.PIPE,
                )
                port = first_line(process, PORT_SECONDS)
                if not port.isdigit():
                    raise RuntimeError(f"{self.real_host} did not print its port (got {port!r})")
                self.processes.append(process)
                self.channels[key] = grpc.insecure_channel(
                    f"127.0.0.1:{port}",
                    options=[
                        ("grpc.max_receive_message_length", MAX_MESSAGE),
                        ("grpc.max_send_message_length", MAX_MESSAGE),
                    ],
                )
            return self.channels[key]


def _program_info(request: Any) -> tuple[str, str]:
    """(virtualenv, root) from the request's ProgramInfo; ("", "") when it has none."""
    if "info" not in {field.name for field in request.DESCRIPTOR.fields} or not request.HasField("info"):
        return "", ""
    info = request.info
    options = json_format.MessageToDict(info.options) if info.HasField("options") else {}
    return str(options.get("virtualenv") or ""), str(info.root_directory)


class Adapter(grpc.GenericRpcHandler):  # type: ignore[misc]
    def __init__(self, backends: Backends, default_root: str) -> None:
        self.backends = backends
        self.default_root = default_root
        self.methods = {f"/{SERVICE.full_name}/{method.name}": method for method in SERVICE.methods}

    def service(self, details: Any) -> Any:
        method = self.methods.get(details.method)
        if method is None:
            return None
        request_type = getattr(language_pb2, method.input_type.name, None) or _empty()
        path = details.method

        def target(request: Any) -> grpc.Channel:
            virtualenv, root = _program_info(request)
            if method.name == "RunPlugin" and not request.program and request.HasField("info"):
                request.program = request.info.program_directory
            return self.backends.channel(virtualenv, root or (self.default_root if virtualenv else ""))

        if method.server_streaming:

            def stream(request: Any, context: grpc.ServicerContext) -> Iterator[bytes]:
                call = target(request).unary_stream(path)(request.SerializeToString())
                yield from call

            return grpc.unary_stream_rpc_method_handler(
                stream, request_deserializer=request_type.FromString, response_serializer=None
            )

        def unary(request: Any, context: grpc.ServicerContext) -> bytes:
            try:
                answer: bytes = target(request).unary_unary(path)(request.SerializeToString())
                return answer
            except grpc.RpcError as error:
                context.abort(error.code(), error.details())
                raise

        return grpc.unary_unary_rpc_method_handler(
            unary, request_deserializer=request_type.FromString, response_serializer=None
        )


def _empty() -> Any:
    from google.protobuf import empty_pb2

    return empty_pb2.Empty


def main() -> None:
    real = os.environ.get(REAL_HOST)
    if not real:
        sys.exit(f"{REAL_HOST} is not set: the path of the built pulumi-language-python")
    engine_address = sys.argv[-1] if len(sys.argv) > 1 else ""
    backends = Backends(real, engine_address)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=16),
        handlers=[Adapter(backends, str(Path.cwd()))],
        options=[("grpc.max_receive_message_length", MAX_MESSAGE), ("grpc.max_send_message_length", MAX_MESSAGE)],
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    sys.stdout = sys.stderr
    try:
        server.wait_for_termination()
    finally:
        for process in backends.processes:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
