"""What every Docker object of a stack shares: its name prefix, labels and network."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pulumi
import pulumi_docker as docker

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
# `pulumi up` waits until each new container's healthcheck passes, and fails after this long: a container
# that crash-loops or never gets healthy is an error, not a success.
HEALTHY_WAIT_SECONDS = 120
# Every 10 s: the first check runs one interval after start, and `up` waits for it.
HEALTHCHECK_INTERVAL = "10s"


# Rotated container logs (CIS 5.x): the json-file driver keeps at most 5 files of 10 MB per container.
LOG_OPTIONS = {"max-size": "10m", "max-file": "5"}
# What nginx-based images (our proxy, Joxit's UI) need once every capability is dropped: the master process
# (root) changes ownership of its temp dirs and switches its workers to an unprivileged user; binding 80/443
# needs NET_BIND_SERVICE on engines that do not set ip_unprivileged_port_start=0 (Docker < 20.10).
NGINX_CAPABILITIES = ("CHOWN", "SETGID", "SETUID", "NET_BIND_SERVICE")


@dataclass(frozen=True)
class Hardening:
    """The runtime restrictions of one container (CIS Docker Benchmark, section 5)."""

    memory_mib: int
    """Memory limit; swap is limited to the same amount (no swap)."""
    healthcheck: list[str]
    """The healthcheck command (Docker `tests` form)."""
    capabilities: tuple[str, ...] = ()
    """Capabilities added back after dropping ALL."""

    def container_args(self) -> dict[str, Any]:
        """Keyword arguments for docker.Container."""
        return {
            "security_opts": ["no-new-privileges:true"],
            "capabilities": docker.ContainerCapabilitiesArgs(drops=["ALL"], adds=list(self.capabilities)),
            "memory": self.memory_mib,
            "memory_swap": self.memory_mib,
            "healthcheck": docker.ContainerHealthcheckArgs(
                tests=self.healthcheck, interval=HEALTHCHECK_INTERVAL, timeout="5s", start_period="10s", retries=3
            ),
            "wait": True,
            "wait_timeout": HEALTHY_WAIT_SECONDS,
            "log_driver": "json-file",
            "log_opts": LOG_OPTIONS,
            "restart": RESTART_POLICY,
            "destroy_grace_seconds": STOP_GRACE_SECONDS,
        }

    @staticmethod
    def resource_options(parent: pulumi.Resource) -> pulumi.ResourceOptions:
        # The provider updates a changed healthcheck in state only, never on the running container: replace it.
        return pulumi.ResourceOptions(parent=parent, replace_on_changes=["healthcheck"])
