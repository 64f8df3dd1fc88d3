"""Pull-through mirrors on a live stack. The upstream is a registry the test starts itself, over TLS with its own CA,
on the stack's network as `upstream.mirror.test`; the mirrors reach it through the real `remoteUrl` path. Clients:
a second Docker daemon configured with the stack's `dockerDaemonJson` output, and skopeo with a
containers-registries.conf mirror entry."""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from harness import realizer
from harness.attached import joining, remove_attached
from harness.clients import run, wait_until
from harness.docker_provider import LIVE_STACK_LABEL
from harness.registry_api import RegistryClient
from tests.live.conftest import LiveStack, bring_up
from tests.live.second_daemon import second_daemon

pytestmark = pytest.mark.live

UPSTREAM_NAME = "upstream.mirror.test"
UPSTREAM_CONTAINER = "private-registry-mirrors-upstream"
UPSTREAM_SEED_PORT = 23510
HTTPS_PORT, HUB_MIRROR_PORT, INTERNAL_MIRROR_PORT = 24443, 24444, 24445
ACCOUNT = ("puller", "mirror-stack-password-0123")
UPSTREAM_CONFIG = """\
version: 0.1
log: {level: info, fields: {service: upstream}}
storage: {filesystem: {rootdirectory: /var/lib/registry}, delete: {enabled: true}}
http:
  addr: :5000
  tls: {certificate: /certs/upstream.crt, key: /certs/upstream.key}
"""


def make_ca_and_certificate(directory: Path) -> str:
    """A CA and a server certificate for UPSTREAM_NAME (and 127.0.0.1, for seeding); returns the CA's PEM."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Mirror test upstream CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, UPSTREAM_NAME)]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(UPSTREAM_NAME), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "upstream.crt").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (directory / "upstream.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    ca_pem = ca.public_bytes(serialization.Encoding.PEM).decode()
    (directory / "ca.crt").write_text(ca_pem)
    # A cert dir for skopeo holds the CA alone (it would take upstream.key for a client key).
    (directory / "trust").mkdir(exist_ok=True)
    (directory / "trust" / "ca.crt").write_text(ca_pem)
    (directory / "config.yml").write_text(UPSTREAM_CONFIG)
    return ca_pem


def stack_file(directory: Path, ca_pem: str, *, internal_password: str = "upstream-token-0001") -> Path:
    """The mirrors stack (stem `mirrors`): a Docker Hub mirror that is public (Docker daemons send no mirror login)
    and an `internal` mirror behind the accounts, both of the test's upstream."""
    config = {
        "private-registry:hostname": "127.0.0.1",
        "private-registry:httpsPort": HTTPS_PORT,
        "private-registry:httpPort": 0,
        "private-registry:registry": {
            "image": "private-registry-test/registry:2.8.2",
            "httpSecret": "mirrors-stack-test-secret-0123456789",
        },
        "private-registry:ui": {"flavor": "none"},
        "private-registry:proxy": {"image": "private-registry-test/nginx:1.22"},
        "private-registry:auth": {"users": {ACCOUNT[0]: ACCOUNT[1]}},
        "private-registry:gc": {"schedule": "none"},
        "private-registry:mirrors": [
            {
                "name": "dockerhub",
                "remoteUrl": f"https://{UPSTREAM_NAME}:5000",
                "port": HUB_MIRROR_PORT,
                "public": True,
                "remoteCaCertPem": ca_pem,
            },
            {
                "name": "internal",
                "remoteUrl": f"https://{UPSTREAM_NAME}:5000",
                "port": INTERNAL_MIRROR_PORT,
                "username": "mirror-bot",
                "password": internal_password,
                "remoteCaCertPem": ca_pem,
            },
        ],
    }
    path = directory / "mirrors.yaml"
    path.write_text(yaml.safe_dump({"config": config}))
    return path


@dataclass
class MirrorsStack:
    live: LiveStack
    upstream: docker.models.containers.Container
    upstream_ca: Path
    certs_dir: Path
    """ca.crt of the stack (for skopeo)."""
    tmp: Path

    def upstream_blob_gets(self, since: float) -> list[str]:
        """Blob downloads the upstream served since `since` (its access log)."""
        lines = self.upstream.logs(since=int(since)).decode().splitlines()
        return [
            line
            for line in lines
            if 'msg="response completed"' in line and "http.request.method=GET" in line and "/blobs/sha256:" in line
        ]

    def mirror(self, name: str) -> docker.models.containers.Container:
        return self.live.container(f"mirror-{name}")


