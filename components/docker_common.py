"""What every Docker object of a stack shares: its name prefix, labels and network."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import pulumi
import pulumi_docker as docker

from components.config import SwarmSettings
from components.naming import child_of, renamed_from

LABEL_PREFIX = "org.private-registry"
# `pulumi up` waits until each new container's healthcheck passes, and fails after this long (config
# `healthyWaitSeconds`, this by default): a container that crash-loops or never gets healthy is an error.
HEALTHY_WAIT_SECONDS = 120
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

    def labels(
        self, label_args: Callable[..., LabelT], component: str, extra: Mapping[str, str] | None = None
    ) -> list[LabelT]:
        """Docker labels in the provider's `{label, value}` list form (`label_args` is the resource's own
        `*LabelArgs` class), sorted so the inputs are stable; `extra` names more under the same prefix."""
        values = {
            f"{LABEL_PREFIX}.project": self.project,
            f"{LABEL_PREFIX}.stack": self.stack,
            f"{LABEL_PREFIX}.component": component,
            **{f"{LABEL_PREFIX}.{key}": value for key, value in (extra or {}).items()},
        }
        return [label_args(label=key, value=value) for key, value in sorted(values.items())]


@dataclass(frozen=True)
class ContainerPlacement:
    """Where a container runs: the stack it belongs to, its network, the host IP its ports bind to."""

    scope: StackScope
    network_name: pulumi.Input[str]
    bind_address: str
    swarm: SwarmSettings | None = None
    """Set when the stack runs on a Docker Swarm: each component is a service, not a container."""
    network_id: pulumi.Input[str] | None = None
    """The network's ID: a service names its network by ID (by name, the provider replaces it at every update)."""
    healthy_wait_seconds: int = HEALTHY_WAIT_SECONDS
    """How long `up` waits for a new container to get healthy (a change updates state only: no new container)."""


# Files that hold a secret: read by their owner alone, the user the container's process runs as.
SECRET_FILE_MODE = "0600"

# Restart after a crash and after the Docker daemon restarts, unless someone stopped it on purpose.
RESTART_POLICY = "unless-stopped"
# Seconds a container gets to finish in-flight requests when it is stopped or replaced (provider default: 0).
STOP_GRACE_SECONDS = 10
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
    """The healthcheck command (Docker `tests` form); `pulumi up` waits until it passes."""
    capabilities: tuple[str, ...] = ()
    """Capabilities added back after dropping ALL."""
    user: str | None = None
    """user[:group] the container runs as; None keeps the image's own user."""


@dataclass(frozen=True)
class PublishedPort:
    """A container port published on the stack's bind address."""

    internal: int
    external: int
    """Host port; 0 leaves the container port unpublished."""


@dataclass(frozen=True)
class HardenedContainerArgs:
    """Everything that differs between the stack's containers; the rest is the same for all of them."""

    role: str
    """Docker name suffix (`<project>-<stack>-<role>`) and the component label."""
    image: str
    placement: ContainerPlacement
    hardening: Hardening
    network_aliases: tuple[str, ...] = ()
    """Names the other containers reach this one by on the stack's network."""
    ports: tuple[PublishedPort, ...] = ()
    envs: tuple[str, ...] = ()
    command: tuple[str, ...] = ()
    """Arguments to the image's entrypoint; empty keeps the image's CMD."""
    uploads: tuple[docker.ContainerUploadArgs, ...] = ()
    volumes: tuple[docker.ContainerVolumeArgs, ...] = ()
    stop_signal: str | None = None
    """None keeps the image's STOPSIGNAL."""
    previous_name: str | None = None
    """The name the owning component had before (`<previous_name>-image`, `-container` become aliases)."""
    secret_files: frozenset[str] = frozenset()
    """Uploaded paths that hold secrets: Swarm secrets, not configs, on a Swarm."""
    files_owner_uid: int = 0
    """Who owns the uploaded files on a Swarm (its configs and secrets take an owner): the user the process runs
    as, so that a 0600 file stays readable. On one host an upload is root's (the provider's tar has uid 0)."""
    swarm_replicas: int = 1
    """Tasks of the service on a Swarm (on one host, one container per replica is declared by the caller)."""
    swarm_constraints: tuple[str, ...] = ()
    """Placement constraints of the service on a Swarm."""
    extra_labels: Mapping[str, str] | None = None
    """More labels (`org.private-registry.<key>`), e.g. the registry's storage driver when it is not a volume."""
    swarm_update_order: str = "start-first"
    """`start-first` (the new task healthy before the old stops) or `stop-first` (a host-mode port, a
    singleton)."""


def hardened_workload(
    name: str, args: HardenedContainerArgs, parent: pulumi.Resource
) -> docker.Container | docker.Service:
    """A container on one Docker host, or on a Swarm the same settings as a service (`swarm_service`)."""
    if args.placement.swarm is not None:
        from components.swarm_service import hardened_service  # it builds on this module

        return hardened_service(name, args, parent)
    return hardened_container(name, args, parent)


def hardened_container(name: str, args: HardenedContainerArgs, parent: pulumi.Resource) -> docker.Container:
    """The image and the container of one component, declared the same way for all of them.

    `<name>-image` is a `RemoteImage` kept on the host when the stack goes (other containers may use it);
    the container references its ID, so a new image replaces the container. `<name>-container` runs with the
    hardening, on the stack's network, its ports on the bind address only, labelled with the stack.
    """
    image = docker.RemoteImage(
        f"{name}-image",
        name=args.image,
        keep_locally=True,
        opts=pulumi.ResourceOptions(parent=parent, aliases=renamed_from(child_of(args.previous_name, "image"))),
    )
    hardening = args.hardening
    placement = args.placement
    return docker.Container(
        f"{name}-container",
        name=placement.scope.docker_name(args.role),
        image=image.image_id,
        command=list(args.command) or None,
        envs=list(args.envs) or None,
        user=hardening.user,
        uploads=list(args.uploads),
        volumes=list(args.volumes) or None,
        networks_advanced=[
            docker.ContainerNetworksAdvancedArgs(
                name=placement.network_name, aliases=list(args.network_aliases) or None
            )
        ],
        ports=[
            docker.ContainerPortArgs(internal=port.internal, external=port.external, ip=placement.bind_address)
            for port in args.ports
            if port.external
        ],
        stop_signal=args.stop_signal,
        labels=placement.scope.labels(docker.ContainerLabelArgs, args.role, args.extra_labels),
        security_opts=["no-new-privileges:true"],
        capabilities=docker.ContainerCapabilitiesArgs(drops=["ALL"], adds=list(hardening.capabilities)),
        memory=hardening.memory_mib,
        memory_swap=hardening.memory_mib,
        healthcheck=docker.ContainerHealthcheckArgs(
            tests=hardening.healthcheck, interval=HEALTHCHECK_INTERVAL, timeout="5s", start_period="10s", retries=3
        ),
        wait=True,
        wait_timeout=placement.healthy_wait_seconds,
        log_driver="json-file",
        log_opts=LOG_OPTIONS,
        restart=RESTART_POLICY,
        destroy_grace_seconds=STOP_GRACE_SECONDS,
        # The provider updates a changed healthcheck in state only, never on the running container: replace it.
        # Delete first: the container has a fixed name (and host ports), and a replacement the engine plans for
        # replace_on_changes alone is create-first, which fails on the name (seen on the real engine).
        opts=pulumi.ResourceOptions(
            parent=parent,
            replace_on_changes=["healthcheck"],
            delete_before_replace=True,
            aliases=renamed_from(child_of(args.previous_name, "container")),
        ),
    )
