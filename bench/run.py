"""Proxy throughput against the registry itself, in one run on one machine.

    venv/bin/python -m bench [--quick] [--blob-mb 512] [--repeat 3] [--out bench/results/latest.json]

Brings up bench/bench.yaml with the realizer, then measures the same work against these targets, interleaved
(one round of every target, then the next round), reporting the median of the rounds:

  direct        the registry container itself, at its address on the stack's network (plain HTTP, no proxy)
  ours          our nginx, as the program renders it (fast blob downloads on: files sent from the data volume),
                at its published host port, so through Docker's userland proxy (docker-proxy)
  ours-container  the same nginx (the stack's proxy container) at its address on the stack's network, port 443:
                no docker-proxy, like direct (curl --resolve registry.bench.test:443:<container IP>)
  ours-relayed  our nginx rendered with blob_files_dir=None: every download relayed (the ablation)
  ours-plain    our nginx's plain-HTTP port (registryPort), what used to be the registry's own port
  ours-h2       our nginx's exact config with HTTP/2 offered too (what we chose not to ship)
  recipe        nginx with the original recipe's site config (bench/templates/recipe.conf.j2)
  static        the same nginx image serving the blob as a static file over TLS (the TLS limit)
  mirror        the stack's pull-through mirror of a plain registry the bench starts on the stack's network

Figures: blob download, monolithic upload (PUT) and chunked upload (PATCH with chunked transfer encoding)
of a random, pre-compressed-like blob, with curl over HTTP/1.1 and HTTP/2 (where a target offers it); GET
latency of a small (config-sized) blob; a cached layer through the mirror against the same layer from the
team registry; a skopeo copy of a fresh multi-layer image up and down; 8 concurrent clients pushing and
pulling distinct images (httpx, HTTP/1.1 and HTTP/2) with manifest GET latency under that load; and the
protocol docker and skopeo negotiate, read from nginx's access log. Only ratios inside one run mean anything.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import tarfile
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import httpx
import jinja2

from components.rendering import REGISTRY_DEBUG_PORT, REGISTRY_PORT, MirrorSite, ProxyConfig, render_nginx_conf
from components.reverse_proxy import (
    BLOB_FILES_DIR,
    CERTIFICATE_KEY_PATH,
    CERTIFICATE_PATH,
    HEALTH_PORT,
    MAINTENANCE_FLAGS_DIR,
    METRICS_INTERNAL_PORT,
    MIRROR_FILES_DIR,
    MIRROR_FIRST_INTERNAL_PORT,
    PLAIN_REGISTRY_PORT,
    SITE_CONFIG_PATH,
)
from harness import realizer
from harness.clients import hosts_entry
from harness.docker_provider import LIVE_STACK_LABEL
from harness.program import stack_config
from harness.registry_api import (
    CONFIG_V1,
    LAYER_GZIP,
    MANIFEST_V2,
    RegistryClient,
    location_path,
    sha256_digest,
)

HERE = Path(__file__).resolve().parent
STACK = HERE / "bench.yaml"
NGINX_IMAGE = "private-registry-test/nginx:1.22"
REGISTRY_IMAGE = "private-registry-test/registry:2.8.2"
BENCH_HOST = "registry.bench.test"
PREFIX = "private-registry-bench"
NETWORK = f"{PREFIX}-net"
# The mirror's upstream: a plain registry the bench starts, on the stack's network under this name (bench.yaml).
UPSTREAM_NAME = "upstream.bench.test"
UPSTREAM_CONTAINER = "bench-upstream"
UPSTREAM_CONFIG = """\
version: 0.1
log: {level: info, fields: {service: bench-upstream}}
storage: {filesystem: {rootdirectory: /var/lib/registry}}
http: {addr: ":5000"}
"""
MB = 1024 * 1024


@dataclass(frozen=True)
class Target:
    name: str
    base: str
    http2: bool
    """Whether the target offers HTTP/2 (ALPN h2)."""
    proxy_container: str | None
    """The nginx container whose access log shows the protocol clients negotiated."""
    resolve: str | None = None
    """curl's --resolve entry (host:port:address) when the base's host name must reach a container's address."""

    @property
    def protocols(self) -> tuple[str, ...]:
        return ("h1", "h2") if self.http2 else ("h1",)

    @property
    def curl_args(self) -> list[str]:
        return ["--resolve", self.resolve] if self.resolve else []


@dataclass(frozen=True)
class Bench:
    targets: dict[str, Target]
    ca: Path
    upstream_seed: str
    """The mirror's upstream, published on loopback for seeding (plain HTTP)."""
    relayed_site_matches_program: bool
    """Whether the bench's own rendering of our site (fast path on) is byte for byte the program's: then the
    ours-relayed site differs from ours in blob_files_dir alone."""


# ---------------------------------------------------------------- setup


def _put_files(container: Any, files: dict[str, bytes]) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path, data in files.items():
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode = len(data), 0o644
            archive.addfile(info, io.BytesIO(data))
    container.put_archive("/", buffer.getvalue())


def _remove(client: docker.DockerClient, name: str) -> None:
    for container in client.containers.list(all=True, filters={"name": f"^{name}$"}):
        container.remove(force=True)


def _nginx(
    client: docker.DockerClient,
    name: str,
    port: int,
    network: str,
    site: str,
    cert: bytes,
    key: bytes,
    volumes: dict[str, dict[str, str]] | None = None,
) -> None:
    """An extra nginx beside the stack's (labelled with the bench stack, so `down` removes it)."""
    _remove(client, name)
    container = client.containers.create(
        NGINX_IMAGE,
        name=name,
        ports={"443/tcp": ("127.0.0.1", port)},
        network=network,
        labels={LIVE_STACK_LABEL: "bench"},
        volumes=volumes,
    )
    _put_files(
        container,
        {
            # In place of the image's default site, as the program delivers ours.
            SITE_CONFIG_PATH: site.encode(),
            "/etc/nginx/tls/server.crt": cert,
            "/etc/nginx/tls/server.key": key,
        },
    )
    container.start()