def seed_upstream(engine: docker.DockerClient, tmp: Path, upstream_ca: Path) -> dict[str, str]:
    """Two-layer images from scratch pushed to the upstream (skopeo from the engine's images, verified TLS);
    returns reference -> manifest digest."""
    digests = {}
    for index, reference in enumerate(["library/hello:1", "team/app:1", "team/never:1", "library/later:1"]):
        context = tmp / f"image-{index}"
        context.mkdir()
        (context / "a.bin").write_bytes(f"{reference} a\n".encode() * 200_000)
        (context / "b.bin").write_bytes(f"{reference} b\n".encode() * 100_000)
        (context / "Dockerfile").write_text("FROM scratch\nCOPY a.bin /a.bin\nCOPY b.bin /b.bin\n")
        local = f"private-registry-mirrors/seed-{index}:1"
        engine.images.build(path=str(context), tag=local, pull=False, rm=True, labels={LIVE_STACK_LABEL: "mirrors"})
        destination = f"docker://127.0.0.1:{UPSTREAM_SEED_PORT}/{reference}"
        run("skopeo", "copy", "--dest-cert-dir", str(upstream_ca.parent), f"docker-daemon:{local}", destination)
        inspected = json.loads(run("skopeo", "inspect", "--cert-dir", str(upstream_ca.parent), destination).stdout)
        digests[reference] = inspected["Digest"]
    return digests


def start_upstream_registry(
    client: docker.DockerClient, certs: Path, name: str, port: int, labels: dict[str, str]
) -> docker.models.containers.Container:
    """A registry with TLS of its own CA (`make_ca_and_certificate` wrote `certs`), published on 127.0.0.1:`port`,
    once it answers: the upstream a mirror pulls through (a previous one of that name is removed first)."""
    remove_attached(client, name)
    upstream = client.containers.run(
        "private-registry-test/registry:2.8.2",
        ["/certs/config.yml"],
        name=name,
        detach=True,
        labels=labels,
        volumes={str(certs): {"bind": "/certs", "mode": "ro"}},
        ports={"5000/tcp": ("127.0.0.1", port)},
    )
    wait_until(lambda: run("curl", "-sf", "--cacert", str(certs / "ca.crt"),
                           f"https://127.0.0.1:{port}/v2/", check=False).returncode == 0,
               30, "the upstream answers")  # fmt: skip
    return upstream


