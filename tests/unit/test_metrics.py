"""Metrics and health: the registry's debug server, nginx's metrics listener, metricsPort and the outputs."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from components.config import ConfigError
from components.registry import REGISTRY_HEALTHCHECK
from components.rendering import ProxyConfig, RegistryConfig, render_nginx_conf, render_registry_config
from harness.program import ProgramRun, plain
from tests.unit.test_config import load
from tests.unit.test_rendering import PROXY

pytestmark = pytest.mark.unit

Run = Callable[..., ProgramRun]
SITE = "/etc/nginx/conf.d/default.conf"


def servers(conf: str) -> list[list[str]]:
    """Each top-level `server { }` of an nginx config as its directive lines (comments dropped)."""
    found: list[list[str]] = []
    current: list[str] | None = None
    depth = 0
    for line in conf.splitlines():
        text = line.split("#", 1)[0].strip()
        if current is None and text == "server {":
            current, depth = [], 0
        if current is not None:
            depth += text.count("{") - text.count("}")
            if text:
                current.append(text)
            if depth == 0:
                found.append(current)
                current = None
    return found


def metrics_server(conf: str) -> list[str]:
    matching = [server for server in servers(conf) if any("stub_status" in line for line in server)]
    assert len(matching) == 1
    return matching[0]


# ---- rendering ----


def test_registry_debug_server_serves_prometheus_metrics() -> None:
    config = RegistryConfig(
        public_url="https://registry.example.com", http_secret="s" * 32, delete_enabled=True, log_level="info"
    )
    document = yaml.safe_load(render_registry_config(config))
    assert document["http"]["addr"] == ":5000"
    assert document["http"]["debug"] == {"addr": ":5001", "prometheus": {"enabled": True, "path": "/metrics"}}
    # The health checks behind the 503 on the main port (and /debug/health): storage, every 10 s, 3 failures.
    assert document["health"] == {"storagedriver": {"enabled": True, "interval": "10s", "threshold": 3}}


def test_nginx_metrics_listener_is_plain_http_apart_from_tls() -> None:
    server = metrics_server(render_nginx_conf(PROXY))
    listens = [line for line in server if line.startswith("listen ")]
    assert listens == ["listen 9113;"]
    assert not any(line.startswith(("ssl_", "auth_")) for line in server)
    assert "location = /nginx_status {" in server
    assert server[server.index("location = /nginx_status {") + 1] == "stub_status;"


def test_no_stub_status_on_the_other_servers() -> None:
    conf = render_nginx_conf(PROXY)
    others = [server for server in servers(conf) if server != metrics_server(conf)]
    assert len(others) == 4  # health, the plain registry API, the redirect, TLS
    for server in others:
        assert not any("stub_status" in line or "metrics" in line for line in server)
    tls = [server for server in others if "listen 443 ssl default_server;" in server]
    assert len(tls) == 1


def test_metrics_listener_passes_on_only_the_registrys_metrics() -> None:
    server = metrics_server(render_nginx_conf(PROXY))
    locations = [line for line in server if line.startswith("location ")]
    assert locations == [
        "location = /nginx_status {",
        "location = /registry/metrics {",
        "location = /maintenance/metrics {",
        "location / {",
    ]
    # The maintenance run's figures: a file in the flags volume, nothing else of it.
    assert "alias /run/registry-maintenance/metrics.prom;" in server
    # Only the exact path goes to the debug server: its pprof and expvar pages stay out of reach.
    assert "set $registry_metrics_upstream http://registry:5001;" in server
    assert "proxy_pass $registry_metrics_upstream/metrics;" in server
    assert server[-4:] == ["location / {", "return 404;", "}", "}"]
    assert sum("proxy_pass" in line for line in server) == 1


def test_metrics_listener_follows_its_config() -> None:
    conf = render_nginx_conf(
        ProxyConfig(**{**PROXY.__dict__, "metrics_port": 9200, "registry_metrics_upstream": "r:7"})
    )
    server = metrics_server(conf)
    assert "listen 9200;" in server
    assert "set $registry_metrics_upstream http://r:7;" in server


# ---- config ----


def test_metrics_port_defaults_to_unpublished() -> None:
    assert load().metrics_port == 0
    assert load(metricsPort=25090).metrics_port == 25090


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"metricsPort": 70000},
            "private-registry:metricsPort: Input should be less than or equal to 65535 (got 70000)",
        ),
        ({"metricsPort": -1}, "private-registry:metricsPort: Input should be greater than or equal to 0 (got -1)"),
        ({"metricsPort": "metrics"}, "private-registry:metricsPort: Input should be a valid integer (got 'metrics')"),
        ({"metricsPort": True}, "private-registry:metricsPort: Input should be a valid integer (got True)"),
        ({"metricsPort": 443}, "metricsPort and httpsPort are both 443"),
        ({"metricsPort": 80}, "metricsPort and httpPort are both 80"),
        ({"registryPort": 5000, "metricsPort": 5000}, "metricsPort and registryPort are both 5000"),
        ({"uiPort": 8080, "metricsPort": 8080}, "metricsPort and uiPort are both 8080"),
    ],
)
def test_metrics_port_errors_name_the_key(values: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(**values)
    assert message in str(caught.value)


# ---- the program: ports, outputs, warnings ----


def proxy_inputs(result: ProgramRun) -> dict[str, Any]:
    inputs: dict[str, Any] = plain(result.named("registry-proxy-container").inputs)
    return inputs


def test_metrics_port_is_published_on_the_bind_address_only_when_set(run: Run) -> None:
    unpublished = proxy_inputs(run(bindAddress="192.168.1.10"))["ports"]
    assert all(port["internal"] != 9113 for port in unpublished)
    published = proxy_inputs(run(bindAddress="192.168.1.10", metricsPort=9100))["ports"]
    assert {"internal": 9113, "external": 9100, "ip": "192.168.1.10"} in published
    assert {"internal": 443, "external": 443, "ip": "192.168.1.10"} in published


def test_registry_debug_port_is_never_published(run: Run) -> None:
    registry = plain(run(metricsPort=9100).named("registry-distribution-container").inputs)
    assert registry.get("ports", []) == []


def test_outputs_without_metrics_port_are_the_stacks_network_addresses(run: Run) -> None:
    outputs = run().outputs
    assert outputs["metricsEndpoints"] == [
        "http://proxy:9113/registry/metrics",
        "http://proxy:9113/nginx_status",
        "http://proxy:9113/maintenance/metrics",
    ]
    assert yaml.safe_load(outputs["prometheusScrapeConfig"]) == {
        "scrape_configs": [
            {
                "job_name": "private-registry-test",
                "metrics_path": "/registry/metrics",
                "scheme": "http",
                "static_configs": [{"targets": ["proxy:9113"]}],
            },
            {
                "job_name": "private-registry-test-maintenance",
                "metrics_path": "/maintenance/metrics",
                "scheme": "http",
                "static_configs": [{"targets": ["proxy:9113"]}],
            },
        ]
    }


def test_mirror_metrics_are_passed_on_and_scraped(run: Run) -> None:
    outputs = run(mirrors=[{"name": "dockerhub", "port": 5443}]).outputs
    assert outputs["metricsEndpoints"][-1] == "http://proxy:9113/mirrors/dockerhub/metrics"
    jobs = yaml.safe_load(outputs["prometheusScrapeConfig"])["scrape_configs"]
    assert jobs[-1]["job_name"] == "private-registry-test-mirror-dockerhub"
    assert jobs[-1]["metrics_path"] == "/mirrors/dockerhub/metrics"
    site = proxy_inputs(run(mirrors=[{"name": "dockerhub", "port": 5443}]))["uploads"][0]["content"]
    location = site[site.index("location = /mirrors/dockerhub/metrics") :]
    assert "set $mirror_metrics_upstream http://mirror-dockerhub:5001;" in location
    assert "proxy_pass $mirror_metrics_upstream/metrics;" in location


def test_outputs_with_metrics_port_point_at_the_bind_address(run: Run) -> None:
    outputs = run(bindAddress="192.168.1.10", metricsPort=9100, stack="prod").outputs
    assert outputs["metricsEndpoints"] == [
        "http://192.168.1.10:9100/registry/metrics",
        "http://192.168.1.10:9100/nginx_status",
        "http://192.168.1.10:9100/maintenance/metrics",
    ]
    scrape = yaml.safe_load(outputs["prometheusScrapeConfig"])["scrape_configs"][0]
    assert scrape["job_name"] == "private-registry-prod"
    assert scrape["static_configs"] == [{"targets": ["192.168.1.10:9100"]}]


@pytest.mark.parametrize(
    ("bind", "target"),
    [("0.0.0.0", "registry.example.com:9100"), ("::1", "[::1]:9100"), ("::", "registry.example.com:9100")],
)
def test_metrics_target_for_every_interface_and_ipv6(run: Run, bind: str, target: str) -> None:
    outputs = run(bindAddress=bind, metricsPort=9100).outputs
    assert outputs["metricsEndpoints"][0] == f"http://{target}/registry/metrics"


def test_metrics_port_off_loopback_warns(run: Run) -> None:
    assert any("metricsPort 9100" in w for w in run(bindAddress="192.168.1.10", metricsPort=9100).warnings)
    assert not any("metricsPort" in w for w in run(metricsPort=9100).warnings)


def test_metrics_port_changes_the_published_ports_not_the_site(run: Run) -> None:
    site = yaml.safe_dump(proxy_inputs(run())["uploads"])
    assert site == yaml.safe_dump(proxy_inputs(run(metricsPort=9100))["uploads"])


# ---- health ----


def test_registry_healthcheck_is_the_main_port_which_answers_503_when_a_health_check_fails() -> None:
    command = REGISTRY_HEALTHCHECK[1]
    assert REGISTRY_HEALTHCHECK[0] == "CMD-SHELL"
    assert "http://127.0.0.1:5000/v2/" in command
    # 200 (open) or 401 (accounts) only: the 503 of a failing storage check makes it fail.
    accepted = re.search(r"\(([0-9|]+)\)", command)
    assert accepted is not None and accepted.group(1).split("|") == ["200", "401"]
