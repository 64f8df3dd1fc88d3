"""How a bad configuration is reported: one `private-registry:<key>: <message> (got <value>)` line per error.

The value is shown as `<secret>` wherever it may be or hold a secret, as the models' structure says
(`masking.py`), whatever shape the bad value has, and wherever it would show a URL's user-info or something that
looks like a credential (`credentials.py`). Every line of a `ConfigError` goes through `redact` as well, for the
messages that quote a value themselves.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from components.config.credentials import SECRET, redact, reveals_credential
from components.config.masking import may_reveal

NAMESPACE = "private-registry"


class ConfigError(ValueError):
    """Bad stack configuration. The message names each key, its value and what is allowed; never a credential."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


def describe(error: ValidationError, model: type[BaseModel]) -> list[str]:
    """One line per error of validating `model`."""
    lines = []
    for item in error.errors(include_url=False):
        location = [str(part) for part in item["loc"]]
        key = ".".join(location)
        bad = item.get("input")
        # null and true/false carry nothing to hide; anything else where a secret may stand is masked
        shown = (
            bad is None or isinstance(bad, bool) or not (may_reveal(model, item["loc"], bad) or reveals_credential(bad))
        )
        value = _short(bad) if shown else SECRET
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown setting"
        # The lines reach a ConfigError, which redacts every one of them.
        lines.append(f"{NAMESPACE}:{key}: {message} (got {value})" if location else f"{NAMESPACE}: {message}")
    return lines


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
