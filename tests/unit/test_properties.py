"""Property tests: random and hostile config values end in a clear validation error or a correct, escaped
rendering. Never a traceback, a broken nginx or YAML file, or text injected into a rendered config."""

from __future__ import annotations

import json
import re
from typing import Any

import bcrypt
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from components.config import KNOWN_KEYS, ConfigError, Settings, load_settings
from components.config.base import parse_ip
from components.config.masking import is_secret_field
from components.rendering import (
    ProxyConfig,
    RegistryConfig,
    joxit_ui_environment,
    render_htpasswd,
    render_nginx_conf,
    render_registry_config,
)
from harness.program import run_program
from tests.unit.conftest import FakeMocks

pytestmark = pytest.mark.unit

# Characters that break shells, nginx, YAML or htpasswd files, plus unicode and control characters.
HOSTILE = st.text(
    alphabet=st.sampled_from([*";{}$\"'`\\|&<>#:\n\r\t\x00 %*/=-_.@", "é", "ü", "Ω", "中", "\u202e", "\U0001f600"])
    | st.characters(),
    max_size=80,
)
HOSTNAMES = st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z][a-z0-9-]{0,10}){0,3}", fullmatch=True).filter(
    lambda h: not h.endswith("-") and "-." not in h
)
# Printable text with punctuation (quotes, braces, $, ;) and non-ASCII letters: valid for titles, often hostile.
PRINTABLE = st.text(
    alphabet=st.characters(categories=["L", "N", "P", "S", "Zs"], exclude_characters='"\\'), min_size=1, max_size=40
)
USER_NAMES = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,20}", fullmatch=True)
PASSWORDS = st.text(min_size=8, max_size=40).filter(lambda p: "\x00" not in p and len(p.encode()) <= 72)
# Addresses a certificate can name (not unspecified or multicast), in any spelling; unique by what they are.
CLIENT_IPS = (
    st.ip_addresses()
    .filter(lambda ip: not (parse_ip(str(ip)).is_unspecified or parse_ip(str(ip)).is_multicast))
    .map(str)
)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False)
    | HOSTILE,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(HOSTILE, children, max_size=4),
    max_leaves=12,
)

# Secret text for the masking property: letters that no key name, message or other generated value uses (the
# other values are drawn free of them), so any of them in an error can only mean a secret was echoed.
SECRET_ALPHABET = "ΓΔΘΛΞΠΣΦΨ"
SECRET_TEXT = st.text(alphabet=SECRET_ALPHABET, min_size=6, max_size=30)


def free_of_secret_letters(value: Any) -> bool:
    return not set(SECRET_ALPHABET) & set(json.dumps(value, ensure_ascii=False))


PLAIN_KEYS = st.sampled_from(["users", "httpSecret", "httpsecret", "password", "alice", "image", "realm"]) | HOSTILE
# Any JSON-like shape whose text leaves are secret text; keys are names, as the schema has them.
SECRET_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | SECRET_TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(PLAIN_KEYS, children, max_size=4),
    max_leaves=12,
).filter(lambda value: not isinstance(value, dict) or free_of_secret_letters(list(value)))


