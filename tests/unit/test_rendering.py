"""The rendered config files, parsed back or checked directive by directive (no Pulumi involved)."""

from __future__ import annotations

import html
import re
import shlex
import tomllib

import bcrypt
import pytest
import yaml

from components.rendering import (
    HTPASSWD_PATH,
    INTERMEDIATE_CIPHERS,
    HyperUiConfig,
    MirrorSite,
    ProxyConfig,
    RedisServerConfig,
    RegistryConfig,
    RetentionRuleLine,
    joxit_ui_environment,
    render_cache_env,
    render_containerd_hosts_toml,
    render_htpasswd,
    render_hyper_ui_config,
    render_nginx_conf,
    render_redis_conf,
    render_registry_config,
    render_retention_rules,
)

pytestmark = pytest.mark.unit

REGISTRY = RegistryConfig(
    public_url="https://registry.example.com:8443", http_secret="s" * 32, delete_enabled=True, log_level="info"
)
PROXY = ProxyConfig(
    server_name="registry.example.com",
    endpoint="registry.example.com:8443",
    redirect_http=True,
    registry_upstream="registry:5000",
    ui_upstream="ui:80",
    certificate_path="/etc/nginx/tls/server.crt",
    certificate_key_path="/etc/nginx/tls/server.key",
)


def directives(conf: str, block: str) -> list[str]:
    """The directive lines (comments dropped) of the first `block {` in an nginx config."""
    start = conf.index(block + " {")
    depth, lines = 0, []
    for line in conf[start:].splitlines():
        text = line.split("#", 1)[0].strip()
        depth += text.count("{") - text.count("}")
        if text:
            lines.append(text)
        if depth == 0 and lines:
            break
    return lines


def test_registry_config_parses_back_with_every_setting() -> None:
    config = yaml.safe_load(render_registry_config(REGISTRY))
    assert config["version"] == 0.1
    assert config["log"]["level"] == "info"
    assert config["storage"]["filesystem"]["rootdirectory"] == "/var/lib/registry"
    assert config["storage"]["delete"]["enabled"] is True
    assert config["http"]["addr"] == ":5000"
    assert config["http"]["host"] == "https://registry.example.com:8443"
    assert config["http"]["secret"] == "s" * 32
    assert config["http"]["headers"]["X-Content-Type-Options"] == ["nosniff"]
    assert config["health"]["storagedriver"]["enabled"] is True


def test_registry_config_follows_delete_and_log_level() -> None:
    config = yaml.safe_load(
        render_registry_config(
            RegistryConfig(public_url="https://r", http_secret="x" * 16, delete_enabled=False, log_level="debug")
        )
    )
    assert config["storage"]["delete"]["enabled"] is False
    assert config["log"]["level"] == "debug"


def test_registry_config_quotes_a_secret_that_looks_like_yaml() -> None:
    secret = "yes: [not, a list] # and not a comment"
    config = yaml.safe_load(render_registry_config(RegistryConfig("https://r", secret, True, "info")))
    assert config["http"]["secret"] == secret


def tls_server(conf: str) -> str:
    """The HTTPS server block's text (the plaintext redirect server comes before it)."""
    return conf[conf.index("listen 443 ssl") :]


def test_nginx_registry_location_has_every_required_directive() -> None:
    v2 = directives(tls_server(render_nginx_conf(PROXY)), "location /v2/")
    for expected in [
        "set $registry_upstream http://registry:5000;",
        "proxy_pass $registry_upstream;",
        "proxy_http_version 1.1;",
        "proxy_request_buffering off;",
        "proxy_buffering on;",
        "proxy_max_temp_file_size 0;",
        "proxy_buffers 32 128k;",
        "proxy_set_header Host              $http_host;",
        "proxy_set_header X-Real-IP         $remote_addr;",
        "proxy_set_header X-Forwarded-For   $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_read_timeout 900;",
        "proxy_send_timeout 900;",
        "add_header Docker-Distribution-Api-Version $docker_distribution_api_version always;",
    ]:
        assert expected in v2, expected


def test_nginx_tls_server_block() -> None:
    server = tls_server(render_nginx_conf(PROXY))
    for expected in [
        "server_name registry.example.com;",
        "ssl_certificate     /etc/nginx/tls/server.crt;",
        "ssl_certificate_key /etc/nginx/tls/server.key;",
        "ssl_protocols TLSv1.2 TLSv1.3;",
        "client_max_body_size 0;",
        "client_body_buffer_size 1m;",
        "chunked_transfer_encoding on;",
        "resolver 127.0.0.11 valid=10s ipv6=off;",
        "server_tokens off;",
    ]:
        assert expected in server, expected


