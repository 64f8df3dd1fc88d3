"""The policy pack (policy/) as `pulumi preview --policy-pack policy` runs it: a plugin process serving the
Analyzer gRPC service, fed the resources the program registers under the mocks.

Bad stacks come from bad config where the program can declare them (open ports, plain-HTTP ports, unpinned
images, long certificates). What the program can never declare (a weak nginx site, a container without its
hardening, the registry without its volume) is what a change to components/ could bring: those tests edit the
captured registration the way such a change would, and the pack must catch it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped]  # no stubs in the venv
import pytest
import yaml
from pulumi.runtime.proto import analyzer_pb2

from components.config import MODERN_MAX_CERT_DAYS, TlsSettings
from components.docker_common import LABEL_PREFIX, NGINX_CAPABILITIES
from components.rendering import HTPASSWD_PATH, INTERMEDIATE_CIPHERS, REGISTRY_DATA_DIR, REGISTRY_PORT
from harness.program import PROJECT_DIR, SECRET, SIG, ProgramRun, Registration, plain
from policy import registry_policies as pack
from tests.unit.policy_analyzer import POLICY_DIR, PolicyAnalyzer, Violation, pack_requirements

pytestmark = pytest.mark.unit

Run = Callable[..., ProgramRun]
ACCOUNTS = {"users": {"alice": "correct-horse-battery"}}
LAN = "192.168.1.10"
SITE = "/etc/nginx/conf.d/default.conf"
# The engine's marker for a value not known until the update (sdk/go/common/resource/plugin/rpc.go).
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
WORKFLOW = PROJECT_DIR / ".github" / "workflows" / "preview.yml"


@pytest.fixture(scope="module")
def analyzer() -> Iterator[PolicyAnalyzer]:
    plugin = PolicyAnalyzer.start()
    yield plugin
    plugin.stop()


@pytest.fixture(scope="module")
def program_runs() -> dict[str, ProgramRun]:
    return {}


@pytest.fixture
def stack(run: Run, program_runs: dict[str, ProgramRun]) -> Run:
    """`run`, remembered for the module: the same config declares the same resources (the program is
    deterministic), and bcrypt makes a run with accounts take a while. Each call gets its own copy to edit."""

    def _stack(**config: Any) -> ProgramRun:
        key = json.dumps(config, sort_keys=True)
        if key not in program_runs:
            program_runs[key] = run(**config)
        return copy.deepcopy(program_runs[key])

    return _stack


def found(violations: list[Violation]) -> set[tuple[str, str]]:
    return {(v.policy, v.resource) for v in violations}


def policies(violations: list[Violation]) -> set[str]:
    return {v.policy for v in violations}


def container(run: ProgramRun, component: str) -> Registration:
    return run.named(f"registry-{component}-container")


def uploads(inputs: dict[str, Any]) -> list[dict[str, Any]]:
    """A container's uploads, inside the secret wrapper the whole list gets when one of them is secret."""
    value = inputs["uploads"]
    found: list[dict[str, Any]] = value["value"] if isinstance(value, dict) and value.get(SIG) == SECRET else value
    return found


def site_upload(inputs: dict[str, Any]) -> dict[str, Any]:
    return next(upload for upload in uploads(inputs) if upload["file"] == SITE)


def edited(registration: Registration, edit: Callable[[dict[str, Any]], None]) -> None:
    """Change a captured registration's inputs in place, as a change to components/ would."""
    inputs = copy.deepcopy(registration.inputs)
    edit(inputs)
    registration.inputs.clear()
    registration.inputs.update(inputs)


# ---- the plugin itself ----


def test_the_plugin_serves_every_policy_with_its_level_and_config_schema(analyzer: PolicyAnalyzer) -> None:
    info = analyzer.info()
    assert info.name == "private-registry"
    levels = {p.name: analyzer_pb2.EnforcementLevel.Name(p.enforcementLevel).lower() for p in info.policies}
    assert levels == {
        "published-ports-without-accounts": "mandatory",
        "registry-or-ui-port-without-tls": "mandatory",
        "images-pinned": "mandatory",
        "tls-profile-intermediate-or-better": "mandatory",
        "certificate-lifetime-within-profile": "advisory",
        "containers-hardened": "mandatory",
        "registry-data-on-named-volume": "mandatory",
    }
    schemas = {p.name: set(p.configSchema.properties) for p in info.policies}
    assert schemas["published-ports-without-accounts"] == {"trustedAddresses"}
    assert schemas["registry-or-ui-port-without-tls"] == {"trustedAddresses"}
    assert schemas["images-pinned"] == {"requireDigest"}
    assert schemas["tls-profile-intermediate-or-better"] == {"minimumProfile"}
    assert schemas["certificate-lifetime-within-profile"] == {"modernMaxDays", "intermediateMaxDays"}
    assert schemas["containers-hardened"] == {"allowedCapabilities"}
    # Every schema property has a default and a description: the CLI shows both.
    for policy in info.policies:
        for key, schema in policy.configSchema.properties.items():
            assert {"type", "default", "description"} <= set(schema.keys()), (policy.name, key)


