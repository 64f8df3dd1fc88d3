"""Proxy throughput against the registry itself, in one run on one machine.

    venv/bin/python -m bench [--quick] [--blob-mb 512] [--repeat 3] [--out bench/results/latest.json]

Brings up bench/bench.yaml with the realizer, then measures the same work against five targets:

  direct       the registry container's own port (plain HTTP)
  ours         our nginx, as the program renders it
  ours-h2      our nginx's exact config with HTTP/2 offered too (what we chose not to ship)
  recipe       nginx with the original recipe's site config (bench/templates/recipe.conf.j2)
  static       the same nginx image serving the blob as a static file over TLS (the TLS limit)

Figures: blob download, monolithic upload (PUT) and chunked upload (PATCH with chunked transfer encoding)
of a random, pre-compressed-like blob, with curl over HTTP/1.1 and HTTP/2 (where a target offers it); a
skopeo copy of a fresh multi-layer image up and down; 8 concurrent clients pushing and pulling distinct
images (httpx, HTTP/1.1 and HTTP/2) with manifest GET latency under that load; and the protocol docker and
skopeo negotiate, read from nginx's access log. Only ratios inside one run mean anything here.
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

from components.reverse_proxy import SITE_CONFIG_PATH
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
BENCH_HOST = "registry.bench.test"
MB = 1024 * 1024


@dataclass(frozen=True)
class Target:
    name: str
    base: str
    http2: bool
    """Whether the target offers HTTP/2 (ALPN h2)."""
    proxy_container: str | None
    """The nginx container whose access log shows the protocol clients negotiated."""


# ---------------------------------------------------------------- setup


def _put_files(container: Any, files: dict[str, bytes]) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path, data in files.items():
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode = len(data), 0o644
            archive.addfile(info, io.BytesIO(data))
    container.put_archive("/", buffer.getvalue())


def _nginx(
    client: docker.DockerClient,
    name: str,
    port: int,
    network: str,
    site: str,
    cert: bytes,
    key: bytes,
    static_dir: Path | None,
) -> None:
    """An extra nginx beside the stack's (labelled with the bench stack, so `down` removes it)."""
    old = client.containers.list(all=True, filters={"name": f"^{name}$"})
    for container in old:
        container.remove(force=True)
    container = client.containers.create(
        NGINX_IMAGE,
        name=name,
        ports={"443/tcp": ("127.0.0.1", port)},
        network=network,
        labels={LIVE_STACK_LABEL: "bench"},
        volumes={str(static_dir): {"bind": "/srv/static", "mode": "ro"}} if static_dir else None,
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


def _wait_for(url: str, ca: Path, seconds: int = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if subprocess.run(["curl", "-s", "-o", "/dev/null", "--cacert", str(ca), url], check=False).returncode == 0:
            return
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {seconds}s")


def _with_http2(site: str, public_url: str, own_url: str) -> str:
    """Our rendered site with HTTP/2 offered; upload Locations kept on this container (as for the recipe)."""
    site = site.replace("listen 443 ssl", "listen 443 ssl http2", 1)
    redirect = f"proxy_pass $registry_upstream;\n        proxy_redirect {public_url}/ {own_url}/;"
    return site.replace("proxy_pass $registry_upstream;", redirect)


def setup(client: docker.DockerClient, workdir: Path, blob: bytes) -> tuple[list[Target], Path]:
    result = realizer.up(STACK, client)
    config = stack_config(STACK)
    https_port = int(config["private-registry:httpsPort"])
    direct_port = int(config["private-registry:registryPort"])
    ca = workdir / "ca.crt"
    ca.write_text(result.outputs["caCertPem"])
    proxy = client.containers.get("private-registry-bench-proxy")
    cert, key = _read_file(proxy, "/etc/nginx/tls/server.crt"), _read_file(proxy, "/etc/nginx/tls/server.key")
    site = _read_file(proxy, SITE_CONFIG_PATH).decode()
    network = result.outputs["networkName"]
    server_name = config["private-registry:hostname"]
    templates = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), undefined=jinja2.StrictUndefined)
    static_dir = workdir / "static"
    static_dir.mkdir()
    (static_dir / "blob").write_bytes(blob)
    os.chmod(static_dir, 0o755)
    _nginx(
        client,
        "bench-recipe",
        https_port + 1,
        network,
        templates.get_template("recipe.conf.j2").render(
            server_name=server_name,
            public_url=result.outputs["registryUrl"],
            own_url=f"https://{BENCH_HOST}:{https_port + 1}",
        ),
        cert,
        key,
        None,
    )
    _nginx(
        client,
        "bench-static",
        https_port + 2,
        network,
        templates.get_template("static.conf.j2").render(server_name=server_name),
        cert,
        key,
        static_dir,
    )
    _nginx(
        client,
        "bench-ours-h2",
        https_port + 3,
        network,
        _with_http2(site, result.outputs["registryUrl"], f"https://{BENCH_HOST}:{https_port + 3}"),
        cert,
        key,
        None,
    )
    targets = [
        Target("direct", f"http://127.0.0.1:{direct_port}", False, None),
        Target("ours", f"https://{BENCH_HOST}:{https_port}", False, "private-registry-bench-proxy"),
        Target("ours-h2", f"https://{BENCH_HOST}:{https_port + 3}", True, "bench-ours-h2"),
        Target("recipe", f"https://{BENCH_HOST}:{https_port + 1}", False, "bench-recipe"),
        Target("static", f"https://{BENCH_HOST}:{https_port + 2}", True, "bench-static"),
    ]
    for target in targets:
        _wait_for(f"{target.base}/v2/" if target.name != "static" else f"{target.base}/static/blob", ca)
    return targets, ca


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


