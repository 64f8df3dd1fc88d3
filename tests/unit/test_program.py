"""The whole program under Pulumi's mocks: what it declares for a given stack config."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from typing import Any

import pulumi
import pytest
import yaml

from harness.program import PROJECT_DIR, CapturingMonitor, ProgramRun, is_secret, plain, run_program, stack_config
from tests.unit.conftest import BASE_CONFIG, VALIDITY_START, FakeMocks, namespaced, rfc3339

pytestmark = pytest.mark.unit

Run = Callable[..., ProgramRun]
CONTAINER = "docker:index/container:Container"
SITE = "/etc/nginx/conf.d/default.conf"
# The Pulumi component of each container role (the registry's is named after the distribution project).
COMPONENT = {"registry": "distribution", "ui": "ui", "proxy": "proxy"}


def container(run: ProgramRun, role: str) -> dict[str, Any]:
    inputs: dict[str, Any] = plain(run.named(f"registry-{COMPONENT[role]}-container").inputs)
    return inputs


def upload(inputs: dict[str, Any], path: str) -> dict[str, Any]:
    matches = [u for u in inputs["uploads"] if u["file"] == path]
    assert len(matches) == 1, [u["file"] for u in inputs["uploads"]]
    found: dict[str, Any] = matches[0]
    return found


def parent_name(run: ProgramRun, name: str) -> str:
    return run.named(name).parent.rsplit("::", 1)[-1]


# ---- the resource graph ----


def test_declares_the_components_and_their_children(run: Run) -> None:
    result = run()
    graph = {(r.typ, r.name, parent_name(result, r.name)) for r in result.registrations.values()}
    assert graph == {
        ("private-registry:index:PrivateRegistry", "registry", "private-registry-test"),
        ("docker:index/network:Network", "registry-net", "registry"),
        ("random:index/randomPassword:RandomPassword", "registry-http-secret", "registry"),
        ("private-registry:tls:CertificateAuthority", "registry-ca", "registry"),
        ("tls:index/privateKey:PrivateKey", "registry-ca-key", "registry-ca"),
        ("tls:index/selfSignedCert:SelfSignedCert", "registry-ca-cert", "registry-ca"),
        ("private-registry:tls:ServerCertificate", "registry-tls", "registry"),
        ("tls:index/privateKey:PrivateKey", "registry-tls-key", "registry-tls"),
        ("tls:index/certRequest:CertRequest", "registry-tls-csr", "registry-tls"),
        ("tls:index/locallySignedCert:LocallySignedCert", "registry-tls-cert", "registry-tls"),
        ("private-registry:registry:Registry", "registry-distribution", "registry"),
        ("docker:index/volume:Volume", "registry-distribution-data", "registry-distribution"),
        ("docker:index/remoteImage:RemoteImage", "registry-distribution-image", "registry-distribution"),
        (CONTAINER, "registry-distribution-container", "registry-distribution"),
        ("private-registry:maintenance:Maintenance", "registry-maintenance", "registry"),
        ("docker:index/volume:Volume", "registry-maintenance-flags", "registry-maintenance"),
        ("docker:index/remoteImage:RemoteImage", "registry-maintenance-image", "registry-maintenance"),
        (CONTAINER, "registry-maintenance-container", "registry-maintenance"),
        ("private-registry:ui:RegistryUi", "registry-ui", "registry"),
        ("docker:index/remoteImage:RemoteImage", "registry-ui-image", "registry-ui"),
        (CONTAINER, "registry-ui-container", "registry-ui"),
        ("private-registry:proxy:ReverseProxy", "registry-proxy", "registry"),
        ("docker:index/remoteImage:RemoteImage", "registry-proxy-image", "registry-proxy"),
        (CONTAINER, "registry-proxy-container", "registry-proxy"),
    }


def test_ui_flavor_none_declares_no_ui(run: Run) -> None:
    result = run(ui={"flavor": "none"})
    assert not [r for r in result.registrations.values() if "-ui" in r.name]
    assert len(result.of_type(CONTAINER)) == 3
    assert "return 404;" in upload(container(result, "proxy"), SITE)["content"]


def test_all_containers_join_the_one_network(run: Run) -> None:
    result = run()
    network = plain(result.named("registry-net").inputs)
    assert network["name"] == "private-registry-test-net"
    assert network["driver"] == "bridge"
    assert len(result.of_type("docker:index/network:Network")) == 1
    joined = {r.name: plain(r.inputs)["networksAdvanced"] for r in result.of_type(CONTAINER)}
    assert joined == {
        "registry-proxy-container": [{"name": "private-registry-test-net", "aliases": ["proxy"]}],
        "registry-maintenance-container": [{"name": "private-registry-test-net"}],
        "registry-distribution-container": [{"name": "private-registry-test-net", "aliases": ["registry"]}],
        "registry-ui-container": [{"name": "private-registry-test-net", "aliases": ["ui"]}],
    }


def test_docker_names_carry_project_and_stack(run: Run) -> None:
    dev, prod = run(stack="dev"), run(stack="prod")

    def names(result: ProgramRun) -> set[str]:
        return {
            plain(r.inputs)["name"]
            for r in result.registrations.values()
            if r.typ.startswith("docker:index/") and "RemoteImage" not in r.typ
        }

    assert names(dev) == {
        "private-registry-dev-net",
        "private-registry-dev-registry-data",
        "private-registry-dev-registry",
        "private-registry-dev-ui",
        "private-registry-dev-proxy",
        "private-registry-dev-maintenance",
        "private-registry-dev-maintenance-flags",
    }
    assert not names(dev) & names(prod)


def test_every_docker_object_is_labelled_with_its_stack(run: Run) -> None:
    result = run(stack="dev")
    for registration in result.registrations.values():
        if registration.typ in (CONTAINER, "docker:index/network:Network", "docker:index/volume:Volume"):
            labels = {item["label"]: item["value"] for item in plain(registration.inputs)["labels"]}
            assert labels["org.private-registry.project"] == "private-registry"
            assert labels["org.private-registry.stack"] == "dev"


# ---- ports ----


def test_default_ports_publish_https_and_redirect_on_loopback(run: Run) -> None:
    result = run()
    assert container(result, "proxy")["ports"] == [
        {"internal": 443, "external": 443, "ip": "127.0.0.1"},
        {"internal": 80, "external": 80, "ip": "127.0.0.1"},
    ]
    assert container(result, "registry").get("ports", []) == []
    assert container(result, "ui").get("ports", []) == []


def test_ports_follow_config(run: Run) -> None:
    result = run(bindAddress="192.168.1.10", httpsPort=8443, httpPort=0, registryPort=5000, uiPort=8081)
    # registryPort is the proxy's plain port: every client passes the proxy (writes pause there during GC).
    assert container(result, "proxy")["ports"] == [
        {"internal": 443, "external": 8443, "ip": "192.168.1.10"},
        {"internal": 5000, "external": 5000, "ip": "192.168.1.10"},
    ]
    assert container(result, "registry").get("ports", []) == []
    assert container(result, "ui")["ports"] == [{"internal": 8080, "external": 8081, "ip": "192.168.1.10"}]
    assert "listen 80" not in upload(container(result, "proxy"), SITE)["content"]


def test_joxit_published_on_its_own_port_proxies_through_dockers_dns(run: Run) -> None:
    env = set(container(run(uiPort=8081), "ui")["envs"])
    # To the proxy's plain port, not the registry: writes pause there during garbage collection.
    assert {"NGINX_PROXY_PASS_URL=http://proxy:5000", "NGINX_RESOLVER=127.0.0.11"} <= env


def test_joxit_runs_as_its_nginx_user_without_capabilities(run: Run) -> None:
    ui = container(run(), "ui")
    assert ui["user"] == "101:101"
    assert ui["capabilities"] == {"drops": ["ALL"], "adds": []}
    assert ui["healthcheck"]["tests"][-1] == "http://127.0.0.1:8080/"


def test_hyper_ui_is_published_from_its_own_port(run: Run) -> None:
    result = run(ui={"flavor": "hyper"}, uiPort=8081)
    assert container(result, "ui")["ports"] == [{"internal": 8080, "external": 8081, "ip": "127.0.0.1"}]


# ---- certificates ----


def test_ca_keeps_its_identity_across_config_edits(run: Run) -> None:
    """The engine keeps these inputs from state once the CA exists: no ordinary edit replaces it."""
    result = run()
    assert result.named("registry-ca-key").options["ignoreChanges"] == ["algorithm", "ecdsaCurve", "rsaBits"]
    assert result.named("registry-ca-cert").options["ignoreChanges"] == [
        "subject",
        "validityPeriodHours",
        "allowedUses",
    ]
    # The server certificate follows the config as before.
    assert result.named("registry-tls-cert").options["ignoreChanges"] == []


def test_a_new_ca_generation_is_a_new_ca(run: Run) -> None:
    first, second = run(), run(tls={"caGeneration": 2})
    ca_names = {r.name for r in first.registrations.values() if r.name.startswith("registry-ca")}
    assert ca_names == {"registry-ca", "registry-ca-key", "registry-ca-cert"}
    rotated = {r.name for r in second.registrations.values() if r.name.startswith("registry-ca")}
    assert rotated == {"registry-ca-2", "registry-ca-2-key", "registry-ca-2-cert"}


class KeptCaMocks(FakeMocks):
    """As the engine answers for a CA made earlier with other settings: ignored inputs come from state."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        resource_id, outputs = super().new_resource(args)
        if args.name == "registry-ca-key":
            outputs = {**outputs, "algorithm": "RSA", "rsaBits": 2048}
            outputs.pop("ecdsaCurve", None)
        if args.name == "registry-ca-cert":
            outputs = {
                **outputs,
                "subject": {"commonName": "Old Registry CA", "organization": "Old"},
                "validityPeriodHours": 20 * 24,
                "validityEndTime": rfc3339(VALIDITY_START + datetime.timedelta(days=20)),
            }
        return resource_id, outputs


