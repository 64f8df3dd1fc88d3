"""The dev stack on the real Pulumi CLI and language host with STAND-IN provider plugins (tests/engine/pulumi_cli.py
says what is real), deployed by the README's own command; the tests run in file order on one stack.

1. The quick start, word for word (`dev_stack` runs it; only the images differ: the offline stand-ins).
2. The README's checks: `/v2/` over TLS with the CA from the outputs, the plain port, docker push and pull, the UI
   in a browser.
3. No spurious diff: preview and refresh with `--expect-no-changes`, and a second `up` changes nothing.
4. Each change docs/operations.md describes replaces exactly what it says and keeps the data, the data volume
   and the CA.
5. Outputs read by another program (`StackReference`), and the policy pack on the dev stack and on a bad config.
6. Destroy removes the containers and the network and keeps the data volume and the images.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import tarfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import requests
import yaml

from harness.attached import remove_attached
from harness.clients import docker_login, hosts_entry, put_hosts_entry
from tests.engine.conftest import DEV_STACK, DeployedStack
from tests.engine.pulumi_cli import LABEL_PREFIX, STAND_IN_VERSIONS, Workspace, changes, stack_selector
from tests.live.browser import view_ui
from tests.live.test_mirrors import UPSTREAM_NAME, make_ca_and_certificate, start_upstream_registry

pytestmark = pytest.mark.engine

HOSTS_MARK = "# private-registry engine tests"
REPOSITORY = "team/hello"
DATA_VOLUME = "private-registry-dev-registry-data"


def test_the_readme_command_deployed_the_dev_stack_with_a_venv_pulumi_made(dev_stack: DeployedStack) -> None:
    output = dev_stack.deploy.stdout + dev_stack.deploy.stderr
    assert "pulumi up" in dev_stack.command and "openssl rand" in dev_stack.command
    # The plugins the engine ran are the stand-ins, and it says so; the language host is the built one, beside
    # the CLI (one from PATH would be named in the same warning).
    engine = dev_stack.workspace.engine
    for name in STAND_IN_VERSIONS:
        assert f"using pulumi-resource-{name} from $PATH at {engine.plugins_dir}" in output
    assert "using pulumi-language-python from $PATH" not in output
    venv_python = dev_stack.workspace.project / "venv" / "bin" / "python"
    # The language host made ./venv from requirements.txt alone (the test venv is not copied).
    assert venv_python.exists(), output[-3000:]
    pip_list = subprocess.run(
        [venv_python, "-m", "pip", "list", "--format=json"], capture_output=True, text=True, timeout=120, check=True
    )
    installed = {package["name"].lower().replace("_", "-") for package in json.loads(pip_list.stdout)}
    assert {"pulumi", "pulumi-docker", "pulumi-tls", "pulumi-random", "bcrypt"} <= installed
    assert "pytest" not in installed and "docker" not in installed
    assert dev_stack.endpoint == "registry.localhost:8443"
    assert len(dev_stack.password) == 32  # openssl rand -base64 24
    assert dev_stack.password not in output


def test_the_secrets_stay_secret_in_the_state_and_the_outputs(dev_stack: DeployedStack) -> None:
    workspace = dev_stack.workspace
    exported = workspace.pulumi("stack", "export").stdout
    assert "PRIVATE KEY" not in exported and dev_stack.password not in exported
    resources = {r["urn"].rsplit("::", 1)[-1]: r for r in json.loads(exported)["deployment"]["resources"]}
    secret = "4dabf18193072939515e22adb298388d"
    for key in ("privateKeyPem", "privateKeyPemPkcs8", "privateKeyOpenssh"):
        assert secret in json.dumps(resources["registry-ca-key"]["outputs"][key])
    assert secret in json.dumps(resources["registry-http-secret"]["outputs"]["result"])
    # An upload whose content came from a secret (alice's htpasswd line) is a secret in the state too.
    uploads = resources["registry-distribution-container"]["outputs"]["uploads"]
    assert any(secret in json.dumps(upload) for upload in uploads)
    # No stack output is a secret (README: "No output holds a secret").
    assert "[secret]" not in workspace.pulumi("stack", "output").stdout


def test_v2_answers_over_tls_with_the_ca_from_the_outputs(dev_stack: DeployedStack) -> None:
    url = "https://127.0.0.1:8443/v2/"
    assert requests.get(url, verify=str(dev_stack.ca_file), timeout=30).status_code == 401
    answer = requests.get(url, verify=str(dev_stack.ca_file), auth=("alice", dev_stack.password), timeout=30)
    assert answer.status_code == 200 and answer.json() == {}
    # The name the certificate is for (curl and browsers take *.localhost as loopback).
    named = subprocess.run(
        ["curl", "-sS", "--max-time", "30", "--cacert", str(dev_stack.ca_file), "--config", "-", "--resolve",
         "registry.localhost:8443:127.0.0.1", "https://registry.localhost:8443/v2/"],
        input=f'user = "alice:{dev_stack.password}"\n',  # on stdin, not in the process list
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert named.returncode == 0 and named.stdout.strip() == "{}", named.stderr
    plain = requests.get("http://127.0.0.1:5000/v2/", auth=("alice", dev_stack.password), timeout=30)
    assert plain.status_code == 200 and plain.json() == {}


@pytest.fixture(scope="module")
def docker_trusts_dev(dev_stack: DeployedStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The README's client steps: the CA in dockerCertsDir, the name in /etc/hosts, docker login."""
    certs_dir = Path(dev_stack.outputs["dockerCertsDir"])
    certs_dir.mkdir(parents=True, exist_ok=True)
    (certs_dir / "ca.crt").write_text(dev_stack.outputs["caCertPem"])
    config = tmp_path_factory.mktemp("docker-config")
    try:
        with hosts_entry("registry.localhost", HOSTS_MARK):
            login = docker_login(dev_stack.endpoint, "alice", dev_stack.password, config)
            assert login.returncode == 0, login.stderr
            yield config
    finally:
        (certs_dir / "ca.crt").unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # only when it was ours and is empty
            certs_dir.rmdir()


