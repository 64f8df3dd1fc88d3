"""The stack configuration, read and validated once at the edge of the program.

`load_settings` turns the raw `private-registry:*` config values into a typed, frozen `Settings` object, or
raises `ConfigError` naming every bad key, its value and what is allowed. Components only ever see
`Settings` (or parts of it), never raw config. No Pulumi import here: this module is testable on its own.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StrictBool,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from components.images import registry_config_path

NAMESPACE = "private-registry"

# Production defaults: pinned tags of the upstream images. Every one can be overridden in config.
DEFAULT_REGISTRY_IMAGE = "registry:2.8.3"
DEFAULT_PROXY_IMAGE = "nginx:1.28.0"
DEFAULT_JOXIT_IMAGE = "joxit/docker-registry-ui:2.5.7"
DEFAULT_HYPER_IMAGE = "hyper/docker-registry-web:v0.1.2"

# RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens, 253 characters at most.
_DNS_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_DNS_NAME = re.compile(rf"^(?=.{{1,253}}$){_DNS_LABEL}(\.{_DNS_LABEL})*$")
# Docker image reference, after distribution's reference grammar: [host[:port]/]path[:tag][@digest].
_IMAGE_REF = re.compile(
    r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?(?::[0-9]+)?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
)
_ABSOLUTE_PATH = re.compile(r"^/[A-Za-z0-9._/-]+$")


class ConfigError(ValueError):
    """Bad stack configuration. The message names each key, its value and what is allowed."""


class UiFlavor(StrEnum):
    """Which web UI to deploy behind the proxy."""

    JOXIT = "joxit"
    """Joxit's docker-registry-ui (maintained), served same-origin through nginx."""
    HYPER = "hyper"
    """hyper/docker-registry-web, the original recipe's UI (unmaintained since 2016)."""
    NONE = "none"
    """No UI container; `/` answers 404."""


class KeyAlgorithm(StrEnum):
    """Key type of the CA and the server certificate."""

    ECDSA = "ECDSA"
    """ECDSA on P-256 (set explicitly: the tls provider's default curve is P-224)."""
    RSA = "RSA"
    """RSA 2048 bits, as in the original cfssl recipe."""


class _Model(BaseModel):
    """camelCase keys as in stack config, unknown keys refused, immutable once loaded."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_enum_values=False,
    )


def _check_image(value: str) -> str:
    if not _IMAGE_REF.match(value):
        raise ValueError("must be a Docker image reference like 'registry:2.8.3' or 'host:5000/team/app:1.0'")
    return value


def _check_dns_or_ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    name = value.lower()
    if not _DNS_NAME.match(name):
        raise ValueError(
            "must be a DNS name (letters, digits and inner hyphens in dot-separated labels of at most 63 "
            "characters, 253 in all) or an IP address"
        )
    return name


class RegistrySettings(_Model):
    image: str = DEFAULT_REGISTRY_IMAGE
    """The distribution registry image."""
    config_path: str | None = None
    """Where the image reads config.yml; by default derived from the image (registry:2 vs registry:3)."""
    delete_enabled: StrictBool = True
    """Allow deleting manifests and blobs through the API (storage.delete.enabled)."""
    log_level: Literal["error", "warn", "info", "debug"] = "info"
    """The registry's log.level."""
    http_secret: SecretStr | None = None
    """http.secret; generated once and kept in the stack's state when absent."""

    @field_validator("image")
    @classmethod
    def _image(cls, value: str) -> str:
        return _check_image(value)

    @field_validator("config_path")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is not None and not _ABSOLUTE_PATH.match(value):
            raise ValueError("must be an absolute path of letters, digits, '.', '_', '-' and '/'")
        return value

    @field_validator("http_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters (it signs upload state)")
        return value

    @property
    def resolved_config_path(self) -> str:
        return registry_config_path(self.image, self.config_path)


