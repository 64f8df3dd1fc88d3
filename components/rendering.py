"""Pure functions that render the containers' configuration files from typed settings.

No Pulumi here: each takes plain values (secrets already resolved, inside an `.apply`) and returns text,
deterministically, so the same settings always give byte-identical files and `pulumi preview` stays quiet.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import jinja2
import yaml

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "config_templates"

_jinja = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
    autoescape=False,  # nginx syntax, not HTML; every value is validated before it gets here
)

REGISTRY_DATA_DIR = "/var/lib/registry"
# Docker's embedded DNS server, inside every container on a user-defined network.
DOCKER_DNS_RESOLVER = "127.0.0.11"
REGISTRY_PORT = 5000
# The registry's debug server: /debug/health, /debug/vars, pprof and, as configured here, Prometheus metrics.
# Never published: pprof and expvar are not for outside eyes; the proxy's metrics listener passes only
# /metrics on (as /registry/metrics).
REGISTRY_DEBUG_PORT = 5001
REGISTRY_METRICS_PATH = "/metrics"
# The proxy's metrics listener (plain HTTP, not the TLS port): nginx's stub_status and the registry's metrics.
METRICS_PORT = 9113
NGINX_STATUS_PATH = "/nginx_status"
REGISTRY_METRICS_PROXY_PATH = "/registry/metrics"
# The last maintenance run's figures, a Prometheus text file the maintenance container writes.
MAINTENANCE_METRICS_PATH = "/maintenance/metrics"
MAINTENANCE_METRICS_FILE = "metrics.prom"


def replica_metrics_path(replica: int) -> str:
    """Where the metrics listener passes on registry replica N's metrics (N >= 2; the first's are at
    REGISTRY_METRICS_PROXY_PATH)."""
    return f"/registry/replicas/{replica}/metrics"


def mirror_metrics_path(name: str) -> str:
    """Where the metrics listener passes on a mirror's Prometheus metrics (its cache hits and misses)."""
    return f"/mirrors/{name}/metrics"


HTPASSWD_PATH = "/auth/htpasswd"
BCRYPT_COST = 12
# Mozilla server-side TLS 6.0. TLS 1.3 suites are not set by ssl_ciphers (OpenSSL's defaults are all AEAD).
INTERMEDIATE_CIPHERS = ":".join(
    [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ]
)


@dataclass(frozen=True)
class RegistryConfig:
    """What the registry's config.yml depends on."""

    public_url: str
    http_secret: str
    delete_enabled: bool
    log_level: str
    auth_realm: str | None = None
    """When set, the registry requires the accounts in HTPASSWD_PATH (realm shown in the login prompt)."""
    mirror_of: MirrorRemote | None = None
    """When set, the registry is a read-only pull-through cache of this upstream."""
    s3: S3Storage | None = None
    """Storage in an S3 bucket instead of the data volume."""
    redis: RedisCache | None = None
    """The blob descriptor cache in Redis (shared by replicas); None: no cache (see render_registry_config)."""
    major_version: int = 2
    """The registry's major version: 2.x and 3.x spell the s3 and redis sections differently."""
    drain_timeout_seconds: int | None = None
    """http.draintimeout: on SIGTERM, finish requests under way for up to this long (replicas being replaced);
    None: stop at once (the registry's default)."""


@dataclass(frozen=True)
class S3Storage:
    """The registry's `storage.s3` section (secret key resolved)."""

    bucket: str
    region: str
    region_endpoint: str | None
    access_key: str | None
    secret_key: str | None
    root_directory: str
    force_path_style: bool
    secure: bool
    redirect: bool
    chunk_size_bytes: int


@dataclass(frozen=True)
class RedisCache:
    """The registry's `redis` section (password resolved)."""

    address: str
    password: str | None
    db: int


@dataclass(frozen=True)
class MirrorRemote:
    """The upstream of a pull-through cache (the registry's `proxy` section)."""

    remote_url: str
    username: str | None = None
    password: str | None = None
    ttl: str | None = None
    """Registry 3.x only (2.x has no such key and keeps content 7 days)."""


