"""What every Docker object of a stack shares: its name prefix, labels and network."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import pulumi

LABEL_PREFIX = "org.private-registry"
LabelT = TypeVar("LabelT")


@dataclass(frozen=True)
class StackScope:
    """Names and labels that keep two stacks apart on one Docker host."""

    project: str
    stack: str

    @property
    def prefix(self) -> str:
        """Docker object names start with this: project and stack, so stacks can coexist."""
        return f"{self.project}-{self.stack}"

    def docker_name(self, role: str) -> str:
        return f"{self.prefix}-{role}"

    def labels(self, label_args: Callable[..., LabelT], component: str) -> list[LabelT]:
        """Docker labels in the provider's `{label, value}` list form (`label_args` is the resource's own
        `*LabelArgs` class), sorted so the inputs are stable."""
        values = {
            f"{LABEL_PREFIX}.project": self.project,
            f"{LABEL_PREFIX}.stack": self.stack,
            f"{LABEL_PREFIX}.component": component,
        }
        return [label_args(label=key, value=value) for key, value in sorted(values.items())]


@dataclass(frozen=True)
class ContainerPlacement:
    """Where a container runs: the stack it belongs to, its network, the host IP its ports bind to."""

    scope: StackScope
    network_name: pulumi.Input[str]
    bind_address: str


# Restart after a crash and after the Docker daemon restarts, unless someone stopped it on purpose.
RESTART_POLICY = "unless-stopped"
# Seconds a container gets to finish in-flight requests when it is stopped or replaced (provider default: 0).
STOP_GRACE_SECONDS = 10