def test_preview_says_which_ca_settings_wait_for_a_new_generation() -> None:
    config = {**BASE_CONFIG, **namespaced(tls={"organization": "Acme"}, auth={"users": USERS})}
    warnings = run_program(config, KeptCaMocks()).warnings
    kept = [w for w in warnings if w.startswith("the CA is kept")]
    assert len(kept) == 1
    for expected in [
        "tls.keyAlgorithm ECDSA (the CA's key is RSA)",
        "tls.organization 'Acme' (the CA's is 'Old')",
        "tls.caValidityDays 3650 (the CA was made for 20 days)",
        "raise tls.caGeneration (now 1)",
    ]:
        assert expected in kept[0], kept[0]
    expiring = [w for w in warnings if w.startswith("the CA expires on")]
    assert len(expiring) == 1 and "sooner than a server certificate signed now (365 days)" in expiring[0]


def test_a_fresh_ca_draws_no_ca_warning(run: Run) -> None:
    assert not [w for w in run(auth={"users": USERS}).warnings if "CA" in w]


def test_ca_is_a_p256_ca(run: Run) -> None:
    result = run(tls={"organization": "Acme"})
    assert plain(result.named("registry-ca-key").inputs) == {"algorithm": "ECDSA", "ecdsaCurve": "P256"}
    ca = plain(result.named("registry-ca-cert").inputs)
    assert ca["isCaCertificate"] is True
    assert sorted(ca["allowedUses"]) == ["cert_signing", "crl_signing", "digital_signature"]
    assert ca["subject"] == {"commonName": "Acme Registry CA", "organization": "Acme"}
    assert ca["validityPeriodHours"] == 3650 * 24
    assert is_secret(result.named("registry-ca-cert").inputs["privateKeyPem"])


