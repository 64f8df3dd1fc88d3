"""The stack configuration, read and validated once at the edge of the program.

`load_settings` turns the raw `private-registry:*` config values into a typed, frozen `Settings` object, or
raises `ConfigError` naming every bad key, its value and what is allowed. Components only ever see
`Settings` (or parts of it), never raw config. No Pulumi import here: this package is testable on its own.

One module per config block (`registry`, `ui`, `proxy`, `tls`, `auth`, `gc`, `mirrors`, `storage` and `redis`), composed by `settings.Settings`;
`loader` reads the raw values and `errors` words the problems. A new block is a new module and a field of
`Settings`.
"""

from components.config.auth import BCRYPT_MAX_PASSWORD_BYTES, AuthSettings
from components.config.errors import NAMESPACE, ConfigError
from components.config.gc import GcSettings, RetentionRule, RetentionSettings, cron_fields
from components.config.loader import KNOWN_KEYS, load_settings
from components.config.placement import DockerHostSettings, DockerTlsSettings, Engine, SwarmSettings
from components.config.proxy import DEFAULT_PROXY_IMAGE, ProxySettings
from components.config.registry import DEFAULT_REGISTRY_IMAGE, RegistrySettings
from components.config.settings import Settings
from components.config.storage import DEFAULT_REDIS_IMAGE, RedisSettings, StorageDriver, StorageSettings
from components.config.tls import MODERN_MAX_CERT_DAYS, KeyAlgorithm, TlsSettings
from components.config.ui import DEFAULT_HYPER_IMAGE, DEFAULT_JOXIT_IMAGE, UiFlavor, UiSettings

__all__ = [
    "BCRYPT_MAX_PASSWORD_BYTES",
    "DEFAULT_HYPER_IMAGE",
    "DEFAULT_JOXIT_IMAGE",
    "DEFAULT_PROXY_IMAGE",
    "DEFAULT_REDIS_IMAGE",
    "DEFAULT_REGISTRY_IMAGE",
    "KNOWN_KEYS",
    "MODERN_MAX_CERT_DAYS",
    "NAMESPACE",
    "AuthSettings",
    "ConfigError",
    "DockerHostSettings",
    "DockerTlsSettings",
    "Engine",
    "GcSettings",
    "KeyAlgorithm",
    "ProxySettings",
    "RedisSettings",
    "RegistrySettings",
    "RetentionRule",
    "RetentionSettings",
    "Settings",
    "StorageDriver",
    "StorageSettings",
    "SwarmSettings",
    "TlsSettings",
    "UiFlavor",
    "UiSettings",
    "cron_fields",
    "load_settings",
]