def _read_file(container: Any, path: str) -> bytes:
    stream, _ = container.get_archive(path)
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
        member = archive.getmembers()[0]
        extracted = archive.extractfile(member)
        assert extracted is not None
        return extracted.read()


def _wait_for(url: str, ca: Path, seconds: int = 60, extra: list[str] | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        command = ["curl", "-s", "-o", "/dev/null", "--cacert", str(ca), *(extra or []), url]
        if subprocess.run(command, check=False).returncode == 0:
            return
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {seconds}s")


def _with_http2(site: str, public_url: str, own_url: str) -> str:
    """Our rendered site with HTTP/2 offered; upload Locations kept on this container (as for the recipe)."""
    site = site.replace("listen 443 ssl", "listen 443 ssl http2", 1)
    return _own_locations(site, public_url, own_url)


def _own_locations(site: str, public_url: str, own_url: str) -> str:
    """Upload Locations (the registry's http.host is our proxy's URL) rewritten to this container's port."""
    redirect = f"proxy_pass $registry_upstream;\n        proxy_redirect {public_url}/ {own_url}/;"
    return site.replace("proxy_pass $registry_upstream;", redirect)


def _mirrors(config: dict[str, str]) -> list[dict[str, Any]]:
    """bench.yaml's mirrors (structured config values come as JSON, as the Pulumi CLI hands them over)."""
    mirrors: list[dict[str, Any]] = json.loads(config.get("private-registry:mirrors", "[]"))
    return mirrors


def _our_site(config: dict[str, str], blob_files_dir: str | None) -> str:
    """Our site as the program renders it for bench.yaml, with or without the fast blob downloads."""
    mirrors = tuple(
        MirrorSite(
            name=mirror["name"],
            remote_url=mirror["remoteUrl"],
            listen=MIRROR_FIRST_INTERNAL_PORT + index,
            server_name="_",
            upstream=f"mirror-{mirror['name']}:{REGISTRY_PORT}",
            metrics_upstream=f"mirror-{mirror['name']}:{REGISTRY_DEBUG_PORT}",
            # With the fast path, cached blobs come from the mirror's volume too (components/reverse_proxy.py).
            blob_files_dir=f"{MIRROR_FILES_DIR}/{mirror['name']}" if blob_files_dir else None,
        )
        for index, mirror in enumerate(_mirrors(config))
    )
    return render_nginx_conf(
        ProxyConfig(
            server_name=config["private-registry:hostname"],
            endpoint=f"{config['private-registry:hostname']}:{config['private-registry:httpsPort']}",
            redirect_http=False,
            registry_upstream=f"registry:{REGISTRY_PORT}",
            ui_upstream=None,
            certificate_path=CERTIFICATE_PATH,
            certificate_key_path=CERTIFICATE_KEY_PATH,
            health_port=HEALTH_PORT,
            plain_registry_port=PLAIN_REGISTRY_PORT,
            maintenance_flags_dir=MAINTENANCE_FLAGS_DIR,
            metrics_port=METRICS_INTERNAL_PORT,
            mirrors=mirrors,
            blob_files_dir=blob_files_dir,
        )
    )


def _start_upstream(client: docker.DockerClient, seed_port: int) -> threading.Thread:
    """The mirror's upstream, a plain registry. Registry 2.8 in proxy mode will not start while its upstream is
    unreachable, so the upstream joins the stack's network as soon as `up` creates it (a thread)."""
    _remove(client, UPSTREAM_CONTAINER)
    upstream = client.containers.create(
        REGISTRY_IMAGE,
        ["/bench/config.yml"],
        name=UPSTREAM_CONTAINER,
        # Not the stack's label: `up` removes the stack's objects it does not know before it starts.
        labels={LIVE_STACK_LABEL: "bench-upstream"},
        ports={"5000/tcp": ("127.0.0.1", seed_port)},
    )
    _put_files(upstream, {"/bench/config.yml": UPSTREAM_CONFIG.encode()})
    upstream.start()

    def join_the_network() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            found = client.networks.list(names=[NETWORK])
            if found:
                found[0].connect(upstream, aliases=[UPSTREAM_NAME])
                return
            time.sleep(0.1)

    joiner = threading.Thread(target=join_the_network, daemon=True)
    joiner.start()
    return joiner


def setup(client: docker.DockerClient, workdir: Path, blob: bytes) -> Bench:
    config = stack_config(STACK)
    https_port = int(config["private-registry:httpsPort"])
    plain_port = int(config["private-registry:registryPort"])
    mirror_port = int(_mirrors(config)[0]["port"])
    seed_port = plain_port + 10
    joiner = _start_upstream(client, seed_port)
    result = realizer.up(STACK, client)
    joiner.join(timeout=30)
    ca = workdir / "ca.crt"
    ca.write_text(result.outputs["caCertPem"])
    proxy = client.containers.get(f"{PREFIX}-proxy")
    registry = client.containers.get(f"{PREFIX}-registry")
    cert, key = _read_file(proxy, CERTIFICATE_PATH), _read_file(proxy, CERTIFICATE_KEY_PATH)
    site = _read_file(proxy, SITE_CONFIG_PATH).decode()
    network = result.outputs["networkName"]
    # The true "direct": the registry at its address on the stack's network, which the host routes to
    # (no published port, no docker-proxy, no nginx).
    registry_ip = registry.attrs["NetworkSettings"]["Networks"][network]["IPAddress"]
    # Our nginx the same way (ours-container): the proxy container's address, its TLS port, the certificate's name.
    proxy_ip = proxy.attrs["NetworkSettings"]["Networks"][network]["IPAddress"]
    data_volume = next(m["Name"] for m in registry.attrs["Mounts"] if m["Destination"] == BLOB_FILES_DIR)
    blob_files = {data_volume: {"bind": BLOB_FILES_DIR, "mode": "ro"}}
    public_url = result.outputs["registryUrl"]
    server_name = config["private-registry:hostname"]
    templates = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), undefined=jinja2.StrictUndefined)
    static_dir = workdir / "static"
    static_dir.mkdir()
    (static_dir / "blob").write_bytes(blob)
    os.chmod(static_dir, 0o755)
    own = {name: f"https://{BENCH_HOST}:{https_port + offset}" for offset, name in enumerate(
        ("ours", "recipe", "static", "ours-h2", "ours-relayed"))}  # fmt: skip
    recipe = templates.get_template("recipe.conf.j2").render(
        server_name=server_name, public_url=public_url, own_url=own["recipe"]
    )
    _nginx(client, "bench-recipe", https_port + 1, network, recipe, cert, key)
    static = templates.get_template("static.conf.j2").render(server_name=server_name)
    _nginx(client, "bench-static", https_port + 2, network, static, cert, key,
           {str(static_dir): {"bind": "/srv/static", "mode": "ro"}})  # fmt: skip
    ours_h2 = _with_http2(site, public_url, own["ours-h2"])
    _nginx(client, "bench-ours-h2", https_port + 3, network, ours_h2, cert, key, blob_files)
    relayed = _own_locations(_our_site(config, None), public_url, own["ours-relayed"])
    _nginx(client, "bench-ours-relayed", https_port + 4, network, relayed, cert, key)
    targets = [
        Target("direct", f"http://{registry_ip}:5000", False, None),
        Target("ours", own["ours"], False, f"{PREFIX}-proxy"),
        Target("ours-container", f"https://{BENCH_HOST}", False, f"{PREFIX}-proxy", f"{BENCH_HOST}:443:{proxy_ip}"),
        Target("ours-relayed", own["ours-relayed"], False, "bench-ours-relayed"),
        Target("ours-plain", f"http://127.0.0.1:{plain_port}", False, f"{PREFIX}-proxy"),
        Target("ours-h2", own["ours-h2"], True, "bench-ours-h2"),
        Target("recipe", own["recipe"], False, "bench-recipe"),
        Target("static", own["static"], True, "bench-static"),
        Target("mirror", f"https://{BENCH_HOST}:{mirror_port}", False, f"{PREFIX}-proxy"),
    ]
    for target in targets:
        url = f"{target.base}/v2/" if target.name != "static" else f"{target.base}/static/blob"
        _wait_for(url, ca, extra=target.curl_args)
    _wait_for(f"http://127.0.0.1:{seed_port}/v2/", ca)
    return Bench(
        targets={target.name: target for target in targets},
        ca=ca,
        upstream_seed=f"http://127.0.0.1:{seed_port}",
        relayed_site_matches_program=_our_site(config, BLOB_FILES_DIR) == site,
    )