def test_nginx_api_version_header_is_only_filled_in_when_missing() -> None:
    conf = render_nginx_conf(PROXY)
    assert re.search(
        r"map \$upstream_http_docker_distribution_api_version \$docker_distribution_api_version \{\s*''\s+'registry/2.0';\s*\}",
        conf,
    )


def test_nginx_ui_location_proxies_to_the_ui() -> None:
    ui = directives(tls_server(render_nginx_conf(PROXY)), "location /")
    assert "set $ui_upstream http://ui:80;" in ui
    assert "proxy_pass $ui_upstream;" in ui


def test_nginx_without_ui_answers_404_at_root() -> None:
    conf = render_nginx_conf(ProxyConfig(**{**PROXY.__dict__, "ui_upstream": None}))
    assert "return 404;" in directives(tls_server(conf), "location /")
    assert "$ui_upstream" not in conf


def test_nginx_plaintext_server_only_redirects_keeping_the_https_port() -> None:
    conf = render_nginx_conf(PROXY)
    plaintext = conf[conf.index("listen 80 default_server;") : conf.index("listen 443 ssl")]
    assert "return 301 https://registry.example.com:8443$request_uri;" in plaintext
    assert "proxy_pass" not in plaintext


def test_nginx_plaintext_server_answers_every_host_name() -> None:
    """The image's default site must never answer: ours is the default server of port 80, for any Host."""
    conf = render_nginx_conf(PROXY)
    plaintext = conf[conf.index("listen 80 default_server;") : conf.index("listen 443 ssl")]
    assert "server_name _;" in plaintext


def test_nginx_tls_server_is_the_default_server() -> None:
    assert tls_server(render_nginx_conf(PROXY)).startswith("listen 443 ssl default_server;")


def test_nginx_redirect_to_the_default_port_has_no_port() -> None:
    conf = render_nginx_conf(ProxyConfig(**{**PROXY.__dict__, "endpoint": "registry.example.com"}))
    assert "return 301 https://registry.example.com$request_uri;" in conf


def test_nginx_without_plaintext_port_has_no_plaintext_server() -> None:
    conf = render_nginx_conf(ProxyConfig(**{**PROXY.__dict__, "redirect_http": False}))
    assert "listen 80" not in conf


def test_nginx_braces_balance() -> None:
    conf = "\n".join(line.split("#", 1)[0] for line in render_nginx_conf(PROXY).splitlines())
    assert conf.count("{") == conf.count("}")


def test_hyper_config_parses_back() -> None:
    config = yaml.safe_load(
        render_hyper_ui_config(
            HyperUiConfig(registry_url="http://registry:5000/v2", registry_name="r.example.com:8443", readonly=True)
        )
    )
    assert config == {
        "registry": {"url": "http://registry:5000/v2", "name": "r.example.com:8443", "readonly": True},
        "auth": {"enabled": False},
    }


def test_joxit_environment_behind_the_proxy_does_not_reach_the_registry() -> None:
    env = joxit_ui_environment(title="Team: images", delete_images=False, pull_url="r.example.com", secured=True)
    assert env == {
        "SINGLE_REGISTRY": "true",
        "REGISTRY_TITLE": "Team: images",
        "DELETE_IMAGES": "false",
        "SHOW_CONTENT_DIGEST": "true",
        "PULL_URL": "r.example.com",
        "REGISTRY_SECURED": "true",
    }


def test_joxit_published_on_its_own_port_proxies_the_registry_through_dockers_dns() -> None:
    env = joxit_ui_environment(
        title="t", delete_images=True, pull_url="r", secured=False, registry_proxy="registry:5000"
    )
    assert env["NGINX_PROXY_PASS_URL"] == "http://registry:5000"
    assert env["NGINX_RESOLVER"] == "127.0.0.11"


def sed_replacement(value: str) -> str:
    """What sed makes of `value` as the replacement of `s~PLACEHOLDER~value~` (GNU and busybox agree): `&`
    is the matched text, a backslash escapes the next character. Refuses what would end the expression."""
    out, chars = [], iter(value)
    for char in chars:
        if char == "\\":
            out.append(next(chars))
        elif char == "&":
            out.append("${REGISTRY_TITLE}")
        else:
            assert char != "~", f"an unescaped ~ ends the sed expression: {value!r}"
            out.append(char)
    return "".join(out)