@pytest.fixture(scope="module")
def mirrors_stack(
    engine: docker.DockerClient, test_images: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[MirrorsStack, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("mirrors")
    ca_pem = make_ca_and_certificate(tmp / "upstream")
    config_file = stack_file(tmp, ca_pem)
    realizer.down(config_file, volumes=True, client=engine)
    upstream = start_upstream_registry(
        engine, tmp / "upstream", UPSTREAM_CONTAINER, UPSTREAM_SEED_PORT, {LIVE_STACK_LABEL: "mirrors-upstream"}
    )
    digests = seed_upstream(engine, tmp, tmp / "upstream" / "trust" / "ca.crt")
    with joining(engine, upstream, "private-registry-mirrors-net", [UPSTREAM_NAME]):
        live = bring_up(config_file, engine, tmp)
    certs = tmp / "certs"
    certs.mkdir()
    (certs / "ca.crt").write_text(live.outputs["caCertPem"])
    yield MirrorsStack(live, upstream, tmp / "upstream" / "ca.crt", certs, tmp), digests
    remove_attached(engine, UPSTREAM_CONTAINER)
    realizer.down(config_file, volumes=True, client=engine)
    for image in engine.images.list(filters={"label": f"{LIVE_STACK_LABEL}=mirrors"}):
        engine.images.remove(image.id, force=True)


def skopeo_through_internal_mirror(stack: MirrorsStack, reference: str, destination: Path, timeout: int = 120) -> None:
    """skopeo as containers-registries.conf(5) configures it: the upstream's names, pulled from the mirror first,
    with the mirror's login in auth.json (the primary's credentials never go to a mirror)."""
    registries = stack.tmp / "registries.conf"
    registries.write_text(
        f'[[registry]]\nlocation = "{UPSTREAM_NAME}:5000"\n\n'
        f'[[registry.mirror]]\nlocation = "127.0.0.1:{INTERNAL_MIRROR_PORT}"\n'
    )
    authfile = stack.tmp / "auth.json"
    token = base64.b64encode(f"{ACCOUNT[0]}:{ACCOUNT[1]}".encode()).decode()
    authfile.write_text(json.dumps({"auths": {f"127.0.0.1:{INTERNAL_MIRROR_PORT}": {"auth": token}}}))
    run(
        "skopeo", "--registries-conf", str(registries), "copy", "--authfile", str(authfile),
        "--src-cert-dir", str(stack.certs_dir), f"docker://{UPSTREAM_NAME}:5000/{reference}", f"dir:{destination}",
        timeout=timeout,
    )  # fmt: skip


# ---- clients pull through the mirrors ----


def test_a_docker_daemon_pulls_docker_hub_names_through_the_mirror(
    mirrors_stack: tuple[MirrorsStack, dict[str, str]],
) -> None:
    stack, digests = mirrors_stack
    daemon_json = json.loads(stack.live.outputs["dockerDaemonJson"])
    assert daemon_json == {"registry-mirrors": [f"https://127.0.0.1:{HUB_MIRROR_PORT}"]}
    started = time.time() - 1
    with second_daemon(daemon_json) as client:
        client.docker("pull", "library/hello:1")
        # Registry 2.8 serves a first pull straight from the upstream and stores each blob with a second fetch
        # of its own, in the background: wait until those are done.
        settled: list[int] = []

        def upstream_quiet() -> bool:
            settled.append(len(stack.upstream_blob_gets(started)))
            return len(settled) >= 4 and len(set(settled[-4:])) == 1

        wait_until(upstream_quiet, 60, "the mirror has stored what the first pull fetched", every=1)
        first = stack.upstream_blob_gets(started)
        assert len(first) >= 2, "the first pull went to the upstream for its blobs"
        pulled = client.docker("image", "inspect", "--format", "{{json .RepoDigests}}", "hello:1").stdout
        assert digests["library/hello:1"].split(":")[1] in pulled
        client.docker("rmi", "hello:1")
        second_start = time.time()
        time.sleep(1.1)
        client.docker("pull", "library/hello:1")
        assert stack.upstream_blob_gets(second_start) == [], "the second pull fetched blobs from the upstream"
    mirror_log = stack.mirror("dockerhub").logs().decode()
    assert "/v2/library/hello/manifests/1" in mirror_log


def test_skopeo_pulls_another_upstream_through_its_mirror(
    mirrors_stack: tuple[MirrorsStack, dict[str, str]], tmp_path: Path
) -> None:
    stack, digests = mirrors_stack
    skopeo_through_internal_mirror(stack, "team/app:1", tmp_path / "app")
    manifest = (tmp_path / "app" / "manifest.json").read_bytes()
    assert "sha256:" + hashlib.sha256(manifest).hexdigest() == digests["team/app:1"]
    assert "/v2/team/app/manifests/1" in stack.mirror("internal").logs().decode()
    hosts = stack.live.outputs["containerdHostsToml"]
    assert set(hosts) == {"docker.io", f"{UPSTREAM_NAME}:5000"}
    assert f'[host."https://127.0.0.1:{INTERNAL_MIRROR_PORT}"]' in hosts[f"{UPSTREAM_NAME}:5000"]


def test_the_mirror_serves_what_it_holds_while_the_upstream_is_down(
    mirrors_stack: tuple[MirrorsStack, dict[str, str]], tmp_path: Path
) -> None:
    stack, _ = mirrors_stack
    skopeo_through_internal_mirror(stack, "team/app:1", tmp_path / "warm")
    stack.upstream.stop(timeout=5)
    try:
        skopeo_through_internal_mirror(stack, "team/app:1", tmp_path / "cached")
        started = time.monotonic()
        api = RegistryClient(f"https://127.0.0.1:{INTERNAL_MIRROR_PORT}", auth=ACCOUNT, verify=str(stack.live.ca_file))
        api.timeout = 60
        never = api.get_manifest("team/never", "1")
        assert never.status_code == 404, never.text
        assert never.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
        assert time.monotonic() - started < 30
    finally:
        stack.upstream.start()
        wait_until(lambda: _upstream_running(stack), 30, "the upstream is back")


def _upstream_running(stack: MirrorsStack) -> bool:
    stack.upstream.reload()
    return bool(stack.upstream.attrs["State"]["Running"])


def test_a_mirror_refuses_pushes_and_deletes_while_the_team_registry_takes_them(
    mirrors_stack: tuple[MirrorsStack, dict[str, str]],
) -> None:
    stack, _ = mirrors_stack
    mirror = RegistryClient(f"https://127.0.0.1:{INTERNAL_MIRROR_PORT}", auth=ACCOUNT, verify=str(stack.live.ca_file))
    push = mirror.start_upload("team/app")
    assert push.status_code == 405 and push.json()["errors"][0]["code"] == "UNSUPPORTED"
    manifest = mirror.get_manifest("team/app", "1")
    delete = mirror.request("DELETE", f"/v2/team/app/manifests/{manifest.headers['Docker-Content-Digest']}")
    assert delete.status_code == 405
    team = RegistryClient(f"https://127.0.0.1:{HTTPS_PORT}", auth=ACCOUNT, verify=str(stack.live.ca_file))
    digest = team.push_image("team/own", "1", [b"team registry layer" * 1000])
    assert team.get_manifest("team/own", digest).status_code == 200
    anonymous = RegistryClient(f"https://127.0.0.1:{INTERNAL_MIRROR_PORT}", verify=str(stack.live.ca_file))
    assert anonymous.get_manifest("team/app", "1").status_code == 401


# ---- the mirrors' own pitfalls ----


def test_the_cache_survives_a_change_of_the_upstream_credentials(
    mirrors_stack: tuple[MirrorsStack, dict[str, str]], tmp_path: Path
) -> None:
    stack, _ = mirrors_stack
    skopeo_through_internal_mirror(stack, "library/later:1", tmp_path / "before")
    old = stack.mirror("internal")
    ca_pem = stack.upstream_ca.read_text()
    changed = stack_file(tmp_path, ca_pem, internal_password="upstream-token-0002")
    realizer.up(changed, stack.live.client)
    try:
        new = stack.mirror("internal")
        assert new.id != old.id, "the new credentials replace the mirror's container"
        config = new.exec_run(["cat", "/etc/docker/registry/config.yml"]).output.decode()
        assert "upstream-token-0002" in config
        assert "upstream-token-0002" not in json.dumps(new.attrs["Config"]["Env"])
        stack.upstream.stop(timeout=5)
        try:
            skopeo_through_internal_mirror(stack, "library/later:1", tmp_path / "after")
        finally:
            stack.upstream.start()
            wait_until(lambda: _upstream_running(stack), 30, "the upstream is back")
    finally:
        realizer.up(stack.live.config_file, stack.live.client)


def test_a_damaged_expiry_schedule_does_not_keep_a_mirror_down(
    mirrors_stack: tuple[MirrorsStack, dict[str, str]], tmp_path: Path
) -> None:
    stack, _ = mirrors_stack
    mirror = stack.mirror("internal")
    state = "/var/lib/registry/scheduler-state.json"
    wait_until(lambda: mirror.exec_run(["test", "-s", state]).exit_code == 0, 60, "the schedule is written")
    mirror.exec_run(["sh", "-c", f"head -c 40 {state} > /tmp/cut && cat /tmp/cut > {state}"])
    mirror.restart(timeout=10)
    wait_until(lambda: _health(mirror) == "healthy", 90, "the mirror healthy after a restart")
    log = mirror.logs().decode()
    assert "was damaged" in log and "moved to" in log
    assert mirror.attrs["RestartCount"] == 0 or "panic" not in log.split("was damaged")[-1]
    skopeo_through_internal_mirror(stack, "team/app:1", tmp_path / "after-restart")


def _health(container: docker.models.containers.Container) -> str:
    container.reload()
    return str(container.attrs["State"].get("Health", {}).get("Status", ""))
