"""The stack on a real Docker engine, checked with real clients against the program's own outputs."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import docker
import pytest
import requests
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from harness import realizer
from harness.clients import curl, run, status_and_body
from harness.docker_provider import LIVE_STACK_LABEL
from tests.live.conftest import STACKS_DIR, LiveStack, changed_stack

pytestmark = pytest.mark.live

BIG_LAYER_BYTES = 210 * 1024 * 1024


def resolve(stack: LiveStack) -> str:
    return f"{stack.hostname}:{stack.https_port}:127.0.0.1"


def user(stack: LiveStack) -> str:
    """curl's -u value for the stack's first account."""
    return ":".join(stack.login)


# ---- the original recipe's check ----


def test_v2_answers_through_nginx_with_the_ca_output(stack: LiveStack) -> None:
    status, headers, body = status_and_body(
        curl(f"https://{stack.endpoint}/v2/", "-u", user(stack), ca_file=stack.ca_file, resolve=resolve(stack)).stdout
    )
    assert (status, body) == (200, "{}")
    assert headers["docker-distribution-api-version"] == "registry/2.0"


def test_v2_answers_on_the_published_registry_port(stack: LiveStack) -> None:
    status, _, body = status_and_body(curl(f"http://127.0.0.1:{stack.registry_port}/v2/", "-u", user(stack)).stdout)
    assert (status, body) == (200, "{}")


def test_certificate_verifies_for_the_ip_san(stack: LiveStack) -> None:
    status, _, body = status_and_body(
        curl(f"https://127.0.0.1:{stack.https_port}/v2/", "-u", user(stack), ca_file=stack.ca_file).stdout
    )
    assert (status, body) == (200, "{}")


def test_certificate_fails_for_a_name_not_in_it(stack: LiveStack) -> None:
    other = f"other.live.test:{stack.https_port}:127.0.0.1"
    result = curl(f"https://other.live.test:{stack.https_port}/v2/", ca_file=stack.ca_file, resolve=other, check=False)
    assert result.returncode == 60, result.stderr  # peer certificate cannot be authenticated
    assert "other.live.test" in result.stderr


def test_served_chain_is_the_ca_signed_p256_server_certificate(stack: LiveStack) -> None:
    served = run(
        "openssl", "s_client", "-connect", f"127.0.0.1:{stack.https_port}", "-servername", stack.hostname,
        "-CAfile", str(stack.ca_file), "-verify_return_error", "-verify_hostname", stack.hostname,
        timeout=30,
    )  # fmt: skip
    assert "Verify return code: 0 (ok)" in served.stdout
    pem = served.stdout[
        served.stdout.index("-----BEGIN CERTIFICATE-----") : served.stdout.index("-----END CERTIFICATE-----") + 25
    ]
    cert = x509.load_pem_x509_certificate(pem.encode())
    ca = x509.load_pem_x509_certificate(stack.ca_file.read_bytes())
    assert cert.issuer == ca.subject
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert ExtendedKeyUsageOID.SERVER_AUTH in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == [stack.hostname]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
    assert cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ") == stack.outputs["serverCertNotAfter"]


def test_plaintext_port_redirects_to_the_https_url(stack: LiveStack) -> None:
    status, headers, _ = status_and_body(
        curl(f"http://127.0.0.1:{stack.http_port}/v2/team/app/manifests/1", "-H", f"Host: {stack.hostname}").stdout
    )
    assert status == 301
    assert headers["location"] == f"https://{stack.endpoint}/v2/team/app/manifests/1"


def test_ui_through_the_proxy_received_the_rendered_settings(stack: LiveStack) -> None:
    page = curl(stack.outputs["uiUrl"], ca_file=stack.ca_file, resolve=resolve(stack)).stdout
    status, _, body = status_and_body(page)
    assert status == 200
    # Joxit's entrypoint wrote the settings into the page: none of its placeholders is left.
    for attribute in [
        'name="Live Test Registry"',
        f'pull-url="{stack.endpoint}"',
        'single-registry="true"',
        'is-image-remove-activated="true"',
        'is-registry-secured="true"',
        'registry-url=""',
    ]:
        assert attribute in body
    assert '="${' not in body  # no attribute still holds a placeholder
    env = dict(item.split("=", 1) for item in stack.container("ui").attrs["Config"]["Env"])
    assert "NGINX_PROXY_PASS_URL" not in env  # behind our nginx the page's own origin serves /v2/
    assert env["SINGLE_REGISTRY"] == "true"
    assert env["REGISTRY_TITLE"] == "Live Test Registry"


def test_registry_received_the_rendered_config(stack: LiveStack) -> None:
    registry = stack.container("registry")
    config = yaml.safe_load(registry.exec_run(["cat", "/etc/docker/registry/config.yml"]).output)
    assert config["http"]["host"] == stack.outputs["registryUrl"]
    assert len(config["http"]["secret"]) == 48
    mounts = {m["Destination"]: m for m in registry.attrs["Mounts"]}
    assert mounts["/var/lib/registry"]["Name"] == "private-registry-live-registry-data"


def test_the_files_with_secrets_are_the_registrys_alone(stack: LiveStack) -> None:
    # The registry runs as root in its image; it started (and answers) with them 0600.
    for container, path in (("registry", "/etc/docker/registry/config.yml"), ("registry", "/auth/htpasswd")):
        done = stack.container(container).exec_run(["stat", "-c", "%a %u", path])
        assert done.exit_code == 0 and done.output.decode().split() == ["600", "0"], (container, path, done.output)


def test_all_containers_share_the_stack_network(stack: LiveStack) -> None:
    network = stack.client.networks.get(stack.outputs["networkName"])
    network.reload()
    names = {c.name for c in network.containers}
    assert names == {
        "private-registry-live-registry",
        "private-registry-live-ui",
        "private-registry-live-proxy",
        "private-registry-live-maintenance",
    }
    for container in network.containers:
        assert set(container.attrs["NetworkSettings"]["Networks"]) == {stack.outputs["networkName"]}


# ---- real clients pushing and pulling ----


@pytest.fixture(scope="session")
def multilayer_image(engine: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An image of several layers, one of them over 200 MB of random bytes (no 413, no timeout)."""
    context = tmp_path_factory.mktemp("image")
    (context / "small.txt").write_text("a small layer\n")
    with (context / "big.bin").open("wb") as big:
        for _ in range(BIG_LAYER_BYTES // (8 * 1024 * 1024)):
            big.write(os.urandom(8 * 1024 * 1024))
    (context / "Dockerfile").write_text(
        "FROM private-registry-test/registry:2.8.2\nCOPY small.txt /small.txt\nCOPY big.bin /big.bin\n"
    )
    tag = "private-registry-live/multilayer:1"
    engine.images.build(path=str(context), tag=tag, pull=False, rm=True, labels={LIVE_STACK_LABEL: "live"})
    return tag


def test_docker_push_and_pull_a_large_multilayer_image(
    stack: LiveStack, docker_trusts_registry: str, multilayer_image: str, engine: docker.DockerClient
) -> None:
    remote = f"{docker_trusts_registry}/team/multilayer:1"
    image = engine.images.get(multilayer_image)
    assert len(image.history()) >= 3
    image.tag(remote)
    run("docker", "push", remote, timeout=900)
    pushed = next(d for d in engine.images.get(remote).attrs["RepoDigests"] if d.startswith(docker_trusts_registry))
    engine.images.remove(remote, force=True)
    run("docker", "pull", remote, timeout=900)
    pulled = next(d for d in engine.images.get(remote).attrs["RepoDigests"] if d.startswith(docker_trusts_registry))
    assert pulled == pushed
    layers = requests.get(
        f"https://{docker_trusts_registry}/v2/team/multilayer/manifests/1",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        verify=str(stack.ca_file),
        auth=stack.login,
        timeout=30,
    ).json()["layers"]
    assert max(layer["size"] for layer in layers) > 200 * 1024 * 1024


def test_skopeo_copies_through_the_proxy(stack: LiveStack, docker_trusts_registry: str, tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    shutil.copy(stack.ca_file, certs / "ca.crt")
    destination = f"docker://{docker_trusts_registry}/skopeo/nginx:1"
    creds = user(stack)
    run(
        "skopeo",
        "copy",
        "--dest-cert-dir",
        str(certs),
        "--dest-creds",
        creds,
        "docker-daemon:private-registry-test/nginx:1.22",
        destination,
    )
    inspected = json.loads(run("skopeo", "inspect", "--cert-dir", str(certs), "--creds", creds, destination).stdout)
    run("skopeo", "copy", "--src-cert-dir", str(certs), "--src-creds", creds, destination, f"dir:{tmp_path / 'copy'}")
    copied = json.loads(run("skopeo", "inspect", f"dir:{tmp_path / 'copy'}").stdout)
    assert copied["Digest"] == inspected["Digest"]
    assert copied["Layers"] == inspected["Layers"]


# ---- change and removal ----


def container_ids(stack: LiveStack) -> dict[str, str]:
    return {role: stack.container(role).id for role in ("registry", "ui", "proxy")}


def test_data_survives_a_registry_change(
    stack: LiveStack, docker_trusts_registry: str, engine: docker.DockerClient, tmp_path: Path
) -> None:
    remote = f"{docker_trusts_registry}/team/survivor:1"
    engine.images.get("private-registry-test/nginx:1.22").tag(remote)
    run("docker", "push", remote, timeout=300)
    digest = next(d for d in engine.images.get(remote).attrs["RepoDigests"] if d.startswith(docker_trusts_registry))
    before = container_ids(stack)
    volume_before = engine.volumes.get("private-registry-live-registry-data").id

    with changed_stack(stack, tmp_path, registry={"logLevel": "debug"}) as changed_file:
        result = realizer.up(changed_file, engine)
        # The maintenance container holds the registry's config.yml too (garbage-collect reads it).
        assert sorted(result.replaced) == [
            "docker:index/container:Container::registry-distribution-container",
            "docker:index/container:Container::registry-maintenance-container",
        ]
        assert result.created == [] and result.deleted == []
        after = container_ids(stack)
        assert after["registry"] != before["registry"]
        assert (after["ui"], after["proxy"]) == (before["ui"], before["proxy"])
        assert engine.volumes.get("private-registry-live-registry-data").id == volume_before
        config = yaml.safe_load(stack.container("registry").exec_run(["cat", "/etc/docker/registry/config.yml"]).output)
        assert config["log"]["level"] == "debug"
        # nginx finds the new container (Docker DNS), and the image is still there by digest.
        engine.images.remove(remote, force=True)
        run("docker", "pull", digest, timeout=300)
        assert digest in engine.images.get(digest).attrs["RepoDigests"]


def test_a_second_stack_coexists_and_down_removes_it(
    stack: LiveStack, engine: docker.DockerClient, tmp_path: Path
) -> None:
    second = STACKS_DIR / "second.yaml"
    realizer.down(second, volumes=True, client=engine)
    outputs_file = tmp_path / "outputs.json"
    run(sys.executable, "-m", "harness", "up", "--config", str(second), "--outputs", str(outputs_file), timeout=300)
    outputs: dict[str, Any] = json.loads(outputs_file.read_text())
    label = {"label": f"{LIVE_STACK_LABEL}=second"}
    try:
        assert {c.name for c in engine.containers.list(filters=label)} == {
            "private-registry-second-registry",
            "private-registry-second-proxy",
            "private-registry-second-maintenance",
        }
        assert outputs["uiUrl"] == ""
        ca = tmp_path / "ca.crt"
        ca.write_text(outputs["caCertPem"])
        status, _, body = status_and_body(curl("https://127.0.0.1:29443/v2/", ca_file=ca).stdout)
        assert (status, body) == (200, "{}")
        assert engine.networks.get(stack.outputs["networkName"])  # the first stack is untouched
        # tls.profile modern: TLS 1.3 only, compliant with Mozilla's modern profile.
        scan = run(
            sys.executable,
            "-m",
            "sslyze",
            "--mozilla_config=modern",
            "--certinfo_ca_file",
            str(ca),
            "registry.second.test:29443{127.0.0.1}",
            check=False,
        )
        assert "OK - Compliant." in scan.stdout, scan.stdout[-3000:]
    finally:
        run(sys.executable, "-m", "harness", "down", "--config", str(second), timeout=300)
    assert engine.containers.list(all=True, filters=label) == []
    assert engine.networks.list(filters=label) == []
    assert sorted(v.name for v in engine.volumes.list(filters=label)) == [
        "private-registry-second-maintenance-flags",
        "private-registry-second-registry-data",
    ]
    run(sys.executable, "-m", "harness", "down", "--config", str(second), "--volumes", timeout=300)
    assert engine.volumes.list(filters=label) == []