def _upload_url(target: Target, ca: Path, repo: str) -> str:
    client = RegistryClient(target.base, verify=str(ca))
    started = client.start_upload(repo)
    started.raise_for_status()
    return target.base + location_path(started.headers["Location"])


def curl_figures(targets: list[Target], ca: Path, blob_file: Path, digest: str, repeat: int) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for target in targets:
        for protocol in ("h1", "h2"):
            if protocol == "h2" and target.base.startswith("http:"):
                continue  # plain HTTP: curl would not negotiate h2 without TLS
            runs: dict[str, list[float]] = {"download": [], "upload_monolithic": [], "upload_chunked": []}
            versions: set[str] = set()
            for index in range(repeat):
                if target.name == "static":
                    speed, version = _curl([f"{target.base}/static/blob"], ca, protocol)
                    runs["download"].append(speed)
                    versions.add(version)
                    continue
                repo = f"bench/{target.name}-{protocol}-{index}"
                put_url = _upload_url(target, ca, repo) + f"&digest={digest}"
                speed, version = _curl(
                    ["-X", "PUT", "-T", str(blob_file), "-H", "Content-Type: application/octet-stream", put_url],
                    ca,
                    protocol,
                )
                runs["upload_monolithic"].append(speed)
                versions.add(version)
                patch_url = _upload_url(target, ca, repo + "-chunked")
                speed, _ = _curl(
                    ["-X", "PATCH", "-T", str(blob_file), "-H", "Content-Type: application/octet-stream", "-H", "Transfer-Encoding: chunked", patch_url],
                    ca, protocol,
                )  # fmt: skip
                runs["upload_chunked"].append(speed)
                speed, _ = _curl([f"{target.base}/v2/{repo}/blobs/{digest}"], ca, protocol)
                runs["download"].append(speed)
            for figure, values in runs.items():
                if values:
                    figures.setdefault(figure, {}).setdefault(target.name, {})[protocol] = {
                        "MBps": round(statistics.median(values) / MB, 1),
                        "negotiated": sorted(versions),
                    }
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


def skopeo_figures(targets: list[Target], ca: Path, workdir: Path, layers: int, layer_mb: int) -> dict[str, Any]:
    certs = workdir / "skopeo-certs"
    certs.mkdir(exist_ok=True)
    shutil.copy(ca, certs / "ca.crt")
    figures: dict[str, Any] = {}
    for target in targets:
        # direct: the registry sends upload Locations to http.host (our proxy), so skopeo cannot stay direct.
        if target.name in ("static", "direct"):
            continue
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


def concurrency_figures(targets: list[Target], ca: Path, clients: int, layer_mb: int, rounds: int) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for target in targets:
        if target.name == "static":
            continue
        for protocol in ("h1", "h2"):
            if protocol == "h2" and target.base.startswith("http:"):
                continue
            tag = f"{target.name}-{protocol}"
            figures.setdefault(target.name, {})[protocol] = _load(
                target, protocol == "h2", ca, clients, layer_mb, rounds, tag
            )
    return figures