def render_registry_config(config: RegistryConfig) -> str:
    """The distribution registry's config.yml (version 0.1 schema, read by registry 2.x and 3.x)."""
    storage: dict[str, object] = (
        {"s3": _s3_section(config.s3, config.major_version)}
        if config.s3 is not None
        else {"filesystem": {"rootdirectory": REGISTRY_DATA_DIR}}
    )
    storage |= {
        "delete": {"enabled": config.delete_enabled},
        "maintenance": {"uploadpurging": {"enabled": True, "age": "168h", "interval": "24h", "dryrun": False}},
    }
    if config.redis is not None:
        # Replicas share one cache, so a blob one of them deleted is gone for all (each one's inmemory cache
        # would keep answering "exists"). Garbage collection empties this database afterwards (maintenance.sh).
        storage["cache"] = {"blobdescriptor": "redis"}
    # Otherwise no blob descriptor cache: after a garbage collection the inmemory cache keeps answering
    # "exists" for deleted blobs, a re-push skips them and the image is broken (distribution #1803, #4569).
    # On the filesystem driver a blob's descriptor is two stat() calls without it.
    if config.s3 is not None and not config.s3.redirect:
        # Blob downloads come through the registry: clients need not reach the store.
        storage["redirect"] = {"disable": True}
    document: dict[str, object] = {
        "version": 0.1,
        "log": {"level": config.log_level, "fields": {"service": "registry"}},
        "storage": storage,
        "http": {
            "addr": f":{REGISTRY_PORT}",
            # The external URL: Location headers point clients here, not at the container.
            "host": config.public_url,
            # Fixed, not random per start: an upload interrupted by a restart can resume.
            "secret": config.http_secret,
            "headers": {"X-Content-Type-Options": ["nosniff"]},
            **({"draintimeout": f"{config.drain_timeout_seconds}s"} if config.drain_timeout_seconds else {}),
            # On the stack's network only (the port is never published): metrics for Prometheus, and
            # /debug/health, which names the failing health check when the main port answers 503.
            "debug": {
                "addr": f":{REGISTRY_DEBUG_PORT}",
                "prometheus": {"enabled": True, "path": REGISTRY_METRICS_PATH},
            },
        },
        "health": {"storagedriver": {"enabled": True, "interval": "10s", "threshold": 3}},
    }
    if config.redis is not None:
        document["redis"] = _redis_section(config.redis, config.major_version)
    if config.auth_realm is not None:
        document["auth"] = {"htpasswd": {"realm": config.auth_realm, "path": HTPASSWD_PATH}}
    if config.mirror_of is not None:
        remote = config.mirror_of
        proxy: dict[str, str] = {"remoteurl": remote.remote_url}
        if remote.username is not None and remote.password is not None:
            proxy |= {"username": remote.username, "password": remote.password}
        if remote.ttl is not None:
            proxy["ttl"] = remote.ttl
        document["proxy"] = proxy
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False)


def _s3_section(s3: S3Storage, major_version: int) -> dict[str, object]:
    section: dict[str, object] = {"bucket": s3.bucket, "region": s3.region}
    if s3.region_endpoint is not None:
        section["regionendpoint"] = s3.region_endpoint
    if s3.access_key is not None and s3.secret_key is not None:
        section |= {"accesskey": s3.access_key, "secretkey": s3.secret_key}
    if s3.root_directory != "/":
        section["rootdirectory"] = s3.root_directory
    section |= {"secure": s3.secure, "v4auth": True, "chunksize": s3.chunk_size_bytes}
    if major_version >= 3:
        # 3.x has the key (default false); 2.x has none and uses path style whenever regionendpoint is set.
        section["forcepathstyle"] = s3.force_path_style
    return section