def tiny_image(tag: str, content: bytes) -> None:
    """An image of one file, made here (nothing can be pulled)."""
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    subprocess.run(
        ["docker", "import", "-", tag], input=archive.getvalue(), capture_output=True, timeout=120, check=True
    )


def test_docker_push_and_pull_through_the_proxy(dev_stack: DeployedStack, docker_trusts_dev: Path) -> None:
    client = docker.from_env()
    tag = f"{dev_stack.endpoint}/{REPOSITORY}:1"
    tiny_image(tag, b"hello from the engine test\n")
    cli = ["docker", "--config", str(docker_trusts_dev)]
    try:
        # Again right before each command: a session that took /etc/hosts before the lock existed may have
        # written it back without our line.
        put_hosts_entry("registry.localhost", HOSTS_MARK)
        push = subprocess.run([*cli, "push", tag], capture_output=True, text=True, timeout=300, check=False)
        assert push.returncode == 0, push.stderr
        image_id = client.images.get(tag).id
        client.images.remove(tag, force=True)
        put_hosts_entry("registry.localhost", HOSTS_MARK)
        pull = subprocess.run([*cli, "pull", tag], capture_output=True, text=True, timeout=300, check=False)
        assert pull.returncode == 0, pull.stderr
        assert client.images.get(tag).id == image_id
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, timeout=60, check=False)


def test_the_ui_opens_in_a_browser_and_lists_the_pushed_repository(dev_stack: DeployedStack) -> None:
    view = view_ui(dev_stack.outputs["uiUrl"], "registry.localhost", ("alice", dev_stack.password))
    assert view.title == "Dev Registry" or "Dev Registry" in view.heading, view
    assert REPOSITORY in view.repositories, view


def test_nothing_changes_right_after_up(dev_stack: DeployedStack) -> None:
    workspace = dev_stack.workspace
    workspace.pulumi("preview", "--expect-no-changes")
    workspace.pulumi("refresh", "--expect-no-changes", "--yes")
    again = workspace.pulumi("up", "--yes", "--expect-no-changes")
    assert "unchanged" in again.stdout, again.stdout
    assert changes(workspace.preview_steps()) == {}


# ---- changes, as docs/operations.md states them ("Changes: what each setting replaces")


