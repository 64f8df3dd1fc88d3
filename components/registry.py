"""The distribution registry container, its config.yml and the volume that keeps its data."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components.config import RegistrySettings, StorageSettings
from components.docker_common import (
    SECRET_FILE_MODE,
    STOP_GRACE_SECONDS,
    ContainerPlacement,
    HardenedContainerArgs,
    Hardening,
    hardened_workload,
)
from components.images import registry_config_path, registry_major_version
from components.naming import child_of, renamed_from
from components.rendering import (
    HTPASSWD_PATH,
    REGISTRY_DATA_DIR,
    REGISTRY_DEBUG_PORT,
    REGISTRY_PORT,
    RedisCache,
    RegistryConfig,
    S3Storage,
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
    storage: StorageSettings
    """Where blobs and manifests live: the data volume (filesystem) or an S3 bucket."""
    s3_secret_key: pulumi.Output[str] | None = None
    """storage.secretKey (a secret Output), when given."""
    redis: RedisEndpoint | None = None
    """The shared blob descriptor cache; None: no cache."""
    previous_name: str | None = None
    """The component's name in earlier versions of the program: it and its children keep their state through
    aliases to their old names."""


@dataclass(frozen=True)
class RedisEndpoint:
    """Where the registry replicas' Redis is, and how to log in."""

    address: str
    password: pulumi.Output[str] | None
    db: int


def htpasswd_upload(
    http_secret: pulumi.Output[str], accounts: pulumi.Output[dict[str, str]]
) -> docker.ContainerUploadArgs:
    """The accounts as the registry's htpasswd file, salts keyed by the stack's http.secret (see
    render_htpasswd); the team registry and the mirrors that ask for accounts get the same file."""
    htpasswd = pulumi.Output.all(http_secret, accounts).apply(
        lambda values: render_htpasswd(values[1], salt_key=values[0])
    )
    return docker.ContainerUploadArgs(file=HTPASSWD_PATH, content=htpasswd, permissions=SECRET_FILE_MODE)


class Registry(pulumi.ComponentResource):
    """registry:2-compatible container with filesystem storage in a named volume."""

    container_name: pulumi.Output[str]
    """Docker name of the registry container."""
    container_names: pulumi.Output[list[str]]
    """Docker names of every replica (the first is container_name)."""
    volume_name: pulumi.Output[str] | None
    """Docker volume holding the blobs and manifests, kept on `pulumi destroy`; None with s3 storage."""
    upstream: str
    """host:port the other containers reach the registry at on the stack's network."""
    metrics_upstream: str
    """host:port of the registry's debug server (Prometheus metrics at /metrics) on the stack's network."""
    replica_metrics_upstreams: tuple[str, ...]
    """The same for replicas 2..N; empty for one registry."""
    config_path: str
    """Where the image reads config.yml."""
    config_yml: pulumi.Output[str]
    """The rendered config.yml (secret: it holds http.secret)."""

    def __init__(self, name: str, args: RegistryArgs, opts: pulumi.ResourceOptions | None = None):
        renamed = pulumi.ResourceOptions(aliases=renamed_from(args.previous_name))
        super().__init__("private-registry:registry:Registry", name, None, pulumi.ResourceOptions.merge(opts, renamed))
        scope = args.placement.scope
        settings = args.settings

        volume: docker.Volume | None = None
        if not args.storage.is_s3:
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
        config_yml = _config_yml(args, http_secret)
        # http.secret, the S3 key and the Redis password are in it: the registry (root in its image, no USER)
        # is its only reader.
        uploads = [docker.ContainerUploadArgs(file=config_path, content=config_yml, permissions=SECRET_FILE_MODE)]
        if args.auth_realm is not None:
            uploads.append(htpasswd_upload(http_secret, args.accounts))
        # One host: a container per replica. A Swarm: one service of that many tasks.
        on_swarm = args.placement.swarm is not None
        containers = [
            hardened_workload(
                # The first replica keeps the names of a single registry: scaling out adds containers beside it.
                name if replica == 1 else f"{name}-{replica}",
                HardenedContainerArgs(
                    role="registry" if replica == 1 else f"registry-{replica}",
                    image=settings.image,
                    placement=args.placement,
                    hardening=REGISTRY_HARDENING,
                    # Every replica answers to the one name: nginx resolves it to all of them (see the site).
                    network_aliases=(REGISTRY_ALIAS,),
                    # No published port: registryPort is served by the proxy, so every client passes through
                    # it (writes pause there during garbage collection).
                    # The image's entrypoint serves the config file it is given, whatever its default path.
                    command=(config_path,),
                    uploads=tuple(uploads),
                    volumes=(docker.ContainerVolumeArgs(volume_name=volume.name, container_path=REGISTRY_DATA_DIR),)
                    if volume is not None
                    else (),
                    previous_name=args.previous_name if replica == 1 else None,
                    secret_files=frozenset({config_path, HTPASSWD_PATH}),
                    # Only off the volume: a label added to every stack would replace every registry container.
                    extra_labels={"storage": args.storage.driver.value} if args.storage.is_s3 else None,
                    swarm_replicas=settings.replicas,
                    swarm_constraints=args.placement.swarm.registry_constraints if args.placement.swarm else (),
                ),
                parent=self,
            )
            for replica in range(1, 2 if on_swarm else settings.replicas + 1)
        ]
        container = containers[0]

        self.container_name = container.name
        self.container_names = pulumi.Output.all(*(replica.name for replica in containers))
        self.volume_name = volume.name if volume is not None else None
        self.upstream = f"{REGISTRY_ALIAS}:{REGISTRY_PORT}"
        # One registry, or a Swarm service (its tasks have no names of their own): the alias. Replicas of one
        # host: each by its own container name (each counts its own requests).
        separate = settings.replicas > 1 and not on_swarm
        self.metrics_upstream = (
            f"{scope.docker_name('registry')}:{REGISTRY_DEBUG_PORT}"
            if separate
            else f"{REGISTRY_ALIAS}:{REGISTRY_DEBUG_PORT}"
        )
        self.replica_metrics_upstreams = tuple(
            f"{scope.docker_name(f'registry-{replica}')}:{REGISTRY_DEBUG_PORT}"
            for replica in range(2, settings.replicas + 1)
            if separate
        )
        self.config_path = config_path
        self.config_yml = pulumi.Output.secret(config_yml)
        self.register_outputs(
            {"containerName": self.container_name, "volumeName": self.volume_name, "upstream": self.upstream}
        )


