"""Pure functions that render the containers' configuration files from typed settings.

No Pulumi here: each takes plain values (secrets already resolved, inside an `.apply`) and returns text,
deterministically, so the same settings always give byte-identical files and `pulumi preview` stays quiet.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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


@dataclass(frozen=True)
class RegistryConfig:
    """What the registry's config.yml depends on."""

    public_url: str
    http_secret: str
    delete_enabled: bool
    log_level: str


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
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False)


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


def joxit_ui_environment(*, registry_upstream: str, title: str, delete_images: bool, pull_url: str) -> dict[str, str]:
    """Environment for joxit/docker-registry-ui served same-origin behind our nginx."""
    return {
        "NGINX_PROXY_PASS_URL": f"http://{registry_upstream}",
        "SINGLE_REGISTRY": "true",
        "REGISTRY_TITLE": title,
        "DELETE_IMAGES": "true" if delete_images else "false",
        "SHOW_CONTENT_DIGEST": "true",
        "PULL_URL": pull_url,
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
    )