def _redis_section(redis: RedisCache, major_version: int) -> dict[str, object]:
    """2.x: `addr` and a redigo `pool`; 3.x: go-redis options inline (`addrs`), where `addr` would be ignored."""
    timeouts = {"dialtimeout": "2s", "readtimeout": "2s", "writetimeout": "2s"}
    if major_version >= 3:
        section: dict[str, object] = {"addrs": [redis.address], "db": redis.db, **timeouts, "poolsize": 16}
    else:
        section = {
            "addr": redis.address,
            "db": redis.db,
            **timeouts,
            "pool": {"maxidle": 16, "maxactive": 64, "idletimeout": "300s"},
        }
    if redis.password is not None:
        section["password"] = redis.password
    return section


@dataclass(frozen=True)
class MaintenanceConfig:
    """What the maintenance script's settings depend on."""

    schedule_fields: tuple[str, ...] | None
    """The five cron fields, expanded to numbers (`cron_fields`); None: no schedule, runs on demand only."""
    schedule_text: str
    """The schedule as configured, for the log."""
    registry_config_path: str
    gc_dry_run: bool
    gc_delete_untagged: bool
    retention_dry_run: bool
    write_pause_seconds: int
    data_on_volume: bool = True
    """The registry's data is on the volume mounted here (filesystem storage): freed bytes are measured with du.
    False with s3 storage."""


def render_maintenance_settings(config: MaintenanceConfig) -> str:
    """/etc/registry-maintenance/settings.env, sourced by config_templates/maintenance.sh."""
    fields = config.schedule_fields
    values = {
        "SCHEDULE": " ".join(fields) if fields else "none",
        "SCHEDULE_TEXT": config.schedule_text,
        # cron: when both day fields are restricted a day matching either runs the job, else both must match.
        "SCHEDULE_DAYS": "either" if fields and _restricted(config.schedule_text, 2, 4) else "both",
        "REGISTRY_CONFIG": config.registry_config_path,
        "GC_DRY_RUN": _shell_bool(config.gc_dry_run),
        "GC_DELETE_UNTAGGED": _shell_bool(config.gc_delete_untagged),
        "RETENTION_DRY_RUN": _shell_bool(config.retention_dry_run),
        "WRITE_PAUSE_SECONDS": str(config.write_pause_seconds),
        "DATA_ON_VOLUME": _shell_bool(config.data_on_volume),
    }
    return _env_file(values)


def _env_file(values: Mapping[str, str]) -> str:
    """KEY='value' lines a POSIX shell sources back to exactly these values (a shell variable cannot hold NUL)."""
    for key, value in values.items():
        if "\x00" in value:
            raise ValueError(f"{key}: a NUL character cannot be passed to the shell")
    return "".join(f"{key}={shlex.quote(value)}\n" for key, value in values.items())


def _restricted(schedule: str, *positions: int) -> bool:
    """Whether every field at these positions of a five-field cron text is restricted (does not start with
    `*`, as cron decides it); the @-shorthands restrict at most one day field."""
    fields = schedule.split()
    if len(fields) != 5:
        return False
    return all(not fields[position].startswith("*") for position in positions)


def _shell_bool(value: bool) -> str:
    return "true" if value else "false"


@dataclass(frozen=True)
class RetentionRuleLine:
    """One retention rule as the maintenance script reads it."""

    repositories: tuple[str, ...]
    keep_last: int | None
    keep_tags: tuple[str, ...]


_RULE_GLOB = re.compile(r"[A-Za-z0-9._/*?\[\]!-]+")