def test_the_analyzer_protocol_carries_no_retain_on_delete() -> None:
    """Why `registry-data-on-named-volume` checks the mount and not the volume's retainOnDelete: the engine
    sends an analyzer only these options (and pulumi-policy's PolicyResourceOptions exposes no more). If a
    later SDK adds the field, this fails: then check retainOnDelete itself."""
    fields = set(analyzer_pb2.AnalyzerResourceOptions.DESCRIPTOR.fields_by_name)
    assert "retainOnDelete" not in fields
    assert fields == {
        "protect",
        "ignoreChanges",
        "deleteBeforeReplace",
        "deleteBeforeReplaceDefined",
        "additionalSecretOutputs",
        "aliases",
        "customTimeouts",
        "parent",
    }


# ---- good stacks pass ----


@pytest.mark.parametrize(
    "config",
    [
        pytest.param({}, id="defaults: loopback, no accounts"),
        pytest.param({"bindAddress": LAN, "auth": ACCOUNTS}, id="LAN with accounts"),
        pytest.param({"registryPort": 5000, "uiPort": 8080}, id="plain ports on loopback"),
        pytest.param({"tls": {"profile": "modern"}, "ui": {"flavor": "none"}}, id="modern, no UI"),
        pytest.param({"tls": {"keyAlgorithm": "RSA", "certValidityDays": 366}}, id="RSA, 366 days"),
        pytest.param(
            {
                "storage": {"driver": "s3", "bucket": "team-registry", "accessKey": "AKIA", "secretKey": "s3-secret"},
                "registry": {"replicas": 3},
            },
            id="three replicas on S3",
        ),
    ],
)
def test_a_good_stack_has_no_violation(analyzer: PolicyAnalyzer, stack: Run, config: dict[str, Any]) -> None:
    assert analyzer.preview(stack(**config)) == []


def test_the_dev_stack_has_no_violation(analyzer: PolicyAnalyzer, stack: Run) -> None:
    dev = yaml.safe_load((PROJECT_DIR / "Pulumi.dev.yaml").read_text())["config"]
    values = {key.split(":", 1)[1]: value for key, value in dev.items()}
    assert analyzer.preview(stack(stack="dev", **values)) == []


def test_a_first_preview_with_unknown_contents_still_runs_every_policy(analyzer: PolicyAnalyzer, stack: Run) -> None:
    """In a first preview the engine knows neither the image IDs nor anything computed from the certificate,
    the HTTP secret or the accounts: only the nginx site (rendered from config) is known. No policy may need
    the unknown parts, or it would be skipped with "can't run policy during preview"."""
    result = stack(bindAddress=LAN, auth=ACCOUNTS)
    for registration in result.of_type(pack.CONTAINER):

        def unknown_except_site(inputs: dict[str, Any]) -> None:
            inputs["image"] = UNKNOWN
            for upload in uploads(inputs):
                if upload["file"] != SITE:
                    upload["content"] = UNKNOWN

        edited(registration, unknown_except_site)
    assert analyzer.preview(result) == []


# ---- bad stacks: the violations by policy ----


def test_ports_beyond_loopback_without_accounts(analyzer: PolicyAnalyzer, stack: Run) -> None:
    violations = analyzer.preview(stack(bindAddress="0.0.0.0"))
    assert found(violations) == {("published-ports-without-accounts", "registry-proxy-container")}
    messages = [v.message for v in violations]
    assert len(messages) == 2  # 443 and 80
    assert "auth.users.<name>" in messages[0] and "bindAddress 127.0.0.1" in messages[0]
    assert all(v.level == "mandatory" for v in violations)