def _kept_state(dev_stack: DeployedStack) -> tuple[str, str, str]:
    """(the data volume's creation time, the CA PEM, the pushed manifest's digest), compared across changes."""
    client = docker.from_env()
    volume = client.volumes.get(DATA_VOLUME)
    manifest = requests.head(
        f"https://127.0.0.1:8443/v2/{REPOSITORY}/manifests/1",
        verify=str(dev_stack.ca_file),
        auth=("alice", dev_stack.password),
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        timeout=30,
    )
    assert manifest.status_code == 200, manifest.status_code
    return (
        volume.attrs["CreatedAt"],
        dev_stack.workspace.outputs()["caCertPem"],
        manifest.headers["Docker-Content-Digest"],
    )


UPSTREAM_CONTAINER = "private-registry-dev-test-upstream"
UPSTREAM_PORT = 5444


@pytest.fixture
def mirror_upstream(dev_stack: DeployedStack, tmp_path: Path) -> Iterator[str]:
    """The upstream registry a mirror pulls through, as tests/live/test_mirrors.py runs it (nothing here reaches
    Docker Hub, and a mirror whose upstream does not answer never gets healthy): TLS with its own CA, on the
    stack's network as UPSTREAM_NAME, labelled with the stack (leftovers go with the stack's); its CA's PEM."""
    client = docker.from_env()
    ca_pem = make_ca_and_certificate(tmp_path / "upstream")
    labels = {f"{LABEL_PREFIX}.project": "private-registry", f"{LABEL_PREFIX}.stack": DEV_STACK}
    upstream = start_upstream_registry(client, tmp_path / "upstream", UPSTREAM_CONTAINER, UPSTREAM_PORT, labels)
    try:
        client.networks.get(dev_stack.outputs["networkName"]).connect(upstream, aliases=[UPSTREAM_NAME])
        yield ca_pem
    finally:
        remove_attached(client, UPSTREAM_CONTAINER)


MIRROR = {"name": "dockerhub", "remoteUrl": f"https://{UPSTREAM_NAME}:5000", "port": 5443, "public": True}
CHANGES = [
    # "Any change to `auth.users` replaces the registry container."
    pytest.param(
        {"auth.users.bob": "a-second-account-password"},
        {"replace": {"registry-distribution-container"}},
        id="a-new-account",
    ),
    # "`ui.title` replaces the UI container only."
    pytest.param({"ui": {"title": "Team Registry"}}, {"replace": {"registry-ui-container"}}, id="ui-title"),
    # "Adding or removing a mirror [...] also replaces the proxy"; the mirror comes with its cache volume.
    pytest.param(
        {"mirrors": [MIRROR]},
        {
            "create": {
                "registry-mirror-dockerhub",
                "registry-mirror-dockerhub-data",
                "registry-mirror-dockerhub-image",
                "registry-mirror-dockerhub-container",
            },
            "replace": {"registry-proxy-container"},
        },
        id="a-mirror-added",
    ),
    # "`gc.*` replaces the maintenance container only."
    pytest.param({"gc": {"schedule": "15 4 * * 6"}}, {"replace": {"registry-maintenance-container"}}, id="gc-schedule"),
]


@pytest.mark.parametrize(("change", "expected"), CHANGES)
def test_a_change_replaces_what_the_docs_say_and_keeps_the_data(
    dev_stack: DeployedStack, change: dict[str, Any], expected: dict[str, set[str]], request: pytest.FixtureRequest
) -> None:
    workspace: Workspace = dev_stack.workspace
    before = _kept_state(dev_stack)
    if "mirrors" in change:
        ca_pem = request.getfixturevalue("mirror_upstream")
        change = {"mirrors": [{**mirror, "remoteCaCertPem": ca_pem} for mirror in change["mirrors"]]}
    for key, value in change.items():
        if key.startswith("auth.users."):  # a password, set as the README sets one
            workspace.pulumi("config", "set", "--secret", "--path", f"private-registry:{key}", value)
        else:
            workspace.set_config(DEV_STACK, {key: value})
    steps = workspace.preview_steps()
    assert changes(steps) == expected, json.dumps(steps, indent=1)[-6000:]
    workspace.pulumi("up", "--yes")
    assert _kept_state(dev_stack) == before
    workspace.pulumi("preview", "--expect-no-changes")


# ---- other programs, the policy pack


