"""nginx in front of the registry and the UI: ends TLS, routes /v2/ and /, redirects plaintext to HTTPS."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components.config import ProxySettings
from components.docker_common import (
    NGINX_CAPABILITIES,
    SECRET_FILE_MODE,
    ContainerPlacement,
    HardenedContainerArgs,
    Hardening,
    PublishedPort,
    hardened_workload,
)
from components.rendering import (
    METRICS_PORT,
    REGISTRY_PORT,
    MirrorSite,
    ProxyConfig,
    render_nginx_conf,
)
from components.swarm_service import STOP_FIRST

# The nginx image's own default site (a welcome page on port 80, answering any Host our site does not name):
# our site takes its place, so nothing but ours answers on any port.
SITE_CONFIG_PATH = "/etc/nginx/conf.d/default.conf"
CERTIFICATE_PATH = "/etc/nginx/tls/server.crt"
CERTIFICATE_KEY_PATH = "/etc/nginx/tls/server.key"
HTTPS_INTERNAL_PORT = 443
HTTP_INTERNAL_PORT = 80
HEALTH_PORT = 8081  # nginx's own health endpoint, on the container's loopback only
# The registry API in plain HTTP, on the stack's network and published as registryPort.
PLAIN_REGISTRY_PORT = REGISTRY_PORT
# The name the UI's own proxy (uiPort) and a Prometheus on the stack's network reach the proxy by.
PROXY_ALIAS = "proxy"
# The plain-HTTP metrics listener (published as metricsPort).
METRICS_INTERNAL_PORT = METRICS_PORT
MAINTENANCE_FLAGS_DIR = "/run/registry-maintenance"
# The registry's data volume, read-only: authorized blob downloads are sent from here.
BLOB_FILES_DIR = "/var/lib/registry"
# Each mirror's cache volume, read-only, under its name: cached blobs are sent from here.
MIRROR_FILES_DIR = "/var/lib/registry-mirrors"
PROXY_HARDENING = Hardening(
    # Up to 4 MB of response buffers and 1 MB of request buffer per transfer (see the nginx template).
    memory_mib=512,
    healthcheck=["CMD", "curl", "-fsS", "-o", "/dev/null", f"http://127.0.0.1:{HEALTH_PORT}/healthz"],
    capabilities=NGINX_CAPABILITIES,
)


@dataclass(frozen=True)
class ReverseProxyArgs:
    settings: ProxySettings
    placement: ContainerPlacement
    server_name: str
    endpoint: str
    """host[:port] clients use over HTTPS."""
    https_port: int
    http_port: int
    """0: no plaintext port (and no redirect server)."""
    registry_port: int
    """Host port of the plain-HTTP registry API; 0 publishes none."""
    metrics_port: int
    """Host port of the metrics listener; 0 publishes none."""
    maintenance_flags_volume: pulumi.Input[str]
    """The maintenance container's write-pause flags: mounted read-only."""
    registry_data_volume: pulumi.Input[str] | None
    """The registry's data volume, mounted read-only to send authorized blob downloads from disk; None: relay."""
    tls_profile: str
    registry_upstream: str
    """host:port of the registry's API."""
    registry_metrics_upstream: str
    """host:port of the registry's debug server (its /metrics)."""
    registry_replica_metrics_upstreams: tuple[str, ...]
    """The debug servers of registry replicas 2..N of one host (empty: one registry, or a Swarm service)."""
    registry_replicas: int
    """More than one: requests fail over between the replicas."""
    ui_upstream: str | None
    certificate_pem: pulumi.Input[str]
    certificate_key_pem: pulumi.Input[str]
    mirrors: tuple[ProxiedMirror, ...] = ()
    """Pull-through mirrors served over TLS, each on its own port or host name."""


@dataclass(frozen=True)
class ProxiedMirror:
    name: str
    remote_url: str
    upstream: str
    """host:port of the mirror's registry on the stack's network."""
    metrics_upstream: str
    """host:port of the mirror's debug server."""
    volume_name: pulumi.Input[str]
    """The mirror's cache volume: mounted read-only for blob downloads from disk (with the registry's)."""
    published_port: int | None
    """Its own HTTPS port on the host; None: it has its own host name on httpsPort."""
    hostname: str | None


# nginx's ports for mirrors that have a port of their own: the first mirror's, the next one's, ...
MIRROR_FIRST_INTERNAL_PORT = 6000


