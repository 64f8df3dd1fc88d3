"""The registry's web UI: Joxit's docker-registry-ui, or the original recipe's hyper/docker-registry-web."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components.config import UiFlavor, UiSettings
from components.docker_common import (
    ContainerPlacement,
    HardenedContainerArgs,
    Hardening,
    PublishedPort,
    hardened_workload,
)
from components.rendering import HyperUiConfig, joxit_ui_environment, render_hyper_ui_config

UI_ALIAS = "ui"
# Joxit runs as its image's unprivileged `nginx` user (uid/gid 101 in the alpine and debian nginx images).
# Its Dockerfile gives that user /etc/nginx, the page and /var/cache/nginx, and its entrypoint, seeing it is
# not root, moves nginx to port 8080 and its pid file to /tmp. As root without DAC_OVERRIDE (every capability
# dropped) the entrypoint could not edit those nginx-owned files and nginx could not make its temp dirs.
JOXIT_USER = "101:101"
# Where each UI listens inside its container.
UI_INTERNAL_PORT = {UiFlavor.JOXIT: 8080, UiFlavor.HYPER: 8080}
HYPER_CONFIG_PATH = "/conf/config.yml"


# hyper is Tomcat 7 on Java 7, which sizes its heap from the host's memory, not the container's limit:
# cap the heap well inside the limit, or the kernel kills it under load.
HYPER_MEMORY_MIB = 512
HYPER_JAVA_OPTIONS = "CATALINA_OPTS=-Xmx320m"


def ui_hardening(flavor: UiFlavor) -> Hardening:
    """Neither UI needs a capability: Joxit runs as its nginx user on 8080; hyper runs as root on 8080 and
    writes only root-owned paths (Tomcat's work, temp and logs, its H2 database), which needs no
    DAC_OVERRIDE. hyper's healthcheck and hardening are not verified on a real hyper image here."""
    return Hardening(
        memory_mib=HYPER_MEMORY_MIB if flavor is UiFlavor.HYPER else 256,
        healthcheck=["CMD", "wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:{UI_INTERNAL_PORT[flavor]}/"],
        user=JOXIT_USER if flavor is UiFlavor.JOXIT else None,
    )


@dataclass(frozen=True)
class RegistryUiArgs:
    settings: UiSettings
    placement: ContainerPlacement
    registry_upstream: str
    """host:port of the registry API on the stack's network: the proxy's plain port, where writes pause
    during garbage collection."""
    registry_endpoint: str
    """What users put before image names (shown in pull commands)."""
    delete_enabled: bool
    """Whether the registry allows deletes; the UI offers them only then (and not when readonly)."""
    registry_secured: bool
    """Whether the registry asks for accounts (basic auth)."""
    published_port: int


class RegistryUi(pulumi.ComponentResource):
    """A UI container reachable as `ui` on the stack's network."""

    container_name: pulumi.Output[str]
    upstream: str
    """host:port nginx proxies `/` to."""

    def __init__(self, name: str, args: RegistryUiArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("private-registry:ui:RegistryUi", name, None, opts)
        settings = args.settings
        if settings.flavor is UiFlavor.NONE:
            raise ValueError("RegistryUi needs a UI flavor; ui.flavor 'none' declares no UI")
        internal_port = UI_INTERNAL_PORT[settings.flavor]

        envs: list[str] = []
        uploads: list[docker.ContainerUploadArgs] = []
        if settings.flavor is UiFlavor.JOXIT:
            environment = joxit_ui_environment(
                title=settings.title,
                delete_images=args.delete_enabled and not settings.readonly,
                pull_url=args.registry_endpoint,
                secured=args.registry_secured,
                # Published on its own port, the page's origin has no /v2/ unless Joxit proxies it.
                registry_proxy=args.registry_upstream if args.published_port else None,
            )
            envs = [f"{key}={value}" for key, value in sorted(environment.items())]
        else:
            hyper_config = render_hyper_ui_config(
                HyperUiConfig(
                    registry_url=f"http://{args.registry_upstream}/v2",
                    registry_name=args.registry_endpoint,
                    readonly=settings.readonly or not args.delete_enabled,
                )
            )
            uploads = [docker.ContainerUploadArgs(file=HYPER_CONFIG_PATH, content=hyper_config, permissions="0644")]
            envs = [HYPER_JAVA_OPTIONS]

        container = hardened_workload(
            name,
            HardenedContainerArgs(
                role="ui",
                image=settings.resolved_image,
                placement=args.placement,
                hardening=ui_hardening(settings.flavor),
                network_aliases=(UI_ALIAS,),
                ports=(PublishedPort(internal=internal_port, external=args.published_port),),
                envs=tuple(envs),
                uploads=tuple(uploads),
            ),
            parent=self,
        )

        self.container_name = container.name
        self.upstream = f"{UI_ALIAS}:{internal_port}"
        self.register_outputs({"containerName": self.container_name, "upstream": self.upstream})
