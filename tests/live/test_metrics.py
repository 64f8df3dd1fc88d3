"""Metrics and health on the live stack: what a Prometheus scrapes on metricsPort, counted against real
traffic through the proxy, and the registry's Docker health following its storage check.

The registry's request counters are `registry_http_requests_total{handler, method, code}` (registry 2.8,
docker/go-metrics: namespace `registry`, subsystem `http`); the handlers are the API's routes (`base` for
`/v2/`, `blob`, `blob_upload`, `blob_upload_chunk`, `manifest`, `tags`, `catalog`).
"""

from __future__ import annotations

import os
import re
from collections import Counter

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from harness.clients import wait_until
from harness.registry_api import RegistryClient, sha256_digest
from tests.live.conftest import LiveStack

pytestmark = pytest.mark.live

# The storage check runs every 10 s and fails the registry after 3 failures in a row; Docker then needs
# 3 failed healthchecks 10 s apart. 120 s leaves room for both, plus the checks' own timing.
UNHEALTHY_WITHIN = 120
# One passing storage check (10 s) and one passing healthcheck (10 s) bring it back.
HEALTHY_AGAIN_WITHIN = 90

RequestKey = tuple[str, str, str]
"""(handler, method, code) of registry_http_requests_total."""


@pytest.fixture(scope="module")
def metrics_base(stack: LiveStack) -> str:
    port = int(stack.config["private-registry:metricsPort"])
    base = f"http://127.0.0.1:{port}"
    assert stack.outputs["metricsEndpoints"] == [
        f"{base}/registry/metrics",
        f"{base}/nginx_status",
        f"{base}/maintenance/metrics",
    ]
    return base


def scrape(url: str) -> str:
    response = requests.get(url, timeout=30)
    assert response.status_code == 200, response.text
    return response.text