class ReverseProxy(pulumi.ComponentResource):
    """The nginx container with its site config, certificate and key uploaded into it."""

    container_name: pulumi.Output[str]
    plain_upstream: str
    """host:port of the plain-HTTP registry API on the stack's network."""
    metrics_upstream: str
    """host:port of the metrics listener on the stack's network."""
    site_config: str
    """The rendered nginx site config (no secrets in it)."""

    def __init__(self, name: str, args: ReverseProxyArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("private-registry:proxy:ReverseProxy", name, None, opts)
        mirror_sites = tuple(
            MirrorSite(
                name=mirror.name,
                remote_url=mirror.remote_url,
                listen=HTTPS_INTERNAL_PORT if mirror.hostname else MIRROR_FIRST_INTERNAL_PORT + index,
                server_name=mirror.hostname or "_",
                upstream=mirror.upstream,
                metrics_upstream=mirror.metrics_upstream,
                blob_files_dir=f"{MIRROR_FILES_DIR}/{mirror.name}" if args.registry_data_volume is not None else None,
            )
            for index, mirror in enumerate(args.mirrors)
        )
        mirror_ports = tuple(
            PublishedPort(internal=site.listen, external=mirror.published_port)
            for site, mirror in zip(mirror_sites, args.mirrors, strict=True)
            if mirror.published_port
        )
        self.site_config = render_nginx_conf(
            ProxyConfig(
                server_name=args.server_name,
                endpoint=args.endpoint,
                redirect_http=args.http_port != 0,
                registry_upstream=args.registry_upstream,
                ui_upstream=args.ui_upstream,
                certificate_path=CERTIFICATE_PATH,
                certificate_key_path=CERTIFICATE_KEY_PATH,
                tls_profile=args.tls_profile,
                health_port=HEALTH_PORT,
                plain_registry_port=PLAIN_REGISTRY_PORT,
                maintenance_flags_dir=MAINTENANCE_FLAGS_DIR,
                metrics_port=METRICS_INTERNAL_PORT,
                registry_metrics_upstream=args.registry_metrics_upstream,
                replica_metrics_upstreams=args.registry_replica_metrics_upstreams,
                registry_failover=args.registry_replicas > 1,
                mirrors=mirror_sites,
                blob_files_dir=BLOB_FILES_DIR if args.registry_data_volume is not None else None,
            )
        )
        volumes = [
            # Read-only: nginx only tests whether a flag exists.
            docker.ContainerVolumeArgs(
                volume_name=args.maintenance_flags_volume, container_path=MAINTENANCE_FLAGS_DIR, read_only=True
            )
        ]
        if args.registry_data_volume is not None:
            # Read-only: nginx only reads the blob files the registry has just authorized; only the registry writes.
            volumes.append(
                docker.ContainerVolumeArgs(
                    volume_name=args.registry_data_volume, container_path=BLOB_FILES_DIR, read_only=True
                )
            )
            volumes.extend(
                docker.ContainerVolumeArgs(
                    volume_name=mirror.volume_name, container_path=f"{MIRROR_FILES_DIR}/{mirror.name}", read_only=True
                )
                for mirror in args.mirrors
            )
        container = hardened_workload(
            name,
            HardenedContainerArgs(
                role="proxy",
                image=args.settings.image,
                placement=args.placement,
                hardening=PROXY_HARDENING,
                ports=(
                    PublishedPort(internal=HTTPS_INTERNAL_PORT, external=args.https_port),
                    PublishedPort(internal=HTTP_INTERNAL_PORT, external=args.http_port),
                    PublishedPort(internal=PLAIN_REGISTRY_PORT, external=args.registry_port),
                    PublishedPort(internal=METRICS_INTERNAL_PORT, external=args.metrics_port),
                    *mirror_ports,
                ),
                network_aliases=(PROXY_ALIAS,),
                volumes=tuple(volumes),
                uploads=(
                    docker.ContainerUploadArgs(file=SITE_CONFIG_PATH, content=self.site_config, permissions="0644"),
                    docker.ContainerUploadArgs(file=CERTIFICATE_PATH, content=args.certificate_pem, permissions="0644"),
                    # Read by the nginx master process (root) before it drops privileges.
                    docker.ContainerUploadArgs(
                        file=CERTIFICATE_KEY_PATH,
                        content=pulumi.Output.secret(args.certificate_key_pem),
                        permissions=SECRET_FILE_MODE,
                    ),
                ),
                # Graceful: finish in-flight requests (the upstream image says so in its STOPSIGNAL).
                stop_signal="SIGQUIT",
                secret_files=frozenset({CERTIFICATE_KEY_PATH}),
                # On a Swarm: beside the maintenance task, whose write-pause flags it reads from a local volume;
                # its host-mode ports are taken until the old task stops.
                swarm_constraints=args.placement.swarm.edge_constraints if args.placement.swarm else (),
                swarm_update_order=STOP_FIRST,
            ),
            parent=self,
        )

        self.container_name = container.name
        self.plain_upstream = f"{PROXY_ALIAS}:{PLAIN_REGISTRY_PORT}"
        self.metrics_upstream = f"{PROXY_ALIAS}:{METRICS_INTERNAL_PORT}"
        self.register_outputs({"containerName": self.container_name})