@pytest.mark.parametrize(
    "title", ["R&D Registry", "a ~ b", "back\\slash", 'say "hi" <b>', "costs $5 ${PULL_URL}", "Équipe 日本 'x'"]
)
def test_joxit_title_survives_sed_and_html(title: str) -> None:
    """Joxit's entrypoint puts the title through sed into an HTML attribute: the browser must read it back."""
    value = joxit_ui_environment(title=title, delete_images=True, pull_url="r", secured=False)["REGISTRY_TITLE"]
    in_html = sed_replacement(value)
    assert "${" not in in_html, "a placeholder the next sed line (or a restart) would edit again"
    assert not set(in_html) & set('"<>'), in_html
    assert html.unescape(in_html) == title


def test_rendering_is_deterministic() -> None:
    assert render_nginx_conf(PROXY) == render_nginx_conf(PROXY)
    assert render_registry_config(REGISTRY) == render_registry_config(REGISTRY)


# ---- accounts ----

USERS = {"bob": "battery-staple-9", "alice": "correct-horse-7"}


def test_registry_config_has_no_auth_without_accounts() -> None:
    assert "auth" not in yaml.safe_load(render_registry_config(REGISTRY))


def test_registry_config_requires_htpasswd_accounts_with_a_realm() -> None:
    config = yaml.safe_load(
        render_registry_config(RegistryConfig("https://r", "s" * 32, True, "info", auth_realm="Acme"))
    )
    assert config["auth"] == {"htpasswd": {"realm": "Acme", "path": HTPASSWD_PATH}}


def test_htpasswd_holds_a_bcrypt_hash_per_user_in_name_order() -> None:
    lines = render_htpasswd(USERS, salt_key="k" * 48, cost=4).splitlines()
    assert [line.split(":", 1)[0] for line in lines] == ["alice", "bob"]
    for line in lines:
        user, hashed = line.split(":", 1)
        assert hashed.startswith("$2b$04$")
        assert bcrypt.checkpw(USERS[user].encode(), hashed.encode())
        assert not bcrypt.checkpw(b"wrong-password", hashed.encode())


def test_htpasswd_is_stable_for_the_same_users_and_key() -> None:
    assert render_htpasswd(USERS, salt_key="k" * 48, cost=4) == render_htpasswd(
        dict(reversed(USERS.items())), "k" * 48, cost=4
    )


def test_htpasswd_changes_with_a_password_and_only_that_line() -> None:
    before = render_htpasswd(USERS, salt_key="k" * 48, cost=4).splitlines()
    after = render_htpasswd({**USERS, "bob": "another-password"}, salt_key="k" * 48, cost=4).splitlines()
    assert before[0] == after[0]
    assert before[1] != after[1]


def test_htpasswd_salts_differ_per_stack_key_and_per_user() -> None:
    one = render_htpasswd({"a": "same-password", "b": "same-password"}, salt_key="stack-one-key", cost=4).splitlines()
    two = render_htpasswd({"a": "same-password"}, salt_key="stack-two-key", cost=4).splitlines()
    assert one[0].split(":")[1] != one[1].split(":")[1]
    assert one[0] != two[0]


def test_htpasswd_default_cost_is_12() -> None:
    assert render_htpasswd({"alice": "correct-horse-7"}, salt_key="k").split(":")[1].startswith("$2b$12$")


# ---- TLS profile and headers ----


def test_intermediate_profile() -> None:
    server = tls_server(render_nginx_conf(PROXY))
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in server
    assert f"ssl_ciphers {INTERMEDIATE_CIPHERS};" in server
    for expected in [
        "ssl_ecdh_curve X25519:prime256v1:secp384r1;",
        "ssl_session_tickets off;",
        "ssl_prefer_server_ciphers off;",
    ]:
        assert expected in server


def test_modern_profile_is_tls13_only() -> None:
    server = tls_server(render_nginx_conf(ProxyConfig(**{**PROXY.__dict__, "tls_profile": "modern"})))
    assert "ssl_protocols TLSv1.3;" in server
    assert "ssl_ciphers" not in server


@pytest.mark.parametrize("ui_upstream", ["ui:80", None])
def test_hsts_is_sent_from_every_https_location(ui_upstream: str | None) -> None:
    server = tls_server(render_nginx_conf(ProxyConfig(**{**PROXY.__dict__, "ui_upstream": ui_upstream})))
    for location in ("location /v2/", "location /"):
        assert 'add_header Strict-Transport-Security "max-age=63072000" always;' in directives(server, location)


def test_ui_location_forbids_framing_and_sniffing() -> None:
    ui = directives(tls_server(render_nginx_conf(PROXY)), "location /")
    assert 'add_header X-Frame-Options "DENY" always;' in ui
    assert 'add_header X-Content-Type-Options "nosniff" always;' in ui