def render_retention_rules(rules: tuple[RetentionRuleLine, ...]) -> str:
    """/etc/registry-maintenance/retention.rules: one rule a line, `keepLast repositoryGlobs tagGlobs`, the
    globs comma-separated, `-` for none (globs have no spaces or commas: the config refuses them), after a
    header comment (never an empty file: a Swarm config cannot be empty)."""
    lines = ["# keepLast repositoryGlobs tagGlobs (rendered by private-registry from gc.retention.rules)\n"]
    for rule in rules:
        for glob in (*rule.repositories, *rule.keep_tags):
            # The script splits a line at whitespace and a list at commas; `#` starts a comment, `-` is none.
            if not _RULE_GLOB.fullmatch(glob) or glob == "-":
                raise ValueError("retention rules: a glob must be one word without whitespace, ',' or '#'")
        keep_last = "-" if rule.keep_last is None else str(rule.keep_last)
        keep_tags = ",".join(rule.keep_tags) or "-"
        lines.append(f"{keep_last} {','.join(rule.repositories)} {keep_tags}\n")
    return "".join(lines)


def _bcrypt_salt(key: str, user: str, password: str, cost: int) -> bytes:
    """A bcrypt salt derived from the stack's secret key, the user and the password.

    Random salts would change the file (and replace the registry) on every `pulumi up`. A salt derived only
    from the password would give equal hashes for equal passwords on every stack. Keyed by a per-stack secret,
    it is stable for one stack and unrelated across stacks.
    """
    digest = hmac.new(key.encode(), f"htpasswd\0{user}\0{password}".encode(), hashlib.sha256).digest()[:16]
    # bcrypt's radix-64 is base64 with another alphabet: 16 bytes -> 22 characters.
    encoded = base64.b64encode(digest).decode().rstrip("=")
    bcrypt_alphabet = str.maketrans(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
        "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
    )
    return f"$2b${cost:02d}${encoded.translate(bcrypt_alphabet)}".encode()


_HTPASSWD_USER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]*")


def render_htpasswd(users: Mapping[str, str], salt_key: str, cost: int = BCRYPT_COST) -> str:
    """An htpasswd file of bcrypt hashes (the only kind the registry accepts), users in name order."""
    lines = []
    for user in sorted(users):
        if not _HTPASSWD_USER.fullmatch(user):
            # A colon or line break in a name would make the file say something else than these accounts.
            raise ValueError("htpasswd: a user name must be letters, digits, '.', '_', '@' or '-'")
        password = users[user]
        hashed = bcrypt.hashpw(password.encode(), _bcrypt_salt(salt_key, user, password, cost)).decode()
        lines.append(f"{user}:{hashed}")
    return "".join(f"{line}\n" for line in lines)


@dataclass(frozen=True)
class HyperUiConfig:
    """What hyper/docker-registry-web's /conf/config.yml depends on."""

    registry_url: str
    registry_name: str
    readonly: bool


def render_hyper_ui_config(config: HyperUiConfig) -> str:
    """hyper/docker-registry-web's /conf/config.yml, as in the original recipe."""
    document = {
        "registry": {
            "url": config.registry_url,
            "name": config.registry_name,
            "readonly": config.readonly,
        },
        "auth": {"enabled": False},
    }
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False)


# Characters Joxit's entrypoint cannot take as they are. It writes each setting into index.html with
# `sed -i "s~\${NAME}~${VALUE}~"`: in the replacement `&` stands for the matched placeholder, `\` escapes and
# `~` ends the expression; the result lands unescaped inside an HTML attribute.
_SED_REPLACEMENT_ESCAPES = {"\\": "\\\\", "&": "\\&", "~": "\\~"}


def joxit_attribute_value(text: str) -> str:
    """`text` as Joxit's entrypoint must receive it to show it unchanged.

    First HTML-escaped for the attribute it lands in (`$` too, so no `${...}` placeholder of a later sed
    line can appear in it), then escaped for sed's replacement text. The browser decodes the entities,
    so the UI shows exactly `text`; a restart finds no placeholder left to edit again.
    """
    html_escaped = html.escape(text, quote=True).replace("$", "&#36;")
    return "".join(_SED_REPLACEMENT_ESCAPES.get(char, char) for char in html_escaped)


