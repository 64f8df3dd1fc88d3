"""The stack's own Redis: the blob descriptor cache registry replicas share."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker
import pulumi_random as random

from components.config import RedisSettings
from components.docker_common import (
    SECRET_FILE_MODE,
    ContainerPlacement,
    HardenedContainerArgs,
    Hardening,
    hardened_workload,
)
from components.rendering import RedisServerConfig, render_redis_conf
from components.swarm_service import STOP_FIRST

REDIS_ALIAS = "redis"
REDIS_PORT = 6379
# The config file holds the password: 0600, owned by the redis user (uid 999) the server runs as. An upload
# is root's, so it goes into the image's working directory /data (its VOLUME), whose files the upstream
# entrypoint gives to redis (`find . \! -user redis -exec chown redis`) before it drops to that user (gosu). Root
# needs CHOWN for that, and SETUID/SETGID to drop: nothing else. On a Swarm the secret is mounted as redis's.
REDIS_CONF_PATH = "/data/redis.conf"
REDIS_UID = 999
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
                    # Answering, and asking for the password: the healthcheck runs as root without
                    # DAC_OVERRIDE, which cannot read redis's 0600 file, and needs no password to see both.
                    healthcheck=["CMD-SHELL", "redis-cli ping 2>&1 | grep -q '^NOAUTH'"],
                    capabilities=REDIS_CAPABILITIES,
                ),
                network_aliases=(REDIS_ALIAS,),
                command=("redis-server", REDIS_CONF_PATH),
                uploads=(docker.ContainerUploadArgs(file=REDIS_CONF_PATH, content=conf, permissions=SECRET_FILE_MODE),),
                secret_files=frozenset({REDIS_CONF_PATH}),
                files_owner_uid=REDIS_UID,
                swarm_update_order=STOP_FIRST,
            ),
            parent=self,
        )
        self.address = f"{REDIS_ALIAS}:{REDIS_PORT}"
        self.password = password
        self.container_name = container.name
        self.register_outputs({"address": self.address, "containerName": self.container_name})
