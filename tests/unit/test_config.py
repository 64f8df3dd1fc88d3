"""Stack config validation: defaults, derived values and every kind of bad value (no Pulumi involved)."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel, Field, SecretStr

from components.config import (
    DEFAULT_HYPER_IMAGE,
    DEFAULT_JOXIT_IMAGE,
    ConfigError,
    KeyAlgorithm,
    Settings,
    UiFlavor,
    load_settings,
)
from components.config.masking import is_inside_secret, may_reveal

pytestmark = pytest.mark.unit


def load(**values: object) -> Settings:
    raw = {key: value if isinstance(value, str) else json.dumps(value) for key, value in values.items()}
    return load_settings({"hostname": "registry.example.com", **raw})


def error_of(**values: object) -> str:
    with pytest.raises(ConfigError) as caught:
        load(**values)
    return str(caught.value)


ACCOUNTS = {"users": {"alice": "correct-horse-7"}}


def test_defaults_are_secure_and_documented() -> None:
    settings = load()
    assert settings.bind_address == "127.0.0.1"
    assert (settings.https_port, settings.http_port, settings.registry_port, settings.ui_port) == (443, 80, 0, 0)
    assert settings.registry.delete_enabled is True
    assert settings.registry.log_level == "info"
    assert settings.registry.http_secret is None
    assert settings.ui.flavor is UiFlavor.JOXIT
    assert settings.ui.resolved_image == DEFAULT_JOXIT_IMAGE
    assert settings.tls.key_algorithm is KeyAlgorithm.ECDSA
    assert settings.registry_endpoint == "registry.example.com"
    assert settings.registry_url == "https://registry.example.com"


def test_endpoint_carries_a_non_default_port() -> None:
    assert load(httpsPort=8443).registry_endpoint == "registry.example.com:8443"


def test_hostname_is_normalised_to_lower_case() -> None:
    assert load(hostname="Registry.Example.COM").hostname == "registry.example.com"


def test_ip_hostname_goes_into_the_ip_sans() -> None:
    settings = load(hostname="10.1.2.3", ipAddresses=["127.0.0.1"])
    assert settings.certificate_dns_names == ()
    assert settings.certificate_ip_addresses == ("10.1.2.3", "127.0.0.1")


def test_ipv6_hostname_is_bracketed_in_the_endpoint() -> None:
    assert load(hostname="fd00::1", httpsPort=8443).registry_endpoint == "[fd00::1]:8443"


def test_hyper_flavor_defaults_to_the_hyper_image() -> None:
    assert load(ui={"flavor": "hyper"}).ui.resolved_image == DEFAULT_HYPER_IMAGE


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"hostname": "bad_host"}, "private-registry:hostname: must be a DNS name"),
        ({"hostname": "-lead.example.com"}, "private-registry:hostname: must be a DNS name"),
        ({"hostname": "a" * 64 + ".example.com"}, "private-registry:hostname: must be a DNS name"),
        ({"hostname": "reg.example.com; rm -rf /"}, "got 'reg.example.com; rm -rf /'"),
        ({"httpsPort": 70000}, "private-registry:httpsPort: Input should be less than or equal to 65535 (got 70000)"),
        ({"healthyWaitSeconds": 5}, "private-registry:healthyWaitSeconds: Input should be greater than or equal to 10"),
        ({"httpsPort": 0}, "private-registry:httpsPort: Input should be greater than or equal to 1 (got 0)"),
        ({"httpPort": -1}, "private-registry:httpPort: Input should be greater than or equal to 0 (got -1)"),
        ({"httpsPort": "https"}, "private-registry:httpsPort: Input should be a valid integer (got 'https')"),
        ({"httpsPort": True}, "private-registry:httpsPort: Input should be a valid integer (got True)"),
        ({"httpsPort": 443.5}, "private-registry:httpsPort: Input should be a valid integer (got 443.5)"),
        ({"httpsPort": 8443, "registryPort": 8443}, "registryPort and httpsPort are both 8443"),
        ({"httpPort": 443}, "httpPort and httpsPort are both 443"),
        ({"uiPort": 8080, "ui": {"flavor": "none"}}, "uiPort is set but ui.flavor is 'none'"),
        ({"ipAddresses": ["10.0.0.300"]}, "private-registry:ipAddresses: '10.0.0.300' is not an IPv4 or IPv6 address"),
        ({"ipAddresses": ["10.0.0.1", "10.0.0.1"]}, "lists 10.0.0.1 more than once"),
        ({"ipAddresses": "10.0.0.1"}, "private-registry:ipAddresses: Input should be a valid tuple"),
        ({"bindAddress": "localhost"}, "private-registry:bindAddress: must be an IPv4 or IPv6 address"),
        (
            {"ui": {"flavor": "fancy"}},
            "private-registry:ui.flavor: Input should be 'joxit', 'hyper' or 'none' (got 'fancy')",
        ),
        ({"ui": {"title": "two\nlines"}}, "private-registry:ui.title: must be printable text"),
        ({"ui": {"colour": "red"}}, "private-registry:ui.colour: unknown setting (got 'red')"),
        ({"ui": "joxit"}, "private-registry:ui: Input should be a valid dictionary"),
        (
            {"tls": {"keyAlgorithm": "DSA"}},
            "private-registry:tls.keyAlgorithm: Input should be 'ECDSA' or 'RSA' (got 'DSA')",
        ),
        (
            {"tls": {"certValidityDays": 400, "caValidityDays": 300}},
            "certValidityDays (400) must not exceed caValidityDays (300)",
        ),
        (
            {"tls": {"earlyRenewalDays": 30, "certValidityDays": 30}},
            "earlyRenewalDays (30) must be less than certValidityDays (30)",
        ),
        (
            {"tls": {"certValidityDays": 0}},
            "private-registry:tls.certValidityDays: Input should be greater than or equal to 1",
        ),
        (
            {"tls": {"caGeneration": 0}},
            "private-registry:tls.caGeneration: Input should be greater than or equal to 1 (got 0)",
        ),
        ({"tls": {"caGeneration": "2"}}, "private-registry:tls.caGeneration: Input should be a valid integer"),
        ({"registry": {"image": "Registry:2"}}, "private-registry:registry.image: must be a Docker image reference"),
        (
            {"registry": {"image": "registry:2 --privileged"}},
            "private-registry:registry.image: must be a Docker image reference",
        ),
        (
            {"registry": {"logLevel": "trace"}},
            "private-registry:registry.logLevel: Input should be 'error', 'warn', 'info' or 'debug' (got 'trace')",
        ),
        (
            {"registry": {"deleteEnabled": "nope"}},
            "private-registry:registry.deleteEnabled: Input should be a valid boolean (got 'nope')",
        ),
        (
            {"registry": {"configPath": "relative/config.yml"}},
            "private-registry:registry.configPath: must be an absolute path",
        ),
        ({"proxy": {"image": ""}}, "private-registry:proxy.image: must be a Docker image reference"),
        (
            {"httpsPorts": 8443},
            "private-registry:httpsPorts: unknown setting; did you mean 'private-registry:httpsPort'?",
        ),
    ],
)
def test_bad_values_are_named_with_what_is_allowed(values: dict[str, object], expected: str) -> None:
    assert expected in error_of(**values)


def test_hostname_is_required() -> None:
    with pytest.raises(ConfigError, match=r"private-registry:hostname: required"):
        load_settings({})


def test_every_error_is_reported_at_once() -> None:
    message = error_of(httpsPort=70000, ui={"flavor": "fancy"}, registry={"logLevel": "trace"})
    assert message.count("private-registry:") == 3


def test_a_short_http_secret_is_refused_without_echoing_it() -> None:
    message = error_of(registry={"httpSecret": "hunter2"})
    assert "registry.httpSecret: must be at least 16 characters" in message
    assert "hunter2" not in message


def test_http_secret_is_not_echoed_when_the_registry_object_is_wrong() -> None:
    message = error_of(registry={"httpSecret": "a-long-enough-secret-value", "colour": 1})
    assert "a-long-enough-secret-value" not in message
    assert "registry.colour: unknown setting" in message


def test_settings_are_immutable() -> None:
    settings = load()
    with pytest.raises(Exception, match="frozen"):
        settings.https_port = 1  # type: ignore[misc]


def test_duplicate_user_names_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"private-registry:auth: 'alice' is given more than once"):
        load_settings(
            {"hostname": "r.example.com", "auth": '{"users": {"alice": "first-password", "alice": "second-password"}}'}
        )


def test_passwords_are_never_echoed_in_errors() -> None:
    message = error_of(auth={"users": {"alice": "tiny", "bob": "correct-horse-battery"}, "colour": 1})
    assert "got <secret>" in message
    assert "tiny" not in message
    assert "correct-horse-battery" not in message


def test_accounts_are_kept_in_name_order() -> None:
    users = load(auth={"users": {"zoe": "password-1", "alice": "password-2"}}).auth.users
    assert list(users) == ["alice", "zoe"]


def test_modern_profile_defaults_to_90_day_certificates() -> None:
    assert load(tls={"profile": "modern"}).tls.cert_validity_days == 90
    assert load(tls={"profile": "modern", "certValidityDays": 60}).tls.cert_validity_days == 60
    assert load().tls.cert_validity_days == 365


SECRET = "s3cretpassw0rd"


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"auth": ["alice", SECRET]}, "private-registry:auth: Input should be a valid dictionary"),
        ({"auth": SECRET}, "private-registry:auth: Input should be a valid dictionary"),
        ({"auth": {"users": ["alice", SECRET]}}, "private-registry:auth.users: must be a map of user name"),
        ({"auth": {"users": SECRET}}, "private-registry:auth.users: Input should be a valid dictionary"),
        ({"auth": {"users": {"alice": 1234567890123}}}, "private-registry:auth.users.alice: Input should be"),
        ({"auth": {"users": {"alice": {"password": SECRET}}}}, "private-registry:auth.users.alice: Input should be"),
        ({"auth": {"user": {"alice": SECRET}}}, "private-registry:auth.user: unknown setting"),
        ({"registry": {"httpSecret": [SECRET + "-long"]}}, "private-registry:registry.httpSecret: Input should be"),
        ({"registry": {"httpSecret": 12345678901234567890}}, "private-registry:registry.httpSecret: Input should be"),
        ({"registry": {"httpSecret": SECRET}}, "private-registry:registry.httpSecret: must be at least 16 characters"),
        ({"registry": {"httpsecret": SECRET + "-long"}}, "private-registry:registry.httpsecret: unknown setting"),
        ({"registry": ["registry:2", SECRET + "-long"]}, "private-registry:registry: Input should be a valid dict"),
        # a secret in the wrong block is still a secret
        ({"ui": {"users": {"alice": SECRET}}}, "private-registry:ui.users: unknown setting"),
        ({"uiPort": {"users": {"alice": SECRET}}}, "private-registry:uiPort: Input should be a valid integer"),
    ],
)
def test_secrets_are_never_echoed_whatever_their_shape(values: dict[str, object], expected: str) -> None:
    message = error_of(**values)
    assert expected in message
    assert "(got <secret>)" in message
    assert SECRET not in message
    assert "1234567890123" not in message


def test_a_repeated_key_inside_a_secret_is_not_named() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"hostname": "r.example.com", "registry": f'{{"httpSecret": {{"{SECRET}": 1, "{SECRET}": 2}}}}'})
    assert "private-registry:registry: <secret> is given more than once" in str(caught.value)
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"registry": {"image": "Registry:2"}}, "private-registry:registry.image: must be a Docker image reference"),
        ({"auth": {"realm": 'say "hi"'}}, "(got 'say \"hi\"')"),
        ({"auth": None}, "private-registry:auth: Input should be a valid dictionary"),
        ({"registry": {"deleteEnabled": "nope"}}, "(got 'nope')"),
        ({"tls": {"colour": "red"}}, "private-registry:tls.colour: unknown setting (got 'red')"),
    ],
)
def test_values_where_no_secret_can_stand_are_still_shown(values: dict[str, object], expected: str) -> None:
    message = error_of(**values)
    assert expected in message
    assert "<secret>" not in message


class _FutureBlock(BaseModel):
    """A block as a later floor might add one: secrets marked by type or by `json_schema_extra`."""

    bucket: str = "images"
    access_key: SecretStr | None = None
    token: str = Field(default="", json_schema_extra={"secret": True})
    headers: dict[str, SecretStr] = Field(default_factory=dict)


class _FutureSettings(BaseModel):
    hostname: str = ""
    storage: _FutureBlock = _FutureBlock()


@pytest.mark.parametrize(
    ("location", "masked"),
    [
        (("storage", "access_key"), True),
        (("storage", "token"), True),
        (("storage", "headers"), True),
        (("storage", "headers", "X-Auth"), True),
        (("storage", "bucket"), False),
        (("storage",), True),  # the block holds secrets, so whatever is given for it may be one
        (("storage", "misspelt"), True),
        (("hostname",), False),
    ],
)
def test_a_new_block_marks_its_secrets_where_it_declares_them(location: tuple[str, ...], masked: bool) -> None:
    assert may_reveal(_FutureSettings, location, "value") is masked


def test_the_keys_of_a_secret_map_are_names_but_keys_inside_a_secret_are_not() -> None:
    assert not is_inside_secret(_FutureSettings, ("storage", "headers"))
    assert is_inside_secret(_FutureSettings, ("storage", "headers", "X-Auth"))
    assert is_inside_secret(_FutureSettings, ("storage", "token"))
    assert not is_inside_secret(_FutureSettings, ("storage",))


# ---- values that reach rendered files: one word, one spelling ----


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        # `re.match` with `$` let a final line break through every pattern
        ({"hostname": "registry.example.com\n"}, "private-registry:hostname: must be a DNS name"),
        ({"auth": {"users": {"alice\n": "password-123"}}}, "private-registry:auth.users: user name 'alice\\n'"),
        ({"registry": {"image": "registry:2.8.3\n"}}, "private-registry:registry.image: must be a Docker image"),
        ({"registry": {"configPath": "/etc/r/config.yml\n"}}, "private-registry:registry.configPath: must be"),
        ({"swarm": {"edgeConstraints": ["node.role==manager\n"]}}, "private-registry:swarm.edgeConstraints:"),
        # a tag is ASCII (`\w` took any letter)
        ({"proxy": {"image": "nginx:1.28-é"}}, "private-registry:proxy.image: must be a Docker image reference"),
        # an IPv6 zone is text of any kind after the %, and names an interface of one host only
        ({"hostname": "fe80::1%eth0"}, "private-registry:hostname: must be an IPv4 or IPv6 address (no IPv6 zone)"),
        ({"hostname": "fe80::1%;return 200"}, "private-registry:hostname: must be an IPv4 or IPv6 address"),
        ({"ipAddresses": ["fe80::1%eth0"]}, "private-registry:ipAddresses: 'fe80::1%eth0' is not an IPv4 or IPv6"),
        ({"bindAddress": "fe80::1%eth0"}, "private-registry:bindAddress: must be an IPv4 or IPv6 address"),
        ({"hostname": "0.0.0.0"}, "private-registry:hostname: must be an address clients can connect to"),
        ({"ipAddresses": ["::"]}, "private-registry:ipAddresses: '::' is not an address clients can connect to"),
        ({"bindAddress": "224.0.0.1"}, "private-registry:bindAddress: must be an address of this host"),
        ({"hostname": "10.0.0.300"}, "private-registry:hostname: must be a DNS name"),
        ({"registry": {"configPath": "/etc/registry-maintenance/settings.env"}}, "must be an absolute path of a .yml"),
        ({"registry": {"configPath": "/etc/../config.yml"}}, "registry.configPath: must be an absolute path"),
        ({"registry": {"configPath": "/var/lib/registry/config.yml"}}, "must not be in a volume the stack mounts"),
    ],
)
def test_values_that_would_break_a_rendered_file_are_refused(values: dict[str, object], expected: str) -> None:
    assert expected in error_of(**values)


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("::ffff:10.1.2.3", "10.1.2.3"),
        ("0:0:0:0:0:ffff:a01:203", "10.1.2.3"),
        ("FD00:0:0:0:0:0:0:1", "fd00::1"),
        ("fd00::0001", "fd00::1"),
    ],
)
def test_an_address_has_one_spelling_wherever_it_is_used(spelling: str, canonical: str) -> None:
    settings = load(hostname=spelling, ipAddresses=[spelling], bindAddress=spelling)
    assert (settings.hostname, settings.bind_address) == (canonical, canonical)
    assert settings.certificate_ip_addresses == (canonical,)


def test_an_address_given_twice_in_two_spellings_is_refused() -> None:
    assert "lists 10.1.2.3 more than once" in error_of(ipAddresses=["10.1.2.3", "::ffff:10.1.2.3"])


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"registry": {"httpSecret": "a-long-enough-secret\ud800"}}, "registry.httpSecret: must be text UTF-8 can"),
        ({"auth": {"users": {"alice": "password\ud800"}}}, "the password of 'alice' must be text UTF-8 can encode"),
        (
            {"storage": {"driver": "s3", "bucket": "b-1", "accessKey": "AKIAEXAMPLE", "secretKey": ""}},
            "storage.secretKey: must not be empty",
        ),
        (
            {"mirrors": [{"name": "dockerhub", "port": 5443, "username": "ci-bot", "password": ""}]},
            "mirror 'dockerhub': password must not be empty",
        ),
    ],
)
def test_secrets_no_file_could_hold_are_refused(values: dict[str, object], expected: str) -> None:
    """A lone surrogate has no UTF-8 form (rendering would crash, or the registry read another secret); an
    empty secretKey left both keys out of config.yml, and the registry used the host's credentials."""
    message = error_of(**values)
    assert expected in message and "(got <secret>)" in message


