"""Every config file the program renders for a `Settings`, from the pure renderers, without Pulumi.

The property tests render thousands of configs: the whole program under mocks takes about a second a run,
these functions a few milliseconds. They build the renderers' inputs the way the components do
(`private_registry.py`, `reverse_proxy.py`, `registry.py`, `mirror.py`, `maintenance.py`, `registry_ui.py`);
`test_rendered_values.test_the_pure_rendering_is_what_the_program_uploads` holds them to the program's own
uploads, so that a change on either side shows.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.config import Settings, UiFlavor, cron_fields
from components.docker_common import STOP_GRACE_SECONDS, StackScope
from components.images import registry_config_path, registry_major_version
from components.mirror import mirror_alias
from components.redis_cache import REDIS_ALIAS, REDIS_PORT
from components.registry import REGISTRY_ALIAS, s3_storage
from components.registry_ui import UI_ALIAS, UI_INTERNAL_PORT
from components.rendering import (
    REGISTRY_DEBUG_PORT,
    REGISTRY_PORT,
    HyperUiConfig,
    MaintenanceConfig,
    MirrorRemote,
    MirrorSite,
    ProxyConfig,
    RedisCache,
    RedisServerConfig,
    RegistryConfig,
    RetentionRuleLine,
    containerd_hosts_dir,
    joxit_ui_environment,
    render_cache_env,
    render_containerd_hosts_toml,
    render_htpasswd,
    render_hyper_ui_config,
    render_maintenance_settings,
    render_nginx_conf,
    render_redis_conf,
    render_registry_config,
    render_retention_rules,
)
from components.reverse_proxy import (
    BLOB_FILES_DIR,
    CERTIFICATE_KEY_PATH,
    CERTIFICATE_PATH,
    HEALTH_PORT,
    HTTPS_INTERNAL_PORT,
    MAINTENANCE_FLAGS_DIR,
    METRICS_INTERNAL_PORT,
    MIRROR_FILES_DIR,
    MIRROR_FIRST_INTERNAL_PORT,
    PLAIN_REGISTRY_PORT,
    PROXY_ALIAS,
)

SCOPE = StackScope(project="private-registry", stack="test")
# The generated secrets as these renderings have them (registry.httpSecret when the config gives one).
HTTP_SECRET = "rendered-stack-http-secret-0123456789"
OWN_REDIS_PASSWORD = "generatedRedisPassword0123456789abcdefgh"


@dataclass(frozen=True)
class SiteNames:
    """The values of the nginx site that come from config, as the site's inputs hold them."""

    server_name: str
    endpoint: str
    mirrors: tuple[tuple[str, str, str], ...]
    """Per mirror: its name, its upstream's URL, and its server_name (`_` when it has a port of its own)."""


def site_names(settings: Settings) -> SiteNames:
    return SiteNames(
        server_name="_" if settings.hostname_is_ip else settings.hostname,
        endpoint=settings.registry_endpoint,
        mirrors=tuple((mirror.name, mirror.resolved_remote_url, mirror.hostname or "_") for mirror in settings.mirrors),
    )


def proxy_config(settings: Settings, names: SiteNames | None = None) -> ProxyConfig:
    """The nginx site's inputs as ReverseProxy builds them; `names` in place of the config's own values."""
    names = names or site_names(settings)
    separate_replicas = settings.registry.replicas > 1 and not settings.is_swarm
    blob_files = settings.fast_blob_downloads
    return ProxyConfig(
        server_name=names.server_name,
        endpoint=names.endpoint,
        redirect_http=settings.http_port != 0,
        registry_upstream=f"{REGISTRY_ALIAS}:{REGISTRY_PORT}",
        ui_upstream=None
        if settings.ui.flavor is UiFlavor.NONE
        else f"{UI_ALIAS}:{UI_INTERNAL_PORT[settings.ui.flavor]}",
        certificate_path=CERTIFICATE_PATH,
        certificate_key_path=CERTIFICATE_KEY_PATH,
        tls_profile=settings.tls.profile,
        health_port=HEALTH_PORT,
        plain_registry_port=PLAIN_REGISTRY_PORT,
        maintenance_flags_dir=MAINTENANCE_FLAGS_DIR,
        metrics_port=METRICS_INTERNAL_PORT,
        registry_metrics_upstream=(
            f"{SCOPE.docker_name('registry')}:{REGISTRY_DEBUG_PORT}"
            if separate_replicas
            else f"{REGISTRY_ALIAS}:{REGISTRY_DEBUG_PORT}"
        ),
        replica_metrics_upstreams=tuple(
            f"{SCOPE.docker_name(f'registry-{replica}')}:{REGISTRY_DEBUG_PORT}"
            for replica in range(2, settings.registry.replicas + 1)
            if separate_replicas
        ),
        registry_failover=settings.registry.replicas > 1,
        mirrors=tuple(
            MirrorSite(
                name=name,
                remote_url=remote_url,
                listen=HTTPS_INTERNAL_PORT if server_name != "_" else MIRROR_FIRST_INTERNAL_PORT + index,
                server_name=server_name,
                upstream=f"{mirror_alias(name)}:{REGISTRY_PORT}",
                metrics_upstream=f"{mirror_alias(name)}:{REGISTRY_DEBUG_PORT}",
                blob_files_dir=f"{MIRROR_FILES_DIR}/{name}" if blob_files else None,
            )
            for index, (name, remote_url, server_name) in enumerate(names.mirrors)
        ),
        blob_files_dir=BLOB_FILES_DIR if blob_files else None,
    )


