"""Names that changed: what keeps a renamed resource's state instead of replacing it."""

from __future__ import annotations

import pulumi


def renamed_from(previous: str | None) -> list[pulumi.Input[str] | pulumi.Alias]:
    """An alias to the name a resource had before (same type, same parent, same stack), or none.

    Only the name: a child's URN holds its parent's type, not its parent's name, so a child of a renamed
    component needs an alias of its own, `renamed_from(f"{previous_component}-<role>")`.
    """
    return [pulumi.Alias(name=previous)] if previous else []


def child_of(previous_component: str | None, role: str) -> str | None:
    """The name the `<component>-<role>` child had under the component's previous name."""
    return f"{previous_component}-{role}" if previous_component else None