# ---- registryPort carries passwords in clear ----


@pytest.mark.parametrize("bind", ["0.0.0.0", "192.168.1.10", "::", "fd00::1"])
def test_registry_port_with_accounts_is_refused_beyond_loopback(bind: str) -> None:
    message = error_of(bindAddress=bind, registryPort=5000, auth=ACCOUNTS)
    assert f"registryPort is set with auth.users on bindAddress {bind}" in message
    assert "in clear" in message


@pytest.mark.parametrize("bind", ["127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"])
def test_registry_port_with_accounts_stays_allowed_on_loopback(bind: str) -> None:
    assert load(bindAddress=bind, registryPort=5000, auth=ACCOUNTS).registry_port == 5000


def test_registry_port_without_accounts_is_allowed_beyond_loopback() -> None:
    assert load(bindAddress="192.168.1.10", registryPort=5000).registry_port == 5000


# ---- a Swarm's proxy and maintenance task on one node ----

SWARM = {"engine": "swarm", "bindAddress": "0.0.0.0", "storage": {"driver": "s3", "bucket": "team-registry"}}


@pytest.mark.parametrize(
    "constraints",
    [
        ["node.hostname==edge-1"],
        ["node.id==2ufgx3l9klz0h6g3b6ntl0a4w"],
        ["node.role==manager", "node.hostname == edge-1"],
        ["node.hostname==Edge-1", "node.hostname==edge-1"],  # Swarm compares names without case
        ["node.hostname==edge-1", "node.id==2ufgx3l9klz0h6g3b6ntl0a4w"],
    ],
)
def test_swarm_edge_constraints_that_pin_one_node_are_accepted(constraints: list[str]) -> None:
    assert load(**SWARM, swarm={"edgeConstraints": constraints}).swarm.edge_constraints == tuple(constraints)


