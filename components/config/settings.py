"""The whole stack configuration: top-level keys, one field per block, and what holds across blocks."""

from __future__ import annotations

import ipaddress

from pydantic import Field, StrictInt, field_validator, model_validator

from components.config.auth import AuthSettings
from components.config.base import ConfigModel, check_dns_or_ip, check_ip, is_ip, parse_ip
from components.config.gc import GcSettings
from components.config.mirrors import MirrorSettings, check_mirrors_distinct
from components.config.placement import DockerHostSettings, Engine, SwarmSettings, check_edge_pins_one_node
from components.config.proxy import ProxySettings
from components.config.registry import RegistrySettings
from components.config.storage import RedisSettings, StorageSettings
from components.config.tls import TlsSettings
from components.config.ui import UiFlavor, UiSettings
from components.images import registry_major_version


class Settings(ConfigModel):
    hostname: str
    """The DNS name clients use: nginx server_name, certificate CN and SAN."""
    ip_addresses: tuple[str, ...] = ()
    """Extra IP SANs in the server certificate."""
    bind_address: str = "127.0.0.1"
    """Host IP every published port binds to."""
    https_port: StrictInt = Field(default=443, ge=1, le=65535)
    """Published HTTPS port."""
    http_port: StrictInt = Field(default=80, ge=0, le=65535)
    """Published plaintext port that only redirects to HTTPS; 0 publishes none."""
    registry_port: StrictInt = Field(default=0, ge=0, le=65535)
    """Publish the registry's own port 5000 directly (plain HTTP); 0 publishes none."""
    ui_port: StrictInt = Field(default=0, ge=0, le=65535)
    """Publish the UI directly; 0 publishes none."""
    healthy_wait_seconds: StrictInt = Field(default=120, ge=10, le=3600)
    """How long `pulumi up` waits for each new container's healthcheck to pass before it fails."""
    metrics_port: StrictInt = Field(default=0, ge=0, le=65535)
    """Publish the proxy's plain-HTTP metrics listener (the registry's Prometheus metrics at /registry/metrics,
    nginx's stub_status at /nginx_status), no login; 0 publishes none (still reachable on the stack's network)."""
    # The blocks, one module each. A field here is also a known config key (see loader.py).
    registry: RegistrySettings = RegistrySettings()
    ui: UiSettings = UiSettings()
    proxy: ProxySettings = ProxySettings()
    tls: TlsSettings = TlsSettings()
    auth: AuthSettings = AuthSettings()
    gc: GcSettings = GcSettings()
    mirrors: tuple[MirrorSettings, ...] = ()
    storage: StorageSettings = StorageSettings()
    redis: RedisSettings = RedisSettings()
    engine: Engine = Engine.DOCKER
    """`docker`: containers on one host; `swarm`: services on a Docker Swarm."""
    swarm: SwarmSettings = SwarmSettings()
    docker_host: DockerHostSettings | None = None
    """The Docker engine or Swarm manager to deploy to; absent: the local one (DOCKER_HOST, docker:host)."""

    @field_validator("hostname")
    @classmethod
    def _hostname(cls, value: str) -> str:
        return check_dns_or_ip(value)

    @field_validator("ip_addresses")
    @classmethod
    def _ips(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        parsed = []
        for value in values:
            if not is_ip(value):
                raise ValueError(f"{value!r} is not an IPv4 or IPv6 address")
            try:
                parsed.append(check_ip(value))
            except ValueError as error:
                raise ValueError(f"{value!r} {error.args[0].replace('must be', 'is not')}") from None
        duplicates = sorted({ip for ip in parsed if parsed.count(ip) > 1})
        if duplicates:
            raise ValueError(f"lists {', '.join(duplicates)} more than once")
        return tuple(parsed)

    @field_validator("bind_address")
    @classmethod
    def _bind(cls, value: str) -> str:
        try:
            address = parse_ip(value)
        except ValueError:
            raise ValueError("must be an IPv4 or IPv6 address of this host (no IPv6 zone), e.g. 127.0.0.1") from None
        if address.is_multicast:
            raise ValueError("must be an address of this host, not a multicast address")
        return str(address)

    @model_validator(mode="after")
    def _ports_distinct(self) -> Settings:
        published = {
            "httpsPort": self.https_port,
            "httpPort": self.http_port,
            "registryPort": self.registry_port,
            "uiPort": self.ui_port,
            "metricsPort": self.metrics_port,
            **{f"mirrors[{mirror.name}].port": mirror.port or 0 for mirror in self.mirrors},
        }
        seen: dict[int, str] = {}
        for key, port in published.items():
            if port == 0:
                continue
            if port in seen:
                raise ValueError(f"{key} and {seen[port]} are both {port}: each published port must differ")
            seen[port] = key
        if self.ui_port and self.ui.flavor is UiFlavor.NONE:
            raise ValueError("uiPort is set but ui.flavor is 'none': there is no UI to publish")
        if self.auth.enabled and self.ui.flavor is UiFlavor.HYPER:
            raise ValueError(
                "ui.flavor 'hyper' cannot work with auth.users: its auth mode is a token server, not htpasswd; "
                "use ui.flavor 'joxit' (same-origin, the browser asks for the login) or 'none'"
            )
        if self.auth.enabled and self.ui_port:
            raise ValueError(
                "uiPort is set with auth.users: the UI would then be reached without TLS, sending passwords in "
                "clear; reach it through the proxy (uiUrl) instead"
            )
        if self.auth.enabled and self.registry_port and not self.binds_loopback:
            raise ValueError(
                f"registryPort is set with auth.users on bindAddress {self.bind_address}: that port is plain HTTP, so "
                "every docker login and pull would send its password in clear to anyone on the way; publish it "
                "on a loopback bindAddress (127.0.0.1, ::1) only, or use httpsPort"
            )
        check_mirrors_distinct(self.mirrors)
        for mirror in self.mirrors:
            if mirror.hostname is not None and mirror.hostname == self.hostname:
                raise ValueError(
                    f"mirrors[{mirror.name}].hostname is the registry's own hostname: a mirror needs a name of its "
                    "own (or a port)"
                )
            if mirror.ttl is not None and registry_major_version(self.registry.image) < 3:
                raise ValueError(
                    f"mirrors[{mirror.name}].ttl needs registry 3: {self.registry.image} has no such setting and "
                    "keeps cached content 7 days (it would ignore the key)"
                )
        self._storage_fits()
        self._engine_fits()
        if self.gc.delete_untagged and registry_major_version(self.registry.image) < 3:
            raise ValueError(
                f"gc.deleteUntagged is refused with {self.registry.image}: registry 2.x deletes the per-platform "
                "images of multi-arch indexes as untagged (distribution #3178); use registry 3 or leave it off"
            )
        return self

    def _storage_fits(self) -> None:
        replicas = self.registry.replicas
        if replicas > 1 and not self.storage.is_s3:
            raise ValueError(
                f"registry.replicas is {replicas} but storage.driver is 'filesystem': replicas must share one store "
                "(a volume belongs to one container's host); set storage.driver: s3, or registry.replicas: 1"
            )
        if (
            self.storage.is_s3
            and self.proxy.fast_blob_downloads
            and "fast_blob_downloads" in self.proxy.model_fields_set
        ):
            raise ValueError(
                "proxy.fastBlobDownloads is true but storage.driver is 's3': nginx can send blobs from disk only "
                "with filesystem storage (leave it unset: with s3 downloads are relayed)"
            )
        if self.storage.is_s3 and self.gc.retention.rules:
            raise ValueError(
                "gc.retention.rules need storage.driver 'filesystem': the rules read the tag tree on the data volume; "
                "garbage collection itself works with s3"
            )

    def _engine_fits(self) -> None:
        if self.engine is not Engine.SWARM:
            if self.swarm.model_fields_set:
                raise ValueError("swarm is set but engine is 'docker': the swarm settings are for engine: swarm")
            return
        if not self.binds_all_interfaces:
            raise ValueError(
                f"bindAddress is {self.bind_address} but engine is 'swarm': Swarm publishes a service's ports on "
                "every interface of the node (neither host mode nor the routing mesh takes an address); set "
                "bindAddress: 0.0.0.0 and firewall the ports"
            )
        if not self.storage.is_s3:
            raise ValueError(
                "engine 'swarm' needs storage.driver 's3': a volume stays on one node, and registry tasks move "
                "between nodes"
            )
        if self.mirrors:
            raise ValueError(
                "mirrors are not available with engine 'swarm' yet: each mirror's cache is a volume on one node"
            )
        if self.ui_port:
            raise ValueError(
                "uiPort is set with engine 'swarm': the UI's port would follow its task to any node; reach the UI "
                "through the proxy (uiUrl) instead"
            )
        check_edge_pins_one_node(self.swarm.edge_constraints)

    # ---- derived values used by several components ----

    @property
    def is_swarm(self) -> bool:
        return self.engine is Engine.SWARM

    @property
    def uses_redis(self) -> bool:
        """The blob descriptor cache lives in Redis when replicas share the store (each replica's own in-memory
        cache would disagree with the others' after a delete)."""
        return self.registry.replicas > 1

    @property
    def fast_blob_downloads(self) -> bool:
        """nginx sends blobs from the data volume: on unless turned off, filesystem storage only."""
        return self.proxy.fast_blob_downloads and not self.storage.is_s3

    @property
    def hostname_is_ip(self) -> bool:
        try:
            ipaddress.ip_address(self.hostname)
        except ValueError:
            return False
        return True

    @property
    def binds_all_interfaces(self) -> bool:
        return ipaddress.ip_address(self.bind_address).is_unspecified

    @property
    def binds_loopback(self) -> bool:
        return ipaddress.ip_address(self.bind_address).is_loopback

    @property
    def registry_endpoint(self) -> str:
        """What goes before the image name: host, plus :port when not 443 (IPv6 in brackets)."""
        host = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        return host if self.https_port == 443 else f"{host}:{self.https_port}"

    @property
    def registry_url(self) -> str:
        return f"https://{self.registry_endpoint}"

    @property
    def certificate_dns_names(self) -> tuple[str, ...]:
        own = () if self.hostname_is_ip else (self.hostname,)
        return own + tuple(mirror.hostname for mirror in self.mirrors if mirror.hostname is not None)

    def mirror_endpoint(self, mirror: MirrorSettings) -> str:
        """host[:port] clients use for a mirror: its own name on httpsPort, or the registry's host on its port."""
        if mirror.hostname is not None:
            return mirror.hostname if self.https_port == 443 else f"{mirror.hostname}:{self.https_port}"
        host = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        return f"{host}:{mirror.port}"

    @property
    def certificate_ip_addresses(self) -> tuple[str, ...]:
        head = (self.hostname,) if self.hostname_is_ip and self.hostname not in self.ip_addresses else ()
        return head + self.ip_addresses
