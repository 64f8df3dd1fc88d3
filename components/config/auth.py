"""`auth`: the accounts the registry enforces (htpasswd, bcrypt)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, SecretStr, field_validator

from components.config.base import ConfigModel, check_encodable

_USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
BCRYPT_MAX_PASSWORD_BYTES = 72


class AuthSettings(ConfigModel):
    users: dict[str, SecretStr] = Field(default_factory=dict)
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
            if not _USER_NAME.fullmatch(name):
                raise ValueError(
                    f"user name {name!r} is not allowed: 1-64 letters, digits, '.', '_', '@' or '-', "
                    "starting with a letter or digit"
                )
            try:
                secret = check_encodable(password.get_secret_value())
            except ValueError as error:
                raise ValueError(f"the password of {name!r} {error}") from None
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