# ---------------------------------------------------------------- curl figures


def _curl(args: list[str], ca: Path, protocol: str) -> tuple[float, str]:
    """Run curl; return (bytes per second of the transfer, HTTP version negotiated)."""
    flag = "--http2" if protocol == "h2" else "--http1.1"
    out = subprocess.run(
        ["curl", "-sS", "--fail", flag, "--cacert", str(ca), "-o", "/dev/null", "-w", "%{speed_download} %{speed_upload} %{http_version}", *args],
        capture_output=True, text=True, timeout=900, check=True,
    )  # fmt: skip
    down, up, version = out.stdout.split()
    return max(float(down), float(up)), version


def _upload_url(base: str, ca: Path, repo: str, extra: list[str] | None = None) -> str:
    if extra:  # the host name must reach a container's address (--resolve): curl starts the upload too
        out = subprocess.run(
            ["curl", "-sS", "--fail", "--http1.1", "--cacert", str(ca), *extra, "-X", "POST", "-o", "/dev/null",
             "-w", "%header{location}", f"{base}/v2/{repo}/blobs/uploads/"],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        return base + location_path(out.stdout.strip())
    client = RegistryClient(base, verify=str(ca))
    started = client.start_upload(repo)
    started.raise_for_status()
    return base + location_path(started.headers["Location"])


def _put_blob(
    base: str, ca: Path, repo: str, blob_file: Path, digest: str, protocol: str = "h1", extra: list[str] | None = None
) -> tuple[float, str]:
    put_url = _upload_url(base, ca, repo, extra) + f"&digest={digest}"
    return _curl(
        [*(extra or []), "-X", "PUT", "-T", str(blob_file), "-H", "Content-Type: application/octet-stream", put_url],
        ca,
        protocol,
    )


def _median(values: list[float]) -> float:
    return round(statistics.median(values) / MB, 1)


CURL_TARGETS = ("direct", "ours", "ours-container", "ours-relayed", "ours-plain", "ours-h2", "recipe", "static")


def curl_figures(bench: Bench, blob_file: Path, digest: str, repeat: int) -> dict[str, Any]:
    """Download, monolithic and chunked upload of the big blob; rounds interleaved across targets."""
    runs: dict[tuple[str, str, str], list[float]] = {}
    versions: dict[tuple[str, str], set[str]] = {}
    for index in range(repeat):
        for target in (bench.targets[name] for name in CURL_TARGETS):
            for protocol in target.protocols:
                measured: list[tuple[str, tuple[float, str]]] = []
                if target.name == "static":
                    measured.append(("download", _curl([f"{target.base}/static/blob"], bench.ca, protocol)))
                else:
                    repo = f"bench/{target.name}-{protocol}-{index}"
                    extra = target.curl_args
                    measured.append(
                        (
                            "upload_monolithic",
                            _put_blob(target.base, bench.ca, repo, blob_file, digest, protocol, extra),
                        )
                    )
                    patch_url = _upload_url(target.base, bench.ca, repo + "-chunked", extra)
                    measured.append(("upload_chunked", _curl(
                        [*extra, "-X", "PATCH", "-T", str(blob_file), "-H", "Content-Type: application/octet-stream", "-H", "Transfer-Encoding: chunked", patch_url],
                        bench.ca, protocol,
                    )))  # fmt: skip
                    url = f"{target.base}/v2/{repo}/blobs/{digest}"
                    measured.append(("download", _curl([*extra, url], bench.ca, protocol)))
                for figure, (speed, version) in measured:
                    runs.setdefault((figure, target.name, protocol), []).append(speed)
                    versions.setdefault((target.name, protocol), set()).add(version)
    figures: dict[str, Any] = {}
    for (figure, target_name, protocol), values in runs.items():
        figures.setdefault(figure, {}).setdefault(target_name, {})[protocol] = {
            "MBps": _median(values),
            "runs_MBps": [round(v / MB, 1) for v in values],
            "negotiated": sorted(versions[(target_name, protocol)]),
        }
    return figures


# ---------------------------------------------------------------- small blobs: the cost of the subrequest


def _registry_methods(registry: Any, since: int) -> list[str]:
    """The methods of the blob requests the registry logged since `since` (its access log)."""
    methods = []
    for line in registry.logs(since=since).decode(errors="replace").splitlines():
        if 'msg="response completed"' in line and "/blobs/sha256:" in line and "http.request.method=" in line:
            methods.append(line.split("http.request.method=", 1)[1].split()[0].strip('"'))
    return sorted(methods)


def small_blob_figures(client: docker.DockerClient, bench: Bench, samples: int) -> dict[str, Any]:
    """GET of a config-sized blob (4 KB) on a kept-alive HTTP/1.1 connection, interleaved: direct, through the
    fast path, relayed. Also what the registry saw of one GET each way (HEAD for the fast path, GET relayed)."""
    blob = os.urandom(4096)
    digest = sha256_digest(blob)
    repo = "bench/small"
    with httpx.Client(verify=str(bench.ca)) as uploader:
        _upload(uploader, bench.targets["ours"].base, repo, blob)
    names = ("direct", "ours", "ours-relayed")
    clients = {name: httpx.Client(verify=str(bench.ca), timeout=60) for name in names}
    latencies: dict[str, list[float]] = {name: [] for name in names}
    try:
        for name in names:  # connections opened, TLS done
            clients[name].get(f"{bench.targets[name].base}/v2/{repo}/blobs/{digest}").raise_for_status()
        for _ in range(samples):
            for name in names:
                started = time.perf_counter()
                response = clients[name].get(f"{bench.targets[name].base}/v2/{repo}/blobs/{digest}")
                elapsed = time.perf_counter() - started
                response.raise_for_status()
                assert response.content == blob
                latencies[name].append(elapsed)
        registry = client.containers.get(f"{PREFIX}-registry")
        registry_saw = {}
        for name in ("ours", "ours-relayed"):
            time.sleep(1.1 - time.time() % 1)  # a fresh second: docker's `since` counts whole seconds
            since = int(time.time())
            clients[name].get(f"{bench.targets[name].base}/v2/{repo}/blobs/{digest}").raise_for_status()
            time.sleep(1.0)
            registry_saw[name] = _registry_methods(registry, since)
    finally:
        for http in clients.values():
            http.close()
    figures: dict[str, Any] = {"blob_bytes": len(blob), "samples": samples, "registry_saw_for_one_get": registry_saw}
    for name, values in latencies.items():
        ordered = sorted(values)
        figures[name] = {
            "p50_ms": round(1000 * ordered[len(ordered) // 2], 2),
            "p95_ms": round(1000 * ordered[int(len(ordered) * 0.95)], 2),
        }
    return figures


# ---------------------------------------------------------------- mirror


def _upstream_blob_gets(bench_client: docker.DockerClient, since: int) -> int:
    upstream = bench_client.containers.get(UPSTREAM_CONTAINER)
    lines = upstream.logs(since=since).decode(errors="replace").splitlines()
    return sum(
        1
        for line in lines
        if 'msg="response completed"' in line and "http.request.method=GET" in line and "/blobs/sha256:" in line
    )


def _wait_for_mirror_store(mirror: Any, reference: str, seconds: int = 300) -> None:
    """Registry 2.8 stores a fetched blob in the background, after the first pull has been served; until then
    every pull fetches from the upstream again. Storing done, it schedules the blob's expiry (a log line)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if f"Adding new scheduler entry for {reference}" in mirror.logs().decode(errors="replace"):
            return
        time.sleep(0.5)
    raise RuntimeError(f"the mirror did not store {reference} within {seconds}s")


def mirror_figures(
    client: docker.DockerClient, bench: Bench, blob_file: Path, digest: str, team_repo: str, repeat: int
) -> dict[str, Any]:
    """The big blob as a layer of the mirror's upstream: pulled once through the mirror (fetched and cached),
    then the cached layer through the mirror against the same layer from the team registry, interleaved."""
    repo = "bench/mirrored"
    _put_blob(bench.upstream_seed, bench.ca, repo, blob_file, digest)
    mirror = bench.targets["mirror"]
    first, _ = _curl([f"{mirror.base}/v2/{repo}/blobs/{digest}"], bench.ca, "h1")
    _wait_for_mirror_store(client.containers.get(f"{PREFIX}-mirror-upstream"), f"{repo}@{digest}")
    time.sleep(1.1 - time.time() % 1)  # a fresh second: docker's `since` counts whole seconds
    since = int(time.time())
    sources = {
        "mirror": f"{mirror.base}/v2/{repo}/blobs/{digest}",
        "ours": f"{bench.targets['ours'].base}/v2/{team_repo}/blobs/{digest}",
        "ours-relayed": f"{bench.targets['ours-relayed'].base}/v2/{team_repo}/blobs/{digest}",
    }
    runs: dict[str, list[float]] = {name: [] for name in sources}
    for _ in range(repeat):
        for name, url in sources.items():
            runs[name].append(_curl([url], bench.ca, "h1")[0])
    time.sleep(1.0)
    figures: dict[str, Any] = {
        "first_pull_MBps": round(first / MB, 1),
        "upstream_blob_gets_while_measuring": _upstream_blob_gets(client, since),
    }
    for name, values in runs.items():
        figures[name] = {"MBps": _median(values), "runs_MBps": [round(v / MB, 1) for v in values]}
    figures["mirror/ours"] = round(figures["mirror"]["MBps"] / figures["ours"]["MBps"], 2)
    figures["mirror/ours-relayed"] = round(figures["mirror"]["MBps"] / figures["ours-relayed"]["MBps"], 2)
    return figures


# ---------------------------------------------------------------- skopeo


def _dir_image(path: Path, layers: int, layer_mb: int) -> int:
    """A fresh multi-layer image in skopeo's dir: layout (random layers: nothing to skip, nothing to squeeze)."""
    path.mkdir(parents=True)
    (path / "version").write_text("Directory Transport Version: 1.1\n")
    descriptors, total = [], 0
    for _ in range(layers):
        data = os.urandom(layer_mb * MB)
        digest = sha256_digest(data)
        (path / digest[7:]).write_bytes(data)
        descriptors.append({"mediaType": LAYER_GZIP, "size": len(data), "digest": digest})
        total += len(data)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [d["digest"] for d in descriptors]},
        }
    ).encode()
    (path / sha256_digest(config)[7:]).write_bytes(config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_V2,
        "config": {"mediaType": CONFIG_V1, "size": len(config), "digest": sha256_digest(config)},
        "layers": descriptors,
    }
    (path / "manifest.json").write_text(json.dumps(manifest))
    return total