# ---------------------------------------------------------------- what real clients negotiate


def negotiated_protocols(client: docker.DockerClient, targets: list[Target], ca: Path, workdir: Path) -> dict[str, Any]:
    """docker push and skopeo copy through each proxy; the protocol nginx logged for their requests."""
    certs = workdir / "negotiation-certs"
    certs.mkdir()
    shutil.copy(ca, certs / "ca.crt")
    found: dict[str, Any] = {}
    for target in targets:
        if target.proxy_container is None or target.name == "static":
            continue
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


def ratios(figures: dict[str, Any]) -> dict[str, Any]:
    """ours / direct, ours / recipe, ours / static for each curl figure, in the protocol clients get from us."""
    out: dict[str, Any] = {}
    for figure, by_target in figures.items():
        ours = by_target.get("ours", {}).get("h1", {}).get("MBps")
        if not ours:
            continue
        row = {}
        for other, key in (("direct", "h1"), ("recipe", "h1"), ("static", "h1"), ("ours-h2", "h2")):
            value = by_target.get(other, {}).get(key, {}).get("MBps")
            if value:
                row[f"ours/{other}"] = round(ours / value, 2)
        out[figure] = row
    return out


def table(result: dict[str, Any]) -> str:
    lines = ["figure               target    protocol  MB/s     negotiated"]
    for figure, by_target in result["curl"].items():
        for target, by_protocol in by_target.items():
            for protocol, value in by_protocol.items():
                lines.append(f"{figure:20} {target:9} {protocol:9} {value['MBps']:8} {','.join(value['negotiated'])}")
    lines.append("")
    lines.append("ratios (ours over HTTP/1.1, the protocol clients negotiate with us)")
    for figure, row in result["ratios"].items():
        lines.append(f"  {figure:20} " + "  ".join(f"{k} {v}" for k, v in row.items()))
    lines.append("")
    lines.append("skopeo copy (fresh multi-layer image)")
    for target, value in result["skopeo"].items():
        lines.append(f"  {target:9} up {value['upload']['MBps']:7} MB/s   down {value['download']['MBps']:7} MB/s")
    lines.append("")
    lines.append(f"{result['params']['clients']} concurrent clients pushing and pulling distinct images")
    for target, by_protocol in result["concurrency"].items():
        for protocol, value in by_protocol.items():
            lines.append(
                f"  {target:9} {protocol}  {value['aggregate_MBps']:7} MB/s  errors {value['errors']}  "
                f"manifest GET p50 {value['manifest_p50_ms']} ms p95 {value['manifest_p95_ms']} ms (n={value['manifest_samples']})"
            )
    lines.append("")
    lines.append("protocols negotiated (from nginx's access log)")
    for target, value in result["negotiated"].items():
        lines.append(f"  {target:9} docker {value['docker']}  skopeo {value['skopeo']}")
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
    if args.quick:
        blob_mb, repeat, clients, layer_mb, rounds, skopeo_layers, skopeo_mb = 16, 1, 2, 2, 1, 2, 4

    client = realizer.docker_client()
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
        targets, ca = setup(client, workdir, blob)
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
            },
            "params": {
                "blob_mb": blob_mb,
                "repeat": repeat,
                "clients": clients,
                "client_layer_mb": layer_mb,
                "rounds": rounds,
                "skopeo_layers": skopeo_layers,
                "skopeo_layer_mb": skopeo_mb,
                "quick": args.quick,
            },
        }
        result["curl"] = curl_figures(targets, ca, blob_file, digest, repeat)
        result["ratios"] = ratios(result["curl"])
        result["skopeo"] = skopeo_figures(targets, ca, workdir, skopeo_layers, skopeo_mb)
        result["concurrency"] = concurrency_figures(targets, ca, clients, layer_mb, rounds)
        result["negotiated"] = negotiated_protocols(client, targets, ca, workdir)
        result["seconds"] = round(time.monotonic() - timer)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(table(result))
        print(f"\nwritten to {args.out} ({result['seconds']} s of measuring)")
    finally:
        cleanup.close()
        shutil.rmtree(workdir, ignore_errors=True)
        if not args.keep:
            realizer.down(STACK, volumes=True, client=client)
    return 0
