"""`dockerHost`: one stack deployed to another Docker engine, over tcp:// with client TLS.

The other engine is a second dockerd on this machine (tests/live/second_daemon.py) listening on
tcp://127.0.0.1:DAEMON_PORT with --tlsverify, its CA, server and client certificates made here with
cryptography. The stack's test images are copied into it (`docker save | docker load`: it cannot pull either).
The program gets the client certificate and key through its config (the key as a secret), makes an explicit
Docker provider, and the realizer drives that engine through it: the stack's containers run there and not on
the engine under test.
"""

from __future__ import annotations

import datetime
import ipaddress
import subprocess
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import requests
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from harness import realizer
from harness.docker_provider import LIVE_STACK_LABEL
from harness.registry_api import RegistryClient, sha256_digest
from tests.live.conftest import LiveStack, bring_up
from tests.live.second_daemon import second_daemon

pytestmark = pytest.mark.live

DAEMON_PORT = 17376
POOL = "10.214.0.0/16"
HTTPS_PORT = 17443
IMAGES = ("private-registry-test/registry:2.8.2", "private-registry-test/nginx:1.22")
ACCOUNT = ("ops", "docker-host-password-0123")


def _pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def make_tls(directory: Path) -> dict[str, str]:
    """A CA, the daemon's server certificate (127.0.0.1) and a client certificate, as `dockerd --tlsverify`
    and a Docker client use them; returns the PEMs by name."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "docker-host test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip

    def leaf(name: str, usage: x509.ObjectIdentifier, ip: bool) -> tuple[str, str]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )  # fmt: skip
        if ip:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
            )
        return _pem(builder.sign(ca_key, hashes.SHA256())), _key_pem(key)

    server_cert, server_key = leaf("127.0.0.1", ExtendedKeyUsageOID.SERVER_AUTH, ip=True)
    client_cert, client_key = leaf("private-registry", ExtendedKeyUsageOID.CLIENT_AUTH, ip=False)
    pems = {"ca": _pem(ca), "server-cert": server_cert, "server-key": server_key}
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in pems.items():
        (directory / f"{name}.pem").write_text(text)
        (directory / f"{name}.pem").chmod(0o600)
    return {**pems, "client-cert": client_cert, "client-key": client_key}


def stack_file(tmp: Path, tls: dict[str, str]) -> Path:
    document = {
        "config": {
            "private-registry:hostname": "127.0.0.1",
            "private-registry:httpsPort": HTTPS_PORT,
            "private-registry:httpPort": 0,
            "private-registry:registry": {
                "image": IMAGES[0],
                "httpSecret": "docker-host-test-secret-0123456789",
            },
            "private-registry:ui": {"flavor": "none"},
            "private-registry:proxy": {"image": IMAGES[1]},
            "private-registry:auth": {"users": {ACCOUNT[0]: ACCOUNT[1]}},
            "private-registry:gc": {"schedule": "none"},
            "private-registry:dockerHost": {
                "host": f"tcp://127.0.0.1:{DAEMON_PORT}",
                "tls": {"caPem": tls["ca"], "certPem": tls["client-cert"], "keyPem": tls["client-key"]},
            },
        }
    }
    path = tmp / "dockerhost.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.fixture(scope="module")
def remote_stack(
    engine: docker.DockerClient, test_images: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveStack, docker.DockerClient]]:
    tmp = tmp_path_factory.mktemp("docker-host")
    tls = make_tls(tmp / "daemon-tls")
    daemon_json = {
        # Its networks from a pool of their own: the engine under test allocates from the default pools, and
        # two bridges with one subnet on this host would take each other's routes.
        "default-address-pools": [{"base": POOL, "size": 24}],
        "tlsverify": True,
        "tlscacert": str(tmp / "daemon-tls" / "ca.pem"),
        "tlscert": str(tmp / "daemon-tls" / "server-cert.pem"),
        "tlskey": str(tmp / "daemon-tls" / "server-key.pem"),
    }
    # The second daemon runs without iptables (it would fight the first over the same chains); the first's
    # FORWARD policy drops bridged traffic it did not allow, so container-to-container traffic inside the
    # second daemon's pool is allowed in DOCKER-USER, the chain Docker keeps for rules of one's own.
    rule = ["DOCKER-USER", "-s", POOL, "-d", POOL, "-j", "ACCEPT"]
    subprocess.run(["iptables", "-I", *rule], check=True)
    try:
        yield from _remote_stack(engine, tmp, tls, daemon_json)
    finally:
        subprocess.run(["iptables", "-D", *rule], check=False)


def _remote_stack(
    engine: docker.DockerClient, tmp: Path, tls: dict[str, str], daemon_json: dict[str, object]
) -> Iterator[tuple[LiveStack, docker.DockerClient]]:
    with second_daemon(daemon_json, extra_args=("--host", f"tcp://127.0.0.1:{DAEMON_PORT}")) as daemon:
        saved = subprocess.run(["docker", "save", *IMAGES], capture_output=True, check=True, timeout=300)
        loaded = subprocess.run(
            ["docker", "-H", f"unix://{daemon.socket}", "load"], input=saved.stdout, capture_output=True, timeout=300
        )
        assert loaded.returncode == 0, loaded.stderr.decode()
        remote = docker.DockerClient(base_url=f"unix://{daemon.socket}")
        config_file = stack_file(tmp, tls)
        try:
            yield bring_up(config_file, engine, tmp), remote
        finally:
            realizer.down(config_file, volumes=True, client=engine)
            remote.close()


def test_the_stack_runs_on_the_other_engine_only(
    remote_stack: tuple[LiveStack, docker.DockerClient], engine: docker.DockerClient
) -> None:
    _, remote = remote_stack
    label = {"label": f"{LIVE_STACK_LABEL}=dockerhost"}
    there = sorted(container.name for container in remote.containers.list(filters=label))
    assert there == [
        "private-registry-dockerhost-maintenance",
        "private-registry-dockerhost-proxy",
        "private-registry-dockerhost-registry",
    ]
    assert engine.containers.list(all=True, filters=label) == []
    assert remote.networks.list(names=["private-registry-dockerhost-net"])
    assert not engine.networks.list(names=["private-registry-dockerhost-net"])


def test_the_remote_registry_serves_push_and_pull(remote_stack: tuple[LiveStack, docker.DockerClient]) -> None:
    live, _ = remote_stack
    response = requests.get(f"https://127.0.0.1:{HTTPS_PORT}/v2/", auth=ACCOUNT, verify=str(live.ca_file), timeout=30)
    assert response.status_code == 200 and response.json() == {}
    api = RegistryClient(f"https://127.0.0.1:{HTTPS_PORT}", auth=ACCOUNT, verify=str(live.ca_file))
    layer = b"remote layer\n" * 100_000
    digest = api.push_image("remote/app", "1", [layer])
    assert sha256_digest(api.get_manifest("remote/app", digest).content) == digest
    assert api.get_blob("remote/app", sha256_digest(layer)).content == layer