def _timed_copy(source: str, destination: str, tls: list[str]) -> float:
    started = time.monotonic()
    subprocess.run(["skopeo", "copy", "-q", *tls, source, destination], check=True, timeout=900)
    return time.monotonic() - started


SKOPEO_TARGETS = ("ours", "ours-relayed", "ours-h2", "recipe")


def skopeo_figures(bench: Bench, workdir: Path, layers: int, layer_mb: int) -> dict[str, Any]:
    # Not direct: the registry sends upload Locations to http.host (our proxy), so skopeo cannot stay direct.
    certs = workdir / "skopeo-certs"
    certs.mkdir(exist_ok=True)
    shutil.copy(bench.ca, certs / "ca.crt")
    figures: dict[str, Any] = {}
    for target in (bench.targets[name] for name in SKOPEO_TARGETS):
        source = workdir / f"skopeo-{target.name}"
        size = _dir_image(source, layers, layer_mb)
        remote = f"docker://{target.base.split('://', 1)[1]}/bench/skopeo-{target.name}:1"
        up = size / _timed_copy(f"dir:{source}", remote, ["--dest-cert-dir", str(certs)])
        shutil.rmtree(source)
        down = size / _timed_copy(remote, f"dir:{source}-back", ["--src-cert-dir", str(certs)])
        shutil.rmtree(f"{source}-back")
        figures[target.name] = {"upload": {"MBps": round(up / MB, 1)}, "download": {"MBps": round(down / MB, 1)}}
    return figures


