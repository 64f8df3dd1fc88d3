"""What every Docker object of a stack shares: its name prefix, labels and network."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

LABEL_PREFIX = "org.private-registry"


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

    def labels(self, component: str) -> list[dict[str, str]]:
        """Docker labels in the provider's `{label, value}` list form, sorted for stable inputs."""
        values = {
            f"{LABEL_PREFIX}.project": self.project,
            f"{LABEL_PREFIX}.stack": self.stack,
            f"{LABEL_PREFIX}.component": component,
        }
        return [{"label": key, "value": value} for key, value in sorted(values.items())]


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
