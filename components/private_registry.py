"""The whole private registry: CA, server certificate, registry, UI and nginx on one Docker network."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker
import pulumi_random as random

from components.certificate_authority import CertificateAuthority, CertificateAuthorityArgs, ca_component_name
from components.config import Settings, UiFlavor
from components.docker_common import ContainerPlacement, StackScope
from components.docker_host import docker_cli
from components.maintenance import Maintenance, MaintenanceArgs
from components.mirror import Mirror, MirrorArgs
from components.pulumi_config import StackSecrets
from components.redis_cache import RedisCache, RedisCacheArgs
from components.registry import RedisEndpoint, Registry, RegistryArgs
from components.registry_ui import RegistryUi, RegistryUiArgs
from components.rendering import (
    MAINTENANCE_METRICS_PATH,
    NGINX_STATUS_PATH,
    REGISTRY_METRICS_PROXY_PATH,
    containerd_hosts_dir,
    mirror_metrics_path,
    prometheus_scrape_config,
    render_cache_env,
    render_containerd_hosts_toml,
    render_docker_daemon_mirrors,
    replica_metrics_path,
)
from components.reverse_proxy import PLAIN_REGISTRY_PORT, PROXY_ALIAS, ProxiedMirror, ReverseProxy, ReverseProxyArgs
from components.server_certificate import ServerCertificate, ServerCertificateArgs


@dataclass(frozen=True)
class PrivateRegistryArgs:
    settings: Settings
    secrets: StackSecrets
    scope: StackScope


class PrivateRegistry(pulumi.ComponentResource):
    """Everything a team's registry needs on one Docker host."""

    registry_endpoint: pulumi.Output[str]
    """What goes before the image name: host, plus :port when the HTTPS port is not 443."""
    registry_url: pulumi.Output[str]
    """https:// + registry_endpoint."""
    ui_url: pulumi.Output[str]
    """The UI's URL through the proxy; empty when ui.flavor is 'none'."""
    ca_cert_pem: pulumi.Output[str]
    """The CA certificate clients must trust."""
    ca_cert_not_after: pulumi.Output[str]
    """When the CA certificate expires (RFC 3339): before then, rotate it with tls.caGeneration."""
    server_cert_not_after: pulumi.Output[str]
    """When the server certificate expires (RFC 3339)."""
    network_name: pulumi.Output[str]
    """The Docker network the containers share."""
    docker_certs_dir: pulumi.Output[str]
    """Where a Docker client puts ca.crt to trust this registry."""
    proxy_site_config: str
    """The rendered nginx site config (for review; no secrets)."""
    mirrors: pulumi.Output[dict[str, dict[str, str]]]
    """Per mirror name: its endpoint, URL and upstream (remoteUrl); never its credentials."""
    docker_daemon_json: pulumi.Output[str]
    """daemon.json fragment: `registry-mirrors` with the Docker Hub mirrors (Docker mirrors Docker Hub only)."""
    containerd_hosts_toml: pulumi.Output[dict[str, str]]
    """Per /etc/containerd/certs.d/<dir>: the hosts.toml that pulls that upstream through its mirror."""
    maintenance_container: pulumi.Output[str]
    """The container that runs retention and garbage collection."""
    gc_run_command: pulumi.Output[str]
    """Runs retention and garbage collection now, on the Docker host (writes pause meanwhile)."""
    metrics_endpoints: pulumi.Output[list[str]]
    """The registry's Prometheus metrics and nginx's stub_status: on metricsPort when it is published, else the
    addresses on the stack's network (for a Prometheus attached to it)."""
    prometheus_scrape_config: pulumi.Output[str]
    """A `scrape_configs` YAML snippet for the registry's metrics at the same place as metrics_endpoints."""

    def __init__(self, name: str, args: PrivateRegistryArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("private-registry:index:PrivateRegistry", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        settings, scope = args.settings, args.scope

        network = docker.Network(
            f"{name}-net",
            name=scope.docker_name("net"),
            # A Swarm's services span nodes: an overlay, attachable so that a task run by hand (or a Prometheus
            # container) can join it.
            driver="overlay" if settings.is_swarm else "bridge",
            attachable=True if settings.is_swarm else None,
            labels=scope.labels(docker.NetworkLabelArgs, "network"),
            opts=child,
        )
        placement = ContainerPlacement(
            scope=scope,
            network_name=network.name,
            bind_address=settings.bind_address,
            swarm=settings.swarm if settings.is_swarm else None,
            network_id=network.id,
            healthy_wait_seconds=settings.healthy_wait_seconds,
        )

        ca = CertificateAuthority(
            ca_component_name(f"{name}-ca", settings.tls.ca_generation),
            CertificateAuthorityArgs(
                organization=settings.tls.organization,
                key_algorithm=settings.tls.key_algorithm,
                validity_days=settings.tls.ca_validity_days,
                generation=settings.tls.ca_generation,
                signed_validity_days=settings.tls.cert_validity_days,
            ),
            opts=child,
        )
        server_cert = ServerCertificate(
            f"{name}-tls",
            ServerCertificateArgs(
                common_name=settings.hostname,
                dns_names=settings.certificate_dns_names,
                ip_addresses=settings.certificate_ip_addresses,
                organization=settings.tls.organization,
                key_algorithm=settings.tls.key_algorithm,
                validity_days=settings.tls.cert_validity_days,
                early_renewal_days=settings.tls.early_renewal_days,
                ca=ca,
                # Named so before: the aliases keep the key and certificate of existing stacks.
                previous_name=f"{name}-server-cert",
            ),
            opts=child,
        )

        http_secret = self._http_secret(name, args.secrets, child)
        redis = self._redis(name, settings, args.secrets, placement, child)
        registry = Registry(
            f"{name}-distribution",
            RegistryArgs(
                settings=settings.registry,
                placement=placement,
                public_url=settings.registry_url,
                http_secret=http_secret,
                accounts=args.secrets.accounts,
                auth_realm=settings.auth.realm if settings.auth.enabled else None,
                storage=settings.storage,
                s3_secret_key=args.secrets.s3_secret_key,
                redis=redis,
                # Named so before: the aliases keep every existing stack's resources, data included.
                previous_name=f"{name}-registry",
            ),
            opts=child,
        )

        maintenance = Maintenance(
            f"{name}-maintenance",
            MaintenanceArgs(
                settings=settings.gc,
                placement=placement,
                registry_image=settings.registry.image,
                registry_config_path=registry.config_path,
                registry_config=registry.config_yml,
                data_volume_name=registry.volume_name,
                cache_env=_cache_env(redis),
                docker_cli=docker_cli(settings.docker_host),
            ),
            opts=child,
        )

        mirrors = [
            (
                mirror_settings,
                Mirror(
                    f"{name}-mirror-{mirror_settings.name}",
                    MirrorArgs(
                        settings=mirror_settings,
                        placement=placement,
                        registry_image=settings.registry.image,
                        public_url=f"https://{settings.mirror_endpoint(mirror_settings)}",
                        http_secret=http_secret,
                        accounts=args.secrets.accounts,
                        auth_realm=settings.auth.realm
                        if settings.auth.enabled and not mirror_settings.public
                        else None,
                        remote_password=args.secrets.mirror_passwords.get(mirror_settings.name),
                    ),
                    opts=child,
                ),
            )
            for mirror_settings in settings.mirrors
        ]

        ui_upstream: str | None = None
        if settings.ui.flavor is not UiFlavor.NONE:
            ui = RegistryUi(
                f"{name}-ui",
                RegistryUiArgs(
                    settings=settings.ui,
                    placement=placement,
                    # The proxy's plain port, not the registry: writes pause there during garbage collection.
                    registry_upstream=f"{PROXY_ALIAS}:{PLAIN_REGISTRY_PORT}",
                    registry_endpoint=settings.registry_endpoint,
                    delete_enabled=settings.registry.delete_enabled,
                    registry_secured=settings.auth.enabled,
                    published_port=settings.ui_port,
                ),
                opts=child,
            )
            ui_upstream = ui.upstream

        proxy = ReverseProxy(
            f"{name}-proxy",
            ReverseProxyArgs(
                settings=settings.proxy,
                placement=placement,
                server_name="_" if settings.hostname_is_ip else settings.hostname,
                endpoint=settings.registry_endpoint,
                https_port=settings.https_port,
                http_port=settings.http_port,
                registry_port=settings.registry_port,
                metrics_port=settings.metrics_port,
                maintenance_flags_volume=maintenance.flags_volume_name,
                registry_data_volume=registry.volume_name if settings.fast_blob_downloads else None,
                tls_profile=settings.tls.profile,
                registry_upstream=registry.upstream,
                registry_metrics_upstream=registry.metrics_upstream,
                registry_replica_metrics_upstreams=registry.replica_metrics_upstreams,
                registry_replicas=settings.registry.replicas,
                ui_upstream=ui_upstream,
                certificate_pem=server_cert.cert_pem,
                certificate_key_pem=server_cert.private_key_pem,
                mirrors=tuple(
                    ProxiedMirror(
                        name=mirror_settings.name,
                        remote_url=mirror_settings.resolved_remote_url,
                        upstream=mirror.upstream,
                        metrics_upstream=mirror.metrics_upstream,
                        volume_name=mirror.volume_name,
                        published_port=mirror_settings.port,
                        hostname=mirror_settings.hostname,
                    )
                    for mirror_settings, mirror in mirrors
                ),
            ),
            opts=child,
        )

        self.registry_endpoint = pulumi.Output.from_input(settings.registry_endpoint)
        self.registry_url = pulumi.Output.from_input(settings.registry_url)
        self.ui_url = pulumi.Output.from_input(f"{settings.registry_url}/" if ui_upstream else "")
        self.ca_cert_pem = ca.cert_pem
        self.ca_cert_not_after = ca.not_after
        self.server_cert_not_after = server_cert.not_after
        self.network_name = network.name
        self.docker_certs_dir = pulumi.Output.from_input(f"/etc/docker/certs.d/{settings.registry_endpoint}")
        self.proxy_site_config = proxy.site_config
        self.mirrors = pulumi.Output.from_input(
            {
                mirror.name: {
                    "endpoint": settings.mirror_endpoint(mirror),
                    "url": f"https://{settings.mirror_endpoint(mirror)}",
                    "remoteUrl": mirror.resolved_remote_url,
                }
                for mirror in settings.mirrors
            }
        )
        self.docker_daemon_json = pulumi.Output.from_input(
            render_docker_daemon_mirrors(
                tuple(
                    f"https://{settings.mirror_endpoint(mirror)}" for mirror in settings.mirrors if mirror.is_docker_hub
                )
            )
        )
        self.containerd_hosts_toml = pulumi.Output.from_input(
            {
                containerd_hosts_dir(mirror.resolved_remote_url, mirror.is_docker_hub): render_containerd_hosts_toml(
                    remote_url=mirror.resolved_remote_url,
                    mirror_url=f"https://{settings.mirror_endpoint(mirror)}",
                    hosts_dir=containerd_hosts_dir(mirror.resolved_remote_url, mirror.is_docker_hub),
                )
                for mirror in settings.mirrors
            }
        )
        self.maintenance_container = maintenance.container_name
        self.gc_run_command = maintenance.run_command
        metrics_target = _metrics_target(settings, proxy.metrics_upstream)
        self.metrics_endpoints = pulumi.Output.from_input(
            [
                f"http://{metrics_target}{path}"
                for path in (
                    REGISTRY_METRICS_PROXY_PATH,
                    *(replica_metrics_path(index) for index in range(2, len(registry.replica_metrics_upstreams) + 2)),
                    NGINX_STATUS_PATH,
                    MAINTENANCE_METRICS_PATH,
                    *(mirror_metrics_path(mirror.name) for mirror in settings.mirrors),
                )
            ]
        )
        self.prometheus_scrape_config = pulumi.Output.from_input(
            prometheus_scrape_config(
                args.scope.prefix,
                (metrics_target,),
                tuple(mirror.name for mirror in settings.mirrors),
                len(registry.replica_metrics_upstreams) + 1,
            )
        )
        self.register_outputs(
            {
                "registryEndpoint": self.registry_endpoint,
                "registryUrl": self.registry_url,
                "uiUrl": self.ui_url,
                "caCertPem": self.ca_cert_pem,
                "caCertNotAfter": self.ca_cert_not_after,
                "serverCertNotAfter": self.server_cert_not_after,
                "networkName": self.network_name,
                "dockerCertsDir": self.docker_certs_dir,
                "maintenanceContainer": self.maintenance_container,
                "gcRunCommand": self.gc_run_command,
                "mirrors": self.mirrors,
                "dockerDaemonJson": self.docker_daemon_json,
                "containerdHostsToml": self.containerd_hosts_toml,
                "metricsEndpoints": self.metrics_endpoints,
                "prometheusScrapeConfig": self.prometheus_scrape_config,
            }
        )

    @staticmethod
    def _redis(
        name: str,
        settings: Settings,
        secrets: StackSecrets,
        placement: ContainerPlacement,
        opts: pulumi.ResourceOptions,
    ) -> RedisEndpoint | None:
        """The replicas' shared cache: an external Redis, or the stack's own; None for a single registry."""
        if not settings.uses_redis:
            return None
        if settings.redis.external:
            return RedisEndpoint(
                address=settings.redis.address or "", password=secrets.redis_password, db=settings.redis.db
            )
        own = RedisCache(f"{name}-redis", RedisCacheArgs(settings=settings.redis, placement=placement), opts=opts)
        return RedisEndpoint(address=own.address, password=own.password, db=settings.redis.db)

    @staticmethod
    def _http_secret(name: str, secrets: StackSecrets, opts: pulumi.ResourceOptions) -> pulumi.Output[str]:
        """The configured http.secret, or one generated once and kept (secret) in the stack's state."""
        if secrets.http_secret is not None:
            return secrets.http_secret
        generated = random.RandomPassword(f"{name}-http-secret", length=48, special=False, opts=opts)
        return pulumi.Output.secret(generated.result)


def _cache_env(redis: RedisEndpoint | None) -> pulumi.Output[str]:
    if redis is None:
        return pulumi.Output.from_input(render_cache_env(None, None, 0))
    password = redis.password if redis.password is not None else pulumi.Output.from_input("")
    return password.apply(lambda secret: render_cache_env(redis.address, secret or None, redis.db))


def _metrics_target(settings: Settings, network_target: str) -> str:
    """host:port a Prometheus scrapes: metricsPort on the bind address (the hostname when that is every
    interface), or the proxy on the stack's network when metricsPort is 0."""
    if not settings.metrics_port:
        return network_target
    host = settings.hostname if settings.binds_all_interfaces else settings.bind_address
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{settings.metrics_port}"
