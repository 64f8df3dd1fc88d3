"""The 8-client mixed load of bench/ against 1 and 3 registry replicas on S3, in one run (issue #13).

    venv/bin/python -m bench.replicas [--quick] [--repeat 3] [--out bench/results/replicas.json] [--keep]

Starts one S3 store (moto, the private-registry-test/moto image) with a bucket per stack, brings up two stacks
with the realizer whose config differs in `registry.replicas` alone (1 and 3; each its own ports and bucket;
moto joins each stack's network as `bench-s3-store`), then runs bench/run.py's `_load` (clients pushing and
pulling distinct images while one more samples manifest GET latency) against both HTTPS endpoints,
interleaved 1, 3, 1, 3, ... `--repeat` times. Reported per variant: the median aggregate MB/s with every run's
figure, errors (failed clients, the prober's transport errors, and responses >= 400 in nginx's access log for
the load's requests), manifest GET p50/p95; the ratio 3 replicas / 1 replica of the medians. Then nothing lost:
every image the load pushed pulls back by its tag and every blob it references hashes to its digest (GET
through the proxy); and how many of the load's requests each replica served (its access log).

moto is an in-memory Python S3 on the same machine: the store is the bottleneck, so this shows that replicas
lose nothing and make no errors under load, not how they scale.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import httpx
import yaml
from docker.errors import NotFound

from bench.run import MB, NGINX_IMAGE, REGISTRY_IMAGE, Target, _load, _wait_for
from harness import realizer
from harness.attached import S3_STORE_IMAGE, joining, remove_attached, start_s3_store
from harness.docker_provider import LIVE_STACK_LABEL
from harness.registry_api import MANIFEST_V2

HERE = Path(__file__).resolve().parent
REDIS_IMAGE = "private-registry-test/redis:7"
MOTO_CONTAINER = "private-registry-bench-s3-moto"
MOTO_LABEL = "bench-s3-moto"
MOTO_PORT = 19590
"""moto's port 5000 on loopback: the bench makes the buckets through it."""
MOTO_ALIAS = "bench-s3-store"
"""moto's name on each stack's network (the stacks' regionEndpoint). Without a dot: moto takes the first label of
a dotted host name (s3.example.test) for the bucket (virtual-hosted style) and answers NoSuchBucket."""
CHUNK_SIZE_MIB = 5


@dataclass(frozen=True)
class Variant:
    replicas: int
    https_port: int
    plain_port: int

    @property
    def stack(self) -> str:
        return f"bench-s3-{self.replicas}"

    @property
    def name(self) -> str:
        return f"replicas-{self.replicas}"

    @property
    def bucket(self) -> str:
        return self.stack

    @property
    def network(self) -> str:
        return f"private-registry-{self.stack}-net"

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def roles(self) -> list[str]:
        """The replicas' roles: the first keeps a single registry's name."""
        return ["registry", *(f"registry-{n}" for n in range(2, self.replicas + 1))]

    def container(self, role: str) -> str:
        return f"private-registry-{self.stack}-{role}"


VARIANTS = (Variant(1, 19443, 19500), Variant(3, 19543, 19600))


def stack_document(variant: Variant) -> dict[str, Any]:
    """The two stacks' config: the same but for registry.replicas, the ports and the bucket. Open (no accounts:
    bcrypt on every request would be measured), no UI. Redis is declared in both; the program runs it only
    for more than one replica."""
    return {
        "config": {
            "private-registry:hostname": "127.0.0.1",
            "private-registry:httpsPort": variant.https_port,
            "private-registry:httpPort": 0,
            "private-registry:registryPort": variant.plain_port,
            "private-registry:registry": {
                "image": REGISTRY_IMAGE,
                "httpSecret": "bench-s3-stack-test-secret-0123456789",
                "replicas": variant.replicas,
            },
            "private-registry:storage": {
                "driver": "s3",
                "bucket": variant.bucket,
                "regionEndpoint": f"http://{MOTO_ALIAS}:5000",
                "secure": False,
                "accessKey": "bench-s3",
                "secretKey": "bench-s3-secret-key",
                "rootDirectory": "/registry",
                "chunkSizeMib": CHUNK_SIZE_MIB,
            },
            "private-registry:redis": {"image": REDIS_IMAGE, "maxMemoryMib": 64},
            "private-registry:ui": {"flavor": "none"},
            "private-registry:proxy": {"image": NGINX_IMAGE},
            "private-registry:gc": {"schedule": "none"},
        }
    }


