"""`mirrors`: pull-through caches of public (or other) registries, one registry container each."""

from __future__ import annotations

import base64
import binascii
import re

from pydantic import Field, SecretStr, StrictBool, StrictInt, field_validator, model_validator

from components.config.base import ConfigModel, check_dns_or_ip, check_encodable, check_token, check_url, is_ip

DOCKER_HUB_NAME = "dockerhub"
DOCKER_HUB_REMOTE = "https://registry-1.docker.io"
_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?")
# Go durations as the registry reads them: 168h, 90m, 1h30m; "0" never expires.
_TTL = re.compile(r"0|(?=[0-9])(?:(?P<h>[0-9]{1,7})h)?(?:(?P<m>[0-9]{1,9})m)?(?:(?P<s>[0-9]{1,11})s)?")
# At most about a century: Go's durations end at 290 years (int64 nanoseconds), and the registry then fails.
_TTL_MAX_SECONDS = 100 * 365 * 24 * 3600
# One or more PEM certificates, nothing around them but whitespace (Go's loader would skip other text silently).
_PEM_CERTIFICATES = re.compile(
    r"[ \t\r\n]*(?:-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----[ \t\r\n]*)+"
)
_PEM_BODY = re.compile(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.S)


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
    """Account at the upstream (Docker Hub: raises the pull rate limit); used for every request the mirror
    forwards, so only for a mirror behind the accounts (not public)."""
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
    `registry-mirrors`, never a login of the mirror's own. Anonymous upstream too: refused with username."""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError("must be 1-32 lowercase letters, digits and inner hyphens, e.g. 'dockerhub' or 'ghcr'")
        return value

    @field_validator("hostname")
    @classmethod
    def _hostname(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if is_ip(value):
            raise ValueError("must be a DNS name: nginx tells mirrors on one port apart by name (give an IP a port)")
        return check_dns_or_ip(value)

    @field_validator("username")
    @classmethod
    def _username(cls, value: str | None) -> str | None:
        if value is not None and ":" in check_token(value, "a user name at the upstream"):
            raise ValueError("must be a user name at the upstream: no ':' (it separates user and password)")
        return value

    @field_validator("ttl")
    @classmethod
    def _ttl(cls, value: str | None) -> str | None:
        if value is None:
            return None
        match = _TTL.fullmatch(value)
        if match is None:
            raise ValueError("must be a duration such as '168h', '72h30m' or '0' (never expire)")
        seconds = sum(int(match[unit] or 0) * factor for unit, factor in (("h", 3600), ("m", 60), ("s", 1)))
        if seconds > _TTL_MAX_SECONDS:
            raise ValueError("must be at most 876000h (100 years); '0' never expires")
        return value

    @field_validator("password")
    @classmethod
    def _password(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_encodable(value.get_secret_value())
        return value

    @field_validator("remote_ca_cert_pem")
    @classmethod
    def _pem(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _PEM_CERTIFICATES.fullmatch(value):
            raise ValueError(
                "must be a PEM certificate (-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----), or several, "
                "and nothing else"
            )
        for body in _PEM_BODY.findall(value):
            try:
                base64.b64decode("".join(body.split()), validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("must be a PEM certificate: a certificate's body is not base64") from None
        return value

    @model_validator(mode="after")
    def _coherent(self) -> MirrorSettings:
        if self.remote_url is None and self.name != DOCKER_HUB_NAME:
            raise ValueError(f"mirror '{self.name}': remoteUrl is required (only '{DOCKER_HUB_NAME}' has a default)")
        try:
            remote = self.resolved_remote_url
        except ValueError as error:
            # Judged here, not by a validator of the field: the error then shows the mirror (masked, for its
            # password) instead of the URL, which may hold user:password@. Not repeated for the same reason.
            raise ValueError(
                f"mirror '{self.name}': remoteUrl must be https://host[:port] of a registry: no path, query, "
                f"fragment or user:password@ (give an account with username and password); it {error}"
            ) from None
        if remote.startswith("http://") and not self.insecure_remote:
            # Shown: it is scheme://host[:port] now, nothing else.
            raise ValueError(
                f"mirror '{self.name}': remoteUrl {remote!r} is plain http: content and credentials would travel "
                "in clear; use https, or set insecureRemote: true to accept that"
            )
        if (self.port is None) == (self.hostname is None):
            raise ValueError(
                f"mirror '{self.name}': give exactly one of port (its own HTTPS port) or hostname (its own name "
                "on httpsPort): a mirror must be the root of a host"
            )
        if (self.username is None) != (self.password is None):
            raise ValueError(f"mirror '{self.name}': username and password go together")
        if self.password is not None and not self.password.get_secret_value():
            raise ValueError(f"mirror '{self.name}': password must not be empty")
        if self.public and self.username is not None:
            raise ValueError(
                f"mirror '{self.name}': public: true with username and password would lend the upstream account to "
                "anyone who reaches the mirror (the mirror uses it for every request, so they could pull every "
                "repository the account can read); a public mirror must be anonymous upstream: drop username and "
                "password, or public"
            )
        return self

    @property
    def resolved_remote_url(self) -> str:
        """The upstream as `scheme://host[:port]`, host in lower case (see `check_url`)."""
        return check_url(self.remote_url or DOCKER_HUB_REMOTE, ("https", "http"))

    @property
    def is_docker_hub(self) -> bool:
        """Serves Docker Hub's names: named `dockerhub`, or Docker Hub is its upstream. Such a mirror goes into
        Docker's `registry-mirrors` (which only ever mirrors Docker Hub) and containerd's `docker.io`."""
        hub_hosts = ("registry-1.docker.io", "index.docker.io", "docker.io")
        return self.name == DOCKER_HUB_NAME or _host(self.resolved_remote_url) in hub_hosts


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


def _host(url: str) -> str:
    """The host of a URL `check_url` normalised (scheme://host[:port])."""
    authority = url.split("://", 1)[1]
    return authority.rsplit(":", 1)[0] if not authority.endswith("]") and ":" in authority else authority
