"""The maintenance container: tag retention and garbage collection on the registry's data volume, on a schedule
or on demand, with writes paused at the proxy while it runs."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components.config import GcSettings, cron_fields
from components.docker_common import (
    SECRET_FILE_MODE,
    ContainerPlacement,
    HardenedContainerArgs,
    Hardening,
    hardened_workload,
)
from components.rendering import (
    REGISTRY_DATA_DIR,
    TEMPLATES_DIR,
    MaintenanceConfig,
    RetentionRuleLine,
    render_maintenance_settings,
    render_retention_rules,
)
from components.swarm_service import STOP_FIRST

SCRIPT_PATH = "/usr/local/sbin/maintenance.sh"
SETTINGS_PATH = "/etc/registry-maintenance/settings.env"
RULES_PATH = "/etc/registry-maintenance/retention.rules"
CACHE_ENV_PATH = "/etc/registry-maintenance/cache.env"
# The write-pause flags: written here, read by nginx through the same volume mounted read-only.
FLAGS_DIR = "/run/registry-maintenance"
# The Docker host's clock and zone: the schedule is in the host's time, as cron on the host would read it.
HOST_LOCALTIME = "/etc/localtime"
MAINTENANCE_HARDENING = Hardening(
    # `registry garbage-collect` holds the set of marked blobs in memory: ample for hundreds of thousands.
    memory_mib=512,
    # Unhealthy from a failed run until a run succeeds (see the script).
    healthcheck=["CMD", "/bin/sh", SCRIPT_PATH, "health"],
)


@dataclass(frozen=True)
class MaintenanceArgs:
    settings: GcSettings
    placement: ContainerPlacement
    registry_image: str
    """The registry's own image: its `registry garbage-collect` matches the registry's storage layout."""
    registry_config_path: str
    registry_config: pulumi.Output[str]
    """The registry's config.yml (secret: it holds http.secret): garbage-collect reads its storage section."""
    data_volume_name: pulumi.Input[str] | None
    """The registry's data volume; None with s3 storage (garbage-collect then works on the bucket)."""
    cache_env: pulumi.Output[str]
    """cache.env (secret: a Redis password): the Redis cache to empty after a collection, if any."""
    docker_cli: str = "docker"
    """How the operator's docker command reaches the stack's engine (`docker_host.docker_cli`)."""


class Maintenance(pulumi.ComponentResource):
    """A container from the registry's image that runs config_templates/maintenance.sh, and the volume where it
    raises the write-pause flags the proxy reads."""

    container_name: pulumi.Output[str]
    """Docker name of the maintenance container: `docker exec <it> maintenance.sh run` runs one now."""
    flags_volume_name: pulumi.Output[str]
    """The volume of write-pause flags, mounted read-only into the proxy at FLAGS_DIR."""
    run_command: pulumi.Output[str]
    """The command that runs retention and garbage collection now."""

    def __init__(self, name: str, args: MaintenanceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("private-registry:maintenance:Maintenance", name, None, opts)
        scope = args.placement.scope
        settings = args.settings

        flags = docker.Volume(
            f"{name}-flags",
            name=scope.docker_name("maintenance-flags"),
            labels=scope.labels(docker.VolumeLabelArgs, "maintenance-flags"),
            opts=pulumi.ResourceOptions(parent=self),
        )
        script = (TEMPLATES_DIR / "maintenance.sh").read_text()
        settings_env = render_maintenance_settings(
            MaintenanceConfig(
                schedule_fields=cron_fields(settings.schedule) if settings.scheduled else None,
                schedule_text=settings.schedule,
                registry_config_path=args.registry_config_path,
                gc_dry_run=settings.dry_run,
                gc_delete_untagged=settings.delete_untagged,
                retention_dry_run=settings.retention.dry_run,
                write_pause_seconds=settings.write_pause_seconds,
                data_on_volume=args.data_volume_name is not None,
            )
        )
        rules = render_retention_rules(
            tuple(
                RetentionRuleLine(repositories=rule.repositories, keep_last=rule.keep_last, keep_tags=rule.keep_tags)
                for rule in settings.retention.rules
            )
        )
        container = hardened_workload(
            name,
            HardenedContainerArgs(
                role="maintenance",
                image=args.registry_image,
                placement=args.placement,
                hardening=MAINTENANCE_HARDENING,
                # The image's entrypoint runs any command that is not a registry config file as it is.
                command=("/bin/sh", SCRIPT_PATH, "schedule"),
                uploads=(
                    docker.ContainerUploadArgs(file=SCRIPT_PATH, content=script, permissions="0755"),
                    docker.ContainerUploadArgs(file=SETTINGS_PATH, content=settings_env, permissions="0644"),
                    docker.ContainerUploadArgs(file=RULES_PATH, content=rules, permissions="0644"),
                    docker.ContainerUploadArgs(
                        file=CACHE_ENV_PATH, content=pulumi.Output.secret(args.cache_env), permissions=SECRET_FILE_MODE
                    ),
                    docker.ContainerUploadArgs(
                        file=args.registry_config_path,
                        content=pulumi.Output.secret(args.registry_config),
                        permissions=SECRET_FILE_MODE,
                    ),
                ),
                secret_files=frozenset({args.registry_config_path, CACHE_ENV_PATH}),
                # On a Swarm: one task, on the proxy's node (the proxy reads its write-pause flags).
                swarm_constraints=args.placement.swarm.edge_constraints if args.placement.swarm else (),
                swarm_update_order=STOP_FIRST,
                volumes=(
                    *(
                        (
                            docker.ContainerVolumeArgs(
                                volume_name=args.data_volume_name, container_path=REGISTRY_DATA_DIR
                            ),
                        )
                        if args.data_volume_name is not None
                        else ()
                    ),
                    docker.ContainerVolumeArgs(volume_name=flags.name, container_path=FLAGS_DIR),
                    docker.ContainerVolumeArgs(host_path=HOST_LOCALTIME, container_path=HOST_LOCALTIME, read_only=True),
                ),
            ),
            parent=self,
        )

        self.container_name = container.name
        self.flags_volume_name = flags.name
        self.run_command = container.name.apply(
            lambda container: run_command(container, swarm=args.placement.swarm is not None, docker_cli=args.docker_cli)
        )
        self.register_outputs(
            {
                "containerName": self.container_name,
                "flagsVolumeName": self.flags_volume_name,
                "runCommand": self.run_command,
            }
        )


def run_command(name: str, *, swarm: bool, docker_cli: str = "docker") -> str:
    """One run now, through `docker_cli` to the stack's engine (on a Swarm: that of the edge node, where the
    maintenance task runs)."""
    if not swarm:
        return f"{docker_cli} exec {name} {SCRIPT_PATH} run"
    task = f"$({docker_cli} ps -q --filter label=com.docker.swarm.service.name={name} | head -n 1)"
    return f"{docker_cli} exec {task} {SCRIPT_PATH} run"