@pytest.mark.parametrize(
    ("swarm", "expected"),
    [
        ({}, "swarm.edgeConstraints must pin one node with engine 'swarm'"),
        ({"edgeConstraints": ["node.role==manager"]}, "swarm.edgeConstraints must pin one node"),
        ({"edgeConstraints": ["node.hostname!=edge-1"]}, "swarm.edgeConstraints must pin one node"),
        ({"edgeConstraints": ["node.labels.hostname==edge-1"]}, "swarm.edgeConstraints must pin one node"),
        ({"registryConstraints": ["node.hostname==edge-1"]}, "swarm.edgeConstraints must pin one node"),
        (
            {"edgeConstraints": ["node.hostname==edge-1", "node.hostname==edge-2"]},
            "swarm.edgeConstraints give node.hostname== more than one value",
        ),
    ],
)
def test_swarm_edge_constraints_must_pin_one_node(swarm: dict[str, object], expected: str) -> None:
    message = error_of(**SWARM, swarm=swarm)
    assert expected in message
    if "must pin" in expected:
        assert "write-pause flags" in message and "writes not paused" in message


# ---- what an error may show ----


@pytest.mark.parametrize(
    ("values", "hidden"),
    [
        ({"dockerHost": {"host": "tcp://deploy:hunter2@docker.internal:2376"}}, "hunter2"),
        ({"dockerHost": {"host": "tcp://docker.internal:2376"}}, "docker.internal"),  # no tls: the message
        (
            {"storage": {"driver": "s3", "bucket": "b-1", "regionEndpoint": "https://:hunter2@minio.internal"}},
            "hunter2",
        ),
    ],
)
def test_messages_name_the_key_not_the_url(values: dict[str, object], hidden: str) -> None:
    message = error_of(**values)
    assert "private-registry:" in message
    assert hidden not in message.split("(got", 1)[0]