def test_server_certificate_names_and_uses(run: Run) -> None:
    result = run(ipAddresses=["127.0.0.1", "10.0.0.5"], tls={"certValidityDays": 90, "earlyRenewalDays": 10})
    csr = plain(result.named("registry-tls-csr").inputs)
    assert csr["subject"] == {"commonName": "registry.example.com", "organization": "Private Registry"}
    assert csr["dnsNames"] == ["registry.example.com"]
    assert csr["ipAddresses"] == ["127.0.0.1", "10.0.0.5"]
    cert = plain(result.named("registry-tls-cert").inputs)
    assert cert["allowedUses"] == ["digital_signature", "server_auth"]
    assert cert["validityPeriodHours"] == 90 * 24
    assert cert["earlyRenewalHours"] == 10 * 24
    assert cert["caCertPem"] == result.outputs["caCertPem"]
    assert is_secret(result.named("registry-tls-cert").inputs["caPrivateKeyPem"])


def test_rsa_keys_are_2048_bits_and_allow_key_encipherment(run: Run) -> None:
    result = run(tls={"keyAlgorithm": "RSA"})
    for key in ("registry-ca-key", "registry-tls-key"):
        assert plain(result.named(key).inputs) == {"algorithm": "RSA", "rsaBits": 2048}
    assert plain(result.named("registry-tls-cert").inputs)["allowedUses"] == [
        "digital_signature",
        "key_encipherment",
        "server_auth",
    ]


