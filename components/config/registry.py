"""`registry`: the distribution registry container."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, SecretStr, StrictBool, StrictInt, field_validator

from components.config.base import ConfigModel, check_encodable, check_image
from components.images import registry_major_version
from components.rendering import REGISTRY_DATA_DIR

DEFAULT_REGISTRY_IMAGE = "registry:2.8.3"

# An absolute path of a .yml or .yaml file, as the container is started with it (so an image reads any such
# path): the suffix keeps it from taking the place of a file the stack delivers itself (the maintenance
# container's settings.env is sourced by its shell, its script and the htpasswd file are run and read).
_CONFIG_PATH = re.compile(r"(?:/[A-Za-z0-9_-][A-Za-z0-9._-]*)+\.ya?ml")
# Volumes mounted where the config would be uploaded: the secret file would land in shared data.
_VOLUME_DIRS = (f"{REGISTRY_DATA_DIR}/", "/run/registry-maintenance/")


class RegistrySettings(ConfigModel):
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
    replicas: StrictInt = Field(default=1, ge=1, le=16)
    """Registry containers behind the proxy, sharing storage (s3), http.secret and the Redis cache."""

    @field_validator("image")
    @classmethod
    def _image(cls, value: str) -> str:
        check_image(value)
        registry_major_version(value)  # a digest without its tag says nothing of the version: refused
        return value

    @field_validator("config_path")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _CONFIG_PATH.fullmatch(value):
            raise ValueError(
                "must be an absolute path of a .yml or .yaml file, of letters, digits, '.', '_', '-' and '/' "
                "(no '.' or '..' parts), e.g. /etc/docker/registry/config.yml"
            )
        if value.startswith(_VOLUME_DIRS):
            raise ValueError(f"must not be in a volume the stack mounts ({', '.join(_VOLUME_DIRS)})")
        return value

    @field_validator("http_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(check_encodable(value.get_secret_value())) < 16:
            raise ValueError("must be at least 16 characters (it signs upload state)")
        return value
