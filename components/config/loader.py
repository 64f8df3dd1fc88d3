"""From the raw `private-registry:*` values Pulumi stores to `Settings`, or one `ConfigError` naming every problem."""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from components.config.errors import NAMESPACE, ConfigError, describe
from components.config.settings import Settings

# Every field of Settings is a top-level key, spelled as in stack config. Plain strings are taken as they are;
# everything else (numbers, lists, objects) arrives as the JSON text Pulumi stores.
KNOWN_KEYS = frozenset(field.alias or name for name, field in Settings.model_fields.items())
_STRING_KEYS = frozenset(
    field.alias or name for name, field in Settings.model_fields.items() if field.annotation is str
)


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
            errors.extend(describe(error))
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