def test_ip_hostname_has_no_dns_san(run: Run) -> None:
    result = run(hostname="10.0.0.5")
    csr = plain(result.named("registry-tls-csr").inputs)
    assert csr.get("dnsNames", []) == []
    assert csr["ipAddresses"] == ["10.0.0.5"]
    assert "server_name _;" in upload(container(result, "proxy"), SITE)["content"]


# ---- the registry ----


def test_registry_gets_its_config_and_keeps_data_in_a_volume(run: Run) -> None:
    result = run(httpsPort=8443, registry={"logLevel": "debug", "deleteEnabled": False})
    registry = container(result, "registry")
    assert registry["command"] == ["/etc/docker/registry/config.yml"]
    config = yaml.safe_load(upload(registry, "/etc/docker/registry/config.yml")["content"])
    assert config["http"]["host"] == "https://registry.example.com:8443"
    assert config["log"]["level"] == "debug"
    assert config["storage"]["delete"]["enabled"] is False
    generated = plain(result.named("registry-http-secret").inputs)
    assert generated == {"length": 48, "special": False}
    assert config["http"]["secret"].startswith("generated-")
    assert registry["volumes"] == [
        {"volumeName": "private-registry-test-registry-data", "containerPath": "/var/lib/registry"}
    ]
    assert result.named("registry-distribution-data").options["retainOnDelete"] is True
    assert registry["restart"] == "unless-stopped"


def test_registry_3_reads_its_config_from_the_distribution_path(run: Run) -> None:
    registry = container(run(registry={"image": "registry:3.0.0"}), "registry")
    assert registry["command"] == ["/etc/distribution/config.yml"]
    upload(registry, "/etc/distribution/config.yml")


def test_configured_http_secret_is_used_and_nothing_is_generated(run: Run) -> None:
    result = run(registry={"httpSecret": "configured-secret-0123456789"})
    assert not result.of_type("random:index/randomPassword:RandomPassword")
    config = yaml.safe_load(upload(container(result, "registry"), "/etc/docker/registry/config.yml")["content"])
    assert config["http"]["secret"] == "configured-secret-0123456789"


def test_images_are_kept_locally_and_referenced_by_id(run: Run) -> None:
    result = run(
        registry={"image": "registry:2.8.2"},
        proxy={"image": "nginx:1.27"},
        ui={"image": "joxit/docker-registry-ui:2.5.0"},
    )
    for role, image in (
        ("registry", "registry:2.8.2"),
        ("proxy", "nginx:1.27"),
        ("ui", "joxit/docker-registry-ui:2.5.0"),
    ):
        remote = plain(result.named(f"registry-{COMPONENT[role]}-image").inputs)
        assert remote == {"name": image, "keepLocally": True}
        assert container(result, role)["image"].startswith("sha256:")
    images = {container(result, role)["image"] for role in ("registry", "proxy", "ui")}
    assert len(images) == 3


# ---- the UI ----


def test_joxit_ui_is_same_origin_and_follows_delete(run: Run) -> None:
    env = set(container(run(ui={"title": "Team images"}), "ui")["envs"])
    assert {
        "SINGLE_REGISTRY=true",
        "REGISTRY_TITLE=Team images",
        "DELETE_IMAGES=true",
    } <= env
    # Behind our nginx the page calls /v2/ on its own origin: the UI container never contacts the registry.
    assert not any(e.startswith(("NGINX_PROXY_PASS_URL=", "NGINX_RESOLVER=")) for e in env)
    assert "DELETE_IMAGES=false" in container(run(registry={"deleteEnabled": False}), "ui")["envs"]
    assert "DELETE_IMAGES=false" in container(run(ui={"readonly": True}), "ui")["envs"]


def test_hyper_ui_gets_the_recipe_config_file(run: Run) -> None:
    ui = container(run(httpsPort=8443, ui={"flavor": "hyper", "readonly": False}), "ui")
    config = yaml.safe_load(upload(ui, "/conf/config.yml")["content"])
    assert config == {
        "registry": {"url": "http://proxy:5000/v2", "name": "registry.example.com:8443", "readonly": False},
        "auth": {"enabled": False},
    }
    assert ui["envs"] == ["CATALINA_OPTS=-Xmx320m"]  # Java 7 would size its heap from the host's memory
    assert ui["capabilities"] == {"drops": ["ALL"], "adds": []}


# ---- the proxy ----


