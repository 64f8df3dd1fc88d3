"""A pull-through mirror: a registry container in proxy mode with its own cache volume and config."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components.config.mirrors import MirrorSettings
from components.docker_common import SECRET_FILE_MODE, ContainerPlacement, HardenedContainerArgs, hardened_container
from components.images import registry_config_path
from components.registry import REGISTRY_HARDENING, htpasswd_upload
from components.rendering import (
    REGISTRY_DATA_DIR,
    REGISTRY_DEBUG_PORT,
    REGISTRY_PORT,
    TEMPLATES_DIR,
    MirrorRemote,
    RegistryConfig,
    render_registry_config,
)

START_SCRIPT_PATH = "/usr/local/sbin/mirror-start.sh"
UPSTREAM_CA_DIR = "/etc/registry-mirror/ca"
# Go reads every PEM file in each directory of SSL_CERT_DIR (colon-separated); the system's stay first.
UPSTREAM_CA_ENV = f"SSL_CERT_DIR=/etc/ssl/certs:{UPSTREAM_CA_DIR}"


def mirror_alias(name: str) -> str:
    """The name nginx reaches a mirror by on the stack's network."""
    return f"mirror-{name}"


@dataclass(frozen=True)
class MirrorArgs:
    settings: MirrorSettings
    placement: ContainerPlacement
    registry_image: str
    """The team registry's image, run in proxy mode."""
    public_url: str
    """https://<the mirror's endpoint>: its http.host."""
    http_secret: pulumi.Output[str]
    accounts: pulumi.Output[dict[str, str]]
    auth_realm: str | None
    """The login challenge's realm when the mirror requires accounts; None: open."""
    remote_password: pulumi.Output[str] | None
    """The upstream account's password (secret), when there is one."""


class Mirror(pulumi.ComponentResource):
    """One pull-through cache of one upstream registry."""

    container_name: pulumi.Output[str]
    volume_name: pulumi.Output[str]
    """The cache: content fetched from the upstream (kept across changes of ttl or credentials)."""
    upstream: str
    """host:port nginx proxies this mirror's host or port to."""
    metrics_upstream: str
    """host:port of its debug server: Prometheus metrics, the proxy's cache hits and misses among them."""

    def __init__(self, name: str, args: MirrorArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("private-registry:mirror:Mirror", name, None, opts)
        scope = args.placement.scope
        settings = args.settings
        role = mirror_alias(settings.name)

        # Fixed labels: no mirror setting ever replaces (and empties) the cache.
        volume = docker.Volume(
            f"{name}-data",
            name=scope.docker_name(f"{role}-data"),
            labels=scope.labels(docker.VolumeLabelArgs, f"{role}-data"),
            opts=pulumi.ResourceOptions(parent=self),
        )
        config_path = registry_config_path(args.registry_image, None)
        password = args.remote_password if args.remote_password is not None else pulumi.Output.from_input("")
        config_yml = pulumi.Output.all(args.http_secret, password).apply(
            lambda values: render_registry_config(
                RegistryConfig(
                    public_url=args.public_url,
                    http_secret=values[0],
                    # Expired content is deleted only when deletes are on (distribution #4957); clients still
                    # cannot delete: a proxy registry answers every write 405 UNSUPPORTED.
                    delete_enabled=True,
                    log_level="info",
                    auth_realm=args.auth_realm,
                    mirror_of=MirrorRemote(
                        remote_url=settings.resolved_remote_url,
                        username=settings.username,
                        password=values[1] if settings.username is not None else None,
                        ttl=settings.ttl,
                    ),
                )
            )
        )
        uploads = [
            docker.ContainerUploadArgs(
                file=config_path, content=pulumi.Output.secret(config_yml), permissions=SECRET_FILE_MODE
            ),
            docker.ContainerUploadArgs(
                file=START_SCRIPT_PATH, content=(TEMPLATES_DIR / "mirror-start.sh").read_text(), permissions="0755"
            ),
        ]
        if args.auth_realm is not None:
            uploads.append(htpasswd_upload(args.http_secret, args.accounts))
        envs: tuple[str, ...] = ()
        if settings.remote_ca_cert_pem is not None:
            uploads.append(
                docker.ContainerUploadArgs(
                    file=f"{UPSTREAM_CA_DIR}/upstream-ca.crt", content=settings.remote_ca_cert_pem, permissions="0644"
                )
            )
            envs = (UPSTREAM_CA_ENV,)
        container = hardened_container(
            name,
            HardenedContainerArgs(
                role=role,
                image=args.registry_image,
                placement=args.placement,
                hardening=REGISTRY_HARDENING,
                network_aliases=(role,),
                # Moves a damaged expiry schedule aside, then runs `registry serve <config>` as PID 1.
                command=("/bin/sh", START_SCRIPT_PATH, config_path),
                envs=envs,
                uploads=tuple(uploads),
                volumes=(docker.ContainerVolumeArgs(volume_name=volume.name, container_path=REGISTRY_DATA_DIR),),
            ),
            parent=self,
        )

        self.container_name = container.name
        self.volume_name = volume.name
        self.upstream = f"{role}:{REGISTRY_PORT}"
        self.metrics_upstream = f"{role}:{REGISTRY_DEBUG_PORT}"
        self.register_outputs(
            {"containerName": self.container_name, "volumeName": self.volume_name, "upstream": self.upstream}
        )
