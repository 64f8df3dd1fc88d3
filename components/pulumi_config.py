"""The Pulumi side of the config edge: collect the raw `<namespace>:*` values, warn about risky settings."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field

import pulumi
from pulumi.runtime import config as runtime_config
from pydantic import SecretStr

from components.config import MODERN_MAX_CERT_DAYS, Settings
from components.config.credentials import redact


def read_raw_config(namespace: str) -> dict[str, str]:
    """Every `<namespace>:<key>` the stack sets, un-namespaced, as the strings Pulumi stores.

    The keys are enumerated (not looked up one by one) so that a misspelt key is reported, not ignored.
    """
    prefix = f"{namespace}:"
    keys = {key for key in runtime_config.CONFIG.get() if key.startswith(prefix)}
    keys |= {key for key in runtime_config.get_config_env() if key.startswith(prefix)}
    raw: dict[str, str] = {}
    for key in sorted(keys):
        value = runtime_config.get_config(key)
        if value is None:
            continue
        raw[key[len(prefix) :]] = value if isinstance(value, str) else json.dumps(value)
    return raw


@dataclass(frozen=True)
class StackSecrets:
    """The stack's secrets as Pulumi secret Outputs, unwrapped from their `SecretStr` once, here at the edge:
    components receive them already marked secret and never see a `SecretStr`."""

    http_secret: pulumi.Output[str] | None
    """registry.httpSecret, or None: then the program generates one and keeps it in state."""
    accounts: pulumi.Output[dict[str, str]]
    """auth.users: user name -> password, in name order; empty when the registry is open."""
    mirror_passwords: dict[str, pulumi.Output[str]] = field(default_factory=dict)
    """mirrors[].password by mirror name, for the mirrors that have one."""
    s3_secret_key: pulumi.Output[str] | None = None
    """storage.secretKey, when given."""
    redis_password: pulumi.Output[str] | None = None
    """redis.password (an external Redis), when given."""


def stack_secrets(settings: Settings) -> StackSecrets:
    configured = settings.registry.http_secret
    return StackSecrets(
        http_secret=pulumi.Output.secret(configured.get_secret_value()) if configured is not None else None,
        accounts=pulumi.Output.secret(
            {user: secret.get_secret_value() for user, secret in settings.auth.users.items()}
        ),
        mirror_passwords={
            mirror.name: pulumi.Output.secret(mirror.password.get_secret_value())
            for mirror in settings.mirrors
            if mirror.password is not None
        },
        s3_secret_key=_secret(settings.storage.secret_key),
        redis_password=_secret(settings.redis.password),
    )


def _secret(value: SecretStr | None) -> pulumi.Output[str] | None:
    return pulumi.Output.secret(value.get_secret_value()) if value is not None else None


def warn_about(settings: Settings) -> None:
    """Settings that are valid but deserve a second look in `pulumi preview`."""
    for mirror in settings.mirrors:
        if mirror.is_docker_hub and settings.auth.enabled and not mirror.public:
            _warn(
                f"mirror '{mirror.name}' requires accounts, but Docker daemons send their Docker Hub login to "
                "registry-mirrors, not one for the mirror: daemons without a Hub login equal to an account here "
                f"pull from Docker Hub instead. Set mirrors[{mirror.name}].public: true to serve it without accounts "
                "(it holds public images only), without username and password: a public mirror must be anonymous "
                "upstream."
            )
    if settings.redis.model_fields_set and not settings.uses_redis:
        _warn(
            "redis is configured but registry.replicas is 1: a single registry runs without a blob descriptor "
            "cache (garbage collection stays safe), so the redis settings are not used."
        )
    if settings.storage.is_s3 and not settings.storage.secure:
        _warn(
            "storage.secure is false: the registry's S3 credentials and every blob travel in clear to "
            f"{settings.storage.region_endpoint}; keep that path on a private network."
        )
    if not settings.auth.enabled:
        _warn(
            "no auth.users configured: anyone who reaches the registry can push, pull and delete. Add accounts "
            "with `pulumi config set --secret --path 'private-registry:auth.users.<name>' <password>`."
        )
    if settings.tls.profile == "modern" and settings.tls.cert_validity_days > MODERN_MAX_CERT_DAYS:
        _warn(
            f"tls.certValidityDays is {settings.tls.cert_validity_days}: Mozilla's modern profile allows "
            f"{MODERN_MAX_CERT_DAYS} days at most."
        )
    if settings.binds_all_interfaces:
        _warn(
            f"bindAddress is {settings.bind_address}: every published port is reachable on all of this host's "
            "interfaces. Prefer the host's LAN address."
        )
    if settings.registry_port and not ipaddress.ip_address(settings.bind_address).is_loopback:
        _warn(
            f"registryPort {settings.registry_port} publishes the registry over plain HTTP on "
            f"{settings.bind_address}, bypassing TLS; clients must list it in insecure-registries."
        )
    if settings.metrics_port and not ipaddress.ip_address(settings.bind_address).is_loopback:
        _warn(
            f"metricsPort {settings.metrics_port} publishes metrics without a login on {settings.bind_address}: "
            "request counts and repository activity are readable by anyone who reaches it; firewall it to the "
            "Prometheus server."
        )


def _warn(text: str) -> None:
    """A warning reaches the CI log of every pull-request preview: never with a credential in it."""
    pulumi.log.warn(redact(text))
