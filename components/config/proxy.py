"""`proxy`: the nginx TLS proxy in front of the registry and the UI."""

from __future__ import annotations

from pydantic import StrictBool, field_validator

from components.config.base import ConfigModel, check_image

DEFAULT_PROXY_IMAGE = "nginx:1.28.0"


class ProxySettings(ConfigModel):
    image: str = DEFAULT_PROXY_IMAGE
    """The nginx image."""
    fast_blob_downloads: StrictBool = True
    """Blob downloads: once the registry (or a mirror) has said yes to the same request, nginx sends the file
    from its volume (mounted read-only) instead of relaying the registry's copy. Filesystem storage only."""

    @field_validator("image")
    @classmethod
    def _image(cls, value: str) -> str:
        return check_image(value)