def nginx_site(settings: Settings, names: SiteNames | None = None) -> str:
    return render_nginx_conf(proxy_config(settings, names))


def http_secret(settings: Settings) -> str:
    configured = settings.registry.http_secret
    return configured.get_secret_value() if configured is not None else HTTP_SECRET


def registry_config(settings: Settings) -> RegistryConfig:
    storage = settings.storage
    redis: RedisCache | None = None
    if settings.uses_redis:
        redis = (
            RedisCache(
                address=settings.redis.address,
                password=settings.redis.password.get_secret_value() if settings.redis.password else None,
                db=settings.redis.db,
            )
            if settings.redis.address is not None
            else RedisCache(address=f"{REDIS_ALIAS}:{REDIS_PORT}", password=OWN_REDIS_PASSWORD, db=settings.redis.db)
        )
    swarm = settings.swarm if settings.is_swarm else None
    drain: int | None = None
    if swarm is not None or settings.registry.replicas > 1:
        drain = max(1, (swarm.stop_grace_seconds if swarm is not None else STOP_GRACE_SECONDS) - 2)
    return RegistryConfig(
        public_url=settings.registry_url,
        http_secret=http_secret(settings),
        delete_enabled=settings.registry.delete_enabled,
        log_level=settings.registry.log_level,
        auth_realm=settings.auth.realm if settings.auth.enabled else None,
        s3=s3_storage(storage, storage.secret_key.get_secret_value() if storage.secret_key else None)
        if storage.is_s3
        else None,
        redis=redis,
        major_version=registry_major_version(settings.registry.image),
        drain_timeout_seconds=drain,
    )


def mirror_config(settings: Settings, index: int) -> RegistryConfig:
    mirror = settings.mirrors[index]
    return RegistryConfig(
        public_url=f"https://{settings.mirror_endpoint(mirror)}",
        http_secret=http_secret(settings),
        delete_enabled=True,
        log_level="info",
        auth_realm=settings.auth.realm if settings.auth.enabled and not mirror.public else None,
        mirror_of=MirrorRemote(
            remote_url=mirror.resolved_remote_url,
            username=mirror.username,
            password=mirror.password.get_secret_value() if mirror.password is not None else None,
            ttl=mirror.ttl,
        ),
    )


def maintenance_config(settings: Settings) -> MaintenanceConfig:
    gc = settings.gc
    return MaintenanceConfig(
        schedule_fields=cron_fields(gc.schedule) if gc.scheduled else None,
        schedule_text=gc.schedule,
        registry_config_path=registry_config_path(settings.registry.image, settings.registry.config_path),
        gc_dry_run=gc.dry_run,
        gc_delete_untagged=gc.delete_untagged,
        retention_dry_run=gc.retention.dry_run,
        write_pause_seconds=gc.write_pause_seconds,
        data_on_volume=not settings.storage.is_s3,
    )


def cache_env(settings: Settings) -> str:
    config = registry_config(settings).redis
    if config is None:
        return render_cache_env(None, None, 0)
    return render_cache_env(config.address, config.password, config.db)


def rendered_files(settings: Settings) -> dict[str, str]:
    """Each rendered file by a name of its own (the nginx site's certificate paths as the container has them)."""
    files = {
        "nginx site": nginx_site(settings),
        "registry config.yml": render_registry_config(registry_config(settings)),
        "settings.env": render_maintenance_settings(maintenance_config(settings)),
        "retention.rules": render_retention_rules(
            tuple(
                RetentionRuleLine(rule.repositories, rule.keep_last, rule.keep_tags)
                for rule in settings.gc.retention.rules
            )
        ),
        "cache.env": cache_env(settings),
    }
    if settings.auth.enabled:
        users = {user: password.get_secret_value() for user, password in settings.auth.users.items()}
        files["htpasswd"] = render_htpasswd(users, salt_key=http_secret(settings), cost=4)
    if settings.uses_redis and not settings.redis.external:
        files["redis.conf"] = render_redis_conf(
            RedisServerConfig(
                port=REDIS_PORT, password=OWN_REDIS_PASSWORD, max_memory_mib=settings.redis.max_memory_mib
            )
        )
    if settings.ui.flavor is UiFlavor.HYPER:
        files["hyper config.yml"] = render_hyper_ui_config(
            HyperUiConfig(
                registry_url=f"http://{PROXY_ALIAS}:{PLAIN_REGISTRY_PORT}/v2",
                registry_name=settings.registry_endpoint,
                readonly=settings.ui.readonly or not settings.registry.delete_enabled,
            )
        )
    if settings.ui.flavor is UiFlavor.JOXIT:
        environment = joxit_ui_environment(
            title=settings.ui.title,
            delete_images=settings.registry.delete_enabled and not settings.ui.readonly,
            pull_url=settings.registry_endpoint,
            secured=settings.auth.enabled,
            registry_proxy=f"{PROXY_ALIAS}:{PLAIN_REGISTRY_PORT}" if settings.ui_port else None,
        )
        files["joxit environment"] = "".join(f"{key}={value}\n" for key, value in sorted(environment.items()))
    for index, mirror in enumerate(settings.mirrors):
        files[f"mirror {mirror.name} config.yml"] = render_registry_config(mirror_config(settings, index))
        hosts_dir = containerd_hosts_dir(mirror.resolved_remote_url, mirror.is_docker_hub)
        files[f"mirror {mirror.name} hosts.toml"] = render_containerd_hosts_toml(
            remote_url=mirror.resolved_remote_url,
            mirror_url=f"https://{settings.mirror_endpoint(mirror)}",
            hosts_dir=hosts_dir,
        )
    return files