# ---------------------------------------------------------------- concurrency


def _upload(client: httpx.Client, base: str, repo: str, data: bytes) -> str:
    """POST + monolithic PUT. The digest is appended to the upload URL: httpx's params= would drop _state."""
    digest = sha256_digest(data)
    started = client.post(f"{base}/v2/{repo}/blobs/uploads/")
    started.raise_for_status()
    path = location_path(started.headers["Location"])
    separator = "&" if "?" in path else "?"
    put = client.put(
        f"{base}{path}{separator}digest={digest}", content=data, headers={"Content-Type": "application/octet-stream"}
    )
    put.raise_for_status()
    return digest


def _push_pull(client: httpx.Client, base: str, repo: str, layer_mb: int) -> int:
    """Push a one-layer image and pull its layer back; return the bytes moved."""
    data = os.urandom(layer_mb * MB)
    digest = _upload(client, base, repo, data)
    config = b'{"architecture":"amd64","os":"linux"}'
    config_digest = _upload(client, base, repo, config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_V2,
        "config": {"mediaType": CONFIG_V1, "size": len(config), "digest": config_digest},
        "layers": [{"mediaType": LAYER_GZIP, "size": len(data), "digest": digest}],
    }
    client.put(
        f"{base}/v2/{repo}/manifests/1", content=json.dumps(manifest), headers={"Content-Type": MANIFEST_V2}
    ).raise_for_status()
    pulled = client.get(f"{base}/v2/{repo}/blobs/{digest}")
    pulled.raise_for_status()
    assert sha256_digest(pulled.content) == digest
    return 2 * len(data)