# ---------------------------------------------------------------- setup and teardown


def remove_moto(client: docker.DockerClient) -> None:
    """moto leaves the stacks' networks first, so that `down` can remove them."""
    found = client.containers.list(all=True, filters={"label": f"{LIVE_STACK_LABEL}={MOTO_LABEL}"})
    with contextlib.suppress(NotFound):
        found.append(client.containers.get(MOTO_CONTAINER))
    for container in {c.id: c for c in found}.values():
        remove_attached(client, container.id)


def tear_down(client: docker.DockerClient, stack_files: list[Path]) -> None:
    remove_moto(client)
    for stack_file in stack_files:
        realizer.down(stack_file, volumes=True, client=client)


def bring_up(
    client: docker.DockerClient, moto: Any, variant: Variant, stack_file: Path, workdir: Path
) -> tuple[Path, list[str]]:
    """The variant's stack; returns its CA file and the program's warnings."""
    with joining(client, moto, variant.network, [MOTO_ALIAS]):
        result = realizer.up(stack_file, client)
    ca = workdir / f"{variant.stack}-ca.crt"
    ca.write_text(result.outputs["caCertPem"])
    _wait_for(f"{variant.base}/v2/", ca)
    return ca, result.warnings


# ---------------------------------------------------------------- figures


def _load_images(tag: str, clients: int, rounds: int) -> list[str]:
    """The repositories `_load` pushes (tag `1` each): its prober's and every client's, every round."""
    return [f"bench/latency-{tag}", *(f"bench/c-{tag}-{i}-{r}" for i in range(clients) for r in range(rounds))]


def _proxy_error_responses(client: docker.DockerClient, variant: Variant, since: int, until: int) -> dict[str, int]:
    """Status codes >= 400 that nginx logged for the load's requests (httpx's user agent) in the window: what
    `_load`'s prober skips without counting."""
    log = client.containers.get(variant.container("proxy")).logs(since=since, until=until).decode(errors="replace")
    found: Counter[str] = Counter()
    for line in log.splitlines():
        parts = line.split('"')
        if len(parts) >= 6 and "python-httpx" in parts[5]:
            status = parts[2].split()[0] if parts[2].split() else ""
            if status.isdigit() and int(status) >= 400:
                found[status] += 1
    return dict(found)


FAILED_RUN: dict[str, Any] = {
    "aggregate_MBps": None,
    "errors": 1,
    "manifest_p50_ms": None,
    "manifest_p95_ms": None,
    "manifest_samples": 0,
    "manifest_transport_errors": 0,
}
"""A run whose first push (the prober's image) failed: nothing measured, one error."""


def _proxy_error_log(client: docker.DockerClient, variant: Variant, since: int, until: int) -> list[str]:
    """nginx's error-log lines in the window (why a request failed: which replica, what happened)."""
    log = client.containers.get(variant.container("proxy")).logs(since=since, until=until).decode(errors="replace")
    return [line for line in log.splitlines() if "[error]" in line or "[warn]" in line][-20:]


