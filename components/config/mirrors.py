"""`mirrors`: pull-through caches of public (or other) registries, one registry container each."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, StrictBool, StrictInt, field_validator, model_validator

from components.config.base import ConfigModel, check_dns_or_ip

DOCKER_HUB_NAME = "dockerhub"
DOCKER_HUB_REMOTE = "https://registry-1.docker.io"
_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")
# Go durations as the registry reads them: 168h, 90m, 1h30m; "0" never expires.
# An IP address has no letter after its last dot (IPv4) or has a colon (IPv6): a DNS name has a letter label.
_NOT_AN_IP = re.compile(r"[a-z][a-z0-9-]*$")
_TTL = re.compile(r"^(?:0|(?:[0-9]+h)?(?:[0-9]+m)?(?:[0-9]+s)?)$")


class MirrorSettings(ConfigModel):
    name: str
    """Short name: Docker object names and outputs carry it; `dockerhub` mirrors Docker Hub by default."""
    remote_url: str | None = None
    """The upstream registry's URL (https://host[:port]); Docker Hub's for the name `dockerhub`."""
    port: StrictInt | None = Field(default=None, ge=1, le=65535)
    """Published HTTPS port of the mirror (each mirror is the root of its own host:port)."""
    hostname: str | None = None
    """Or: its own DNS name on httpsPort (added to the server certificate's SANs)."""
    username: str | None = None
    """Account at the upstream (Docker Hub: raises the pull rate limit)."""
    password: SecretStr | None = None
    """The account's password or token (secret)."""
    ttl: str | None = None
    """How long cached content stays (registry 3.x: Go duration, `0` = never expire); registry 2.x: 7 days."""
    remote_ca_cert_pem: str | None = None
    """A CA certificate (PEM) the upstream's TLS certificate chains to, when it is not a public one."""
    insecure_remote: StrictBool = False
    """Allow an http:// remoteUrl (the upstream's content and credentials then travel in clear)."""
    public: StrictBool = False
    """Serve without accounts even when auth.users exist: Docker daemons present their Docker Hub login to
    `registry-mirrors`, never a login of the mirror's own."""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must be 1-32 lowercase letters, digits and inner hyphens, e.g. 'dockerhub' or 'ghcr'")
        return value

    @field_validator("hostname")
    @classmethod
    def _hostname(cls, value: str | None) -> str | None:
        if value is None:
            return None
        name = check_dns_or_ip(value)
        if not _NOT_AN_IP.search(name):
            raise ValueError("must be a DNS name: nginx tells mirrors on one port apart by name (give an IP a port)")
        return name

    @field_validator("ttl")
    @classmethod
    def _ttl(cls, value: str | None) -> str | None:
        if value is not None and (not value or not _TTL.match(value)):
            raise ValueError("must be a duration such as '168h', '72h30m' or '0' (never expire)")
        return value

    @field_validator("remote_ca_cert_pem")
    @classmethod
    def _pem(cls, value: str | None) -> str | None:
        if value is not None and "-----BEGIN CERTIFICATE-----" not in value:
            raise ValueError("must be a PEM certificate (-----BEGIN CERTIFICATE-----)")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> MirrorSettings:
        if self.remote_url is None and self.name != DOCKER_HUB_NAME:
            raise ValueError(f"mirror '{self.name}': remoteUrl is required (only '{DOCKER_HUB_NAME}' has a default)")
        parts = urlsplit(self.resolved_remote_url)
        try:
            port_ok = parts.port is None or parts.port > 0
        except ValueError:
            port_ok = False
        if (
            parts.scheme not in ("https", "http")
            or not parts.hostname
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
            or parts.username is not None
            or parts.password is not None
            or not port_ok
        ):
            # Not repeated: a URL with user:password@ in it would show them.
            raise ValueError(
                f"mirror '{self.name}': remoteUrl must be https://host[:port] of a registry: no path, query, "
                "fragment or user:password@ (give an account with username and password)"
            )
        if parts.scheme == "http" and not self.insecure_remote:
            raise ValueError(
                f"mirror '{self.name}': remoteUrl {self.resolved_remote_url!r} is plain http: content and "
                "credentials would travel in clear; use https, or set insecureRemote: true to accept that"
            )
        if (self.port is None) == (self.hostname is None):
            raise ValueError(
                f"mirror '{self.name}': give exactly one of port (its own HTTPS port) or hostname (its own name "
                "on httpsPort): a mirror must be the root of a host"
            )
        if (self.username is None) != (self.password is None):
            raise ValueError(f"mirror '{self.name}': username and password go together")
        return self

    @property
    def resolved_remote_url(self) -> str:
        return (self.remote_url or DOCKER_HUB_REMOTE).rstrip("/")

    @property
    def is_docker_hub(self) -> bool:
        """Serves Docker Hub's names: named `dockerhub`, or Docker Hub is its upstream. Such a mirror goes into
        Docker's `registry-mirrors` (which only ever mirrors Docker Hub) and containerd's `docker.io`."""
        hub_hosts = ("registry-1.docker.io", "index.docker.io", "docker.io")
        return self.name == DOCKER_HUB_NAME or urlsplit(self.resolved_remote_url).hostname in hub_hosts


def check_mirrors_distinct(mirrors: tuple[MirrorSettings, ...]) -> None:
    """Names, ports, host names and upstreams appear once each (one cache per upstream: clients' mirror
    configuration names one mirror per upstream, and two caches of one upstream would only split it)."""
    for attribute, key in (("name", "name"), ("port", "port"), ("hostname", "hostname")):
        values = [getattr(mirror, attribute) for mirror in mirrors if getattr(mirror, attribute) is not None]
        repeated = sorted({str(value) for value in values if values.count(value) > 1})
        if repeated:
            raise ValueError(f"mirrors: {key} {', '.join(repeated)} is used by more than one mirror")
    upstreams = [_upstream_key(mirror) for mirror in mirrors]
    repeated_upstreams = sorted({upstream for upstream in upstreams if upstreams.count(upstream) > 1})
    if repeated_upstreams:
        raise ValueError(
            f"mirrors: {', '.join(repeated_upstreams)} is mirrored more than once: one mirror per upstream"
        )


def _upstream_key(mirror: MirrorSettings) -> str:
    """What a client's mirror configuration is keyed by: Docker Hub, or the upstream's host[:port]."""
    if mirror.is_docker_hub:
        return "Docker Hub"
    return mirror.resolved_remote_url.split("://", 1)[1]
