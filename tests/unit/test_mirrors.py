"""Pull-through mirrors: their config, what the program declares for them, their outputs, blast radius, warning."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Iterator
from typing import Any

import pulumi
import pytest
import yaml

from components.config import ConfigError
from harness.program import ProgramRun, is_secret, plain, run_program
from tests.unit.conftest import BASE_CONFIG, FakeMocks, namespaced
from tests.unit.test_config import error_of, load
from tests.unit.test_metrics import servers
from tests.unit.test_program import CONTAINER, SITE, inputs_by_name, upload

pytestmark = pytest.mark.unit

Run = Callable[..., ProgramRun]
# Distinctive, so that finding it anywhere it must not be is never a coincidence.
PASSWORD = "hub-Pw-7731-never-echo-this"
CREDENTIALS = {"username": "hub-user", "password": PASSWORD}
HUB = {"name": "dockerhub", "port": 5443, **CREDENTIALS}
GHCR = {"name": "ghcr", "remoteUrl": "https://ghcr.io", "hostname": "ghcr.registry.example.com"}
MIRRORS = [HUB, GHCR]
USERS = {"alice": "correct-horse-7"}
CONFIG_2 = "/etc/docker/registry/config.yml"
CONFIG_3 = "/etc/distribution/config.yml"
START_SCRIPT = "/usr/local/sbin/mirror-start.sh"
UPSTREAM_CA = "/etc/registry-mirror/ca/upstream-ca.crt"
CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIBupstream\n-----END CERTIFICATE-----\n"
HUB_WARNING = "mirror 'dockerhub' requires accounts"


def mirror_container(result: ProgramRun, name: str) -> dict[str, Any]:
    inputs: dict[str, Any] = plain(result.named(f"registry-mirror-{name}-container").inputs)
    return inputs


def mirror_config(result: ProgramRun, name: str, path: str = CONFIG_2) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(upload(mirror_container(result, name), path)["content"])
    return document


def site(result: ProgramRun) -> str:
    content: str = upload(plain(result.named("registry-proxy-container").inputs), SITE)["content"]
    return content


def server_with(conf: str, directive: str) -> list[str]:
    matching = [server for server in servers(conf) if directive in server]
    assert len(matching) == 1, f"{len(matching)} servers with {directive!r}"
    return matching[0]


def without_secrets(value: Any) -> Any:
    """Inputs as anyone reading the plan or state in clear sees them: every secret value left out."""
    if is_secret(value):
        return "<secret>"
    if isinstance(value, dict):
        return {key: without_secrets(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_secrets(item) for item in value]
    return value


@pytest.fixture(scope="module")
def mirrored() -> Iterator[ProgramRun]:
    """The program once with a Docker Hub mirror on a port (with upstream credentials) and ghcr.io on a name."""
    result = ProgramRun()
    yield run_program({**BASE_CONFIG, **namespaced(mirrors=MIRRORS)}, FakeMocks(result), run=result)


# ---- config ----


def test_minimal_docker_hub_mirror_defaults_to_docker_hub() -> None:
    (mirror,) = load(mirrors=[{"name": "dockerhub", "port": 5443}]).mirrors
    assert mirror.resolved_remote_url == "https://registry-1.docker.io"
    assert mirror.is_docker_hub
    assert (mirror.port, mirror.hostname, mirror.username, mirror.password, mirror.ttl) == (
        5443,
        None,
        None,
        None,
        None,
    )
    assert (mirror.insecure_remote, mirror.public) == (False, False)


def test_valid_mirror_settings_are_accepted() -> None:
    settings = load(
        registry={"image": "registry:3.0.0"},
        mirrors=[
            {**HUB, "ttl": "72h30m"},
            {**GHCR, "remoteUrl": "https://ghcr.io/", "ttl": "0", "remoteCaCertPem": CA_PEM},
            {"name": "a" * 32, "remoteUrl": "http://10.0.0.9:5000", "insecureRemote": True, "port": 5444},
        ],
    )
    hub, ghcr, local = settings.mirrors
    assert hub.ttl == "72h30m" and hub.password is not None and hub.password.get_secret_value() == PASSWORD
    assert ghcr.resolved_remote_url == "https://ghcr.io" and not ghcr.is_docker_hub
    assert local.resolved_remote_url == "http://10.0.0.9:5000"
    assert settings.certificate_dns_names == ("registry.example.com", "ghcr.registry.example.com")
    assert settings.mirror_endpoint(hub) == "registry.example.com:5443"
    assert settings.mirror_endpoint(ghcr) == "ghcr.registry.example.com"
    assert PASSWORD not in repr(settings)


def test_a_hostname_mirror_follows_the_https_port() -> None:
    settings = load(httpsPort=8443, mirrors=[GHCR])
    assert settings.mirror_endpoint(settings.mirrors[0]) == "ghcr.registry.example.com:8443"


def test_ttl_is_accepted_with_registry_3() -> None:
    (mirror,) = load(registry={"image": "registry:3.0.0"}, mirrors=[{**HUB, "ttl": "168h"}]).mirrors
    assert mirror.ttl == "168h"


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param(
            {"mirrors": [{"name": "ghcr", "port": 5443, **CREDENTIALS}]},
            "private-registry:mirrors.0: mirror 'ghcr': remoteUrl is required",
            id="only-docker-hub-has-a-default-remote",
        ),
        pytest.param(
            {"mirrors": [{"name": "ghcr", "port": 5443, "remoteUrl": "http://ghcr.io", **CREDENTIALS}]},
            "private-registry:mirrors.0: mirror 'ghcr': remoteUrl 'http://ghcr.io' is plain http",
            id="http-remote-without-insecureRemote",
        ),
        pytest.param(
            {"mirrors": [{"name": "ghcr", "port": 5443, "remoteUrl": "https://ghcr.io/v2", **CREDENTIALS}]},
            "private-registry:mirrors.0: mirror 'ghcr': remoteUrl must be https://host[:port] of a registry: "
            "no path, query, fragment or user:password@",
            id="remote-with-a-path",
        ),
        pytest.param(
            {"mirrors": [{"name": "ghcr", "port": 5443, "remoteUrl": "ftp://ghcr.io", **CREDENTIALS}]},
            "private-registry:mirrors.0: mirror 'ghcr': remoteUrl must be https://host[:port]",
            id="remote-of-another-scheme",
        ),
        pytest.param(
            {"mirrors": [{**HUB, "hostname": "hub.registry.example.com"}]},
            "private-registry:mirrors.0: mirror 'dockerhub': give exactly one of port",
            id="port-and-hostname",
        ),
        pytest.param(
            {"mirrors": [{"name": "dockerhub", **CREDENTIALS}]},
            "private-registry:mirrors.0: mirror 'dockerhub': give exactly one of port",
            id="neither-port-nor-hostname",
        ),
        pytest.param(
            {"mirrors": [{"name": "dockerhub", "port": 5443, "username": "hub-user"}]},
            "private-registry:mirrors.0: mirror 'dockerhub': username and password go together",
            id="username-without-password",
        ),
        pytest.param(
            {"mirrors": [{"name": "dockerhub", "port": 5443, "password": PASSWORD}]},
            "private-registry:mirrors.0: mirror 'dockerhub': username and password go together",
            id="password-without-username",
        ),
        pytest.param(
            {"mirrors": [HUB, {"name": "dockerhub", "port": 5444}]},
            "private-registry: mirrors: name dockerhub is used by more than one mirror",
            id="duplicate-names",
        ),
        pytest.param(
            {"mirrors": [HUB, {**GHCR, "hostname": None, "port": 5443}]},
            "private-registry: mirrors[ghcr].port and mirrors[dockerhub].port are both 5443",
            id="duplicate-ports",
        ),
        pytest.param(
            {
                "mirrors": [
                    {"name": "dockerhub", "hostname": "m.registry.example.com", **CREDENTIALS},
                    {**GHCR, "hostname": "M.Registry.example.com"},
                ]
            },
            "private-registry: mirrors: hostname m.registry.example.com is used by more than one mirror",
            id="duplicate-hostnames-whatever-their-case",
        ),
        pytest.param(
            {"mirrors": [{**HUB, "port": 443}]},
            "private-registry: mirrors[dockerhub].port and httpsPort are both 443",
            id="port-is-httpsPort",
        ),
        pytest.param(
            {"httpsPort": 8443, "mirrors": [{**HUB, "port": 8443}]},
            "private-registry: mirrors[dockerhub].port and httpsPort are both 8443",
            id="port-is-a-custom-httpsPort",
        ),
        pytest.param(
            {"registryPort": 5000, "mirrors": [{**HUB, "port": 5000}]},
            "private-registry: mirrors[dockerhub].port and registryPort are both 5000",
            id="port-is-registryPort",
        ),
        pytest.param(
            {"mirrors": [{"name": "dockerhub", "hostname": "Registry.Example.com", **CREDENTIALS}]},
            "private-registry: mirrors[dockerhub].hostname is the registry's own hostname",
            id="hostname-is-the-registrys",
        ),
        *(
            pytest.param(
                {"registry": {"image": "registry:3.0.0"}, "mirrors": [{**HUB, "ttl": ttl}]},
                f"private-registry:mirrors.0.ttl: must be a duration such as '168h', '72h30m' or '0' "
                f"(never expire) (got {ttl!r})",
                id=f"ttl-{ttl or 'empty'}",
            )
            for ttl in ("7 days", "-1h", "")
        ),
        pytest.param(
            {"registry": {"image": "registry:2.8.3"}, "mirrors": [{**HUB, "ttl": "168h"}]},
            "private-registry: mirrors[dockerhub].ttl needs registry 3: registry:2.8.3 has no such setting",
            id="ttl-with-registry-2",
        ),
        pytest.param(
            {"mirrors": [{**HUB, "name": "DockerHub"}]},
            "private-registry:mirrors.0.name: must be 1-32 lowercase letters, digits and inner hyphens",
            id="uppercase-name",
        ),
        pytest.param(
            {"mirrors": [{**GHCR, "name": "a" * 33}]},
            "private-registry:mirrors.0.name: must be 1-32 lowercase letters, digits and inner hyphens",
            id="name-too-long",
        ),
        pytest.param(
            {"mirrors": [{**GHCR, "name": "-ghcr"}]},
            "private-registry:mirrors.0.name: must be 1-32 lowercase letters, digits and inner hyphens",
            id="name-with-a-leading-hyphen",
        ),
        pytest.param(
            {"mirrors": [{**HUB, "remoteURL": "https://registry-1.docker.io"}]},
            "private-registry:mirrors.0.remoteURL: unknown setting",
            id="unknown-key",
        ),
        pytest.param(
            {"mirrors": [{**HUB, "remoteCaCertPem": "not a certificate"}]},
            "private-registry:mirrors.0.remoteCaCertPem: must be a PEM certificate",
            id="ca-that-is-no-pem",
        ),
        pytest.param(
            {"mirrors": [{**HUB, "insecureRemote": "yes"}]},
            "private-registry:mirrors.0.insecureRemote: Input should be a valid boolean",
            id="insecureRemote-not-a-boolean",
        ),
    ],
)
def test_bad_mirror_config_is_refused_naming_the_key_and_never_the_password(
    values: dict[str, Any], expected: str
) -> None:
    message = error_of(**values)
    assert expected in message, message
    assert PASSWORD not in message


def test_a_password_of_the_wrong_type_is_not_echoed() -> None:
    message = error_of(mirrors=[{**HUB, "password": 73317731}])
    assert "private-registry:mirrors.0.password: Input should be a valid string (got <secret>)" in message
    assert "73317731" not in message


@pytest.mark.parametrize(
    "remote_url",
    [
        "https://ghcr.io?tenant=a",
        "https://ghcr.io#v2",
        "https://ghcr.io:port",
        "https://hub-user:hub-Pw-7731-never-echo-this@ghcr.io",
        "https://hub-user:hub-Pw-7731-never-echo-this@ghcr.io/v2",
    ],
)
def test_a_remote_url_is_only_scheme_host_and_port(remote_url: str) -> None:
    """The documented grammar is https://host[:port]. Credentials in the URL would reach the plain outputs
    (mirrors.remoteUrl, containerdHostsToml) and the nginx site, and the error that refuses the URL echoes it."""
    try:
        accepted = load(mirrors=[{"name": "ghcr", "port": 5443, "remoteUrl": remote_url}])
    except ConfigError as error:
        message = str(error)
    else:
        pytest.fail(
            f"DEFECT: remoteUrl {remote_url!r} is accepted (as {accepted.mirrors[0].resolved_remote_url!r}): "
            "MirrorSettings._coherent (components/config/mirrors.py) checks only the scheme, the host and the path"
        )
    assert "private-registry:mirrors.0: mirror 'ghcr': remoteUrl must be https://host[:port]" in message
    assert PASSWORD not in message, f"DEFECT: the error echoes the password inside remoteUrl: {message}"


# ---- the program: resources ----


def test_each_mirror_is_a_component_with_a_volume_an_image_and_a_container(mirrored: ProgramRun) -> None:
    declared = {
        (r.typ, r.name, r.parent.rsplit("::", 1)[-1]) for r in mirrored.registrations.values() if "mirror" in r.name
    }
    expected = set()
    for name in ("dockerhub", "ghcr"):
        component = f"registry-mirror-{name}"
        expected |= {
            ("private-registry:mirror:Mirror", component, "registry"),
            ("docker:index/volume:Volume", f"{component}-data", component),
            ("docker:index/remoteImage:RemoteImage", f"{component}-image", component),
            (CONTAINER, f"{component}-container", component),
        }
    assert declared == expected
    assert len(mirrored.of_type(CONTAINER)) == 6


def test_mirror_containers_are_named_after_stack_and_mirror(mirrored: ProgramRun) -> None:
    for name in ("dockerhub", "ghcr"):
        container = mirror_container(mirrored, name)
        assert container["name"] == f"private-registry-test-mirror-{name}"
        assert container["networksAdvanced"] == [{"name": "private-registry-test-net", "aliases": [f"mirror-{name}"]}]
        assert container["volumes"] == [
            {"volumeName": f"private-registry-test-mirror-{name}-data", "containerPath": "/var/lib/registry"}
        ]
        assert plain(mirrored.named(f"registry-mirror-{name}-data").inputs)["name"] == (
            f"private-registry-test-mirror-{name}-data"
        )
        # The team registry's image, in proxy mode.
        assert plain(mirrored.named(f"registry-mirror-{name}-image").inputs)["name"] == "registry:2.8.3"
        assert container["command"] == ["/bin/sh", START_SCRIPT, CONFIG_2]
        script = upload(container, START_SCRIPT)
        assert script["permissions"] == "0755"
        assert 'exec registry serve "$CONFIG"' in script["content"]
        assert container.get("ports", []) == []  # reached through nginx only


def test_registry_3_mirror_reads_its_config_from_the_distribution_path(run: Run) -> None:
    result = run(registry={"image": "registry:3.0.0"}, mirrors=[{**HUB, "ttl": "168h"}])
    container = mirror_container(result, "dockerhub")
    assert container["command"] == ["/bin/sh", START_SCRIPT, CONFIG_3]
    assert mirror_config(result, "dockerhub", CONFIG_3)["proxy"]["ttl"] == "168h"


def test_mirror_config_is_a_secret_proxy_of_its_upstream(mirrored: ProgramRun) -> None:
    assert is_secret(mirrored.named("registry-mirror-dockerhub-container").inputs["uploads"])
    assert upload(mirror_container(mirrored, "dockerhub"), CONFIG_2)["permissions"] == "0600"
    hub = mirror_config(mirrored, "dockerhub")
    assert hub["proxy"] == {"remoteurl": "https://registry-1.docker.io", "username": "hub-user", "password": PASSWORD}
    assert hub["storage"]["delete"] == {"enabled": True}
    assert hub["storage"]["filesystem"] == {"rootdirectory": "/var/lib/registry"}
    assert hub["http"]["host"] == "https://registry.example.com:5443"
    # The same http.secret as the team registry (generated once).
    assert hub["http"]["secret"].startswith("generated-")
    ghcr = mirror_config(mirrored, "ghcr")
    assert ghcr["proxy"] == {"remoteurl": "https://ghcr.io"}  # no ttl with registry 2.x, no credentials
    assert ghcr["http"]["host"] == "https://ghcr.registry.example.com"
    assert "auth" not in hub and "auth" not in ghcr  # no accounts configured


def test_the_upstream_password_is_in_no_env_no_plain_input_and_no_output(mirrored: ProgramRun) -> None:
    for registration in mirrored.of_type(CONTAINER):
        assert not any(PASSWORD in env for env in plain(registration.inputs).get("envs", [])), registration.name
    for registration in mirrored.registrations.values():
        assert PASSWORD not in json.dumps(without_secrets(registration.inputs)), registration.name
    assert PASSWORD not in json.dumps(mirrored.outputs)
    assert mirrored.secret_outputs == set()


def test_the_server_certificate_names_the_mirror_hostnames(mirrored: ProgramRun) -> None:
    csr = plain(mirrored.named("registry-tls-csr").inputs)
    assert csr["dnsNames"] == ["registry.example.com", "ghcr.registry.example.com"]


def test_a_mirror_hostname_must_be_a_dns_name(run: Run) -> None:
    """nginx tells mirrors on one port apart by name; an IP address gets a port instead (no IP among DNS SANs)."""
    with pytest.raises(pulumi.RunError, match=r"private-registry:mirrors\.0\.hostname: must be a DNS name"):
        run(mirrors=[{**GHCR, "hostname": "10.0.0.6"}])


def test_the_proxy_publishes_a_port_mirror_on_the_bind_address(run: Run) -> None:
    result = run(bindAddress="192.168.1.10", mirrors=MIRRORS)
    assert plain(result.named("registry-proxy-container").inputs)["ports"] == [
        {"internal": 443, "external": 443, "ip": "192.168.1.10"},
        {"internal": 80, "external": 80, "ip": "192.168.1.10"},
        {"internal": 6000, "external": 5443, "ip": "192.168.1.10"},
    ]


def test_each_port_mirror_gets_its_own_nginx_port(run: Run) -> None:
    second = {"name": "quay", "remoteUrl": "https://quay.io", "port": 5444}
    result = run(mirrors=[HUB, second])
    ports = plain(result.named("registry-proxy-container").inputs)["ports"]
    assert ports[2:] == [
        {"internal": 6000, "external": 5443, "ip": "127.0.0.1"},
        {"internal": 6001, "external": 5444, "ip": "127.0.0.1"},
    ]
    assert "set $registry_upstream http://mirror-quay:5000;" in server_with(
        site(result), "listen 6001 ssl default_server;"
    )


@pytest.mark.parametrize(
    ("name", "listen", "server_name"),
    [
        ("dockerhub", "listen 6000 ssl default_server;", "server_name _;"),
        ("ghcr", "listen 443 ssl;", "server_name ghcr.registry.example.com;"),
    ],
)
def test_nginx_serves_each_mirror_read_only_at_the_root_of_its_host(
    mirrored: ProgramRun, name: str, listen: str, server_name: str
) -> None:
    server = server_with(site(mirrored), listen)
    assert server_name in server
    assert f"set $registry_upstream http://mirror-{name}:5000;" in server
    assert "proxy_pass $registry_upstream;" in server
    assert "ssl_certificate /etc/nginx/tls/server.crt;" in [" ".join(line.split()) for line in server]
    # No write pause: a proxy registry refuses writes by itself.
    assert not any("writes_paused" in line or "return 418" in line for line in server)
    root = server[server.index("location / {") :]
    assert root[:3] == [
        "location / {",
        'add_header Strict-Transport-Security "max-age=63072000" always;',
        "return 404;",
    ]


def test_the_registrys_own_server_is_unchanged_by_mirrors(mirrored: ProgramRun) -> None:
    own = server_with(site(mirrored), "listen 443 ssl default_server;")
    assert "server_name registry.example.com;" in own
    assert "set $registry_upstream http://registry:5000;" in own
    assert "return 418;" in own


def test_with_accounts_a_mirror_requires_them(run: Run) -> None:
    result = run(auth={"users": USERS, "realm": "Acme"}, mirrors=[HUB, {**GHCR, "public": True}])
    hub = mirror_container(result, "dockerhub")
    assert mirror_config(result, "dockerhub")["auth"] == {"htpasswd": {"realm": "Acme", "path": "/auth/htpasswd"}}
    htpasswd = upload(hub, "/auth/htpasswd")["content"]
    assert htpasswd.startswith("alice:$2b$12$")
    assert USERS["alice"] not in htpasswd
    # public: no accounts, no htpasswd.
    ghcr = mirror_container(result, "ghcr")
    assert "auth" not in mirror_config(result, "ghcr")
    assert [u["file"] for u in ghcr["uploads"]] == [CONFIG_2, START_SCRIPT]


def test_an_upstream_ca_is_uploaded_and_added_to_the_trusted_directories(run: Run) -> None:
    result = run(mirrors=[HUB, {**GHCR, "remoteCaCertPem": CA_PEM}])
    ghcr = mirror_container(result, "ghcr")
    ca = upload(ghcr, UPSTREAM_CA)
    assert (ca["content"], ca["permissions"]) == (CA_PEM, "0644")
    assert "SSL_CERT_DIR=/etc/ssl/certs:/etc/registry-mirror/ca" in ghcr["envs"]
    hub = mirror_container(result, "dockerhub")
    assert not any(env.startswith("SSL_CERT_DIR=") for env in hub.get("envs", []))
    assert UPSTREAM_CA not in [u["file"] for u in hub["uploads"]]


# ---- outputs ----


def test_mirrors_output_lists_endpoints_and_upstreams(mirrored: ProgramRun) -> None:
    assert mirrored.outputs["mirrors"] == {
        "dockerhub": {
            "endpoint": "registry.example.com:5443",
            "url": "https://registry.example.com:5443",
            "remoteUrl": "https://registry-1.docker.io",
        },
        "ghcr": {
            "endpoint": "ghcr.registry.example.com",
            "url": "https://ghcr.registry.example.com",
            "remoteUrl": "https://ghcr.io",
        },
    }


def test_docker_daemon_json_names_only_the_docker_hub_mirror(mirrored: ProgramRun) -> None:
    assert json.loads(mirrored.outputs["dockerDaemonJson"]) == {
        "registry-mirrors": ["https://registry.example.com:5443"]
    }


@pytest.mark.parametrize(
    ("directory", "upstream", "mirror_url"),
    [
        ("docker.io", "https://registry-1.docker.io", "https://registry.example.com:5443"),
        ("ghcr.io", "https://ghcr.io", "https://ghcr.registry.example.com"),
    ],
)
def test_containerd_hosts_toml_pulls_each_upstream_through_its_mirror(
    mirrored: ProgramRun, directory: str, upstream: str, mirror_url: str
) -> None:
    hosts = mirrored.outputs["containerdHostsToml"]
    assert set(hosts) == {"docker.io", "ghcr.io"}
    document = tomllib.loads(hosts[directory])
    assert document["server"] == upstream
    assert document["host"] == {
        mirror_url: {
            "capabilities": ["pull", "resolve"],
            "ca": f"/etc/containerd/certs.d/{directory}/private-registry-ca.crt",
        }
    }


def test_two_mirrors_of_one_upstream_are_refused(run: Run) -> None:
    """Clients configure one mirror per upstream (containerd's certs.d/<host>, Docker's registry-mirrors): two
    caches of one upstream would only split it, and one hosts.toml would hide the other."""
    second = {"name": "hub2", "remoteUrl": "https://registry-1.docker.io", "port": 5444}
    with pytest.raises(pulumi.RunError, match="Docker Hub is mirrored more than once"):
        run(mirrors=[HUB, second])
    with pytest.raises(pulumi.RunError, match=r"ghcr\.io is mirrored more than once"):
        run(mirrors=[GHCR, {"name": "ghcr2", "remoteUrl": "https://ghcr.io/", "port": 5445}])


def test_no_mirrors_no_mirror_outputs_and_no_mirror_resources(run: Run) -> None:
    result = run()
    assert result.outputs["mirrors"] == {}
    assert json.loads(result.outputs["dockerDaemonJson"]) == {"registry-mirrors": []}
    assert result.outputs["containerdHostsToml"] == {}
    assert not [r for r in result.registrations.values() if "mirror" in r.name]
    assert "Pull-through mirror" not in site(result)


# ---- blast radius ----


@pytest.mark.parametrize(
    ("before", "after"),
    [
        pytest.param([{**HUB, "ttl": "168h"}, GHCR], [{**HUB, "ttl": "72h"}, GHCR], id="ttl"),
        pytest.param(
            [{**HUB, "ttl": "168h"}, GHCR], [{**HUB, "ttl": "168h", "password": "other-token"}, GHCR], id="password"
        ),
        pytest.param([{**HUB, "ttl": "168h"}, GHCR], [{**HUB, "ttl": "168h"}, {**GHCR, "public": True}], id="public"),
    ],
)
def test_a_mirror_setting_replaces_only_that_mirrors_container(
    run: Run, before: list[dict[str, Any]], after: list[dict[str, Any]]
) -> None:
    image = {"image": "registry:3.0.0"}
    first = inputs_by_name(run(registry=image, auth={"users": USERS}, mirrors=before))
    second = inputs_by_name(run(registry=image, auth={"users": USERS}, mirrors=after))
    assert first.keys() == second.keys()
    changed = {name for name in first if first[name] != second[name]}
    (name,) = {mirror["name"] for mirror, other in zip(before, after, strict=True) if mirror != other}
    assert changed == {f"registry-mirror-{name}-container"}


def test_adding_a_mirror_keeps_the_other_mirrors_cache(run: Run) -> None:
    first = inputs_by_name(run(mirrors=[HUB]))
    second = inputs_by_name(run(mirrors=MIRRORS))
    for name in ("registry-mirror-dockerhub-data", "registry-mirror-dockerhub-container", "registry-distribution-data"):
        assert first[name] == second[name], name


def test_same_mirror_config_declares_identical_inputs(run: Run) -> None:
    values = {"auth": {"users": USERS}, "mirrors": MIRRORS}
    assert inputs_by_name(run(**values)) == inputs_by_name(run(**values))


# ---- the warning ----


def test_a_docker_hub_mirror_that_requires_accounts_warns(run: Run) -> None:
    warnings = run(auth={"users": USERS}, mirrors=MIRRORS).warnings
    assert len(warnings) == 1 and warnings[0].startswith(HUB_WARNING), warnings
    assert "mirrors[dockerhub].public: true" in warnings[0]


@pytest.mark.parametrize(
    "values",
    [
        pytest.param(
            {"auth": {"users": USERS}, "mirrors": [{"name": "dockerhub", "port": 5443, "public": True}, GHCR]},
            id="public",
        ),
        pytest.param({"auth": {"users": USERS}, "mirrors": [GHCR]}, id="not-docker-hub"),
        pytest.param({"mirrors": MIRRORS}, id="no-accounts"),
    ],
)
def test_no_docker_hub_mirror_warning_when_it_does_not_apply(run: Run, values: dict[str, Any]) -> None:
    assert not [w for w in run(**values).warnings if "requires accounts" in w]
