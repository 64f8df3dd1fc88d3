"""One component's Swarm service: what `hardened_container` declares as a container, as a Docker Swarm service.

The same HardenedContainerArgs, translated:
- each uploaded file becomes a Swarm config, or a Swarm secret when it holds secrets. Neither can change once
  made, so each is named after its content (a change makes a new one, the service moves to it, the old one
  goes: Pulumi creates a replacement before it deletes);
- published ports use host mode on the nodes the service runs on (the routing mesh needs IPVS, and host mode
  keeps the client's address for nginx's logs and X-Forwarded-For);
- the endpoint mode is dnsrr: the service's name and aliases resolve to every task, which nginx balances and
  fails over between (as with the containers of one host), without a virtual IP;
- rolling updates one task at a time, the new one started and healthy before the old one stops
  (start-first), rolled back when the new one fails; `pulumi up` waits until the service has converged.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from dataclasses import dataclass
from typing import cast

import pulumi
import pulumi_docker as docker

from components.config import ConfigError
from components.docker_common import HEALTHCHECK_INTERVAL, LOG_OPTIONS, HardenedContainerArgs, StackScope

# Services that publish a host-mode port, or must never run twice at once, stop the old task first.
START_FIRST = "start-first"
STOP_FIRST = "stop-first"
# How long `pulumi up` waits for a service to converge (every task running and healthy).
CONVERGE_TIMEOUT = "5m"
_NAME_PART = re.compile(r"[^a-z0-9]+")
# What swarmkit accepts as a service (and network) name: letters and digits, inner `-` or `_`, at most 63.
_SWARM_NAME = re.compile(r"^[a-zA-Z0-9](?:[-_]*[A-Za-z0-9]+)*$")
SWARM_NAME_MAX = 63


SWARM_ROLES = ("net", "registry", "redis", "ui", "proxy", "maintenance")


def check_swarm_names(scope: StackScope) -> None:
    """Raise ConfigError naming the first Docker name of the stack a Swarm would refuse (a stack name with
    dots, or too long for `<project>-<stack>-maintenance`)."""
    for name in (scope.docker_name(role) for role in SWARM_ROLES):
        if len(name) > SWARM_NAME_MAX or not _SWARM_NAME.match(name):
            raise ConfigError(
                f"engine 'swarm': the name {name!r} (project-stack-role) is not a valid Swarm service or network "
                f"name: letters and digits with inner '-' or '_', at most {SWARM_NAME_MAX} characters; choose a "
                "shorter stack name without dots"
            )


@dataclass(frozen=True)
class ServiceFile:
    """A file the service's tasks see: a Swarm config, or a secret when `secret`."""

    path: str
    content: pulumi.Input[str]
    mode: int
    secret: bool


def file_object_name(service_name: str, path: str, content: str) -> str:
    """`<service>-<file>-<12 hex of the content>`, within Docker's 64 characters: a new name for new content."""
    file_part = _NAME_PART.sub("-", path.rsplit("/", 1)[-1].lower()).strip("-")[:16] or "file"
    digest = hashlib.sha256(content.encode()).hexdigest()[:12]
    return f"{service_name[: 64 - len(file_part) - len(digest) - 2]}-{file_part}-{digest}"


def service_files(
    name: str,
    docker_name: str,
    files: tuple[ServiceFile, ...],
    labels: list[docker.ServiceLabelArgs],
    parent: pulumi.Resource,
    owner_uid: int = 0,
) -> tuple[list[docker.ServiceTaskSpecContainerSpecConfigArgs], list[docker.ServiceTaskSpecContainerSpecSecretArgs]]:
    """The Swarm configs and secrets of a service's files, and how its tasks mount them (owned by `owner_uid`, as
    user and group)."""
    configs: list[docker.ServiceTaskSpecContainerSpecConfigArgs] = []
    secrets: list[docker.ServiceTaskSpecContainerSpecSecretArgs] = []
    for file in files:
        content: pulumi.Output[str] = pulumi.Output.from_input(file.content)
        object_name = content.apply(functools.partial(file_object_name, docker_name, file.path))
        data: pulumi.Output[str] = content.apply(lambda text: base64.b64encode(text.encode()).decode())
        logical = f"{name}-{_NAME_PART.sub('-', file.path.strip('/'))}"
        options = pulumi.ResourceOptions(parent=parent)
        if file.secret:
            secret_data: pulumi.Output[str] = pulumi.Output.secret(data)
            secret = docker.Secret(
                logical,
                name=object_name,
                data=secret_data,
                labels=[docker.SecretLabelArgs(label=label.label, value=label.value) for label in labels],
                opts=options,
            )
            secrets.append(
                docker.ServiceTaskSpecContainerSpecSecretArgs(
                    secret_id=secret.id,
                    secret_name=secret.name,
                    file_name=file.path,
                    file_mode=file.mode,
                    file_uid=str(owner_uid),
                    file_gid=str(owner_uid),
                )
            )
        else:
            config = docker.ServiceConfig(logical, name=object_name, data=data, opts=options)
            configs.append(
                docker.ServiceTaskSpecContainerSpecConfigArgs(
                    config_id=config.id,
                    config_name=config.name,
                    file_name=file.path,
                    file_mode=file.mode,
                    file_uid=str(owner_uid),
                    file_gid=str(owner_uid),
                )
            )
    return configs, secrets


