"""`storage` and `redis`: where the registry keeps blobs and manifests, and the cache replicas share."""

from __future__ import annotations

import re
from enum import StrEnum

from pydantic import Field, SecretStr, StrictBool, StrictInt, field_validator, model_validator
from pydantic.alias_generators import to_camel

from components.config.base import (
    ConfigModel,
    check_dns_or_ip,
    check_encodable,
    check_image,
    check_token,
    check_url,
    is_ip,
)

DEFAULT_REDIS_IMAGE = "redis:7.4.2"
# S3 bucket names (AWS rules, which S3-compatible stores share): 3-63 lowercase letters, digits, dots, hyphens.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_REGION = re.compile(r"[a-z0-9-]{1,40}")
_ROOT_DIRECTORY = re.compile(r"/(?:[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*)?")
_HOST_PORT = re.compile(r"(?P<host>\[[0-9a-fA-F:.]+\]|[^:\[\]]+):(?P<port>[0-9]{1,5})")
# A Redis password goes into the maintenance container's shell environment (cache.env) and the registry's YAML:
# a shell variable cannot hold NUL, and a line break would only ever be a mistake.
_REDIS_PASSWORD_REFUSED = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class StorageDriver(StrEnum):
    FILESYSTEM = "filesystem"
    """A named Docker volume on the Docker host (one host, one registry replica)."""
    S3 = "s3"
    """An S3 bucket (AWS or compatible): several replicas can share it."""


