"""How a bad configuration is reported: one `private-registry:<key>: <message> (got <value>)` line per error."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

NAMESPACE = "private-registry"


class ConfigError(ValueError):
    """Bad stack configuration. The message names each key, its value and what is allowed."""


def describe(error: ValidationError) -> list[str]:
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
