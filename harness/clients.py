"""Real clients against a live stack: curl, docker, skopeo. Traffic goes to 127.0.0.1 only."""

from __future__ import annotations

import contextlib
import fcntl
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path


def run(*command: str, timeout: int = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def curl(
    url: str, *options: str, ca_file: Path | None = None, resolve: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """curl -sS with the stack's CA and a --resolve pin to loopback; -i to see the status and headers."""
    command = ["curl", "-sS", "-i", "--max-time", "30"]
    if ca_file:
        command += ["--cacert", str(ca_file)]
    if resolve:
        command += ["--resolve", resolve]
    return run(*command, *options, url, check=check)


def status_and_body(response: str) -> tuple[int, dict[str, str], str]:
    head, _, body = response.replace("\r\n", "\n").partition("\n\n")
    lines = head.splitlines()
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def wait_until(condition: Callable[[], bool], seconds: float, what: str, every: float = 0.5) -> None:
    """Poll `condition` until it holds, for at most `seconds` (a bounded loop, never an endless retry)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(every)
    raise AssertionError(f"not within {seconds}s: {what}")


HOSTS_FILE = Path("/etc/hosts")
HOSTS_LOCK = Path("/tmp/private-registry-hosts.lock")
"""Held while /etc/hosts is rewritten: test sessions run side by side on one machine (the live tests, the engine
tests, the benchmark), and two read-modify-writes at once lose one of the entries."""


@contextlib.contextmanager
def _hosts_locked() -> Iterator[None]:
    with HOSTS_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def put_hosts_entry(hostname: str, mark: str) -> None:
    """The line `127.0.0.1 <hostname> <mark>` in /etc/hosts, replacing any line with `mark` (idempotent)."""
    with _hosts_locked():
        kept = [line for line in HOSTS_FILE.read_text().splitlines() if mark not in line]
        HOSTS_FILE.write_text("\n".join([*kept, f"127.0.0.1 {hostname} {mark}"]) + "\n")


def remove_hosts_entry(mark: str) -> None:
    with _hosts_locked():
        current = HOSTS_FILE.read_text().splitlines()
        HOSTS_FILE.write_text("".join(f"{line}\n" for line in current if mark not in line))


@contextlib.contextmanager
def hosts_entry(hostname: str, mark: str) -> Iterator[None]:
    """`hostname` on 127.0.0.1 in /etc/hosts for the duration (the Docker daemon and skopeo resolve through it).

    The line carries `mark`, so a run that died without cleaning up is replaced, not repeated.
    """
    put_hosts_entry(hostname, mark)
    try:
        yield
    finally:
        remove_hosts_entry(mark)


def docker_login(endpoint: str, user: str, password: str, config_dir: Path) -> subprocess.CompletedProcess[str]:
    """`docker login` with the password on stdin, keeping the credentials in `config_dir`."""
    return subprocess.run(
        ["docker", "--config", str(config_dir), "login", "--username", user, "--password-stdin", endpoint],
        input=password, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