class UiSettings(_Model):
    flavor: UiFlavor = UiFlavor.JOXIT
    """Which UI: joxit, hyper or none."""
    image: str | None = None
    """The UI image; by default the pinned upstream image of the flavor."""
    title: str = Field(default="Private Docker Registry", min_length=1, max_length=100)
    """Title shown by the UI."""
    readonly: StrictBool = False
    """Hide delete actions in the UI even when the registry allows deletes."""

    @field_validator("image")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        return None if value is None else _check_image(value)

    @field_validator("title")
    @classmethod
    def _printable(cls, value: str) -> str:
        if not value.isprintable():
            raise ValueError("must be printable text without control characters or line breaks")
        return value

    @property
    def resolved_image(self) -> str:
        if self.image:
            return self.image
        return DEFAULT_HYPER_IMAGE if self.flavor is UiFlavor.HYPER else DEFAULT_JOXIT_IMAGE


_USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
BCRYPT_MAX_PASSWORD_BYTES = 72


class AuthSettings(_Model):
    users: dict[str, SecretStr] = {}
    """User name -> password. The registry enforces them (htpasswd, bcrypt). Empty: the registry is open."""
    realm: str = Field(default="Private Registry", min_length=1, max_length=64)
    """The realm in the registry's WWW-Authenticate challenge (the browser's login prompt)."""

    @field_validator("users", mode="before")
    @classmethod
    def _not_a_list(cls, value: Any) -> Any:
        if isinstance(value, list):
            raise ValueError('must be a map of user name to password, e.g. {"alice": "..."}')
        return value

    @field_validator("users")
    @classmethod
    def _valid_users(cls, users: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name, password in users.items():
            if not _USER_NAME.match(name):
                raise ValueError(
                    f"user name {name!r} is not allowed: 1-64 letters, digits, '.', '_', '@' or '-', "
                    "starting with a letter or digit"
                )
            secret = password.get_secret_value()
            if len(secret) < 8:
                raise ValueError(f"the password of {name!r} must be at least 8 characters")
            if len(secret.encode()) > BCRYPT_MAX_PASSWORD_BYTES:
                raise ValueError(
                    f"the password of {name!r} is longer than {BCRYPT_MAX_PASSWORD_BYTES} bytes, bcrypt's limit"
                )
            if "\x00" in secret:
                raise ValueError(f"the password of {name!r} contains a NUL character, which bcrypt cannot hash")
        return dict(sorted(users.items()))  # a stable order: the same users render the same file

    @field_validator("realm")
    @classmethod
    def _realm(cls, value: str) -> str:
        if not value.isprintable() or '"' in value or "\\" in value:
            raise ValueError("must be printable text without quotes or backslashes")
        return value

    @property
    def enabled(self) -> bool:
        return bool(self.users)


class ProxySettings(_Model):
    image: str = DEFAULT_PROXY_IMAGE
    """The nginx image."""

    @field_validator("image")
    @classmethod
    def _image(cls, value: str) -> str:
        return _check_image(value)


MODERN_MAX_CERT_DAYS = 90


class TlsSettings(_Model):
    profile: Literal["intermediate", "modern"] = "intermediate"
    """Mozilla server-side TLS profile: intermediate (TLS 1.2 and 1.3) or modern (TLS 1.3 only)."""
    key_algorithm: KeyAlgorithm = KeyAlgorithm.ECDSA
    """ECDSA (P-256) or RSA (2048 bits)."""
    organization: str = Field(default="Private Registry", min_length=1, max_length=64)
    """Organization (O) in the CA and server certificate subjects."""
    ca_validity_days: StrictInt = Field(default=3650, ge=1, le=36500)
    """Lifetime of the CA certificate."""
    cert_validity_days: StrictInt = Field(default=365, ge=1, le=3650)
    """Lifetime of the server certificate; 90 by default with the modern profile (Mozilla's limit there)."""
    early_renewal_days: StrictInt = Field(default=30, ge=0, le=3650)
    """The server certificate is replaced on `pulumi up --refresh` this many days before it expires."""
    ca_generation: StrictInt = Field(default=1, ge=1, le=1000)
    """Which CA: raising it makes a new CA (a deliberate rotation); nothing else replaces an existing CA."""

    @field_validator("organization")
    @classmethod
    def _printable(cls, value: str) -> str:
        if not value.isprintable():
            raise ValueError("must be printable text without control characters or line breaks")
        return value

    @model_validator(mode="before")
    @classmethod
    def _modern_certificates_live_90_days(cls, data: Any) -> Any:
        lifetime_given = isinstance(data, dict) and ("certValidityDays" in data or "cert_validity_days" in data)
        if isinstance(data, dict) and data.get("profile") == "modern" and not lifetime_given:
            return {**data, "certValidityDays": MODERN_MAX_CERT_DAYS}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> TlsSettings:
        if self.cert_validity_days > self.ca_validity_days:
            raise ValueError(
                f"certValidityDays ({self.cert_validity_days}) must not exceed caValidityDays "
                f"({self.ca_validity_days}): a certificate cannot outlive the CA that signed it"
            )
        if self.early_renewal_days >= self.cert_validity_days:
            raise ValueError(
                f"earlyRenewalDays ({self.early_renewal_days}) must be less than certValidityDays "
                f"({self.cert_validity_days}), or the certificate is due for renewal as soon as it is made"
            )
        return self


class Settings(_Model):
    hostname: str
    """The DNS name clients use: nginx server_name, certificate CN and SAN."""
    ip_addresses: tuple[str, ...] = ()
    """Extra IP SANs in the server certificate."""
    bind_address: str = "127.0.0.1"
    """Host IP every published port binds to."""
    https_port: StrictInt = Field(default=443, ge=1, le=65535)
    """Published HTTPS port."""
    http_port: StrictInt = Field(default=80, ge=0, le=65535)
    """Published plaintext port that only redirects to HTTPS; 0 publishes none."""
    registry_port: StrictInt = Field(default=0, ge=0, le=65535)
    """Publish the registry's own port 5000 directly (plain HTTP); 0 publishes none."""
    ui_port: StrictInt = Field(default=0, ge=0, le=65535)
    """Publish the UI directly; 0 publishes none."""
    registry: RegistrySettings = RegistrySettings()
    ui: UiSettings = UiSettings()
    proxy: ProxySettings = ProxySettings()
    tls: TlsSettings = TlsSettings()
    auth: AuthSettings = AuthSettings()

    @field_validator("hostname")
    @classmethod
    def _hostname(cls, value: str) -> str:
        return _check_dns_or_ip(value)

    @field_validator("ip_addresses")
    @classmethod
    def _ips(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        parsed = []
        for value in values:
            try:
                parsed.append(str(ipaddress.ip_address(value)))
            except ValueError:
                raise ValueError(f"{value!r} is not an IPv4 or IPv6 address") from None
        duplicates = sorted({ip for ip in parsed if parsed.count(ip) > 1})
        if duplicates:
            raise ValueError(f"lists {', '.join(duplicates)} more than once")
        return tuple(parsed)

    @field_validator("bind_address")
    @classmethod
    def _bind(cls, value: str) -> str:
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise ValueError("must be an IPv4 or IPv6 address of this host, e.g. 127.0.0.1") from None

    @model_validator(mode="after")
    def _ports_distinct(self) -> Settings:
        published = {
            "httpsPort": self.https_port,
            "httpPort": self.http_port,
            "registryPort": self.registry_port,
            "uiPort": self.ui_port,
        }
        seen: dict[int, str] = {}
        for key, port in published.items():
            if port == 0:
                continue
            if port in seen:
                raise ValueError(f"{key} and {seen[port]} are both {port}: each published port must differ")
            seen[port] = key
        if self.ui_port and self.ui.flavor is UiFlavor.NONE:
            raise ValueError("uiPort is set but ui.flavor is 'none': there is no UI to publish")
        if self.auth.enabled and self.ui.flavor is UiFlavor.HYPER:
            raise ValueError(
                "ui.flavor 'hyper' cannot work with auth.users: its auth mode is a token server, not htpasswd; "
                "use ui.flavor 'joxit' (same-origin, the browser asks for the login) or 'none'"
            )
        if self.auth.enabled and self.ui_port:
            raise ValueError(
                "uiPort is set with auth.users: the UI would then be reached without TLS, sending passwords in "
                "clear; reach it through the proxy (uiUrl) instead"
            )
        return self

    # ---- derived values used by several components ----

    @property
    def hostname_is_ip(self) -> bool:
        try:
            ipaddress.ip_address(self.hostname)
        except ValueError:
            return False
        return True

    @property
    def binds_all_interfaces(self) -> bool:
        return ipaddress.ip_address(self.bind_address).is_unspecified

    @property
    def registry_endpoint(self) -> str:
        """What goes before the image name: host, plus :port when not 443 (IPv6 in brackets)."""
        host = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        return host if self.https_port == 443 else f"{host}:{self.https_port}"

    @property
    def registry_url(self) -> str:
        return f"https://{self.registry_endpoint}"

    @property
    def certificate_dns_names(self) -> tuple[str, ...]:
        return () if self.hostname_is_ip else (self.hostname,)

    @property
    def certificate_ip_addresses(self) -> tuple[str, ...]:
        head = (self.hostname,) if self.hostname_is_ip and self.hostname not in self.ip_addresses else ()
        return head + self.ip_addresses


# Top-level keys and how their raw string values are read from Pulumi config.
_STRING_KEYS = {"hostname", "bindAddress"}
_STRUCTURED_KEYS = {
    "ipAddresses", "httpsPort", "httpPort", "registryPort", "uiPort", "registry", "ui", "proxy", "tls", "auth",
}  # fmt: skip
KNOWN_KEYS = frozenset(_STRING_KEYS | _STRUCTURED_KEYS)


def load_settings(raw: Mapping[str, str]) -> Settings:
    """Validate raw config values (un-namespaced key -> the string Pulumi stores) into `Settings`.

    Structured values (numbers, lists, objects) arrive as JSON text, as Pulumi stores them.
    """
    errors: list[str] = []
    data: dict[str, Any] = {}
    for key, text in raw.items():
        if key not in KNOWN_KEYS:
            close = difflib.get_close_matches(key, sorted(KNOWN_KEYS), n=1)
            hint = f"; did you mean '{NAMESPACE}:{close[0]}'?" if close else ""
            errors.append(f"{NAMESPACE}:{key}: unknown setting{hint} (known: {', '.join(sorted(KNOWN_KEYS))})")
            continue
        if key in _STRING_KEYS:
            data[key] = text
            continue
        try:
            data[key] = json.loads(text, object_pairs_hook=_refuse_duplicate_keys)
        except _DuplicateKey as duplicate:
            errors.append(f"{NAMESPACE}:{key}: {duplicate} is given more than once")
            continue
        except (json.JSONDecodeError, TypeError):
            data[key] = text  # a plain word for a number or object: pydantic reports the type error
    if "hostname" not in data:
        errors.append(
            f"{NAMESPACE}:hostname: required; set the DNS name clients use, e.g. "
            f"`pulumi config set {NAMESPACE}:hostname registry.example.com`"
        )
    if not errors:
        try:
            return Settings.model_validate(data)
        except ValidationError as error:
            errors.extend(_describe(error))
    raise ConfigError("invalid stack configuration:\n  " + "\n  ".join(errors))


class _DuplicateKey(ValueError):
    pass


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """JSON objects would keep the last of two equal keys; for user names that hides a mistake."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(repr(key))
        result[key] = value
    return result


def _describe(error: ValidationError) -> list[str]:
    lines = []
    for item in error.errors(include_url=False):
        location = [str(part) for part in item["loc"]]
        key = ".".join(location)
        bad = item.get("input")
        secret = (
            "httpSecret" in location
            or "users" in location
            or (isinstance(bad, dict) and {"httpSecret", "users"} & set(bad))
        )
        value = "<secret>" if secret else _short(bad)
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown setting"
        lines.append(f"{NAMESPACE}:{key}: {message} (got {value})" if location else f"{NAMESPACE}: {message}")
    return lines


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
