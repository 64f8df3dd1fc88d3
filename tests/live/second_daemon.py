"""A second Docker daemon beside the engine under test, with its own daemon.json: a client host whose
configuration (registry-mirrors) the tests may set freely, then throw away.

It gets its own bridge (`--bridge none` would delete the first daemon's docker0), socket, data root and exec root,
and no iptables rules. It shares the host's network namespace, so it reaches the stack on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.clients import run

BRIDGE = "prtest-d2br"
ROOT = Path("/var/lib/private-registry-test-second-daemon")


@dataclass
class SecondDaemon:
    socket: Path

    def docker(self, *args: str, timeout: int = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run("docker", "-H", f"unix://{self.socket}", *args, timeout=timeout, check=check)


def _remove_leftovers() -> None:
    pid_file = ROOT / "dockerd.pid"
    if pid_file.exists():
        with contextlib.suppress(ProcessLookupError, ValueError, PermissionError):
            pid = int(pid_file.read_text().strip())
            subprocess.run(["kill", str(pid)], check=False)
            time.sleep(2)
    subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True, check=False)
    if ROOT.exists():
        subprocess.run(["umount", "-R", str(ROOT / "data")], capture_output=True, check=False)
        shutil.rmtree(ROOT, ignore_errors=True)


@contextlib.contextmanager
def second_daemon(daemon_json: dict[str, Any], extra_args: tuple[str, ...] = ()) -> Iterator[SecondDaemon]:
    """`extra_args` are more dockerd flags (e.g. another --host: daemon.json cannot repeat a flag's setting)."""
    _remove_leftovers()
    ROOT.mkdir(parents=True)
    (ROOT / "daemon.json").write_text(json.dumps(daemon_json))
    subprocess.run(["ip", "link", "add", BRIDGE, "type", "bridge"], check=True)
    subprocess.run(["ip", "addr", "add", "10.213.7.1/24", "dev", BRIDGE], check=True)
    subprocess.run(["ip", "link", "set", BRIDGE, "up"], check=True)
    socket = ROOT / "docker.sock"
    log = (ROOT / "dockerd.log").open("w")
    process = subprocess.Popen(
        [
            "dockerd", "--host", f"unix://{socket}", "--data-root", str(ROOT / "data"),
            "--exec-root", str(ROOT / "exec"), "--pidfile", str(ROOT / "dockerd.pid"), "--bridge", BRIDGE,
            "--iptables=false", "--ip-masq=false", "--config-file", str(ROOT / "daemon.json"), *extra_args,
        ],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    daemon = SecondDaemon(socket)
    try:
        deadline = time.monotonic() + 60
        while daemon.docker("info", check=False, timeout=10).returncode != 0:
            if time.monotonic() > deadline or process.poll() is not None:
                raise AssertionError(f"the second dockerd did not start:\n{(ROOT / 'dockerd.log').read_text()}")
            time.sleep(0.5)
        yield daemon
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
        log.close()
        _remove_leftovers()