def test_another_program_reads_the_outputs_with_a_stack_reference(dev_stack: DeployedStack) -> None:
    workspace = dev_stack.workspace
    # Same machine (HOME, backend), another project; it runs in the dev program's venv (pulumi is all it needs).
    reader = Workspace(
        engine=workspace.engine,
        root=workspace.root,
        project_dir=workspace.root / "reader",
        passphrase=workspace.passphrase,
    )
    reader.project.mkdir(exist_ok=True)
    (reader.project / "Pulumi.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "registry-reader",
                "runtime": {"name": "python", "options": {"virtualenv": str(workspace.project / "venv")}},
            }
        )
    )
    (reader.project / "__main__.py").write_text(
        textwrap.dedent(
            """
            import pulumi

            registry = pulumi.StackReference("organization/private-registry/dev")
            pulumi.export("endpoint", registry.get_output("registryEndpoint"))
            pulumi.export("caCertPem", registry.get_output("caCertPem"))
            pulumi.export("networkName", registry.get_output("networkName"))
            """
        )
    )
    reader.pulumi("stack", "init", "reader")
    try:
        reader.pulumi("up", "--yes")
        read = reader.outputs()
        assert read["endpoint"] == "registry.localhost:8443"
        assert read["caCertPem"] == workspace.outputs()["caCertPem"]
        assert read["networkName"] == "private-registry-dev-net"
    finally:
        reader.pulumi("destroy", "--yes", check=False)
        reader.pulumi("stack", "rm", "--yes", "reader", check=False)


@pytest.fixture(scope="module")
def policy_venv(dev_stack: DeployedStack) -> Path:
    """docs/policy.md's one-time step, word for word: the pack's own virtualenv from policy/requirements.txt."""
    dev_stack.workspace.shell(
        "python3 -m venv policy/venv && policy/venv/bin/pip install -r policy/requirements.txt", timeout=900
    )
    return dev_stack.workspace.project / "policy" / "venv"


def test_the_policy_pack_passes_the_dev_stack(dev_stack: DeployedStack, policy_venv: Path) -> None:
    done = dev_stack.workspace.pulumi("preview", "--policy-pack", "policy")
    text = done.stdout + done.stderr
    assert "private-registry" in text and "policy" in text.lower(), text
    assert "[mandatory]" not in text, text


def test_the_policy_pack_stops_a_preview_of_open_ports_without_accounts(
    dev_stack: DeployedStack, policy_venv: Path
) -> None:
    """A second stack of the same program: every port on 0.0.0.0, no accounts, the plain registry port."""
    workspace = dev_stack.workspace
    stack = "policy-open"
    workspace.pulumi("stack", "init", stack, "--no-select")
    try:
        document = yaml.safe_load(workspace.stack_file(stack).read_text()) or {}
        dev = yaml.safe_load(workspace.stack_file(DEV_STACK).read_text())["config"]
        document["config"] = {key: value for key, value in dev.items() if key != "private-registry:auth"}
        document["config"]["private-registry:bindAddress"] = "0.0.0.0"
        workspace.stack_file(stack).write_text(yaml.safe_dump(document, sort_keys=False))
        done = workspace.pulumi("preview", "--stack", stack, "--policy-pack", "policy", check=False)
        text = done.stdout + done.stderr
        assert done.returncode != 0, text
        assert "[mandatory]" in text, text
        for policy in ("published-ports-without-accounts", "registry-or-ui-port-without-tls"):
            assert policy in text, text
    finally:
        workspace.pulumi("stack", "rm", "--yes", "--force", stack, check=False)
        # `stack rm` clears the current stack whichever stack it removed (CLI 3.276's stack_remove.go).
        workspace.pulumi("stack", "select", DEV_STACK)


# ---- destroy, last


def test_destroy_removes_the_containers_and_keeps_the_data_volume_and_images(dev_stack: DeployedStack) -> None:
    client = docker.from_env()
    selector = stack_selector(DEV_STACK)
    volume_before = client.volumes.get(DATA_VOLUME).attrs["CreatedAt"]
    images_before = {image.id for image in client.images.list()}
    assert client.containers.list(all=True, filters=selector)
    dev_stack.workspace.pulumi("destroy", "--yes")
    assert client.containers.list(all=True, filters=selector) == []
    assert client.networks.list(filters=selector) == []
    # Kept: the registry's data (retain_on_delete) and every image (keep_locally).
    kept = {volume.name for volume in client.volumes.list(filters=selector)}
    assert DATA_VOLUME in kept
    assert client.volumes.get(DATA_VOLUME).attrs["CreatedAt"] == volume_before
    assert images_before <= {image.id for image in client.images.list()}