def test_health_endpoint_listens_on_loopback_only() -> None:
    conf = render_nginx_conf(PROXY)
    health = conf[conf.index("listen 127.0.0.1:8081;") : conf.index("listen 5000;")]
    assert "location = /healthz" in health
    assert "proxy_pass" not in health


def test_no_http2_on_the_tls_listener() -> None:
    """HTTP/2 request bodies halve upload speed through nginx (bench/); clients negotiate HTTP/1.1 anyway."""
    assert "http2" not in "\n".join(line.split("#", 1)[0] for line in render_nginx_conf(PROXY).splitlines())


# ---- the renderers' last line: a value that is not one word never reaches a file ----


@pytest.mark.parametrize(
    "change",
    [
        {"server_name": "registry.example.com\n"},
        {"server_name": "a b"},
        {"endpoint": "r.example.com;return 200"},
        {"endpoint": "r.example.com}"},
        {"ui_upstream": "ui:80 # x"},
        {"registry_upstream": 'registry:5000"'},
        {"mirrors": (MirrorSite("ghcr", "https://ghcr.io\nserver_tokens on;", 6000, "_", "mirror-ghcr:5000"),)},
        {"mirrors": (MirrorSite("gh$cr", "https://ghcr.io", 6000, "_", "mirror-ghcr:5000"),)},
    ],
)
def test_nginx_site_refuses_a_value_that_is_not_one_word(change: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"nginx site: .* is not one word"):
        render_nginx_conf(ProxyConfig(**{**PROXY.__dict__, **change}))


@pytest.mark.parametrize("user", ["alice\n", "alice\nbob", "al:ice", "", " alice"])
def test_htpasswd_refuses_a_name_that_would_not_stay_one_line(user: str) -> None:
    with pytest.raises(ValueError, match="htpasswd: a user name"):
        render_htpasswd({user: "correct-horse-7"}, salt_key="k", cost=4)


@pytest.mark.parametrize("glob", ["team/*\n", "team/* x", "a,b", "#x", "-", ""])
def test_retention_rules_refuse_a_glob_that_would_change_the_line(glob: str) -> None:
    with pytest.raises(ValueError, match="retention rules: a glob must be one word"):
        render_retention_rules((RetentionRuleLine(repositories=("team/*",), keep_last=3, keep_tags=(glob,)),))
    with pytest.raises(ValueError, match="retention rules: a glob must be one word"):
        render_retention_rules((RetentionRuleLine(repositories=(glob,), keep_last=3, keep_tags=()),))


@pytest.mark.parametrize("password", ["two words", "line\nbreak", 'quo"te', ""])
def test_redis_conf_refuses_a_password_that_is_not_one_word(password: str) -> None:
    with pytest.raises(ValueError, match=r"redis\.conf: the password"):
        render_redis_conf(RedisServerConfig(port=6379, password=password, max_memory_mib=64))


def test_env_files_refuse_nul_and_keep_everything_else() -> None:
    with pytest.raises(ValueError, match="REDIS_PASSWORD: a NUL character"):
        render_cache_env("redis:6379", "pass\x00word", 0)
    text = render_cache_env("redis:6379", "it's $(x) `y`\nz", 0)
    assert dict(word.split("=", 1) for word in shlex.split(text)) == {
        "REDIS_ADDRESS": "redis:6379",
        "REDIS_PASSWORD": "it's $(x) `y`\nz",
        "REDIS_DB": "0",
    }


def test_containerd_hosts_toml_strings_are_toml_strings() -> None:
    text = render_containerd_hosts_toml(
        remote_url='https://ghcr.io"\n[evil]', mirror_url="https://m.example.com", hosts_dir="ghcr.io"
    )
    parsed = tomllib.loads(text)
    assert parsed["server"] == 'https://ghcr.io"\n[evil]'
    assert set(parsed) == {"server", "host"}
    with pytest.raises(ValueError, match="the directory must be host"):
        render_containerd_hosts_toml(remote_url="https://x", mirror_url="https://m", hosts_dir="../etc")


def test_containerd_hosts_toml_of_a_plain_url_is_as_before() -> None:
    assert render_containerd_hosts_toml(
        remote_url="https://ghcr.io", mirror_url="https://ghcr.registry.example.com", hosts_dir="ghcr.io"
    ) == (
        "# /etc/containerd/certs.d/ghcr.io/hosts.toml (private-registry: pull through the mirror)\n"
        'server = "https://ghcr.io"\n'
        "\n"
        '[host."https://ghcr.registry.example.com"]\n'
        '  capabilities = ["pull", "resolve"]\n'
        '  ca = "/etc/containerd/certs.d/ghcr.io/private-registry-ca.crt"\n'
    )