def test_proxy_gets_site_config_certificate_and_secret_key(run: Run) -> None:
    result = run()
    proxy_registration = result.named("registry-proxy-container")
    assert is_secret(proxy_registration.inputs["uploads"]), "the key is uploaded, so the uploads must be secret"
    proxy = container(result, "proxy")
    key = upload(proxy, "/etc/nginx/tls/server.key")
    assert key["permissions"] == "0600"
    assert key["content"].startswith("-----BEGIN PRIVATE KEY-----")
    cert = upload(proxy, "/etc/nginx/tls/server.crt")
    assert cert["content"].startswith("-----BEGIN CERTIFICATE-----")
    site = upload(proxy, SITE)["content"]
    assert "proxy_pass $registry_upstream;" in site
    assert proxy["stopSignal"] == "SIGQUIT"


def test_registry_config_upload_is_secret(run: Run) -> None:
    assert is_secret(run().named("registry-distribution-container").inputs["uploads"])


# ---- outputs ----


def test_outputs_for_the_default_port(run: Run) -> None:
    outputs = run().outputs
    assert outputs["registryEndpoint"] == "registry.example.com"
    assert outputs["registryUrl"] == "https://registry.example.com"
    assert outputs["uiUrl"] == "https://registry.example.com/"
    assert outputs["dockerCertsDir"] == "/etc/docker/certs.d/registry.example.com"
    assert outputs["networkName"] == "private-registry-test-net"
    assert outputs["serverCertNotAfter"] == rfc3339(VALIDITY_START + datetime.timedelta(days=365))
    assert outputs["caCertNotAfter"] == rfc3339(VALIDITY_START + datetime.timedelta(days=3650))
    assert outputs["caCertPem"].startswith("-----BEGIN CERTIFICATE-----")


def test_outputs_for_another_port_and_no_ui(run: Run) -> None:
    outputs = run(httpsPort=8443, ui={"flavor": "none"}).outputs
    assert outputs["registryEndpoint"] == "registry.example.com:8443"
    assert outputs["registryUrl"] == "https://registry.example.com:8443"
    assert outputs["uiUrl"] == ""
    assert outputs["dockerCertsDir"] == "/etc/docker/certs.d/registry.example.com:8443"


def test_outputs_are_complete_and_hold_no_secret(run: Run) -> None:
    result = run(
        registry={"httpSecret": "configured-secret-0123456789"},
        mirrors=[{"name": "dockerhub", "port": 5443, "username": "hub-user", "password": "hub-token-0123456789"}],
    )
    assert set(result.outputs) == {
        "registryEndpoint",
        "registryUrl",
        "uiUrl",
        "caCertPem",
        "caCertNotAfter",
        "serverCertNotAfter",
        "networkName",
        "dockerCertsDir",
        "maintenanceContainer",
        "gcRunCommand",
        "metricsEndpoints",
        "prometheusScrapeConfig",
        "mirrors",
        "dockerDaemonJson",
        "containerdHostsToml",
    }
    assert "hub-token-0123456789" not in json.dumps(result.outputs)
    assert result.outputs["gcRunCommand"] == (
        "docker exec private-registry-test-maintenance /usr/local/sbin/maintenance.sh run"
    )
    assert result.secret_outputs == set()
    assert "configured-secret-0123456789" not in json.dumps(result.outputs)
    assert "PRIVATE KEY" not in json.dumps(result.outputs)


# ---- determinism and blast radius ----


def inputs_by_name(result: ProgramRun) -> dict[str, str]:
    """Each resource's inputs as the engine diffs them: without those its `ignore_changes` keeps from state."""
    return {
        r.name: json.dumps(
            {k: v for k, v in plain(r.inputs).items() if k not in r.options["ignoreChanges"]}, sort_keys=True
        )
        for r in result.registrations.values()
    }


