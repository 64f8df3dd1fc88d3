"""Loud failures for what the realizer does not implement: nothing is silently ignored."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


class UnsupportedInput(NotImplementedError):
    """The program used a provider input (or value) the realizer cannot reproduce faithfully."""


def require_known(what: str, inputs: Mapping[str, Any], known: Iterable[str]) -> None:
    unknown = sorted(set(inputs) - set(known))
    if unknown:
        raise UnsupportedInput(f"{what}: the realizer does not implement input(s) {unknown}")
