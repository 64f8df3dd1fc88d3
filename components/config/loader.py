"""From the raw `private-registry:*` values Pulumi stores to `Settings`, or one `ConfigError` naming every problem."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from components.config.credentials import SECRET
from components.config.errors import NAMESPACE, ConfigError, describe
from components.config.masking import is_inside_secret
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
            value = json.loads(text, object_pairs_hook=_RepeatedKeys.or_dict)
        except (json.JSONDecodeError, TypeError):
            data[key] = text  # a plain word for a number or object: pydantic reports the type error
            continue
        repeated = _first_repeated(value, (key,))
        if repeated is not None:
            errors.append(f"{NAMESPACE}:{key}: {repeated} is given more than once")
            continue
        data[key] = value
    if "hostname" not in data:
        errors.append(
            f"{NAMESPACE}:hostname: required; set the DNS name clients use, e.g. "
            f"`pulumi config set {NAMESPACE}:hostname registry.example.com`"
        )
    if not errors:
        try:
            return Settings.model_validate(data)
        except ValidationError as error:
            errors.extend(describe(error, Settings))
    raise ConfigError("invalid stack configuration:\n  " + "\n  ".join(errors))


class _RepeatedKeys(dict[str, Any]):
    """A JSON object that gives a key more than once. json would keep the last; for user names that hides a
    mistake, so the loader refuses it. All the pairs are kept, to look for repeats in the values json drops."""

    def __init__(self, pairs: list[tuple[str, Any]], repeated: str) -> None:
        super().__init__(pairs)
        self.pairs = pairs
        self.repeated = repeated

    @classmethod
    def or_dict(cls, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                return cls(pairs, key)
            seen.add(key)
        return dict(pairs)


def _first_repeated(value: Any, location: tuple[str | int, ...]) -> str | None:
    """The first repeated key in the order json reads them (innermost object first), as it reads in an error:
    `<secret>` when the object is part of a secret."""
    children: Iterable[tuple[str | int, Any]] = ()
    if isinstance(value, _RepeatedKeys):
        children = value.pairs
    elif isinstance(value, dict):
        children = value.items()
    elif isinstance(value, list):
        children = enumerate(value)
    for part, child in children:
        found = _first_repeated(child, (*location, part))
        if found is not None:
            return found
    if isinstance(value, _RepeatedKeys):
        return SECRET if is_inside_secret(Settings, location) else repr(value.repeated)
    return None
