"""Accounts, TLS and container hardening on the live stack, checked from the outside."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

from harness import realizer
from harness.clients import curl, docker_login, run, status_and_body, wait_until
from harness.registry_api import RegistryClient
from tests.live.browser import view_ui
from tests.live.conftest import LiveStack
from tests.live.integrity import assert_nothing_lost

pytestmark = pytest.mark.live

ROLES = ("registry", "ui", "proxy")


def v2(stack: LiveStack, *options: str) -> tuple[int, dict[str, str], str]:
    resolve = f"{stack.hostname}:{stack.https_port}:127.0.0.1"
    return status_and_body(
        curl(f"https://{stack.endpoint}/v2/", *options, ca_file=stack.ca_file, resolve=resolve).stdout
    )


# ---- accounts ----


def test_anonymous_v2_is_challenged(stack: LiveStack) -> None:
    status, headers, _ = v2(stack)
    assert status == 401
    assert headers["www-authenticate"] == 'Basic realm="Private Registry"'
    assert headers["docker-distribution-api-version"] == "registry/2.0"


def test_anonymous_push_fails(
    stack: LiveStack, docker_trusts_registry: str, engine: docker.DockerClient, tmp_path: Path
) -> None:
    remote = f"{docker_trusts_registry}/anonymous/nginx:1"
    engine.images.get("private-registry-test/nginx:1.22").tag(remote)
    pushed = run("docker", "--config", str(tmp_path), "push", remote, check=False, timeout=120)
    assert pushed.returncode != 0
    assert "no basic auth credentials" in pushed.stderr + pushed.stdout


def test_each_account_logs_in_and_a_wrong_password_is_refused(
    stack: LiveStack, docker_trusts_registry: str, tmp_path: Path
) -> None:
    for user, password in stack.users.items():
        assert docker_login(stack.endpoint, user, password, tmp_path).returncode == 0, user
        assert v2(stack, "-u", f"{user}:{password}")[0] == 200
    refused = docker_login(stack.endpoint, stack.login[0], "not-the-password", tmp_path)
    assert refused.returncode != 0
    assert "401 Unauthorized" in refused.stderr or "unauthorized" in refused.stderr.lower()


def test_ui_shows_the_pushed_repository_with_accounts_on(
    stack: LiveStack, docker_trusts_registry: str, engine: docker.DockerClient
) -> None:
    remote = f"{docker_trusts_registry}/team/ui-check:1"
    engine.images.get("private-registry-test/nginx:1.22").tag(remote)
    run("docker", "push", remote, timeout=300)
    resolve = f"{stack.hostname}:{stack.https_port}:127.0.0.1"
    status, headers, _ = status_and_body(curl(stack.outputs["uiUrl"], ca_file=stack.ca_file, resolve=resolve).stdout)
    assert status == 200  # the page itself is static; the browser asks for the login when it calls /v2/
    assert headers["x-frame-options"] == "DENY"
    assert "team/ui-check" in view_ui(stack.outputs["uiUrl"], stack.hostname, stack.login).repositories
    # A wrong password at the login prompt (headless Chromium has no prompt to cancel: with no credentials at
    # all it waits for one forever).
    refused = view_ui(stack.outputs["uiUrl"], stack.hostname, (stack.login[0], "not-the-password"))
    assert refused.repositories == []
    assert refused.status.endswith(": 401")


def test_a_user_removed_from_config_is_refused_after_up(
    stack: LiveStack, engine: docker.DockerClient, tmp_path: Path
) -> None:
    removed, kept = "bob", "alice"
    document = yaml.safe_load(stack.config_file.read_text())
    users = document["config"]["private-registry:auth"]["users"]
    assert {removed, kept} <= set(users)
    del users[removed]
    changed = tmp_path / stack.config_file.name
    changed.write_text(yaml.safe_dump(document))
    try:
        result = realizer.up(changed, engine)
        assert result.replaced == ["docker:index/container:Container::registry-distribution-container"]
        assert v2(stack, "-u", f"{removed}:{stack.users[removed]}")[0] == 401
        assert v2(stack, "-u", f"{kept}:{stack.users[kept]}")[0] == 200
    finally:
        realizer.up(stack.config_file, engine)
    assert v2(stack, "-u", f"{removed}:{stack.users[removed]}")[0] == 200


# ---- TLS ----


def sslyze(
    target: str, profile: str, ca_file: Path, out: Path
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    scan = subprocess.run(
        [sys.executable, "-m", "sslyze", f"--mozilla_config={profile}", "--certinfo_ca_file", str(ca_file), "--json_out", str(out), target],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(out.read_text())["server_scan_results"][0]["scan_result"]
    return scan, result


def accepted(result: dict[str, Any], protocol: str) -> int:
    return len(result[f"{protocol}_cipher_suites"]["result"]["accepted_cipher_suites"])


def test_mozilla_intermediate_compliant_and_no_legacy_protocols(stack: LiveStack, tmp_path: Path) -> None:
    scan, result = sslyze(
        f"{stack.hostname}:{stack.https_port}{{127.0.0.1}}", "intermediate", stack.ca_file, tmp_path / "scan.json"
    )
    assert scan.returncode == 0, scan.stdout[-3000:]
    assert "OK - Compliant." in scan.stdout
    for legacy in ("ssl_2_0", "ssl_3_0", "tls_1_0", "tls_1_1"):
        assert accepted(result, legacy) == 0, legacy
    assert accepted(result, "tls_1_2") > 0
    assert accepted(result, "tls_1_3") > 0


def test_hsts_and_no_server_version(stack: LiveStack) -> None:
    _, headers, _ = v2(stack)
    assert headers["strict-transport-security"] == "max-age=63072000"
    assert headers["server"] == "nginx"


# ---- containers ----


def test_containers_are_hardened(stack: LiveStack) -> None:
    for role in ROLES:
        attrs = stack.container(role).attrs
        host = attrs["HostConfig"]
        assert host["SecurityOpt"] == ["no-new-privileges:true"], role
        assert host["CapDrop"] == ["ALL"], role
        # Only nginx's root master needs capabilities back; Joxit runs as its nginx user with none.
        assert set(host["CapAdd"] or []) == (
            {"CHOWN", "SETGID", "SETUID", "NET_BIND_SERVICE"} if role == "proxy" else set()
        ), role
        assert host["Memory"] > 0 and host["MemorySwap"] == host["Memory"], role
        assert host["RestartPolicy"]["Name"] == "unless-stopped", role
        assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-file": "5", "max-size": "10m"}}, role
        assert host["Privileged"] is False and host["NetworkMode"] != "host", role
        assert attrs["Config"]["Healthcheck"]["Test"][0] in ("CMD", "CMD-SHELL"), role
        for bindings in (host["PortBindings"] or {}).values():
            assert all(binding["HostIp"] == "127.0.0.1" for binding in bindings), role
        # Read-only root is not possible with uploads (README: the trade-off).
        assert host["ReadonlyRootfs"] is False, role


def all_healthy(stack: LiveStack) -> bool:
    return all(stack.container(role).attrs["State"].get("Health", {}).get("Status") == "healthy" for role in ROLES)


def test_every_container_becomes_healthy(stack: LiveStack) -> None:
    wait_until(lambda: all_healthy(stack), 120, "all containers healthy")


def test_registry_answers_after_dockerd_restarts(
    stack: LiveStack, engine: docker.DockerClient, api: RegistryClient, pushed: list[tuple[str, str]]
) -> None:
    before = {role: stack.container(role).id for role in ROLES}
    pid = Path("/var/run/docker.pid").read_text().strip()
    run("kill", "-TERM", pid)
    wait_until(lambda: run("kill", "-0", pid, check=False).returncode != 0, 60, "dockerd stopped")
    run("scripts/docker-engine.sh", timeout=120)
    wait_until(
        lambda: all(stack.container(role).status == "running" for role in ROLES), 120, "containers running again"
    )
    assert {role: stack.container(role).id for role in ROLES} == before  # the same containers came back
    wait_until(lambda: v2(stack, "-u", ":".join(stack.login))[0] == 200, 60, "/v2/ answers 200 through nginx")
    wait_until(lambda: all_healthy(stack), 120, "all containers healthy again")
    assert_nothing_lost(engine, "private-registry-live-registry-data", api, pushed)