def test_accounts_make_published_ports_pass(analyzer: PolicyAnalyzer, stack: Run) -> None:
    assert policies(analyzer.preview(stack(bindAddress=LAN))) == {"published-ports-without-accounts"}
    assert analyzer.preview(stack(bindAddress=LAN, auth=ACCOUNTS)) == []


def test_trusted_addresses_config(analyzer: PolicyAnalyzer, stack: Run) -> None:
    result = stack(bindAddress=LAN, registryPort=5000)
    assert policies(analyzer.preview(result)) == {"published-ports-without-accounts", "registry-or-ui-port-without-tls"}
    trusted = {"trustedAddresses": ["192.168.1.0/24"]}
    config = {"published-ports-without-accounts": trusted, "registry-or-ui-port-without-tls": trusted}
    assert analyzer.preview(result, config) == []


def test_registry_port_on_the_network(analyzer: PolicyAnalyzer, stack: Run) -> None:
    """Whichever container publishes the registry's port 5000 (the registry itself, or the proxy's plain
    registry server) publishes plain HTTP."""
    # Without accounts: with them the program refuses a plain port beyond loopback before anything is declared.
    violations = [
        v
        for v in analyzer.preview(stack(bindAddress=LAN, registryPort=5000))
        if v.policy == "registry-or-ui-port-without-tls"
    ]
    assert len(violations) == 1
    assert violations[0].resource in {"registry-distribution-container", "registry-proxy-container"}
    assert "registryPort 0" in violations[0].message and f"{LAN}:5000" in violations[0].message


def test_ui_port_on_the_network(analyzer: PolicyAnalyzer, stack: Run) -> None:
    violations = analyzer.preview(stack(bindAddress=LAN, uiPort=8080))
    assert ("registry-or-ui-port-without-tls", "registry-ui-container") in found(violations)
    assert any("uiPort 0" in v.message for v in violations if v.policy == "registry-or-ui-port-without-tls")


def test_unpinned_images(analyzer: PolicyAnalyzer, stack: Run) -> None:
    result = stack(registry={"image": "registry"}, ui={"image": "joxit/docker-registry-ui:latest"})
    violations = analyzer.preview(result)
    assert policies(violations) == {"images-pinned"}
    # Every RemoteImage of those two images (another component may run the registry's image too).
    unpinned = {
        r.name for r in result.of_type(pack.REMOTE_IMAGE) if plain(r.inputs)["name"].startswith(("registry", "joxit"))
    }
    assert {v.resource for v in violations} == unpinned >= {"registry-distribution-image", "registry-ui-image"}
    registry = next(v for v in violations if v.resource == "registry-distribution-image")
    assert "'private-registry:registry.image' registry:<version>" in registry.message


def test_require_digest_config(analyzer: PolicyAnalyzer, stack: Run) -> None:
    digest = "sha256:" + "0" * 64
    result = stack(proxy={"image": f"nginx:1.28.0@{digest}"})
    violations = analyzer.preview(result, {"images-pinned": {"requireDigest": True}})
    assert policies(violations) == {"images-pinned"}
    by_digest = {r.name for r in result.of_type(pack.REMOTE_IMAGE) if "@" in plain(r.inputs)["name"]}
    assert by_digest == {"registry-proxy-image"}
    assert {v.resource for v in violations} == {r.name for r in result.of_type(pack.REMOTE_IMAGE)} - by_digest
    assert analyzer.preview(result) == []


@pytest.mark.parametrize(
    ("reference", "tag", "digest"),
    [
        ("registry", None, None),
        ("registry:latest", "latest", None),
        ("registry:2.8.3", "2.8.3", None),
        ("localhost:5000/team/app", None, None),
        ("localhost:5000/team/app:1", "1", None),
        ("nginx@sha256:abc", None, "sha256:abc"),
        ("nginx:1.28.0@sha256:abc", "1.28.0", "sha256:abc"),
    ],
)
def test_image_references(reference: str, tag: str | None, digest: str | None) -> None:
    assert pack.image_pin(reference) == (tag, digest)