def s3_storage(storage: StorageSettings, secret_key: str | None) -> S3Storage:
    """The registry config's s3 section from the settings; forcePathStyle unset means path style exactly when
    regionEndpoint is set (registry 2.x's behaviour, which registry 3.x's own default would break)."""
    return S3Storage(
        bucket=storage.bucket or "",
        region=storage.region,
        region_endpoint=storage.region_endpoint,
        access_key=storage.access_key,
        secret_key=secret_key,
        root_directory=storage.root_directory,
        force_path_style=storage.force_path_style
        if storage.force_path_style is not None
        else storage.region_endpoint is not None,
        secure=storage.secure,
        redirect=storage.redirect,
        chunk_size_bytes=storage.chunk_size_mib * 1024 * 1024,
    )


def _config_yml(args: RegistryArgs, http_secret: pulumi.Output[str]) -> pulumi.Output[str]:
    """config.yml, rendered once every secret it holds is known."""
    settings, storage, redis = args.settings, args.storage, args.redis
    secrets = pulumi.Output.all(
        http_secret,
        args.s3_secret_key if args.s3_secret_key is not None else "",
        redis.password if redis is not None and redis.password is not None else "",
    )

    def render(values: list[str]) -> str:
        secret, s3_secret_key, redis_password = values
        return render_registry_config(
            RegistryConfig(
                public_url=args.public_url,
                http_secret=secret,
                delete_enabled=settings.delete_enabled,
                log_level=settings.log_level,
                auth_realm=args.auth_realm,
                s3=s3_storage(storage, s3_secret_key or None) if storage.is_s3 else None,
                redis=RedisCache(address=redis.address, password=redis_password or None, db=redis.db)
                if redis is not None
                else None,
                major_version=registry_major_version(settings.image),
                drain_timeout_seconds=_drain_timeout(args),
            )
        )

    return secrets.apply(render)


def _drain_timeout(args: RegistryArgs) -> int | None:
    """Replicas stop gracefully: a replica being replaced or scaled away finishes its requests (nginx cannot
    retry one whose answer has begun) within the stop grace period, less 2 s for the process to exit. None for
    a single registry on one host, whose config stays as it was."""
    swarm = args.placement.swarm
    if swarm is None and args.settings.replicas == 1:
        return None
    grace = swarm.stop_grace_seconds if swarm is not None else STOP_GRACE_SECONDS
    return max(1, grace - 2)