def joxit_ui_environment(
    *, title: str, delete_images: bool, pull_url: str, secured: bool, registry_proxy: str | None = None
) -> dict[str, str]:
    """Environment for joxit/docker-registry-ui.

    Behind our nginx the page calls `/v2/` on its own origin, which our nginx already routes to the registry:
    the UI container then never contacts the registry, so it neither waits for the registry's name to
    resolve at start nor keeps a replaced registry's old address. Only when the UI is published on its own
    port (`registry_proxy`, "host:port") does Joxit's nginx proxy `/v2/` itself, through Docker's DNS.
    """
    environment = {
        "SINGLE_REGISTRY": "true",
        "REGISTRY_TITLE": joxit_attribute_value(title),
        "DELETE_IMAGES": "true" if delete_images else "false",
        "SHOW_CONTENT_DIGEST": "true",
        "PULL_URL": joxit_attribute_value(pull_url),
        # The registry wants basic auth: the UI sends credentials up front instead of probing.
        "REGISTRY_SECURED": "true" if secured else "false",
    }
    if registry_proxy is not None:
        environment["NGINX_PROXY_PASS_URL"] = f"http://{registry_proxy}"
        environment["NGINX_RESOLVER"] = DOCKER_DNS_RESOLVER
    return environment


@dataclass(frozen=True)
class ProxyConfig:
    """What the nginx site config depends on."""

    server_name: str
    endpoint: str
    """host[:port] clients use over HTTPS (IPv6 in brackets): where the plaintext port redirects to."""
    redirect_http: bool
    registry_upstream: str
    ui_upstream: str | None
    certificate_path: str
    certificate_key_path: str
    tls_profile: str = "intermediate"
    health_port: int = 8081
    plain_registry_port: int = REGISTRY_PORT
    """The registry API in plain HTTP on the stack's network (published as registryPort)."""
    maintenance_flags_dir: str = "/run/registry-maintenance"
    """Where the maintenance run's write-pause flags appear (a volume shared read-only)."""
    writes_paused_retry_after: int = 30
    """Retry-After (seconds) of the 503 answer to writes while garbage collection runs."""
    metrics_port: int = METRICS_PORT
    """The plain-HTTP metrics listener (stub_status, the registry's metrics); published as metricsPort."""
    registry_metrics_upstream: str = f"registry:{REGISTRY_DEBUG_PORT}"
    """host:port of the registry's debug server, whose /metrics the metrics listener passes on."""
    mirrors: tuple[MirrorSite, ...] = ()
    """Pull-through mirrors, each a TLS server of its own."""
    blob_files_dir: str | None = None
    """Where the registry's data volume is mounted (read-only) for blob downloads served from disk once the
    registry authorized them; None: every download is relayed from the registry."""
    registry_failover: bool = False
    """Several registry replicas answer to the upstream's name: a request fails over to the next."""
    replica_metrics_upstreams: tuple[str, ...] = ()
    """host:port of the debug server of registry replicas 2..N of one host (registry_metrics_upstream is the
    first's); empty: one registry, or a Swarm service (its tasks have no names)."""


@dataclass(frozen=True)
class MirrorSite:
    """A mirror's TLS server in nginx."""

    name: str
    remote_url: str
    listen: int
    """nginx's port for it: its own internal port, or 443 when the mirror has its own host name."""
    server_name: str
    """Its own host name, or `_` (any) when it has a port of its own."""
    upstream: str
    """host:port of the mirror's registry on the stack's network."""
    metrics_upstream: str = ""
    """host:port of the mirror's debug server (its Prometheus metrics)."""
    blob_files_dir: str | None = None
    """Where the mirror's cache volume is mounted (read-only) for blob downloads from disk; None: relay."""


# What a value may be made of to stand in the nginx site as one bare word (an argument, or inside a comment):
# no whitespace, quote, `;`, `{`, `}`, `#`, `$` or backslash, which nginx reads as syntax.
_NGINX_WORD = re.compile(r"[A-Za-z0-9._:/\[\]-]+")