def update_config(order: str) -> dict[str, object]:
    """One task at a time; a new task that does not get healthy within `monitor` pauses the update (the tasks not
    yet replaced keep serving, and the provider fails `pulumi up` with Swarm's message). Not `rollback`: the
    previous spec names the configs and secrets of the previous content, which Pulumi deletes once the service
    is updated, so rolled-back tasks could not start."""
    return {"parallelism": 1, "delay": "5s", "order": order, "failure_action": "pause", "monitor": "20s"}


def hardened_service(name: str, args: HardenedContainerArgs, parent: pulumi.Resource) -> docker.Service:
    """The Swarm service of one component, with the hardening of `hardened_container` where Swarm has it (not
    no-new-privileges: the provider's service schema has no such setting)."""
    placement = args.placement
    swarm = placement.swarm
    assert swarm is not None, "hardened_service is for a Swarm placement"
    hardening = args.hardening
    docker_name = placement.scope.docker_name(args.role)
    labels = placement.scope.labels(docker.ServiceLabelArgs, args.role, args.extra_labels)
    files = tuple(
        ServiceFile(
            path=str(upload.file),
            content=cast(pulumi.Input[str], upload.content),
            mode=int(str(upload.permissions or "0644"), 8),
            secret=str(upload.file) in args.secret_files,
        )
        for upload in args.uploads
    )
    configs, secrets = service_files(name, docker_name, files, labels, parent, args.files_owner_uid)
    mounts = [
        docker.ServiceTaskSpecContainerSpecMountArgs(
            target=str(volume.container_path),
            source=volume.volume_name if volume.volume_name is not None else volume.host_path,
            type="volume" if volume.volume_name is not None else "bind",
            read_only=bool(volume.read_only),
        )
        for volume in args.volumes
    ]
    # A host-mode port is held by the old task until it stops: a new task on the same node could not start.
    order = STOP_FIRST if any(port.external for port in args.ports) else args.swarm_update_order
    update = update_config(order)
    return docker.Service(
        f"{name}-service",
        name=docker_name,
        labels=labels,
        mode=docker.ServiceModeArgs(replicated=docker.ServiceModeReplicatedArgs(replicas=args.swarm_replicas)),
        task_spec=docker.ServiceTaskSpecArgs(
            container_spec=docker.ServiceTaskSpecContainerSpecArgs(
                image=args.image,
                args=list(args.command) or None,
                env=dict(env.split("=", 1) for env in args.envs) or None,
                user=hardening.user,
                labels=placement.scope.labels(
                    docker.ServiceTaskSpecContainerSpecLabelArgs, args.role, args.extra_labels
                ),
                mounts=mounts or None,
                configs=configs or None,
                secrets=secrets or None,
                cap_drops=["ALL"],
                cap_adds=list(hardening.capabilities) or None,
                healthcheck=docker.ServiceTaskSpecContainerSpecHealthcheckArgs(
                    tests=hardening.healthcheck,
                    interval=HEALTHCHECK_INTERVAL,
                    timeout="5s",
                    start_period="10s",
                    retries=3,
                ),
                stop_signal=args.stop_signal,
                stop_grace_period=f"{swarm.stop_grace_seconds}s",
            ),
            networks_advanceds=[
                docker.ServiceTaskSpecNetworksAdvancedArgs(
                    id=placement.network_id, aliases=list(args.network_aliases) or None
                )
            ],
            placement=docker.ServiceTaskSpecPlacementArgs(constraints=list(args.swarm_constraints) or None),
            resources=docker.ServiceTaskSpecResourcesArgs(
                limits=docker.ServiceTaskSpecResourcesLimitsArgs(memory_bytes=hardening.memory_mib * 1024 * 1024)
            ),
            restart_policy=docker.ServiceTaskSpecRestartPolicyArgs(condition="any", delay="5s", max_attempts=0),
            log_driver=docker.ServiceTaskSpecLogDriverArgs(name="json-file", options=LOG_OPTIONS),
        ),
        endpoint_spec=docker.ServiceEndpointSpecArgs(
            mode="dnsrr",
            ports=[
                docker.ServiceEndpointSpecPortArgs(
                    target_port=port.internal, published_port=port.external, publish_mode="host", protocol="tcp"
                )
                for port in args.ports
                if port.external
            ]
            or None,
        ),
        update_config=docker.ServiceUpdateConfigArgs(**update),  # type: ignore[arg-type]
        rollback_config=docker.ServiceRollbackConfigArgs(**update),  # type: ignore[arg-type]
        converge_config=docker.ServiceConvergeConfigArgs(delay="2s", timeout=CONVERGE_TIMEOUT),
        opts=pulumi.ResourceOptions(parent=parent),
    )