def registry_metrics(base: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Every sample of the registry's metrics, parsed by Prometheus' own text parser: name -> labels -> value."""
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(scrape(f"{base}/registry/metrics")):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def request_counts(samples: dict[str, dict[tuple[tuple[str, str], ...], float]]) -> Counter[RequestKey]:
    counts: Counter[RequestKey] = Counter()
    for labels, value in samples.get("registry_http_requests_total", {}).items():
        named = dict(labels)
        counts[(named["handler"], named["method"], named["code"])] = int(value)
    return counts


def total(samples: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str, handler: str) -> float:
    return sum(value for labels, value in samples.get(name, {}).items() if dict(labels).get("handler") == handler)


def nginx_status(base: str) -> dict[str, int]:
    """stub_status: active connections and the accepts / handled / requests counters."""
    text = scrape(f"{base}/nginx_status")
    active = re.search(r"Active connections: (\d+)", text)
    counters = re.search(r"server accepts handled requests\s+(\d+) (\d+) (\d+)", text)
    assert active and counters, text
    accepts, handled, handled_requests = (int(value) for value in counters.groups())
    return {"active": int(active.group(1)), "accepts": accepts, "handled": handled, "requests": handled_requests}


def test_registry_request_counters_follow_a_push_and_a_pull(metrics_base: str, api: RegistryClient) -> None:
    layer = os.urandom(2 * 1024 * 1024)
    before = registry_metrics(metrics_base)
    nginx_before = nginx_status(metrics_base)

    digest = api.push_image("metrics/counted", "v1", [layer])
    manifest = api.get_manifest("metrics/counted", "v1")
    assert manifest.status_code == 200 and manifest.headers["Docker-Content-Digest"] == digest
    config_digest = manifest.json()["config"]["digest"]
    assert api.get_blob("metrics/counted", sha256_digest(layer)).content == layer
    assert api.get_blob("metrics/counted", config_digest).status_code == 200

    nginx_after = nginx_status(metrics_base)
    after = registry_metrics(metrics_base)
    moved = request_counts(after)
    moved.subtract(request_counts(before))
    # The healthcheck's GET /v2/ every 10 s counts under `base`: left out, everything else is exact.
    moved_api = {key: count for key, count in moved.items() if count and key[0] != "base"}
    assert moved_api == {
        # Two blobs (the layer, the config), each one POST and one monolithic PUT.
        ("blob_upload", "post", "202"): 2,
        ("blob_upload_chunk", "put", "201"): 2,
        ("manifest", "put", "201"): 1,
        ("manifest", "get", "200"): 1,
        # The two blob downloads came from disk (proxy.fastBlobDownloads): the registry only answered nginx's
        # HEAD for each, and sent none of the bytes.
        ("blob", "head", "200"): 2,
    }
    sent = total(after, "registry_http_response_size_bytes_sum", "blob") - total(
        before, "registry_http_response_size_bytes_sum", "blob"
    )
    assert sent < len(layer)
    received = total(after, "registry_http_request_size_bytes_sum", "blob_upload_chunk") - total(
        before, "registry_http_request_size_bytes_sum", "blob_upload_chunk"
    )
    assert received >= len(layer)

    # nginx counted the 8 API requests and the stub_status read itself; the healthcheck and the metrics
    # scrape may add a few.
    assert nginx_after["requests"] - nginx_before["requests"] >= 8 + 1
    assert nginx_after["accepts"] >= nginx_before["accepts"] and nginx_after["handled"] == nginx_after["accepts"]
    assert nginx_after["active"] >= 1


def test_metrics_listener_serves_nothing_else(metrics_base: str, stack: LiveStack) -> None:
    # The registry's debug server behind it keeps expvar and pprof: none of it is passed on.
    for path in ("/debug/vars", "/debug/pprof/", "/debug/health", "/metrics", "/registry/metrics/x", "/v2/", "/"):
        assert requests.get(metrics_base + path, timeout=30).status_code == 404, path
    # And the TLS port has no stub_status (there `/` is the UI).
    tls = requests.get(
        f"https://127.0.0.1:{stack.https_port}/nginx_status", verify=str(stack.ca_file), timeout=30
    )  # fmt: skip
    assert "server accepts handled requests" not in tls.text


def registry_health(stack: LiveStack) -> str:
    container = stack.container("registry")
    container.reload()
    return str(container.attrs["State"]["Health"]["Status"])


def debug_health_status(stack: LiveStack) -> int:
    """The HTTP status of /debug/health on the registry's debug port, from inside the container."""
    result = stack.container("registry").exec_run(
        ["sh", "-c", "wget --spider -S http://127.0.0.1:5001/debug/health 2>&1"]
    )  # fmt: skip
    found = re.search(r"HTTP/[0-9.]+ (\d{3})", result.output.decode(errors="replace"))
    assert found, result.output
    return int(found.group(1))


def test_registry_goes_unhealthy_when_storage_fails_and_recovers(stack: LiveStack, api: RegistryClient) -> None:
    """The registry's storage root made unreachable: /var/lib (holding the data volume's mount point) mode 000.

    The registry runs as root without capabilities: the owner may chmod, but root then has no
    DAC_OVERRIDE to pass the directory. The registry's storage check stats its root directory, so this is
    what it sees; a mode 000 *inside* the root (/var/lib/registry/docker) makes writes fail but not that stat.
    """
    digest = api.push_image("metrics/health", "v1", [os.urandom(64 * 1024)])
    assert registry_health(stack) == "healthy"
    container = stack.container("registry")
    restarts_before = container.attrs["RestartCount"]  # the fault tests may have restarted it before
    assert container.exec_run(["chmod", "000", "/var/lib"]).exit_code == 0
    try:
        wait_until(
            lambda: registry_health(stack) == "unhealthy", UNHEALTHY_WITHIN, "registry unhealthy, storage gone", 2
        )
        assert debug_health_status(stack) == 503
        # The registry answers 503 to everything while a health check fails, and nginx passes it on.
        assert api.request("GET", "/v2/").status_code == 503
    finally:
        assert container.exec_run(["chmod", "755", "/var/lib"]).exit_code == 0

    wait_until(lambda: registry_health(stack) == "healthy", HEALTHY_AGAIN_WITHIN, "registry healthy again", 2)
    assert debug_health_status(stack) == 200
    assert api.request("GET", "/v2/").status_code == 200
    manifest = api.get_manifest("metrics/health", "v1")
    assert manifest.status_code == 200 and manifest.headers["Docker-Content-Digest"] == digest
    # Docker reports; it does not restart an unhealthy container (no swarm): the same container came back.
    container.reload()
    assert container.attrs["RestartCount"] == restarts_before
