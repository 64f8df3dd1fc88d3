"""Which config values may be or hold a secret, judged from the models' structure rather than a list of names.

A field is secret when its annotation holds a pydantic secret type (`SecretStr`, `dict[str, SecretStr]`,
`SecretStr | None`), or when it is declared `Field(json_schema_extra={"secret": True})` for a secret that
must stay a plain type. A new block marks its secrets that way and is masked like the others.
"""

from __future__ import annotations

import functools
import re
import types
from collections.abc import Sequence
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, Secret, SecretBytes, SecretStr
from pydantic.fields import FieldInfo

_SECRET_TYPES = (SecretStr, SecretBytes, Secret)

Location = Sequence[str | int]


def is_secret_field(field: FieldInfo) -> bool:
    """A field whose own value is a secret or holds secrets (not merely a block with a secret inside)."""
    extra = field.json_schema_extra
    return (isinstance(extra, dict) and extra.get("secret") is True) or _holds_secret_type(field.annotation)


def may_reveal(model: type[BaseModel], location: Location, value: Any) -> bool:
    """Whether `value`, found at `location` (keys of the raw config) when validating `model`, may be or hold
    a secret. It may when:

    - the location passes through a secret field (`registry.httpSecret`, `auth.users.alice`);
    - the position there can hold a secret whatever is given (`auth`, `auth.users`, `registry`);
    - the location leaves the model's structure (an unknown key such as a misspelt `httpsecret`) inside a
      part that holds secrets: what was given there may be a secret in the wrong place;
    - a secret in the wrong block: the location or a key inside the value names a secret field
      (`ui.users`, `uiPort: {"users": ...}`), compared without case and punctuation.
    """
    if _may_reveal(model, location, whole=True):
        return True
    names = _secret_names(model)
    return any(_normal(part) in names for part in location) or _names_secret(value, names)


def is_inside_secret(model: type[BaseModel], location: Location) -> bool:
    """Whether the JSON object at `location` is part of a secret, so that even its keys must not be shown.

    Unlike `may_reveal`, the users map itself is not: its keys are user names.
    """
    return _may_reveal(model, location, whole=False)


def _may_reveal(annotation: Any, location: Location, *, whole: bool) -> bool:
    if _is_secret_type(annotation):
        return True
    origin = get_origin(annotation)
    arguments = [argument for argument in get_args(annotation) if argument is not type(None)]
    if origin is Annotated:
        return _may_reveal(arguments[0], location, whole=whole)
    if origin is Union or origin is types.UnionType:
        return any(_may_reveal(arm, location, whole=whole) for arm in arguments)
    if not location:
        return whole and _can_hold_secret(annotation)
    head, rest = location[0], location[1:]
    if _is_model(annotation):
        field = _field(annotation, head)
        if field is None:  # an unknown key, or a tag pydantic adds to a location
            return _can_hold_secret(annotation)
        if is_secret_field(field):
            return whole or bool(rest) or not _is_map(field.annotation)  # a map's keys are names (user names)
        return _may_reveal(field.annotation, rest, whole=whole)
    if origin is dict:  # any key leads to the value type
        return _may_reveal(arguments[-1], rest, whole=whole)
    if origin in (list, tuple, set, frozenset):
        return any(_may_reveal(item, rest, whole=whole) for item in arguments if item is not Ellipsis)
    return _can_hold_secret(annotation)  # a location beyond a plain value


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _field(model: type[BaseModel], key: str | int) -> FieldInfo | None:
    for name, field in model.model_fields.items():
        if key in (name, field.alias):
            return field
    return None


def _is_secret_type(annotation: Any) -> bool:
    candidate = get_origin(annotation) or annotation  # Secret[int] is an alias of Secret
    return isinstance(candidate, type) and issubclass(candidate, _SECRET_TYPES)


def _is_map(annotation: Any) -> bool:
    return get_origin(annotation) is dict or any(_is_map(argument) for argument in get_args(annotation))


def _holds_secret_type(annotation: Any) -> bool:
    """A secret type anywhere in the annotation, without looking into models."""
    return _is_secret_type(annotation) or any(_holds_secret_type(argument) for argument in get_args(annotation))


def _can_hold_secret(annotation: Any) -> bool:
    """A secret type anywhere in the annotation, models included."""
    if _holds_secret_type(annotation):
        return True
    if _is_model(annotation):
        return any(is_secret_field(f) or _can_hold_secret(f.annotation) for f in annotation.model_fields.values())
    return any(_can_hold_secret(argument) for argument in get_args(annotation))


@functools.cache
def _secret_names(model: type[BaseModel]) -> frozenset[str]:
    """The names of every secret field in the model's tree, normalised."""
    names: set[str] = set()
    pending: list[Any] = [model]
    while pending:
        annotation = pending.pop()
        if _is_model(annotation):
            for name, field in annotation.model_fields.items():
                if is_secret_field(field):
                    names |= {_normal(name), _normal(field.alias or name)}
                pending.append(field.annotation)
        else:
            pending.extend(get_args(annotation))
    return frozenset(names)


def _names_secret(value: Any, names: frozenset[str]) -> bool:
    if isinstance(value, dict):
        return any(_normal(key) in names or _names_secret(child, names) for key, child in value.items())
    if isinstance(value, list | tuple):
        return any(_names_secret(child, names) for child in value)
    return False


def _normal(key: str | int) -> str:
    return re.sub(r"[^a-z0-9]", "", str(key).lower())