def test_same_config_declares_identical_inputs(run: Run) -> None:
    values = {"httpsPort": 8443, "ipAddresses": ["127.0.0.1"], "ui": {"flavor": "hyper"}}
    assert inputs_by_name(run(**values)) == inputs_by_name(run(**values))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # The maintenance container gets the registry's config.yml (garbage-collect reads its storage section).
        ({"registry": {"logLevel": "debug"}}, {"registry-distribution-container", "registry-maintenance-container"}),
        (
            {"registry": {"image": "registry:2.8.2"}},
            {
                "registry-distribution-image",
                "registry-distribution-container",
                "registry-maintenance-image",
                "registry-maintenance-container",
            },
        ),
        ({"gc": {"schedule": "0 4 * * *"}}, {"registry-maintenance-container"}),
        (
            {"gc": {"retention": {"rules": [{"repositories": ["ci/*"], "keepLast": 5}]}}},
            {"registry-maintenance-container"},
        ),
        ({"ui": {"title": "Other"}}, {"registry-ui-container"}),
        ({"proxy": {"image": "nginx:1.27"}}, {"registry-proxy-image", "registry-proxy-container"}),
        ({"registryPort": 5000}, {"registry-proxy-container"}),
        ({"httpPort": 0}, {"registry-proxy-container"}),
        # The endpoint appears in http.host, the UI's pull URL and the redirect target.
        (
            {"httpsPort": 8443},
            {
                "registry-distribution-container",
                "registry-maintenance-container",
                "registry-ui-container",
                "registry-proxy-container",
            },
        ),
        (
            {"ipAddresses": ["127.0.0.1"]},
            {"registry-tls-csr", "registry-tls-cert", "registry-proxy-container"},
        ),
        # The CA keeps its key, subject and lifetime: only a new tls.caGeneration replaces it.
        (
            {"tls": {"organization": "Acme"}},
            {"registry-tls-csr", "registry-tls-cert", "registry-proxy-container"},
        ),
        ({"tls": {"caValidityDays": 7300}}, set()),
        (
            {"tls": {"keyAlgorithm": "RSA"}},
            {
                "registry-tls-key",
                "registry-tls-csr",
                "registry-tls-cert",
                "registry-proxy-container",
            },
        ),
    ],
)
def test_one_setting_changes_only_what_depends_on_it(run: Run, change: dict[str, Any], expected: set[str]) -> None:
    before, after = inputs_by_name(run()), inputs_by_name(run(**change))
    assert before.keys() == after.keys()
    assert {name for name in before if before[name] != after[name]} == expected


# ---- errors and warnings ----


def test_bad_config_fails_before_any_resource(run: Run) -> None:
    mocks = FakeMocks()
    with pytest.raises(
        pulumi.RunError, match=r"private-registry:httpsPort: Input should be less than or equal to 65535"
    ):
        run_program({"private-registry:hostname": "r.example.com", "private-registry:httpsPort": "99999"}, mocks)


def test_missing_hostname_is_a_clear_error() -> None:
    with pytest.raises(pulumi.RunError, match=r"private-registry:hostname: required"):
        run_program({}, FakeMocks())


OPEN_REGISTRY = "no auth.users configured"
USERS = {"alice": "correct-horse-7", "bob": "battery-staple-9"}


def test_defaults_warn_only_that_the_registry_is_open(run: Run) -> None:
    warnings = run().warnings
    assert len(warnings) == 1 and warnings[0].startswith(OPEN_REGISTRY)


def test_accounts_silence_the_open_registry_warning(run: Run) -> None:
    assert run(auth={"users": USERS}).warnings == []


def test_binding_every_interface_warns(run: Run) -> None:
    assert any("bindAddress is 0.0.0.0" in w for w in run(bindAddress="0.0.0.0").warnings)


def test_plain_http_registry_port_on_a_lan_address_warns(run: Run) -> None:
    assert any("plain HTTP" in w for w in run(bindAddress="192.168.1.10", registryPort=5000).warnings)
    assert not any("plain HTTP" in w for w in run(registryPort=5000).warnings)


def test_preview_declares_the_same_resources(run: Run) -> None:
    assert set(inputs_by_name(run(preview=True))) == set(inputs_by_name(run()))


# ---- the shipped stack files ----


def test_dev_stack_file_deploys_on_loopback_with_unprivileged_ports() -> None:
    config = stack_config(PROJECT_DIR / "Pulumi.dev.yaml")
    result = run_program(config, FakeMocks(), stack="dev")
    assert result.outputs["registryEndpoint"] == "registry.localhost:8443"
    for registration in result.of_type(CONTAINER):
        for port in plain(registration.inputs).get("ports", []):
            assert port["ip"] == "127.0.0.1"
            assert port["external"] >= 1024
    assert [w[: len(OPEN_REGISTRY)] for w in result.warnings] == [OPEN_REGISTRY]


