"""What the upstream images do to the program, shown on their honest stand-ins (images/): Joxit's UI under
our hardening and across replacements, nginx's own default site on the plaintext port, and the CA across
config changes. Each of these failed on the program before it was fixed for them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import yaml

from harness import realizer
from harness.clients import curl, run, status_and_body, wait_until
from harness.registry_api import RegistryClient
from tests.live.browser import view_ui
from tests.live.conftest import STACKS_DIR, LiveStack, bring_up, changed_stack

pytestmark = pytest.mark.live

OPEN_STACK = STACKS_DIR / "open.yaml"


@pytest.fixture(scope="module")
def open_stack(
    engine: docker.DockerClient, test_images: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveStack]:
    """No accounts, an IP for hostname and a title Joxit's entrypoint cannot take as it is."""
    realizer.down(OPEN_STACK, volumes=True, client=engine)
    yield bring_up(OPEN_STACK, engine, tmp_path_factory.mktemp("open"))
    realizer.down(OPEN_STACK, volumes=True, client=engine)


def client_for(stack: LiveStack) -> RegistryClient:
    auth = stack.login if stack.users else None
    return RegistryClient(f"https://127.0.0.1:{stack.https_port}", auth=auth, verify=str(stack.ca_file))


def ui_state(stack: LiveStack) -> tuple[str, int, str, str]:
    """(id, restart count, state, health) of the UI container."""
    ui = stack.container("ui")
    state = ui.attrs["State"]
    return ui.id, int(ui.attrs["RestartCount"]), state["Status"], (state.get("Health") or {}).get("Status", "")


def assert_ui_up(stack: LiveStack) -> str:
    """The UI container runs, healthy, and never restarted; returns its id."""
    container_id, restarts, status, health = ui_state(stack)
    assert (status, health, restarts) == ("running", "healthy", 0), stack.container("ui").logs(tail=30)
    return container_id


# ---- nginx: the plaintext port only redirects ----


def plaintext(stack: LiveStack, host: str | None, path: str) -> tuple[int, dict[str, str], str]:
    """GET on the plaintext port with this Host header (None: an HTTP/1.0 request with no Host at all)."""
    options = ["--http1.0", "-H", "Host:"] if host is None else ["-H", f"Host: {host}"]
    return status_and_body(curl(f"http://127.0.0.1:{stack.http_port}{path}", *options).stdout)


@pytest.mark.parametrize("which", ["stack", "open_stack"])
def test_plaintext_port_redirects_whatever_the_host(request: pytest.FixtureRequest, which: str) -> None:
    """nginx's image keeps conf.d/default.conf (a welcome page on port 80): it must never answer."""
    live: LiveStack = request.getfixturevalue(which)
    hosts = [live.hostname, "127.0.0.1", f"127.0.0.1:{live.http_port}", "192.0.2.7", "other.example", None]
    for host in hosts:
        for path in ["/", "/v2/", "/index.html?x=1"]:
            status, headers, body = plaintext(live, host, path)
            assert (status, headers.get("location")) == (301, f"https://{live.endpoint}{path}"), (host, body)
            assert "Welcome to nginx" not in body
    site_dir = live.container("proxy").exec_run(["ls", "/etc/nginx/conf.d"]).output.decode().split()
    assert site_dir == ["default.conf"]
    site = live.container("proxy").exec_run(["cat", "/etc/nginx/conf.d/default.conf"]).output.decode()
    assert site.startswith("# Rendered by private-registry")


# ---- Joxit: starts under the hardening, stays up, shows the title, works through the proxy ----


@pytest.mark.parametrize("which", ["stack", "open_stack"])
def test_ui_runs_unprivileged_and_never_restarted(request: pytest.FixtureRequest, which: str) -> None:
    live: LiveStack = request.getfixturevalue(which)
    assert_ui_up(live)
    ui = live.container("ui")
    assert ui.attrs["Config"]["User"] == "101:101"
    assert ui.attrs["HostConfig"]["CapDrop"] == ["ALL"] and not ui.attrs["HostConfig"]["CapAdd"]
    top = ui.top()
    pids = [process[top["Titles"].index("PID")] for process in top["Processes"]]
    # Real, effective, saved and filesystem uid of every process, read from the host's /proc.
    uids = {Path(f"/proc/{pid}/status").read_text().split("Uid:")[1].split("\n")[0].split()[0] for pid in pids}
    assert pids and uids == {"101"}, uids
    # Behind our nginx the UI never contacts the registry: nothing in its config names it.
    site = ui.exec_run(["cat", "/etc/nginx/conf.d/default.conf"]).output.decode()
    assert "proxy_pass" not in "\n".join(line for line in site.splitlines() if not line.lstrip().startswith("#"))


def test_ui_stays_up_across_registry_and_ui_replacements(open_stack: LiveStack, tmp_path: Path) -> None:
    ui_before = assert_ui_up(open_stack)
    with changed_stack(open_stack, tmp_path, registry={"logLevel": "debug"}) as changed:
        result = realizer.up(changed, open_stack.client)
        assert sorted(result.replaced) == [
            "docker:index/container:Container::registry-distribution-container",
            "docker:index/container:Container::registry-maintenance-container",
        ]
        # The UI was not touched, and did not notice: it does not depend on the registry's address.
        assert assert_ui_up(open_stack) == ui_before
        assert_catalog_in_browser(open_stack, [])
    with changed_stack(open_stack, tmp_path, ui={"readonly": True}) as changed:
        result = realizer.up(changed, open_stack.client)
        assert result.replaced == ["docker:index/container:Container::registry-ui-container"]
        assert assert_ui_up(open_stack) != ui_before