def raw_value(value: Any) -> str:
    """How Pulumi would hand a value to the program: strings as they are, the rest as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def render_all(parsed: Settings) -> None:
    """Render every file the program would for these settings and check each parses back intact."""
    secret = "s" * 32
    registry_yml = render_registry_config(
        RegistryConfig(
            public_url=parsed.registry_url,
            http_secret=secret,
            delete_enabled=parsed.registry.delete_enabled,
            log_level=parsed.registry.log_level,
            auth_realm=parsed.auth.realm if parsed.auth.enabled else None,
        )
    )
    document = yaml.safe_load(registry_yml)
    assert document["http"]["host"] == parsed.registry_url
    assert document["http"]["secret"] == secret
    if parsed.auth.enabled:
        assert document["auth"]["htpasswd"]["realm"] == parsed.auth.realm
    nginx = render_nginx_conf(
        ProxyConfig(
            server_name="_" if parsed.hostname_is_ip else parsed.hostname,
            endpoint=parsed.registry_endpoint,
            redirect_http=parsed.http_port != 0,
            registry_upstream="registry:5000",
            ui_upstream="ui:80",
            certificate_path="/etc/nginx/tls/server.crt",
            certificate_key_path="/etc/nginx/tls/server.key",
            tls_profile=parsed.tls.profile,
        )
    )
    assert_sound_nginx(nginx, parsed)
    env = joxit_ui_environment(
        title=parsed.ui.title,
        delete_images=parsed.registry.delete_enabled,
        pull_url=parsed.registry_endpoint,
        secured=parsed.auth.enabled,
    )
    assert all("\n" not in value and "\x00" not in value for value in env.values())


def assert_sound_nginx(nginx: str, parsed: Settings) -> None:
    code = "\n".join(line.split("#", 1)[0] for line in nginx.splitlines())
    assert code.count("{") == code.count("}")
    # Every server_name is exactly the validated host name (or the catch-all): nothing else got in.
    names = re.findall(r"server_name ([^;]*);", code)
    # The plaintext redirect server is the catch-all "_"; the TLS server names the host.
    assert set(names) - {"_"} <= {parsed.hostname}
    assert all(re.fullmatch(r"[a-z0-9.-]+|_", name) for name in names)
    redirects = re.findall(r"return 301 ([^;]*);", code)
    assert redirects == ([f"https://{parsed.registry_endpoint}$request_uri"] if parsed.http_port else [])
    # health, metrics, the plain registry API, the redirect when httpPort is on, TLS
    assert len(re.findall(r"^\s*server \{", code, re.M)) == (5 if parsed.http_port else 4)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(st.sampled_from(sorted(KNOWN_KEYS)) | HOSTILE, JSON_VALUES, max_size=6), st.booleans(), HOSTNAMES
)
def test_any_config_validates_or_fails_clearly(raw: dict[str, Any], set_hostname: bool, hostname: str) -> None:
    config = {key: raw_value(value) for key, value in raw.items()}
    if set_hostname:  # so that the other keys' values get judged, not only the missing hostname
        config["hostname"] = hostname
    try:
        parsed = load_settings(config)
    except ConfigError as error:
        event("refused")
        assert str(error).startswith("invalid stack configuration:")
        assert "private-registry:" in str(error)
        return
    event("valid, rendered")
    render_all(parsed)


@settings(max_examples=300, deadline=None)
@given(
    hostname=HOSTNAMES | HOSTILE,
    title=PRINTABLE | HOSTILE,
    organization=PRINTABLE | HOSTILE,
    realm=PRINTABLE | HOSTILE,
    port=st.integers(min_value=1, max_value=65535) | st.integers() | st.booleans() | HOSTILE,
)
def test_hostile_names_are_refused_or_escaped(
    hostname: str, title: str, organization: str, realm: str, port: Any
) -> None:
    config = {
        "hostname": hostname,
        "httpsPort": raw_value(port),
        "ui": json.dumps({"title": title}),
        "tls": json.dumps({"organization": organization}),
        "auth": json.dumps({"realm": realm}),
    }
    try:
        parsed = load_settings(config)
    except ConfigError as error:
        event("refused")
        assert "private-registry:" in str(error)
        return
    event("valid, rendered")
    render_all(parsed)


@settings(max_examples=60, deadline=None)
@given(
    users=st.dictionaries(
        USER_NAMES | st.text(alphabet=st.characters(), min_size=0, max_size=70),
        PASSWORDS | st.text(min_size=0, max_size=80),
        max_size=3,
    )
)
def test_hostile_accounts_are_refused_or_hashed_correctly(users: dict[str, str]) -> None:
    try:
        parsed = load_settings({"hostname": "r.example.com", "auth": json.dumps({"users": users})})
    except ConfigError as error:
        event("refused")
        assert "private-registry:auth" in str(error)
        for password in users.values():
            if len(password) >= 3:
                assert f"'{password}'" not in str(error)  # passwords are never echoed
        return
    event("valid, hashed")
    plain = {user: password.get_secret_value() for user, password in parsed.auth.users.items()}
    lines = render_htpasswd(plain, salt_key="stack-key", cost=4).splitlines()
    assert len(lines) == len(users)
    for line in lines:
        user, hashed = line.split(":", 1)
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._@-]*", user)
        assert bcrypt.checkpw(plain[user].encode(), hashed.encode())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    hostname=HOSTNAMES,
    https_port=st.integers(min_value=1, max_value=65535),
    flavor=st.sampled_from(["joxit", "hyper", "none"]),
    profile=st.sampled_from(["intermediate", "modern"]),
    ips=st.lists(CLIENT_IPS, max_size=3, unique_by=lambda ip: str(parse_ip(ip))),
)
def test_valid_configs_run_the_whole_program(
    hostname: str, https_port: int, flavor: str, profile: str, ips: list[str]
) -> None:
    config = {
        "private-registry:hostname": hostname,
        "private-registry:httpsPort": str(https_port),
        "private-registry:httpPort": "0" if https_port == 80 else "80",
        "private-registry:ipAddresses": json.dumps(ips),
        "private-registry:ui": json.dumps({"flavor": flavor}),
        "private-registry:tls": json.dumps({"profile": profile}),
    }
    result = run_program(config, FakeMocks())
    assert result.outputs["registryEndpoint"].startswith(hostname)
    assert json.loads(json.dumps(result.outputs)) == result.outputs


SECRET_PLACES = ["auth.users.<name>", "auth.users", "auth", "registry.httpSecret", "registry"]
# The fields of the secret-holding blocks that are not secrets, by their config names.
PLAIN_FIELDS = {
    block: {
        alias
        for name, field in Settings.model_fields[block].annotation.model_fields.items()  # type: ignore[union-attr]
        if not is_secret_field(field)
        for alias in (name, field.alias)
    }
    for block in ("registry", "auth")
}


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(
    place=st.sampled_from(SECRET_PLACES),
    secret=SECRET_TEXT | SECRET_VALUES,
    user=USER_NAMES,
    siblings=st.dictionaries(PLAIN_KEYS, JSON_VALUES, max_size=3).filter(free_of_secret_letters),
    others=st.dictionaries(st.sampled_from(sorted(KNOWN_KEYS)) | HOSTILE, JSON_VALUES, max_size=4).filter(
        free_of_secret_letters
    ),
    hostname=st.none() | HOSTNAMES,
)
def test_secrets_never_appear_in_errors(
    place: str, secret: Any, user: str, siblings: dict[str, Any], others: dict[str, Any], hostname: str | None
) -> None:
    """Whatever shape a secret has and whatever else is wrong, a refused config never shows it. The property
    asked for is that no text of 6 or more characters from the secret appears; the check is stronger: no
    letter of the secret alphabet appears at all."""
    block, _, rest = place.partition(".")
    if not rest and isinstance(secret, dict):
        # A whole block given as an object: what lands in one of its plain fields (`registry.image`,
        # `auth.realm`) is not a secret, and the error may show it like any other plain value.
        secret = {key: value for key, value in secret.items() if key not in PLAIN_FIELDS[block]}
    if rest == "users.<name>":
        placed: Any = {**siblings, "users": {user: secret}}
    elif rest:
        placed = {**siblings, rest: secret}
    else:
        placed = secret
    config = {key: raw_value(value) for key, value in others.items() if key != block}
    config[block] = raw_value(placed)
    if hostname is not None:  # so that the values get judged, not only the missing hostname
        config["hostname"] = hostname
    try:
        load_settings(config)
    except ConfigError as error:
        event(f"refused, secret at {place}")
        leaked = set(SECRET_ALPHABET) & set(str(error))
        assert not leaked, str(error)
        return
    event(f"valid, secret at {place}")