def test_project_file_declares_the_scalar_keys_with_the_code_defaults() -> None:
    from components.config import Settings

    project = yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())
    assert project["name"] == "private-registry"
    assert project["backend"]["url"].startswith("file://")
    defaults = Settings(hostname="x.example.com")
    for key, schema in project["config"].items():
        if "default" in schema:
            attribute = {
                "ipAddresses": "ip_addresses",
                "bindAddress": "bind_address",
                "httpsPort": "https_port",
                "healthyWaitSeconds": "healthy_wait_seconds",
                "httpPort": "http_port",
                "registryPort": "registry_port",
                "uiPort": "ui_port",
                "metricsPort": "metrics_port",
                "engine": "engine",
            }[key]
            value = getattr(defaults, attribute)
            value = value.value if hasattr(value, "value") else value  # an enum: its config spelling
            assert (list(value) if isinstance(value, tuple) else value) == schema["default"], key


def test_each_run_starts_with_a_fresh_stack(run: Run) -> None:
    """Runs in one process must not share the root stack: its name and exports would leak between them."""
    run(stack="first")
    second = run(stack="second")
    assert parent_name(second, "registry") == "private-registry-second"


# ---- accounts ----


def test_accounts_are_enforced_by_the_registry_with_a_secret_htpasswd(run: Run) -> None:
    result = run(auth={"users": USERS, "realm": "Acme"})
    registry = container(result, "registry")
    config = yaml.safe_load(upload(registry, "/etc/docker/registry/config.yml")["content"])
    assert config["auth"] == {"htpasswd": {"realm": "Acme", "path": "/auth/htpasswd"}}
    htpasswd = upload(registry, "/auth/htpasswd")["content"].splitlines()
    assert [line.split(":")[0] for line in htpasswd] == ["alice", "bob"]
    assert all(line.split(":", 1)[1].startswith("$2b$12$") for line in htpasswd)
    assert is_secret(result.named("registry-distribution-container").inputs["uploads"])
    assert "REGISTRY_SECURED=true" in container(result, "ui")["envs"]


def test_no_accounts_means_no_auth_section_and_no_htpasswd(run: Run) -> None:
    registry = container(run(), "registry")
    assert [u["file"] for u in registry["uploads"]] == ["/etc/docker/registry/config.yml"]
    assert "auth" not in yaml.safe_load(registry["uploads"][0]["content"])


def test_passwords_appear_in_no_output_and_no_plain_input(run: Run) -> None:
    result = run(auth={"users": USERS})
    assert not any(p in json.dumps(result.outputs) for p in USERS.values())
    for registration in result.registrations.values():
        text = json.dumps(registration.inputs)
        assert not any(p in text for p in USERS.values()), registration.name


def test_htpasswd_is_stable_and_follows_users(run: Run) -> None:
    def htpasswd(users: dict[str, str]) -> str:
        return str(upload(container(run(auth={"users": users}), "registry"), "/auth/htpasswd")["content"])

    assert htpasswd(USERS) == htpasswd(USERS)
    assert htpasswd(USERS) != htpasswd({**USERS, "bob": "another-password"})
    assert "bob:" not in htpasswd({"alice": USERS["alice"]})


def test_a_password_change_replaces_only_the_registry(run: Run) -> None:
    before = inputs_by_name(run(auth={"users": USERS}))
    after = inputs_by_name(run(auth={"users": {**USERS, "bob": "another-password"}}))
    assert {name for name in before if before[name] != after[name]} == {"registry-distribution-container"}


# ---- hardening ----


@pytest.mark.parametrize(
    ("role", "memory", "adds"),
    [
        ("registry", 512, []),
        ("proxy", 512, ["CHOWN", "SETGID", "SETUID", "NET_BIND_SERVICE"]),
        ("ui", 256, []),
    ],
)
def test_containers_are_hardened(run: Run, role: str, memory: int, adds: list[str]) -> None:
    result = run()
    inputs = container(result, role)
    assert inputs["securityOpts"] == ["no-new-privileges:true"]
    assert inputs["capabilities"] == {"drops": ["ALL"], "adds": adds}
    assert (inputs["memory"], inputs["memorySwap"]) == (memory, memory)
    assert inputs["restart"] == "unless-stopped"
    assert inputs["logDriver"] == "json-file"
    assert inputs["logOpts"] == {"max-size": "10m", "max-file": "5"}
    assert inputs["healthcheck"]["tests"][0] in ("CMD", "CMD-SHELL")
    assert inputs["healthcheck"]["retries"] == 3
    # `pulumi up` fails unless the container gets healthy: a crash loop is not reported as success.
    assert (inputs["wait"], inputs["waitTimeout"]) == (True, 120)
    assert "privileged" not in inputs and "networkMode" not in inputs
    # A changed healthcheck would otherwise only change state, not the running container.
    options = result.named(f"registry-{COMPONENT[role]}-container").options
    assert options["replaceOnChanges"] == ["healthcheck"]
    # Its fixed name: a replacement the engine plans for replaceOnChanges alone would otherwise be create-first
    # and fail on the name already in use (seen on the real engine).
    assert options["deleteBeforeReplace"] is True