class StorageSettings(ConfigModel):
    driver: StorageDriver = StorageDriver.FILESYSTEM
    """`filesystem` (a named volume) or `s3`. The other keys are for s3 only."""
    bucket: str | None = None
    """The bucket (it must exist)."""
    region: str = "us-east-1"
    """The bucket's region (any value the store accepts for S3-compatible stores)."""
    region_endpoint: str | None = None
    """URL of an S3-compatible store (https://minio.example.com:9000); absent: AWS."""
    access_key: str | None = None
    """Access key ID; absent together with secretKey: the registry's environment or instance role."""
    secret_key: SecretStr | None = None
    """Secret access key (secret)."""
    root_directory: str = "/"
    """Prefix of the registry's objects in the bucket."""
    force_path_style: StrictBool | None = None
    """Path-style URLs (endpoint/bucket/key) instead of bucket.endpoint, which most S3-compatible stores need;
    unset: path style exactly when regionEndpoint is set (what registry 2.x always does; registry 3.x's own
    default is false, which breaks such stores after an upgrade, #4528). Registry 3 only reads the key."""
    secure: StrictBool = True
    """HTTPS to the store; false only for a store reached in clear on a private network."""
    redirect: StrictBool = False
    """Send clients to pre-signed URLs of the store for blob downloads; off: the registry relays the bytes
    (clients need not reach the store)."""
    chunk_size_mib: StrictInt = Field(default=10, ge=5, le=5120)
    """Part size of multipart uploads (S3's minimum part is 5 MiB)."""

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, value: str | None) -> str | None:
        if value is not None and (not _BUCKET.fullmatch(value) or ".." in value):
            raise ValueError("must be an S3 bucket name: 3-63 lowercase letters, digits, dots and hyphens")
        return value

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not _REGION.fullmatch(value):
            raise ValueError("must be a region name like 'us-east-1' (lowercase letters, digits, hyphens)")
        return value

    @field_validator("region_endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return check_url(value, ("https", "http"))
        except ValueError as error:
            raise ValueError(
                f"must be a URL like 'https://s3.example.com' or 'http://minio:9000' (no path): it {error}"
            ) from None

    @field_validator("access_key")
    @classmethod
    def _access_key(cls, value: str | None) -> str | None:
        return None if value is None else check_token(value, "an access key ID", max_length=128)

    @field_validator("secret_key")
    @classmethod
    def _secret_key(cls, value: SecretStr | None) -> SecretStr | None:
        # An empty one would leave both keys out of config.yml: the registry would quietly use the host's.
        if value is not None and not check_encodable(value.get_secret_value()):
            raise ValueError("must not be empty (leave accessKey and secretKey out to use the host's credentials)")
        return value

    @field_validator("root_directory")
    @classmethod
    def _root(cls, value: str) -> str:
        if not _ROOT_DIRECTORY.fullmatch(value) or "/../" in f"{value}/" or "/./" in f"{value}/":
            raise ValueError("must be an absolute path like '/' or '/registry' (letters, digits, '.', '_', '-')")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> StorageSettings:
        if self.driver is StorageDriver.FILESYSTEM:
            given = sorted(to_camel(name) for name in self.model_fields_set - {"driver"})
            if given:
                raise ValueError(
                    f"{', '.join(given)} set with driver 'filesystem': these keys are for driver 's3' "
                    "(set storage.driver: s3)"
                )
            return self
        if self.bucket is None:
            raise ValueError("driver 's3' needs bucket: the name of an existing bucket")
        if (self.access_key is None) != (self.secret_key is None):
            raise ValueError("accessKey and secretKey go together: give both, or neither (the host's credentials)")
        if self.region_endpoint is not None and self.secure != self.region_endpoint.startswith("https://"):
            # Shown: it is scheme://host[:port] now, nothing else.
            raise ValueError(
                f"secure is {str(self.secure).lower()} but regionEndpoint is {self.region_endpoint}: "
                "make them agree (secure: false goes with http://)"
            )
        return self

    @property
    def is_s3(self) -> bool:
        return self.driver is StorageDriver.S3


class RedisSettings(ConfigModel):
    """The blob descriptor cache shared by registry replicas (used when there is more than one)."""

    address: str | None = None
    """host:port of an existing Redis; absent: the stack runs its own Redis container."""
    password: SecretStr | None = None
    """The external Redis's password (secret); the stack's own Redis gets a generated one."""
    db: StrictInt = Field(default=0, ge=0, le=15)
    """The database number: the registry's alone, since garbage collection empties it (stale entries)."""
    image: str = DEFAULT_REDIS_IMAGE
    """The image of the stack's own Redis."""
    max_memory_mib: StrictInt = Field(default=256, ge=16, le=65536)
    """The stack's own Redis: memory for the cache (maxmemory, allkeys-lru evicts beyond it)."""

    @field_validator("address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        match = _HOST_PORT.fullmatch(value)
        if not match or not 1 <= int(match["port"]) <= 65535:
            raise ValueError("must be host:port, e.g. 'redis.internal:6379' or '[fd00::6]:6379'")
        host, port = match["host"], int(match["port"])
        if host.startswith("["):
            host = host[1:-1]
            if not is_ip(host) or ":" not in host:
                raise ValueError("must be host:port: only an IPv6 address goes in []")
        try:
            host = check_dns_or_ip(host)
        except ValueError as error:
            raise ValueError(f"must be host:port: the host {error}") from None
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    @field_validator("password")
    @classmethod
    def _password(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and (
            not check_encodable(value.get_secret_value()) or _REDIS_PASSWORD_REFUSED.search(value.get_secret_value())
        ):
            raise ValueError("must be a non-empty password without control characters or line breaks")
        return value

    @field_validator("image")
    @classmethod
    def _image(cls, value: str) -> str:
        return check_image(value)

    @model_validator(mode="after")
    def _coherent(self) -> RedisSettings:
        if self.address is None and self.password is not None:
            raise ValueError("password is for an external Redis (address); the stack's own gets a generated one")
        if self.address is not None:
            own = sorted(to_camel(name) for name in self.model_fields_set & {"image", "max_memory_mib"})
            if own:
                raise ValueError(f"{', '.join(own)} are for the stack's own Redis, not an external one (address)")
        return self

    @property
    def external(self) -> bool:
        return self.address is not None