def _load(target: Target, http2: bool, ca: Path, clients: int, layer_mb: int, rounds: int, tag: str) -> dict[str, Any]:
    """`clients` threads pushing and pulling distinct images while one more samples manifest GET latency."""
    probe_repo = f"bench/latency-{tag}"
    with httpx.Client(verify=str(ca), http2=http2, timeout=900) as setup_client:
        _push_pull(setup_client, target.base, probe_repo, 1)
    latencies: list[float] = []
    stop = threading.Event()

    probe_errors = 0

    def probe() -> None:
        nonlocal probe_errors
        latency_client = httpx.Client(verify=str(ca), http2=http2, timeout=60)
        while not stop.is_set() and len(latencies) < 100000:
            started = time.monotonic()
            try:
                response = latency_client.get(
                    f"{target.base}/v2/{probe_repo}/manifests/1", headers={"Accept": MANIFEST_V2}
                )
            except httpx.TransportError:  # e.g. nginx closing an HTTP/2 connection after 1000 requests
                probe_errors += 1
                latency_client.close()
                latency_client = httpx.Client(verify=str(ca), http2=http2, timeout=60)
                continue
            if response.status_code == 200:
                latencies.append(time.monotonic() - started)
            time.sleep(0.02)
        latency_client.close()

    def work(index: int) -> int:
        with httpx.Client(verify=str(ca), http2=http2, timeout=900) as client:
            return sum(_push_pull(client, target.base, f"bench/c-{tag}-{index}-{r}", layer_mb) for r in range(rounds))

    prober = threading.Thread(target=probe)
    prober.start()
    started, moved, errors = time.monotonic(), 0, 0
    with ThreadPoolExecutor(max_workers=clients) as pool:
        for future in [pool.submit(work, i) for i in range(clients)]:
            try:
                moved += future.result()
            except Exception:  # counted in the report, not hidden
                errors += 1
    elapsed = time.monotonic() - started
    stop.set()
    prober.join()
    ordered = sorted(latencies)
    return {
        "aggregate_MBps": round(moved / elapsed / MB, 1),
        "errors": errors,
        "manifest_p50_ms": round(1000 * ordered[len(ordered) // 2], 1) if ordered else None,
        "manifest_p95_ms": round(1000 * ordered[int(len(ordered) * 0.95)], 1) if ordered else None,
        "manifest_samples": len(ordered),
        "manifest_transport_errors": probe_errors,
    }


LOAD_TARGETS = ("direct", "ours", "ours-relayed", "recipe")


def concurrency_figures(bench: Bench, clients: int, layer_mb: int, rounds: int, repeat: int) -> dict[str, Any]:
    """The mixed load over HTTP/1.1, `repeat` runs interleaved across targets (the run with the median aggregate
    is reported, with every run's aggregate); then once over HTTP/2 against ours-h2 (slow, and not shipped)."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in LOAD_TARGETS}
    for index in range(repeat):
        for name in LOAD_TARGETS:
            runs[name].append(
                _load(bench.targets[name], False, bench.ca, clients, layer_mb, rounds, f"{name}-h1-{index}")
            )
    figures: dict[str, Any] = {}
    for name, results in runs.items():
        ordered = sorted(results, key=lambda r: r["aggregate_MBps"])
        median = dict(ordered[len(ordered) // 2])
        median["runs_aggregate_MBps"] = [r["aggregate_MBps"] for r in results]
        median["errors"] = sum(r["errors"] for r in results)
        figures[name] = {"h1": median}
    figures["ours-h2"] = {
        "h2": _load(bench.targets["ours-h2"], True, bench.ca, clients, layer_mb, rounds, "ours-h2-h2")
    }
    return figures


# ---------------------------------------------------------------- what real clients negotiate


def negotiated_protocols(client: docker.DockerClient, bench: Bench, workdir: Path) -> dict[str, Any]:
    """docker push and skopeo copy through each proxy; the protocol nginx logged for their requests."""
    ca = bench.ca
    certs = workdir / "negotiation-certs"
    certs.mkdir()
    shutil.copy(ca, certs / "ca.crt")
    found: dict[str, Any] = {}
    for target in (bench.targets[name] for name in ("ours", "ours-h2", "recipe")):
        assert target.proxy_container is not None
        port = target.base.rsplit(":", 1)[1]
        endpoint = f"{BENCH_HOST}:{port}"
        certs_dir = Path("/etc/docker/certs.d") / endpoint
        certs_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(ca, certs_dir / "ca.crt")
        try:
            since = int(time.time()) - 1
            client.images.get(NGINX_IMAGE).tag(f"{endpoint}/bench/negotiate", "docker")
            subprocess.run(
                ["docker", "push", f"{endpoint}/bench/negotiate:docker"], check=True, capture_output=True, timeout=600
            )
            client.images.remove(f"{endpoint}/bench/negotiate:docker")
            docker_log = client.containers.get(target.proxy_container).logs(since=since).decode(errors="replace")
            time.sleep(1.1)
            since = int(time.time())
            subprocess.run(
                ["skopeo", "copy", "-q", "--dest-cert-dir", str(certs), f"docker-daemon:{NGINX_IMAGE}", f"docker://{endpoint}/bench/negotiate:skopeo"],
                check=True, timeout=600,
            )  # fmt: skip
            skopeo_log = client.containers.get(target.proxy_container).logs(since=since).decode(errors="replace")
            found[target.name] = {
                "docker": _protocols(docker_log, "docker/"),
                "skopeo": _protocols(skopeo_log, "skopeo/"),
            }
        finally:
            shutil.rmtree(certs_dir, ignore_errors=True)
    return found


def _protocols(log: str, agent: str) -> list[str]:
    """From the request line in nginx's access log ("GET /v2/ HTTP/2.0"), for the client's user agent."""
    return sorted(
        {line.split('"')[1].rsplit(" ", 1)[-1] for line in log.splitlines() if agent in line and line.count('"') >= 2}
    )


# ---------------------------------------------------------------- report


def _mbps(figures: dict[str, Any], figure: str, target: str, protocol: str = "h1") -> float | None:
    value = figures.get(figure, {}).get(target, {}).get(protocol, {}).get("MBps")
    return float(value) if value else None


def ratios(figures: dict[str, Any]) -> dict[str, Any]:
    """For each curl figure, in the protocol clients get from us (HTTP/1.1): ours against every other target,
    ours at its container address against direct (neither through docker-proxy), ours at the host port against
    ours at its container address (what docker-proxy costs), the relayed variant against static TLS and direct, and nginx's plain
    port against direct."""
    out: dict[str, Any] = {}
    pairs = (
        ("ours", "direct", "h1"), ("ours", "ours-relayed", "h1"), ("ours", "recipe", "h1"), ("ours", "static", "h1"),
        ("ours", "ours-h2", "h2"), ("ours-container", "direct", "h1"), ("ours", "ours-container", "h1"),
        ("ours-relayed", "static", "h1"), ("ours-relayed", "direct", "h1"),
        ("ours-relayed", "recipe", "h1"), ("ours-plain", "direct", "h1"),
    )  # fmt: skip
    for figure in figures:
        row = {}
        for mine, other, protocol in pairs:
            numerator, denominator = _mbps(figures, figure, mine), _mbps(figures, figure, other, protocol)
            if numerator and denominator:
                row[f"{mine}/{other}"] = round(numerator / denominator, 2)
        out[figure] = row
    return out


def targets_met(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The ratios issues #11 and #12 ask for, each with the bound and whether this run met it."""
    checks: list[dict[str, Any]] = []

    def check(what: str, ratio: float | None, at_least: float) -> None:
        checks.append(
            {"what": what, "ratio": ratio, "at_least": at_least, "met": ratio is not None and ratio >= at_least}
        )

    r, load = result["ratios"], result["concurrency"]
    check("download: ours / static TLS", r["download"].get("ours/static"), 0.9)
    check("download: ours / recipe", r["download"].get("ours/recipe"), 1.5)
    # Like for like: our nginx and the registry both at their container addresses, neither through docker-proxy.
    check("upload (PUT): ours-container / direct", r["upload_monolithic"].get("ours-container/direct"), 0.95)
    check("upload (PATCH): ours-container / direct", r["upload_chunked"].get("ours-container/direct"), 0.95)
    check("8 clients: errors (0 = 1.0)", 1.0 if load["ours"]["h1"]["errors"] == 0 else 0.0, 1.0)
    check(
        "8 clients: aggregate ours / ours-relayed",
        round(load["ours"]["h1"]["aggregate_MBps"] / load["ours-relayed"]["h1"]["aggregate_MBps"], 2),
        1.0,
    )
    check("cached layer: mirror / ours", result["mirror"]["mirror/ours"], 0.9)
    return checks


DOCKER_PROXY_NOTE = (
    "ours is reached at its published host port, so through Docker's userland proxy (docker-proxy, one more "
    "process copying every byte on the bench host; clients on other hosts go through the kernel's NAT instead), "
    "while direct is the registry at its container address: ours/direct charges our nginx with docker-proxy too. "
    "The targets compare ours-container/direct (neither through docker-proxy); ours/ours-container is what "
    "docker-proxy costs in this run."
)


def upload_through_docker_proxy(result: dict[str, Any]) -> dict[str, Any]:
    """The upload ratios through the host port (docker-proxy), beside the targets: the figure the earlier runs
    compared with 0.95, and docker-proxy's share."""
    r = result["ratios"]
    return {
        "upload (PUT): ours (host port) / direct": r["upload_monolithic"].get("ours/direct"),
        "upload (PATCH): ours (host port) / direct": r["upload_chunked"].get("ours/direct"),
        "upload (PUT): ours (host port) / ours-container": r["upload_monolithic"].get("ours/ours-container"),
        "upload (PATCH): ours (host port) / ours-container": r["upload_chunked"].get("ours/ours-container"),
        "explanation": DOCKER_PROXY_NOTE,
    }


def table(result: dict[str, Any]) -> str:
    lines = ["figure               target         protocol  MB/s (median)  runs                  negotiated"]
    for figure, by_target in result["curl"].items():
        for target, by_protocol in by_target.items():
            for protocol, value in by_protocol.items():
                lines.append(
                    f"{figure:20} {target:14} {protocol:9} {value['MBps']:13}  {value['runs_MBps']!s:21} "
                    f"{','.join(value['negotiated'])}"
                )
    lines.append("")
    lines.append("ratios (over HTTP/1.1, the protocol clients negotiate with us)")
    for figure, row in result["ratios"].items():
        lines.append(f"  {figure:20} " + "  ".join(f"{k} {v}" for k, v in row.items()))
    small = result["small_blob"]
    lines.append("")
    lines.append(f"small blob ({small['blob_bytes']} bytes) GET latency, kept-alive HTTP/1.1, n={small['samples']}")
    for target in ("direct", "ours", "ours-relayed"):
        lines.append(f"  {target:13} p50 {small[target]['p50_ms']} ms  p95 {small[target]['p95_ms']} ms")
    lines.append(f"  the registry saw, for one GET: {small['registry_saw_for_one_get']}")
    mirror = result["mirror"]
    lines.append("")
    lines.append(
        f"cached layer: mirror {mirror['mirror']['MBps']} MB/s  team registry (ours) {mirror['ours']['MBps']} MB/s  "
        f"(ours-relayed {mirror['ours-relayed']['MBps']})  mirror/ours {mirror['mirror/ours']}  "
        f"first pull {mirror['first_pull_MBps']} MB/s, upstream blob GETs while measuring "
        f"{mirror['upstream_blob_gets_while_measuring']}"
    )
    lines.append("")
    lines.append("skopeo copy (fresh multi-layer image)")
    for target, value in result["skopeo"].items():
        lines.append(f"  {target:13} up {value['upload']['MBps']:7} MB/s   down {value['download']['MBps']:7} MB/s")
    lines.append("")
    lines.append(f"{result['params']['clients']} concurrent clients pushing and pulling distinct images")
    for target, by_protocol in result["concurrency"].items():
        for protocol, value in by_protocol.items():
            lines.append(
                f"  {target:13} {protocol}  {value['aggregate_MBps']:7} MB/s  errors {value['errors']}  "
                f"manifest GET p50 {value['manifest_p50_ms']} ms p95 {value['manifest_p95_ms']} ms (n={value['manifest_samples']})"
                + (f"  runs {value['runs_aggregate_MBps']}" if "runs_aggregate_MBps" in value else "")
            )
    lines.append("")
    lines.append("protocols negotiated (from nginx's access log)")
    for target, value in result["negotiated"].items():
        lines.append(f"  {target:13} docker {value['docker']}  skopeo {value['skopeo']}")
    lines.append("")
    lines.append("targets (issues #11, #12)")
    for item in result["targets"]:
        lines.append(
            f"  {'met   ' if item['met'] else 'MISSED'} {item['what']:42} {item['ratio']} (>= {item['at_least']})"
        )
    lines.append("  through docker-proxy (not a target; see upload_through_docker_proxy.explanation):")
    for what, ratio in result["upload_through_docker_proxy"].items():
        if what != "explanation":
            lines.append(f"         {what:49} {ratio}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one repetition: shows the benchmark works")
    parser.add_argument("--blob-mb", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "latest.json")
    parser.add_argument("--keep", action="store_true", help="leave the bench stack up afterwards")
    args = parser.parse_args(argv)
    blob_mb, repeat, clients, layer_mb, rounds, skopeo_layers, skopeo_mb = args.blob_mb, args.repeat, 8, 32, 2, 4, 64
    small_samples = 300
    if args.quick:
        blob_mb, repeat, clients, layer_mb, rounds, skopeo_layers, skopeo_mb = 16, 1, 2, 2, 1, 2, 4
        small_samples = 20

    client = realizer.docker_client()
    # A run cut short (e.g. dockerd restarted) can leave the upstream attached to the stack's network: first.
    _remove(client, UPSTREAM_CONTAINER)
    realizer.down(STACK, volumes=True, client=client)
    workdir = Path(tempfile.mkdtemp(prefix="private-registry-bench-"))
    cleanup = contextlib.ExitStack()
    # Clients follow the registry's upload Locations to the bench host name: it must resolve, to loopback.
    cleanup.enter_context(hosts_entry(BENCH_HOST, "# private-registry bench"))
    try:
        blob = os.urandom(blob_mb * MB)
        blob_file = workdir / "blob"
        blob_file.write_bytes(blob)
        digest = sha256_digest(blob)
        bench = setup(client, workdir, blob)
        del blob
        timer = time.monotonic()
        result: dict[str, Any] = {
            "when": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "machine": {
                "cpus": os.cpu_count(),
                "kernel": platform.release(),
                "python": platform.python_version(),
                "nginx": "Debian 1.22.1 (test image)",
                "registry": "Debian docker-registry 2.8.2 (test image)",
                "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
            },
            "params": {
                "blob_mb": blob_mb,
                "repeat": repeat,
                "clients": clients,
                "client_layer_mb": layer_mb,
                "rounds": rounds,
                "skopeo_layers": skopeo_layers,
                "skopeo_layer_mb": skopeo_mb,
                "small_blob_samples": small_samples,
                "quick": args.quick,
            },
            "targets_compared": {name: target.base for name, target in bench.targets.items()},
            "relayed_site_matches_program": bench.relayed_site_matches_program,
        }
        result["curl"] = curl_figures(bench, blob_file, digest, repeat)
        result["ratios"] = ratios(result["curl"])
        result["small_blob"] = small_blob_figures(client, bench, small_samples)
        result["mirror"] = mirror_figures(client, bench, blob_file, digest, "bench/ours-h1-0", repeat)
        result["skopeo"] = skopeo_figures(bench, workdir, skopeo_layers, skopeo_mb)
        result["concurrency"] = concurrency_figures(bench, clients, layer_mb, rounds, repeat)
        result["negotiated"] = negotiated_protocols(client, bench, workdir)
        result["targets"] = targets_met(result)
        result["upload_through_docker_proxy"] = upload_through_docker_proxy(result)
        result["seconds"] = round(time.monotonic() - timer)
        result["machine"]["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(table(result))
        print(f"\nwritten to {args.out} ({result['seconds']} s of measuring)")
    finally:
        cleanup.close()
        shutil.rmtree(workdir, ignore_errors=True)
        if not args.keep:
            _remove(client, UPSTREAM_CONTAINER)
            realizer.down(STACK, volumes=True, client=client)
    return 0