def test_healthy_wait_is_configurable_for_every_container(run: Run) -> None:
    result = run(healthyWaitSeconds=30)
    # Every container: registry, UI, proxy and maintenance.
    assert {plain(r.inputs)["waitTimeout"] for r in result.of_type(CONTAINER)} == {30}
    assert len(result.of_type(CONTAINER)) == 4


def test_registry_healthcheck_accepts_401(run: Run) -> None:
    command = container(run(), "registry")["healthcheck"]["tests"]
    assert command[0] == "CMD-SHELL"
    assert "(200|401)" in command[1]


def test_tls_profile_reaches_nginx(run: Run) -> None:
    site = upload(container(run(tls={"profile": "modern"}), "proxy"), SITE)["content"]
    assert "ssl_protocols TLSv1.3;" in site


def test_a_long_lived_certificate_with_the_modern_profile_warns(run: Run) -> None:
    warnings = run(auth={"users": USERS}, tls={"profile": "modern", "certValidityDays": 365}).warnings
    assert any("modern profile allows 90 days" in w for w in warnings)
    assert run(auth={"users": USERS}, tls={"profile": "modern"}).warnings == []


def test_hyper_ui_gets_more_memory(run: Run) -> None:
    assert container(run(ui={"flavor": "hyper"}), "ui")["memory"] == 512


# ---- names that existing stacks keep ----

DEV_STACK_URNS = PROJECT_DIR / "tests" / "unit" / "data" / "dev-stack-urns.txt"


def test_every_resource_of_an_existing_dev_stack_is_kept_by_urn_or_alias() -> None:
    """The dev stack's URNs as the program declared them before the renames: each must be declared again,
    under the same URN or as an alias of the resource that took its place, so `pulumi up` replaces nothing."""
    result = ProgramRun()
    run_program(stack_config(PROJECT_DIR / "Pulumi.dev.yaml"), FakeMocks(result), stack="dev", run=result)
    declared = set(result.registrations)
    aliased = {
        urn.rsplit("::", 1)[0] + "::" + alias
        for urn, registration in result.registrations.items()
        for alias in registration.options["aliases"]
    }
    previous = DEV_STACK_URNS.read_text().split()
    assert len(previous) == 20
    assert [urn for urn in previous if urn not in declared | aliased] == []
    # The renamed components and their children, data volume included, carry their old names.
    assert result.named("registry-distribution-data").options["aliases"] == ["registry-registry-data"]
    assert result.named("registry-tls-key").options["aliases"] == ["registry-server-cert-key"]


def test_an_explicit_docker_provider_reaches_every_docker_resource() -> None:
    """A provider given to PrivateRegistry (a remote Docker host) is inherited through the parent chain."""
    from components.config import load_settings
    from components.docker_common import StackScope
    from components.private_registry import PrivateRegistry, PrivateRegistryArgs
    from components.pulumi_config import stack_secrets

    result = ProgramRun()
    mocks = FakeMocks(result)
    pulumi.runtime.set_mocks(mocks, project="private-registry", stack="test", monitor=CapturingMonitor(mocks, result))

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def declare() -> None:
        import pulumi_docker as docker

        remote = docker.Provider("remote-host", host="ssh://ops@registry-host")
        settings = load_settings({"hostname": "registry.example.com"})
        PrivateRegistry(
            "registry",
            PrivateRegistryArgs(
                settings=settings,
                secrets=stack_secrets(settings),
                scope=StackScope(project="private-registry", stack="test"),
            ),
            opts=pulumi.ResourceOptions(providers={"docker": remote}),
        )

    declare()
    (provider,) = result.of_type("pulumi:providers:docker")
    docker_resources = [r for r in result.registrations.values() if r.typ.startswith("docker:index/")]
    assert len(docker_resources) == 11  # network, 2 volumes, 4 images, 4 containers
    for registration in docker_resources:
        # A provider reference is "<provider URN>::<provider ID>".
        assert registration.options["provider"].startswith(provider.urn + "::"), registration.name
    assert all(not r.options["provider"] for r in result.registrations.values() if r.typ.startswith("tls:"))
