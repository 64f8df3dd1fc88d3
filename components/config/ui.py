"""`ui`: the web UI behind the proxy."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, StrictBool, field_validator

from components.config.base import ConfigModel, check_image, check_printable

DEFAULT_JOXIT_IMAGE = "joxit/docker-registry-ui:2.5.7"
DEFAULT_HYPER_IMAGE = "hyper/docker-registry-web:v0.1.2"


class UiFlavor(StrEnum):
    """Which web UI to deploy behind the proxy."""

    JOXIT = "joxit"
    """Joxit's docker-registry-ui (maintained), served same-origin through nginx."""
    HYPER = "hyper"
    """hyper/docker-registry-web, the original recipe's UI (unmaintained since 2016)."""
    NONE = "none"
    """No UI container; `/` answers 404."""


class UiSettings(ConfigModel):
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
        return None if value is None else check_image(value)

    @field_validator("title")
    @classmethod
    def _printable(cls, value: str) -> str:
        return check_printable(value)

    @property
    def resolved_image(self) -> str:
        if self.image:
            return self.image
        return DEFAULT_HYPER_IMAGE if self.flavor is UiFlavor.HYPER else DEFAULT_JOXIT_IMAGE
