"""The stack's own Redis: the blob descriptor cache registry replicas share."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker
import pulumi_random as random

from components.config import RedisSettings
from components.docker_common import ContainerPlacement, HardenedContainerArgs, Hardening, hardened_workload
from components.rendering import RedisServerConfig, render_redis_conf
from components.swarm_service import STOP_FIRST

REDIS_ALIAS = "redis"
REDIS_PORT = 6379
# Where the upstream image's documentation puts a config file; the image's entrypoint runs
# `redis-server <file>` as its redis user (uid 999) after fixing the ownership of /data, which it needs root
# for: CHOWN, and SETUID/SETGID to drop to the redis user (gosu). Nothing else.
REDIS_CONF_PATH = "/usr/local/etc/redis/redis.conf"
REDIS_CAPABILITIES = ("CHOWN", "SETGID", "SETUID")
# The server's own memory on top of the cache (maxmemory): buffers, clients, fragmentation.
REDIS_OVERHEAD_MIB = 64


@dataclass(frozen=True)
class RedisCacheArgs:
    settings: RedisSettings
    placement: ContainerPlacement


class RedisCache(pulumi.ComponentResource):
    """A Redis container on the stack's network: no persistence (it is a cache), allkeys-lru within
    maxmemory, a generated password, never published."""

    address: str
    """host:port on the stack's network."""
    password: pulumi.Output[str]
    """The generated password (secret)."""
    container_name: pulumi.Output[str]

    def __init__(self, name: str, args: RedisCacheArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("private-registry:redis:RedisCache", name, None, opts)
        settings = args.settings
        generated = random.RandomPassword(
            f"{name}-password", length=40, special=False, opts=pulumi.ResourceOptions(parent=self)
        )
        password: pulumi.Output[str] = pulumi.Output.secret(generated.result)
        conf = password.apply(
            lambda secret: render_redis_conf(
                RedisServerConfig(port=REDIS_PORT, password=secret, max_memory_mib=settings.max_memory_mib)
            )
        )
        container = hardened_workload(
            name,
            HardenedContainerArgs(
                role="redis",
                image=settings.image,
                placement=args.placement,
                hardening=Hardening(
                    memory_mib=settings.max_memory_mib + REDIS_OVERHEAD_MIB,
                    healthcheck=[
                        "CMD-SHELL",
                        f"REDISCLI_AUTH=$(sed -n 's/^requirepass //p' {REDIS_CONF_PATH}) redis-cli ping | grep -q PONG",
                    ],
                    capabilities=REDIS_CAPABILITIES,
                ),
                network_aliases=(REDIS_ALIAS,),
                command=("redis-server", REDIS_CONF_PATH),
                # Readable by the redis user the entrypoint switches to; the container is the file's only reader.
                uploads=(docker.ContainerUploadArgs(file=REDIS_CONF_PATH, content=conf, permissions="0644"),),
                secret_files=frozenset({REDIS_CONF_PATH}),
                swarm_update_order=STOP_FIRST,
            ),
            parent=self,
        )
        self.address = f"{REDIS_ALIAS}:{REDIS_PORT}"
        self.password = password
        self.container_name = container.name
        self.register_outputs({"address": self.address, "containerName": self.container_name})