def test_tls_below_intermediate(analyzer: PolicyAnalyzer, stack: Run) -> None:
    result = stack()

    def weaken(inputs: dict[str, Any]) -> None:
        site = site_upload(inputs)
        site["content"] = site["content"].replace("ssl_protocols TLSv1.2 TLSv1.3;", "ssl_protocols TLSv1 TLSv1.2;")
        site["content"] = site["content"].replace("ssl_ciphers ", "ssl_ciphers AES128-SHA:")

    edited(container(result, "proxy"), weaken)
    violations = analyzer.preview(result)
    assert found(violations) == {("tls-profile-intermediate-or-better", "registry-proxy-container")}
    assert any("accepts TLSv1," in v.message for v in violations)
    assert any("AES128-SHA" in v.message for v in violations)


def test_tls_site_without_ssl_protocols(analyzer: PolicyAnalyzer, stack: Run) -> None:
    result = stack()

    def drop_protocols(inputs: dict[str, Any]) -> None:
        site = site_upload(inputs)
        site["content"] = site["content"].replace("ssl_protocols TLSv1.2 TLSv1.3;", "")

    edited(container(result, "proxy"), drop_protocols)
    violations = analyzer.preview(result)
    assert found(violations) == {("tls-profile-intermediate-or-better", "registry-proxy-container")}
    assert "without ssl_protocols" in violations[0].message


def test_minimum_profile_config(analyzer: PolicyAnalyzer, stack: Run) -> None:
    config = {"tls-profile-intermediate-or-better": {"minimumProfile": "modern"}}
    violations = analyzer.preview(stack(), config)
    assert found(violations) == {("tls-profile-intermediate-or-better", "registry-proxy-container")}
    assert "tls.profile' modern" in violations[0].message
    assert analyzer.preview(stack(tls={"profile": "modern"}, ui={"flavor": "none"}), config) == []


@pytest.mark.parametrize(
    "tls",
    [
        pytest.param({"profile": "modern", "certValidityDays": 365}, id="modern, 365 days"),
        pytest.param({"certValidityDays": 400}, id="intermediate, 400 days"),
    ],
)
def test_certificate_beyond_the_profile(analyzer: PolicyAnalyzer, stack: Run, tls: dict[str, Any]) -> None:
    violations = analyzer.preview(stack(tls=tls))
    assert found(violations) == {("certificate-lifetime-within-profile", "registry-tls-cert")}
    assert violations[0].level == "advisory"
    assert "tls.certValidityDays" in violations[0].message


def test_certificate_limits_config(analyzer: PolicyAnalyzer, stack: Run) -> None:
    config = {"certificate-lifetime-within-profile": {"intermediateMaxDays": 90}}
    assert found(analyzer.preview(stack(), config)) == {("certificate-lifetime-within-profile", "registry-tls-cert")}
    assert analyzer.preview(stack(tls={"certValidityDays": 90}), config) == []


def test_container_without_hardening(analyzer: PolicyAnalyzer, stack: Run) -> None:
    result = stack()

    def unharden(inputs: dict[str, Any]) -> None:
        inputs["capabilities"] = {"adds": ["SYS_ADMIN"]}
        del inputs["memory"]
        inputs["privileged"] = True
        inputs["securityOpts"] = []

    edited(container(result, "ui"), unharden)
    violations = analyzer.preview(result)
    assert found(violations) == {("containers-hardened", "registry-ui-container")}
    messages = " | ".join(v.message for v in violations)
    for expected in ("drop ALL", "SYS_ADMIN", "no memory limit", "privileged", "no-new-privileges"):
        assert expected in messages


def test_allowed_capabilities_config(analyzer: PolicyAnalyzer, stack: Run) -> None:
    violations = analyzer.preview(stack(), {"containers-hardened": {"allowedCapabilities": ["CHOWN"]}})
    assert found(violations) == {("containers-hardened", "registry-proxy-container")}
    assert "NET_BIND_SERVICE, SETGID, SETUID" in violations[0].message


def test_registry_data_off_the_volume(analyzer: PolicyAnalyzer, stack: Run) -> None:
    result = stack()
    edited(container(result, "distribution"), lambda inputs: inputs.pop("volumes"))
    violations = analyzer.preview(result)
    assert found(violations) == {("registry-data-on-named-volume", "registry-distribution-container")}
    assert "mounts nothing at /var/lib/registry" in violations[0].message


def test_enforcement_level_from_config(analyzer: PolicyAnalyzer, stack: Run) -> None:
    config = {"images-pinned": {"enforcementLevel": "advisory"}}
    violations = analyzer.preview(stack(registry={"image": "registry:latest"}), config)
    assert {(v.policy, v.level) for v in violations} == {("images-pinned", "advisory")}
    disabled = {"images-pinned": {"enforcementLevel": "disabled"}}
    assert analyzer.preview(stack(registry={"image": "registry:latest"}), disabled) == []