def assert_catalog_in_browser(stack: LiveStack, repositories: list[str]) -> None:
    view = view_ui(stack.outputs["uiUrl"], stack.hostname, stack.login if stack.users else None)
    assert view.status == f"catalog: {len(repositories)} repositories"
    assert sorted(view.repositories) == sorted(repositories)


@pytest.mark.parametrize("which", ["stack", "open_stack"])
def test_ui_lists_tags_and_deletes_through_the_proxy(request: pytest.FixtureRequest, which: str) -> None:
    live: LiveStack = request.getfixturevalue(which)
    api = client_for(live)
    repo = f"ui-check/{which.replace('_', '-')}"
    for tag in ("1", "2"):
        api.push_image(repo, tag, [os.urandom(2048), tag.encode() * 64])
    title = yaml.safe_load(live.config_file.read_text())["config"]["private-registry:ui"]["title"]
    view = view_ui(
        live.outputs["uiUrl"],
        live.hostname,
        live.login if live.users else None,
        tags_of=repo,
        delete=(repo, "1"),
    )
    assert (view.title, view.heading) == (title, title)
    assert repo in view.repositories
    assert view.tags is not None and sorted(view.tags) == ["1", "2"]
    assert view.deleted is not None and view.deleted["status"] == 202
    assert api.tags(repo).json()["tags"] == ["2"]
    api.request("DELETE", f"/v2/{repo}/manifests/{api.get_manifest(repo, '2').headers['Docker-Content-Digest']}")


def test_ui_title_survives_a_restart(open_stack: LiveStack) -> None:
    """Joxit edits its page at every start: a second start must find nothing left to mangle."""
    title = yaml.safe_load(open_stack.config_file.read_text())["config"]["private-registry:ui"]["title"]
    ui = open_stack.container("ui")
    ui.restart(timeout=10)
    wait_until(lambda: ui_state(open_stack)[3] == "healthy", 60, "the UI healthy after its restart")
    assert view_ui(open_stack.outputs["uiUrl"], open_stack.hostname).heading == title


def test_up_fails_while_a_container_never_gets_healthy(open_stack: LiveStack, tmp_path: Path) -> None:
    """`pulumi up` waits for health (wait=true): a UI that never serves its port is an error, not a success.
    healthyWaitSeconds sets how long; changing it (there and back) replaces no container."""
    never_healthy = {"image": "private-registry-test/registry:2.8.2"}  # runs, but serves nothing on 8080
    registry_id = open_stack.container("registry").id
    with (
        changed_stack(open_stack, tmp_path, ui=never_healthy, healthyWaitSeconds=20) as changed,
        pytest.raises(Exception, match=r"not healthy within 20s"),
    ):
        realizer.up(changed, open_stack.client)
    assert_ui_up(open_stack)
    assert open_stack.container("registry").id == registry_id


# ---- the CA keeps its identity until a deliberate rotation ----


def https_status(stack: LiveStack, ca_file: Path) -> int:
    result = curl(f"https://127.0.0.1:{stack.https_port}/v2/", ca_file=ca_file, check=False)
    return status_and_body(result.stdout)[0] if result.returncode == 0 else -result.returncode


def test_ca_survives_config_edits_until_a_new_generation(open_stack: LiveStack, tmp_path: Path) -> None:
    first_ca = tmp_path / "first-ca.crt"
    first_ca.write_text(open_stack.outputs["caCertPem"])
    edits = {"organization": "Renamed Org", "keyAlgorithm": "RSA", "caValidityDays": 1000}
    with changed_stack(open_stack, tmp_path, tls=edits) as changed:
        result = realizer.up(changed, open_stack.client)
        assert result.outputs["caCertPem"] == first_ca.read_text()
        assert not [key for key in result.replaced + result.created if "registry-ca" in key]
        assert any(w.startswith("the CA is kept") and "tls.organization 'Renamed Org'" in w for w in result.warnings)
        # The new RSA server certificate is signed by the kept CA: clients that trust it see no change.
        assert https_status(open_stack, first_ca) == 200
        openssl = run("openssl", "s_client", "-connect", f"127.0.0.1:{open_stack.https_port}", "-CAfile",
                      str(first_ca), "-verify_return_error", check=False, timeout=30)  # fmt: skip
        assert "Verify return code: 0 (ok)" in openssl.stdout and "Peer signature type: RSA" in openssl.stdout

        rotated = yaml.safe_load(changed.read_text())
        rotated["config"]["private-registry:tls"]["caGeneration"] = 2
        changed.write_text(yaml.safe_dump(rotated))
        result = realizer.up(changed, open_stack.client)
        new_ca = tmp_path / "new-ca.crt"
        new_ca.write_text(result.outputs["caCertPem"])
        assert new_ca.read_text() != first_ca.read_text()
        assert "tls:index/privateKey:PrivateKey::registry-ca-2-key" in result.created
        assert "tls:index/privateKey:PrivateKey::registry-ca-key" in result.deleted
        assert https_status(open_stack, new_ca) == 200
        assert https_status(open_stack, first_ca) == -60  # curl: peer certificate cannot be authenticated
        subject = run("openssl", "x509", "-noout", "-subject", "-in", str(new_ca)).stdout
        assert "O = Renamed Org" in subject