def _nginx_words(config: ProxyConfig) -> None:
    """Refuse a value the site would read as more than the one word it stands for. The config is validated
    long before this; this is the last line, so that no future caller can render what nginx would misread."""
    values: dict[str, str | None] = {
        "server_name": config.server_name,
        "endpoint": config.endpoint,
        "registry_upstream": config.registry_upstream,
        "ui_upstream": config.ui_upstream,
        "certificate_path": config.certificate_path,
        "certificate_key_path": config.certificate_key_path,
        "maintenance_flags_dir": config.maintenance_flags_dir,
        "registry_metrics_upstream": config.registry_metrics_upstream,
        "blob_files_dir": config.blob_files_dir,
        **{f"replica_metrics_upstreams[{i}]": u for i, u in enumerate(config.replica_metrics_upstreams)},
    }
    for index, mirror in enumerate(config.mirrors):
        for field in ("name", "remote_url", "server_name", "upstream", "metrics_upstream", "blob_files_dir"):
            values[f"mirrors[{index}].{field}"] = getattr(mirror, field)
    for key, value in values.items():
        if value is not None and not _NGINX_WORD.fullmatch(value):
            raise ValueError(f"nginx site: {key} is not one word of letters, digits and '._:/[]-'")


def render_nginx_conf(config: ProxyConfig) -> str:
    """The nginx site (conf.d) that ends TLS and routes /v2/ to the registry and / to the UI."""
    _nginx_words(config)
    return _jinja.get_template("nginx-registry.conf.j2").render(
        server_name=config.server_name,
        redirect_authority=config.endpoint,
        dns_resolver=DOCKER_DNS_RESOLVER,
        redirect_http=config.redirect_http,
        registry_upstream=config.registry_upstream,
        ui_upstream=config.ui_upstream,
        certificate_path=config.certificate_path,
        certificate_key_path=config.certificate_key_path,
        tls_protocols="TLSv1.3" if config.tls_profile == "modern" else "TLSv1.2 TLSv1.3",
        tls_ciphers=None if config.tls_profile == "modern" else INTERMEDIATE_CIPHERS,
        health_port=config.health_port,
        plain_registry_port=config.plain_registry_port,
        maintenance_flags_dir=config.maintenance_flags_dir,
        writes_paused_retry_after=config.writes_paused_retry_after,
        metrics_port=config.metrics_port,
        nginx_status_path=NGINX_STATUS_PATH,
        maintenance_metrics_path=MAINTENANCE_METRICS_PATH,
        maintenance_metrics_file=MAINTENANCE_METRICS_FILE,
        mirror_metrics_paths={mirror.name: mirror_metrics_path(mirror.name) for mirror in config.mirrors},
        registry_metrics_proxy_path=REGISTRY_METRICS_PROXY_PATH,
        registry_metrics_upstream=config.registry_metrics_upstream,
        registry_metrics_path=REGISTRY_METRICS_PATH,
        mirrors=config.mirrors,
        blob_files_dir=config.blob_files_dir,
        failover=config.registry_failover,
        replica_metrics=[
            (replica_metrics_path(index), upstream)
            for index, upstream in enumerate(config.replica_metrics_upstreams, start=2)
        ],
    )


def prometheus_scrape_config(
    job_name: str, targets: tuple[str, ...], mirrors: tuple[str, ...] = (), replicas: int = 1
) -> str:
    """A Prometheus `scrape_configs` snippet, read through the proxy's metrics listener at `targets`
    (host:port): the registry's metrics, the last maintenance run's, and each mirror's. nginx's stub_status is
    not in Prometheus' format: it is not listed here (nginx-prometheus-exporter turns it into metrics)."""
    paths = [
        (job_name, REGISTRY_METRICS_PROXY_PATH),
        *((f"{job_name}-replica-{index}", replica_metrics_path(index)) for index in range(2, replicas + 1)),
        (f"{job_name}-maintenance", MAINTENANCE_METRICS_PATH),
        *((f"{job_name}-mirror-{name}", mirror_metrics_path(name)) for name in mirrors),
    ]
    document = {
        "scrape_configs": [
            {"job_name": job, "metrics_path": path, "scheme": "http", "static_configs": [{"targets": list(targets)}]}
            for job, path in paths
        ]
    }
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False)