# ---- a public mirror lends no account ----

UPSTREAM_PASSWORD = "upstream-Pw-4411-never-echo"


@pytest.mark.parametrize(
    "mirror",
    [
        {"name": "dockerhub", "port": 5443, "public": True, "username": "ci-bot", "password": UPSTREAM_PASSWORD},
        {
            "name": "ghcr",
            "remoteUrl": "https://ghcr.io",
            "hostname": "ghcr.registry.example.com",
            "public": True,
            "username": "ci-bot",
            "password": UPSTREAM_PASSWORD,
        },
    ],
)
def test_a_public_mirror_with_an_upstream_account_is_refused(mirror: dict[str, object]) -> None:
    message = error_of(auth=ACCOUNTS, mirrors=[mirror])
    assert f"mirror '{mirror['name']}': public: true with username and password" in message
    assert "a public mirror must be anonymous upstream" in message
    assert UPSTREAM_PASSWORD not in message and "ci-bot" not in message


@pytest.mark.parametrize(
    "mirror",
    [
        {"name": "dockerhub", "port": 5443, "public": True},
        {"name": "dockerhub", "port": 5443, "username": "ci-bot", "password": UPSTREAM_PASSWORD},
    ],
)
def test_a_mirror_is_public_or_has_an_upstream_account(mirror: dict[str, object]) -> None:
    assert load(auth=ACCOUNTS, mirrors=[mirror]).mirrors[0].name == "dockerhub"
