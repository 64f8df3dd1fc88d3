"""The distribution registry container, its config.yml and the volume that keeps its data."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components.config import RegistrySettings
from components.docker_common import (
    ContainerPlacement,
    HardenedContainerArgs,
    Hardening,
    hardened_container,
)
from components.images import registry_config_path
from components.naming import child_of, renamed_from
from components.rendering import (
    HTPASSWD_PATH,
    REGISTRY_DATA_DIR,
    REGISTRY_DEBUG_PORT,
    REGISTRY_PORT,
    RegistryConfig,
    render_htpasswd,
    render_registry_config,
)

# The name other containers on the stack's network reach the registry by.
REGISTRY_ALIAS = "registry"
# Healthy when /v2/ answers 200 (open) or 401 (accounts on). Works with busybox and GNU wget alike.
# The main port rather than the debug port's /debug/health: the registry answers 503 on the main port to
# every request while a health check (here the storage driver's, see render_registry_config) fails, so this
# one request shows both that the API listener serves and that the checks pass; /debug/health only the latter.
REGISTRY_HEALTHCHECK = [
    "CMD-SHELL",
    f"wget --spider -S http://127.0.0.1:{REGISTRY_PORT}/v2/ 2>&1 | grep -qE 'HTTP/[0-9.]+ (200|401)'",
]
# The upstream image runs as root and its /var/lib/registry (copied into a new volume) is root's, so the
# registry stays root, but without any capability.
REGISTRY_HARDENING = Hardening(memory_mib=512, healthcheck=REGISTRY_HEALTHCHECK)


@dataclass(frozen=True)
class RegistryArgs:
    settings: RegistrySettings
    placement: ContainerPlacement
    public_url: str
    """https://<endpoint>: the registry builds Location headers from it (http.host)."""
    http_secret: pulumi.Output[str]
    """http.secret (a secret Output); also the key the htpasswd salts are derived from."""
    accounts: pulumi.Output[dict[str, str]]
    """user name -> password (a secret Output); empty: the registry is open."""
    auth_realm: str | None
    """The realm of the registry's login challenge; None when there are no accounts."""
    previous_name: str | None = None
    """The component's name in earlier versions of the program: it and its children keep their state through
    aliases to their old names."""


def htpasswd_upload(
    http_secret: pulumi.Output[str], accounts: pulumi.Output[dict[str, str]]
) -> docker.ContainerUploadArgs:
    """The accounts as the registry's htpasswd file, salts keyed by the stack's http.secret (see
    render_htpasswd); the team registry and the mirrors that ask for accounts get the same file."""
    htpasswd = pulumi.Output.all(http_secret, accounts).apply(
        lambda values: render_htpasswd(values[1], salt_key=values[0])
    )
    return docker.ContainerUploadArgs(file=HTPASSWD_PATH, content=htpasswd, permissions="0644")


class Registry(pulumi.ComponentResource):
    """registry:2-compatible container with filesystem storage in a named volume."""

    container_name: pulumi.Output[str]
    """Docker name of the registry container."""
    volume_name: pulumi.Output[str]
    """Docker volume holding the blobs and manifests; kept on `pulumi destroy`."""
    upstream: str
    """host:port the other containers reach the registry at on the stack's network."""
    metrics_upstream: str
    """host:port of the registry's debug server (Prometheus metrics at /metrics) on the stack's network."""
    config_path: str
    """Where the image reads config.yml."""
    config_yml: pulumi.Output[str]
    """The rendered config.yml (secret: it holds http.secret)."""

    def __init__(self, name: str, args: RegistryArgs, opts: pulumi.ResourceOptions | None = None):
        renamed = pulumi.ResourceOptions(aliases=renamed_from(args.previous_name))
        super().__init__("private-registry:registry:Registry", name, None, pulumi.ResourceOptions.merge(opts, renamed))
        scope = args.placement.scope
        settings = args.settings

        # Survives container replacement, and `pulumi destroy` too: images are data, not infrastructure.
        # Labels are fixed so that no config change ever replaces (and empties) the volume.
        volume = docker.Volume(
            f"{name}-data",
            name=scope.docker_name("registry-data"),
            labels=scope.labels(docker.VolumeLabelArgs, "registry-data"),
            opts=pulumi.ResourceOptions(
                parent=self,
                retain_on_delete=True,
                aliases=renamed_from(child_of(args.previous_name, "data")),
            ),
        )

        config_path = registry_config_path(settings.image, settings.config_path)
        http_secret = args.http_secret
        config_yml = http_secret.apply(
            lambda secret: render_registry_config(
                RegistryConfig(
                    public_url=args.public_url,
                    http_secret=secret,
                    delete_enabled=settings.delete_enabled,
                    log_level=settings.log_level,
                    auth_realm=args.auth_realm,
                )
            )
        )
        uploads = [docker.ContainerUploadArgs(file=config_path, content=config_yml, permissions="0644")]
        if args.auth_realm is not None:
            uploads.append(htpasswd_upload(http_secret, args.accounts))
        container = hardened_container(
            name,
            HardenedContainerArgs(
                role="registry",
                image=settings.image,
                placement=args.placement,
                hardening=REGISTRY_HARDENING,
                network_aliases=(REGISTRY_ALIAS,),
                # No published port: registryPort is served by the proxy, so every client passes through it
                # (writes pause there during garbage collection).
                # The image's entrypoint serves the config file it is given, whatever its default path.
                command=(config_path,),
                uploads=tuple(uploads),
                volumes=(docker.ContainerVolumeArgs(volume_name=volume.name, container_path=REGISTRY_DATA_DIR),),
                previous_name=args.previous_name,
            ),
            parent=self,
        )

        self.container_name = container.name
        self.volume_name = volume.name
        self.upstream = f"{REGISTRY_ALIAS}:{REGISTRY_PORT}"
        self.metrics_upstream = f"{REGISTRY_ALIAS}:{REGISTRY_DEBUG_PORT}"
        self.config_path = config_path
        self.config_yml = pulumi.Output.secret(config_yml)
        self.register_outputs(
            {"containerName": self.container_name, "volumeName": self.volume_name, "upstream": self.upstream}
        )