def load_figures(
    client: docker.DockerClient, cas: dict[str, Path], clients: int, layer_mb: int, rounds: int, repeat: int
) -> tuple[dict[str, Any], list[tuple[Variant, str]], tuple[int, int]]:
    """`_load` against each variant, interleaved; returns the figures, the (variant, tag) of every run, and the
    window the runs took (epoch seconds)."""
    runs: dict[str, list[dict[str, Any]]] = {variant.name: [] for variant in VARIANTS}
    tags: list[tuple[Variant, str]] = []
    window_start = int(time.time()) - 1
    for index in range(repeat):
        for variant in VARIANTS:
            target = Target(variant.name, variant.base, False, variant.container("proxy"))
            tag = f"r{variant.replicas}-{index}"
            since = int(time.time()) - 1
            others = _other_pytest_runs()
            try:
                run = _load(target, False, cas[variant.name], clients, layer_mb, rounds, tag)
                tags.append((variant, tag))
            except Exception as error:  # _load's own first push failed: an error of the run, reported with it
                run = {**FAILED_RUN, "failed": f"{type(error).__name__}: {error}"}
            time.sleep(1.1)  # the log's `until` is in whole seconds
            until = int(time.time())
            run["proxy_error_responses"] = _proxy_error_responses(client, variant, since, until)
            if run["proxy_error_responses"] or "failed" in run:
                run["proxy_error_log"] = _proxy_error_log(client, variant, since, until)
            run["tag"] = tag
            # Another live test on the same two cores moves the figures: said beside them.
            run["other_pytest_runs"] = sorted({*others, *_other_pytest_runs()})
            run["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
            runs[variant.name].append(run)
            print(
                f"  run {index + 1}/{repeat} {variant.name}: {run['aggregate_MBps']} MB/s, errors {run['errors']}, "
                f"manifest p50 {run['manifest_p50_ms']} ms" + (f", FAILED: {run['failed']}" if "failed" in run else ""),
                flush=True,
            )
    window = (window_start, int(time.time()) + 1)
    figures: dict[str, Any] = {}
    for name, results in runs.items():
        measured = sorted((r for r in results if "failed" not in r), key=lambda r: r["aggregate_MBps"])
        median_run = measured[len(measured) // 2] if measured else FAILED_RUN
        figures[name] = {
            "aggregate_MBps": statistics.median(r["aggregate_MBps"] for r in measured) if measured else None,
            "runs_aggregate_MBps": [r["aggregate_MBps"] for r in results],
            "failed_runs": len(results) - len(measured),
            "errors": sum(r["errors"] for r in results),
            "manifest_transport_errors": sum(r["manifest_transport_errors"] for r in results),
            "proxy_error_responses": sum(sum(r["proxy_error_responses"].values()) for r in results),
            "manifest_p50_ms": median_run["manifest_p50_ms"],
            "manifest_p95_ms": median_run["manifest_p95_ms"],
            "manifest_samples": median_run["manifest_samples"],
            "runs": results,
        }
    return figures, tags, window


def nothing_lost(cas: dict[str, Path], tags: list[tuple[Variant, str]], clients: int, rounds: int) -> dict[str, Any]:
    """Every image the load pushed pulls back by its tag, and every blob of it hashes to its digest (GET through
    the proxy, the same endpoint the load used). `_load` does not say which client failed: with errors, the
    images a failed client never pushed count as missing here too."""
    report: dict[str, Any] = {}
    for variant in VARIANTS:
        images = blobs = 0
        moved = 0
        failures: list[str] = []
        with httpx.Client(verify=str(cas[variant.name]), timeout=600) as http:
            for repo in (r for v, tag in tags if v == variant for r in _load_images(tag, clients, rounds)):
                manifest = http.get(f"{variant.base}/v2/{repo}/manifests/1", headers={"Accept": MANIFEST_V2})
                if manifest.status_code != 200:
                    failures.append(f"{repo}:1 answers {manifest.status_code}")
                    continue
                images += 1
                document = manifest.json()
                for descriptor in [document["config"], *document["layers"]]:
                    digest = descriptor["digest"]
                    sha = hashlib.sha256()
                    with http.stream("GET", f"{variant.base}/v2/{repo}/blobs/{digest}") as blob:
                        if blob.status_code != 200:
                            failures.append(f"{repo}: blob {digest} answers {blob.status_code}")
                            continue
                        for chunk in blob.iter_bytes(MB):
                            sha.update(chunk)
                            moved += len(chunk)
                    blobs += 1
                    if f"sha256:{sha.hexdigest()}" != digest:
                        failures.append(f"{repo}: blob {digest} hashes to sha256:{sha.hexdigest()}")
        expected = sum(len(_load_images(tag, clients, rounds)) for v, tag in tags if v == variant)
        report[variant.name] = {
            "images_expected": expected,
            "images_pulled": images,
            "blobs_verified": blobs,
            "bytes_verified": moved,
            "failures": failures[:20],
            "failure_count": len(failures),
        }
    report["passed"] = all(
        report[v.name]["failure_count"] == 0 and report[v.name]["images_pulled"] == report[v.name]["images_expected"]
        for v in VARIANTS
    )
    return report


def served_by_replica(client: docker.DockerClient, window: tuple[int, int]) -> dict[str, Any]:
    """Per replica, the requests it completed while the load ran (`response completed` in its log): all of them,
    and those naming one of the load's repositories (/v2/bench/...)."""
    served: dict[str, Any] = {}
    for variant in VARIANTS:
        served[variant.name] = {}
        for role in variant.roles:
            log = client.containers.get(variant.container(role)).logs(since=window[0], until=window[1])
            completed = [line for line in log.decode(errors="replace").splitlines() if "response completed" in line]
            served[variant.name][role] = {
                "responses": len(completed),
                "load_requests": sum(1 for line in completed if "/v2/bench/" in line),
            }
    return served


# ---------------------------------------------------------------- report


def print_logs(client: docker.DockerClient, lines: int = 30) -> None:
    """The end of every container's log (the stacks' and moto), on stderr, for a run that failed."""
    labels = [f"{LIVE_STACK_LABEL}={name}" for name in (*(v.stack for v in VARIANTS), MOTO_LABEL)]
    for label in labels:
        for container in client.containers.list(all=True, filters={"label": label}):
            log = container.logs(tail=lines).decode(errors="replace")
            print(f"---- {container.name} ({container.status})\n{log}", file=sys.stderr)


def _other_pytest_runs() -> list[str]:
    """pytest processes running beside this one (not the one that started it, if any)."""
    ours, pid = set(), os.getpid()
    while pid > 1:
        ours.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            break
    found = subprocess.run(["pgrep", "-af", "pytest"], capture_output=True, text=True, check=False).stdout
    return [line for line in found.splitlines() if line.split()[0].isdigit() and int(line.split()[0]) not in ours]


def table(result: dict[str, Any]) -> str:
    params = result["params"]
    lines = [
        f"{params['clients']} clients pushing and pulling distinct images ({params['client_layer_mb']} MiB layers, "
        f"{params['rounds']} rounds each), S3 on moto, {params['repeat']} interleaved runs per variant",
        "variant       MB/s (median)  runs                    errors  manifest GET p50 / p95",
    ]
    for name, value in result["variants"].items():
        errors = value["errors"] + value["manifest_transport_errors"] + value["proxy_error_responses"]
        lines.append(
            f"{name:13} {value['aggregate_MBps']!s:>13}  {value['runs_aggregate_MBps']!s:23} {errors:6}  "
            f"{value['manifest_p50_ms']} / {value['manifest_p95_ms']} ms"
        )
    lines.append(f"ratio 3 replicas / 1 replica (medians): {result['ratio_3_over_1']}")
    others = result["machine"]["other_pytest_runs_while_loading"]
    if others:
        lines.append(f"not quiet: other pytest processes while loading: {others}")
    lost = result["nothing_lost"]
    lines.append(
        "nothing lost: "
        + ("passed" if lost["passed"] else "FAILED")
        + "  "
        + "  ".join(
            f"{v.name} {lost[v.name]['images_pulled']}/{lost[v.name]['images_expected']} images, "
            f"{lost[v.name]['blobs_verified']} blobs"
            for v in VARIANTS
        )
    )
    for name, roles in result["served_by_replica"].items():
        lines.append(
            f"load requests served, {name}: " + "  ".join(f"{r} {v['load_requests']}" for r, v in roles.items())
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.replicas", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 clients, small layers, one run: shows it works")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "replicas.json")
    parser.add_argument("--keep", action="store_true", help="leave the stacks and moto up afterwards")
    args = parser.parse_args(argv)
    repeat, clients, layer_mb, rounds = args.repeat, 8, 32, 2  # bench/run.py's load
    if args.quick:
        repeat, clients, layer_mb, rounds = 1, 2, 2, 1

    client = realizer.docker_client()
    workdir = Path(tempfile.mkdtemp(prefix="private-registry-bench-s3-"))
    stack_files = {variant.name: workdir / f"{variant.stack}.yaml" for variant in VARIANTS}
    # The engine outlives sessions: a run cut short leaves moto attached to the stacks' networks.
    tear_down(client, list(stack_files.values()))
    other_pytest = _other_pytest_runs()
    load_at_start = [round(v, 2) for v in os.getloadavg()]
    try:
        moto = start_s3_store(client, MOTO_CONTAINER, MOTO_LABEL, MOTO_PORT, tuple(v.bucket for v in VARIANTS))
        cas: dict[str, Path] = {}
        warnings: dict[str, list[str]] = {}
        for variant in VARIANTS:
            stack_files[variant.name].write_text(yaml.safe_dump(stack_document(variant), sort_keys=False))
            cas[variant.name], warnings[variant.name] = bring_up(
                client, moto, variant, stack_files[variant.name], workdir
            )
        timer = time.monotonic()
        result: dict[str, Any] = {
            "when": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "machine": {
                "cpus": os.cpu_count(),
                "kernel": platform.release(),
                "python": platform.python_version(),
                "images": [REGISTRY_IMAGE, NGINX_IMAGE, REDIS_IMAGE, S3_STORE_IMAGE],
                "load_average_at_start": load_at_start,
                "other_pytest_runs_at_start": other_pytest,
            },
            "params": {
                "repeat": repeat,
                "clients": clients,
                "client_layer_mb": layer_mb,
                "rounds": rounds,
                "chunk_size_mib": CHUNK_SIZE_MIB,
                "quick": args.quick,
            },
            "stacks": {
                v.name: {
                    "stack": v.stack,
                    "replicas": v.replicas,
                    "endpoint": v.base,
                    "bucket": v.bucket,
                    "program_warnings": warnings[v.name],
                }
                for v in VARIANTS
            },
        }
        figures, tags, window = load_figures(client, cas, clients, layer_mb, rounds, repeat)
        result["variants"] = figures
        one, three = (figures[v.name]["aggregate_MBps"] for v in VARIANTS)
        result["ratio_3_over_1"] = round(three / one, 2) if one and three else None
        result["errors"] = sum(
            v["errors"] + v["manifest_transport_errors"] + v["proxy_error_responses"] for v in figures.values()
        )
        result["machine"]["load_average_after_load"] = [round(v, 2) for v in os.getloadavg()]
        result["served_by_replica"] = served_by_replica(client, window)
        result["nothing_lost"] = nothing_lost(cas, tags, clients, rounds)
        result["seconds"] = round(time.monotonic() - timer)
        result["machine"]["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
        result["machine"]["other_pytest_runs_while_loading"] = sorted(
            {line for v in figures.values() for run in v["runs"] for line in run["other_pytest_runs"]}
        )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(table(result))
        print(f"\nwritten to {args.out} ({result['seconds']} s of measuring)")
    except BaseException:
        print_logs(client)
        raise
    finally:
        if args.keep:
            print(f"kept: the stacks (files and CA certificates in {workdir}) and moto on 127.0.0.1:{MOTO_PORT}")
        else:
            tear_down(client, list(stack_files.values()))
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