# ---- policy config of the wrong type: a clear error ----


@pytest.mark.parametrize(
    ("config", "message"),
    [
        pytest.param(
            {"images-pinned": {"requireDigest": "yes"}},
            "policy 'images-pinned': config 'requireDigest' must be a boolean, got 'yes' (a string)",
            id="string for boolean",
        ),
        pytest.param(
            {"published-ports-without-accounts": {"trustedAddresses": "10.0.0.0/8"}},
            "policy 'published-ports-without-accounts': config 'trustedAddresses' must be an array of strings, "
            "got '10.0.0.0/8' (a string)",
            id="string for array",
        ),
        pytest.param(
            {"registry-or-ui-port-without-tls": {"trustedAddresses": [10]}},
            "config 'trustedAddresses'[0] must be a string, got 10.0 (a number)",
            id="number in array",
        ),
        pytest.param(
            {"registry-or-ui-port-without-tls": {"trustedAddresses": ["the office"]}},
            "config 'trustedAddresses' entry 'the office' is not an IP address or CIDR range",
            id="not an address",
        ),
        pytest.param(
            {"certificate-lifetime-within-profile": {"modernMaxDays": "ninety"}},
            "config 'modernMaxDays' must be an integer >= 1, got 'ninety' (a string)",
            id="string for integer",
        ),
        pytest.param(
            {"certificate-lifetime-within-profile": {"intermediateMaxDays": 90.5}},
            "config 'intermediateMaxDays' must be an integer >= 1, got 90.5 (a number)",
            id="fraction for integer",
        ),
        pytest.param(
            {"tls-profile-intermediate-or-better": {"minimumProfile": "old"}},
            "config 'minimumProfile' must be one of 'intermediate', 'modern', got 'old' (a string)",
            id="outside enum",
        ),
        pytest.param(
            {"containers-hardened": {"allowedCapabilites": []}},
            "policy 'containers-hardened': unknown config key 'allowedCapabilites' (known: allowedCapabilities)",
            id="misspelt key",
        ),
    ],
)
def test_wrong_config_is_a_clear_error(
    analyzer: PolicyAnalyzer, stack: Run, config: dict[str, Any], message: str
) -> None:
    """The CLI checks `--policy-pack-config` against the schemas before it configures the pack (not run
    here). The pack holds itself to the same schemas: a wrong value fails the analysis with this message,
    which the CLI prints, instead of being half-used."""
    result = stack()
    with pytest.raises(grpc.RpcError) as failure:
        analyzer.preview(result, config)
    assert message in str(failure.value.details())


def test_integers_arrive_as_floats_and_are_accepted(analyzer: PolicyAnalyzer, stack: Run) -> None:
    """The engine's protobuf Struct has only doubles: 120 arrives as 120.0 and must count as an integer."""
    config = {"certificate-lifetime-within-profile": {"intermediateMaxDays": 400}}
    assert analyzer.preview(stack(tls={"certValidityDays": 400}), config) == []


# ---- the pack agrees with the program ----


def test_the_pack_repeats_the_programs_facts() -> None:
    assert f"{LABEL_PREFIX}.component" == pack.COMPONENT_LABEL
    assert pack.REGISTRY_PORT == REGISTRY_PORT
    assert pack.HTPASSWD_PATH == HTPASSWD_PATH
    assert pack.REGISTRY_DATA_DIR == REGISTRY_DATA_DIR
    assert pack.NGINX_CAPABILITIES == NGINX_CAPABILITIES
    assert pack.MODERN_MAX_CERT_DAYS == MODERN_MAX_CERT_DAYS
    # The program's intermediate suites are Mozilla's, and its default lifetime fits the pack's limit.
    assert set(INTERMEDIATE_CIPHERS.split(":")) <= pack.MOZILLA_INTERMEDIATE_CIPHERS
    assert TlsSettings().cert_validity_days <= pack.INTERMEDIATE_MAX_CERT_DAYS