# containerd names Docker Hub's directory under certs.d after the image references' host, not the API's.
CONTAINERD_DOCKER_HUB_DIR = "docker.io"
CONTAINERD_CA_FILE = "private-registry-ca.crt"


def containerd_hosts_dir(remote_url: str, docker_hub: bool) -> str:
    """The directory under /etc/containerd/certs.d/ for an upstream: its host[:port], docker.io for Docker Hub."""
    if docker_hub:
        return CONTAINERD_DOCKER_HUB_DIR
    return remote_url.split("://", 1)[1].rstrip("/")


def render_containerd_hosts_toml(*, remote_url: str, mirror_url: str, hosts_dir: str) -> str:
    """/etc/containerd/certs.d/<hosts_dir>/hosts.toml: pull and resolve through the mirror, the upstream after it
    when the mirror fails; the mirror's certificate verified against our CA, stored beside this file."""
    if not re.fullmatch(r"[A-Za-z0-9.-]+(?::[0-9]+)?|\[[0-9A-Fa-f:.]+\](?::[0-9]+)?", hosts_dir):
        raise ValueError("containerd hosts.toml: the directory must be host[:port]")
    # TOML basic strings: JSON's escapes are TOML's (json.dumps leaves a plain URL as it is).
    return (
        f"# /etc/containerd/certs.d/{hosts_dir}/hosts.toml (private-registry: pull through the mirror)\n"
        f"server = {json.dumps(remote_url)}\n"
        "\n"
        f"[host.{json.dumps(mirror_url)}]\n"
        '  capabilities = ["pull", "resolve"]\n'
        f"  ca = {json.dumps(f'/etc/containerd/certs.d/{hosts_dir}/{CONTAINERD_CA_FILE}')}\n"
    )


def render_docker_daemon_mirrors(mirror_urls: tuple[str, ...]) -> str:
    """The daemon.json fragment that sends Docker Hub pulls through the mirrors (Docker applies
    `registry-mirrors` to Docker Hub only)."""
    return json.dumps({"registry-mirrors": list(mirror_urls)}, indent=2) + "\n"


@dataclass(frozen=True)
class RedisServerConfig:
    """The stack's own Redis: a cache for the registry replicas."""

    port: int
    password: str
    max_memory_mib: int


def render_redis_conf(config: RedisServerConfig) -> str:
    """redis.conf: a pure cache. The registry sets no expiry on its keys, so allkeys-lru keeps it within
    maxmemory; nothing is saved (a lost cache is rebuilt from the store); a password although the port is
    never published (the stack's network has other containers)."""
    if not re.fullmatch(r"[A-Za-z0-9_.+/=-]+", config.password):
        # redis.conf splits at whitespace and reads quotes and backslashes: the password must be one plain word.
        raise ValueError("redis.conf: the password must be letters, digits and '_.+/=-'")
    lines = [
        "# Rendered by private-registry (Pulumi): the registry replicas' blob descriptor cache.",
        "bind 0.0.0.0",
        f"port {config.port}",
        "protected-mode yes",
        f"requirepass {config.password}",
        f"maxmemory {config.max_memory_mib}mb",
        "maxmemory-policy allkeys-lru",
        'save ""',
        "appendonly no",
        "dir /data",
    ]
    return "\n".join(lines) + "\n"


def render_cache_env(address: str | None, password: str | None, db: int) -> str:
    """/etc/registry-maintenance/cache.env: the Redis the maintenance script empties after a garbage
    collection (its entries would name deleted blobs); empty when the registry has no Redis cache."""
    if address is None:
        return "REDIS_ADDRESS=\n"
    return _env_file({"REDIS_ADDRESS": address, "REDIS_PASSWORD": password or "", "REDIS_DB": str(db)})
