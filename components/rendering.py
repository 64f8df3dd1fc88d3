"""Pure functions that render the containers' configuration files from typed settings.

No Pulumi here: each takes plain values (secrets already resolved, inside an `.apply`) and returns text,
deterministically, so the same settings always give byte-identical files and `pulumi preview` stays quiet.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import jinja2
import yaml

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "config_templates"

_jinja = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
    autoescape=False,  # nginx syntax, not HTML; every value is validated before it gets here
)

REGISTRY_DATA_DIR = "/var/lib/registry"
REGISTRY_PORT = 5000
HTPASSWD_PATH = "/auth/htpasswd"
BCRYPT_COST = 12
# Mozilla server-side TLS 6.0. TLS 1.3 suites are not set by ssl_ciphers (OpenSSL's defaults are all AEAD).
INTERMEDIATE_CIPHERS = ":".join(
    [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ]
)


@dataclass(frozen=True)
class RegistryConfig:
    """What the registry's config.yml depends on."""

    public_url: str
    http_secret: str
    delete_enabled: bool
    log_level: str
    auth_realm: str | None = None
    """When set, the registry requires the accounts in HTPASSWD_PATH (realm shown in the login prompt)."""


def render_registry_config(config: RegistryConfig) -> str:
    """The distribution registry's config.yml (version 0.1 schema, read by registry 2.x and 3.x)."""
    document = {
        "version": 0.1,
        "log": {"level": config.log_level, "fields": {"service": "registry"}},
        "storage": {
            "filesystem": {"rootdirectory": REGISTRY_DATA_DIR},
            "delete": {"enabled": config.delete_enabled},
            "cache": {"blobdescriptor": "inmemory"},
            "maintenance": {"uploadpurging": {"enabled": True, "age": "168h", "interval": "24h", "dryrun": False}},
        },
        "http": {
            "addr": f":{REGISTRY_PORT}",
            # The external URL: Location headers point clients here, not at the container.
            "host": config.public_url,
            # Fixed, not random per start: an upload interrupted by a restart can resume.
            "secret": config.http_secret,
            "headers": {"X-Content-Type-Options": ["nosniff"]},
        },
        "health": {"storagedriver": {"enabled": True, "interval": "10s", "threshold": 3}},
    }
    if config.auth_realm is not None:
        document["auth"] = {"htpasswd": {"realm": config.auth_realm, "path": HTPASSWD_PATH}}
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False)


def _bcrypt_salt(key: str, user: str, password: str, cost: int) -> bytes:
    """A bcrypt salt derived from the stack's secret key, the user and the password.

    Random salts would change the file (and replace the registry) on every `pulumi up`. A salt derived only
    from the password would give equal hashes for equal passwords on every stack. Keyed by a per-stack secret,
    it is stable for one stack and unrelated across stacks.
    """
    digest = hmac.new(key.encode(), f"htpasswd\0{user}\0{password}".encode(), hashlib.sha256).digest()[:16]
    # bcrypt's radix-64 is base64 with another alphabet: 16 bytes -> 22 characters.
    encoded = base64.b64encode(digest).decode().rstrip("=")
    bcrypt_alphabet = str.maketrans(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
        "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
    )
    return f"$2b${cost:02d}${encoded.translate(bcrypt_alphabet)}".encode()


def render_htpasswd(users: Mapping[str, str], salt_key: str, cost: int = BCRYPT_COST) -> str:
    """An htpasswd file of bcrypt hashes (the only kind the registry accepts), users in name order."""
    lines = []
    for user in sorted(users):
        password = users[user]
        hashed = bcrypt.hashpw(password.encode(), _bcrypt_salt(salt_key, user, password, cost)).decode()
        lines.append(f"{user}:{hashed}")
    return "".join(f"{line}\n" for line in lines)


@dataclass(frozen=True)
class HyperUiConfig:
    """What hyper/docker-registry-web's /conf/config.yml depends on."""

    registry_url: str
    registry_name: str
    readonly: bool


def render_hyper_ui_config(config: HyperUiConfig) -> str:
    """hyper/docker-registry-web's /conf/config.yml, as in the original recipe."""
    document = {
        "registry": {
            "url": config.registry_url,
            "name": config.registry_name,
            "readonly": config.readonly,
        },
        "auth": {"enabled": False},
    }
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False)


def joxit_ui_environment(
    *, registry_upstream: str, title: str, delete_images: bool, pull_url: str, secured: bool
) -> dict[str, str]:
    """Environment for joxit/docker-registry-ui served same-origin behind our nginx."""
    return {
        "NGINX_PROXY_PASS_URL": f"http://{registry_upstream}",
        "SINGLE_REGISTRY": "true",
        "REGISTRY_TITLE": title,
        "DELETE_IMAGES": "true" if delete_images else "false",
        "SHOW_CONTENT_DIGEST": "true",
        "PULL_URL": pull_url,
        # The registry wants basic auth: the UI sends credentials up front instead of probing.
        "REGISTRY_SECURED": "true" if secured else "false",
    }


@dataclass(frozen=True)
class ProxyConfig:
    """What the nginx site config depends on."""

    server_name: str
    https_port: int
    redirect_http: bool
    registry_upstream: str
    ui_upstream: str | None
    certificate_path: str
    certificate_key_path: str
    tls_profile: str = "intermediate"
    health_port: int = 8081


def render_nginx_conf(config: ProxyConfig) -> str:
    """The nginx site (conf.d) that ends TLS and routes /v2/ to the registry and / to the UI."""
    return _jinja.get_template("nginx-registry.conf.j2").render(
        server_name=config.server_name,
        https_port_suffix="" if config.https_port == 443 else f":{config.https_port}",
        redirect_http=config.redirect_http,
        registry_upstream=config.registry_upstream,
        ui_upstream=config.ui_upstream,
        certificate_path=config.certificate_path,
        certificate_key_path=config.certificate_key_path,
        tls_protocols="TLSv1.3" if config.tls_profile == "modern" else "TLSv1.2 TLSv1.3",
        tls_ciphers=None if config.tls_profile == "modern" else INTERMEDIATE_CIPHERS,
        health_port=config.health_port,
    )