def test_the_pack_follows_mozillas_guidelines() -> None:
    """The limits and suites are Mozilla's Server Side TLS 5.7, as sslyze (a dev requirement) ships them."""
    profiles = json.loads(resources.files("sslyze").joinpath("mozilla_tls_profile/5.7.json").read_text())
    modern, intermediate = profiles["configurations"]["modern"], profiles["configurations"]["intermediate"]
    assert modern["maximum_certificate_lifespan"] == pack.MODERN_MAX_CERT_DAYS
    assert intermediate["maximum_certificate_lifespan"] == pack.INTERMEDIATE_MAX_CERT_DAYS
    assert set(intermediate["ciphers"]["openssl"]) == pack.MOZILLA_INTERMEDIATE_CIPHERS
    assert pack.PROFILE_PROTOCOLS["modern"] == set(modern["tls_versions"])
    assert pack.PROFILE_PROTOCOLS["intermediate"] == set(intermediate["tls_versions"])


def test_secret_uploads_reach_the_pack_wrapped_as_the_engine_sends_them(stack: Run) -> None:
    """The htpasswd upload makes the registry container's whole upload list secret, so the pack gets it
    wrapped (pulumi-policy unwraps it): the accounts policy reads only the paths, never the contents.
    `LAN with accounts` passing above shows it finds the htpasswd path through the wrapper."""
    inputs = container(stack(bindAddress=LAN, auth=ACCOUNTS), "distribution").inputs
    assert inputs["uploads"][SIG] == SECRET
    assert HTPASSWD_PATH in [upload["file"] for upload in uploads(inputs)]


def test_the_pack_and_the_dev_requirements_pin_the_same_versions() -> None:
    pack_pins = pack_requirements(POLICY_DIR / "requirements.txt")
    dev_pins = pack_requirements(PROJECT_DIR / "requirements-dev.txt") | pack_requirements(
        PROJECT_DIR / "requirements.txt"
    )
    assert set(pack_pins) == {"pulumi", "pulumi-policy"}
    assert {name: dev_pins[name] for name in pack_pins} == pack_pins


def test_the_docs_describe_every_policy_and_its_level(analyzer: PolicyAnalyzer) -> None:
    docs = (PROJECT_DIR / "docs" / "policy.md").read_text()
    for policy in analyzer.info().policies:
        level = analyzer_pb2.EnforcementLevel.Name(policy.enforcementLevel).lower()
        assert f"### `{policy.name}` ({level})" in docs
        for key in policy.configSchema.properties:
            assert f"`{key}`" in docs, (policy.name, key)


# ---- the pull-request workflow ----


def _workflow() -> dict[Any, Any]:
    document: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text())
    return document


def test_the_workflow_previews_pull_requests_with_the_pack() -> None:
    workflow = _workflow()
    # PyYAML reads the bare key `on` as the boolean True (YAML 1.1).
    triggers = workflow.get("on", workflow.get(True))
    assert triggers is not None and "pull_request" in triggers
    assert workflow["permissions"]["pull-requests"] == "write"
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    pulumi = [step for step in steps if str(step.get("uses", "")).startswith("pulumi/actions@")]
    assert len(pulumi) == 1
    inputs = pulumi[0]["with"]
    assert inputs["command"] == "preview"
    assert inputs["policyPacks"] == "policy"
    assert inputs["diff"] is True
    assert inputs["comment-on-pr"] is True
    assert inputs["stack-name"]
    assert "PULUMI_CONFIG_PASSPHRASE" in pulumi[0]["env"]
    # The pack's virtualenv exists before the preview, from the pack's own pins.
    before = steps[: steps.index(pulumi[0])]
    assert any("policy/requirements.txt" in str(step.get("run", "")) for step in before)
    assert any("-r requirements.txt" in str(step.get("run", "")) for step in before)


def test_the_workflow_pins_the_cli_the_program_uses() -> None:
    steps = [step for job in _workflow()["jobs"].values() for step in job["steps"]]
    pulumi = next(step for step in steps if str(step.get("uses", "")).startswith("pulumi/actions@"))
    assert str(pulumi["with"]["pulumi-version"]) == pack_requirements(PROJECT_DIR / "requirements.txt")["pulumi"]


def test_the_pack_directory_is_what_the_cli_expects() -> None:
    manifest = yaml.safe_load((POLICY_DIR / "PulumiPolicy.yaml").read_text())
    assert manifest["runtime"]["name"] == "python"
    assert manifest["runtime"]["options"]["virtualenv"] == "venv"
    assert (POLICY_DIR / "__main__.py").is_file()
    assert Path(POLICY_DIR / "venv").name in (PROJECT_DIR / ".gitignore").read_text()
