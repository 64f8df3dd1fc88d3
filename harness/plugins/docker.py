"""STAND-IN for pulumi-docker 5.2.0's plugin (`pulumi-resource-docker`), on the realizer's docker-py functions.

Objects are created as `harness/docker_provider.py` and `harness/swarm_provider.py` create them, without the
realizer's own stack label (the program's labels, `org.private-registry.stack=<stack>` among them, find them).
Which changes replace, update or only touch the state follows terraform-provider-docker as the realizer encodes
it, with these differences from the realizer, each one what the real provider does:

* Container: `restart`, `maxRetryCount`, `memory` and `memorySwap` are updated in place on the running
  container (resourceDockerContainerUpdate's ContainerUpdate); the realizer replaces the container instead.
  `CONTAINER_STATE_ONLY` changes touch the state only, as in the realizer.
* RemoteImage: `keepLocally` and `forceRemove` are not ForceNew: state-only updates (the realizer replaces).
* Delete-before-replace: the bridge deletes first when the resource says so (Container, in pulumi-docker's
  resources.go) or when the program named an autonamed object (`name` of a Network, Volume, Service,
  ServiceConfig, Secret; nameRequiresDeleteBeforeReplace). The realizer creates Swarm objects first.
* Swarm objects without a `name` are autonamed in Check (`<logical name>-<7 hex>`), kept from the old inputs.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from typing import Any

import docker
from docker.errors import ImageNotFound, NotFound

from harness import docker_provider, swarm_provider
from harness.plugins.server import ResourceType, StandInProvider, State, serve
from harness.realizer import CONTAINER, CONTAINER_STATE_ONLY

NETWORK = "docker:index/network:Network"
VOLUME = "docker:index/volume:Volume"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
CONTAINER_API_UPDATES = frozenset({"restart", "maxRetryCount", "memory", "memorySwap"})
"""Updated on the running container by ContainerUpdate (with cpuShares and cpuSet, which the realizer's create
does not implement)."""
MIB = 1024 * 1024


def _named_by_program(logical: str, inputs: State) -> bool:
    """The bridge's nameRequiresDeleteBeforeReplace: a `name` the program set (not the autonamer's)."""
    name = inputs.get("name")
    return bool(name) and not re.fullmatch(re.escape(logical) + r"-[0-9a-f]{7}", str(name))


def _autoname(logical: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
    if news.get("name"):
        return news
    kept = olds.get("name")
    name = kept if isinstance(kept, str) and kept else f"{logical}-{secrets.token_hex(4)[:7]}"
    return {**news, "name": name}


class DockerStandIn(StandInProvider):
    name = "docker"
    version = "5.2.0"

    def __init__(self) -> None:
        super().__init__()
        self.settings: State = {}
        self._client: docker.DockerClient | None = None
        named = lambda logical, inputs: _named_by_program(logical, inputs)  # noqa: E731
        self.types = {
            CONTAINER: ResourceType(
                CONTAINER,
                create=lambda inputs: docker_provider.container(self.client, inputs, None),
                computed=("networkDatas",),
                in_place=CONTAINER_STATE_ONLY | CONTAINER_API_UPDATES,
                update=self._update_container,
                read=lambda id_, state: state if docker_provider.container_exists(self.client, id_) else None,
                delete=lambda id_, state: docker_provider.delete_container(self.client, id_, state),
                delete_before_replace=lambda logical, inputs: True,  # DeleteBeforeReplace in resources.go
            ),
            NETWORK: ResourceType(
                NETWORK,
                create=lambda inputs: docker_provider.network(self.client, inputs, None),
                computed=("scope",),
                read=lambda id_, state: state if self._found(self.client.networks.get, id_) else None,
                delete=lambda id_, state: docker_provider.delete_network(self.client, id_),
                delete_before_replace=named,
            ),
            VOLUME: ResourceType(
                VOLUME,
                create=lambda inputs: docker_provider.volume(self.client, inputs, None),
                computed=("mountpoint",),
                read=lambda id_, state: state if self._found(self.client.volumes.get, id_) else None,
                delete=lambda id_, state: docker_provider.delete_volume(self.client, id_),
                delete_before_replace=named,
            ),
            REMOTE_IMAGE: ResourceType(
                REMOTE_IMAGE,
                create=lambda inputs: docker_provider.remote_image(self.client, inputs),
                computed=("imageId", "repoDigest"),
                in_place=frozenset({"keepLocally", "forceRemove"}),
                update=lambda id_, old, old_inputs, new: {k: old[k] for k in ("imageId", "repoDigest") if k in old},
                read=self._read_image,
                delete=lambda id_, state: docker_provider.delete_remote_image(self.client, state),
            ),
            swarm_provider.SERVICE: ResourceType(
                swarm_provider.SERVICE,
                create=lambda inputs: swarm_provider.create_service(self.client, inputs, None, inputs["name"]),
                replace_reasons=self._service_replace_reasons,
                update=lambda id_, old, old_inputs, new: {
                    k: v
                    for k, v in swarm_provider.update_service(self.client, id_, new, None, old["name"]).items()
                    if k != "name"
                },
                read=lambda id_, state: (
                    state if swarm_provider.exists(self.client, swarm_provider.SERVICE, id_) else None
                ),
                delete=lambda id_, state: swarm_provider.delete_service(self.client, id_, state),
                delete_before_replace=named,
                check=_autoname,
            ),
            swarm_provider.SERVICE_CONFIG: ResourceType(
                swarm_provider.SERVICE_CONFIG,
                create=lambda inputs: _without_name(
                    swarm_provider.service_config(self.client, inputs, None, inputs["name"])
                ),
                secret_outputs=("data", "dataRaw"),
                read=lambda id_, state: (
                    state if swarm_provider.exists(self.client, swarm_provider.SERVICE_CONFIG, id_) else None
                ),
                delete=lambda id_, state: swarm_provider.delete_config(self.client, id_),
                delete_before_replace=named,
                check=_autoname,
            ),
            swarm_provider.SECRET: ResourceType(
                swarm_provider.SECRET,
                create=lambda inputs: _without_name(swarm_provider.secret(self.client, inputs, None, inputs["name"])),
                secret_outputs=("data",),
                read=lambda id_, state: (
                    state if swarm_provider.exists(self.client, swarm_provider.SECRET, id_) else None
                ),
                delete=lambda id_, state: swarm_provider.delete_secret(self.client, id_),
                delete_before_replace=named,
                check=_autoname,
            ),
        }

    # ---- configuration

    def configure(self, settings: State) -> None:
        """The default provider's `docker:` config or an explicit provider's inputs (host, sshOpts, the TLS
        material, certPath); the engine is reached when first needed."""
        self.settings = docker_provider.provider_settings(settings)
        self._client = None

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = docker_provider.provider_client(self.settings)
        return self._client

    # ---- per type

    @staticmethod
    def _found(get: Any, object_id: str) -> bool:
        try:
            get(object_id)
        except NotFound:
            return False
        return True

    def _update_container(self, container_id: str, old: State, old_inputs: State, new: State) -> State:
        """resourceDockerContainerUpdate: one ContainerUpdate with restart, retries and memory when any of them
        changed; every other updatable input is only recorded."""
        if any(old_inputs.get(key) != new.get(key) for key in CONTAINER_API_UPDATES):
            swap = int(new.get("memorySwap", 0))
            self.client.api.update_container(
                container_id,
                restart_policy={
                    "Name": new.get("restart", "no"),
                    "MaximumRetryCount": int(new.get("maxRetryCount", 0)),
                },
                mem_limit=int(new.get("memory", 0)) * MIB,
                memswap_limit=swap * MIB if swap > 0 else swap,
            )
        return {"networkDatas": old.get("networkDatas", [])}

    def _read_image(self, image_id: str, state: State) -> State | None:
        """resourceDockerImageRead: the local image of that name, its id and digest now; gone when absent."""
        try:
            image = self.client.images.get(state["name"])
        except ImageNotFound:
            return None
        digests = image.attrs.get("RepoDigests") or []
        return {**state, "imageId": image.id, "repoDigest": digests[0] if digests else ""}

    @staticmethod
    def _service_replace_reasons(old: State, new: State) -> list[str]:
        swarm_provider.check_computed_kept(old, new, "docker Service")
        return swarm_provider.replacement_reasons(old, new)


def _without_name(outputs: dict[str, Any]) -> dict[str, Any]:
    """`name` is an input (set by Check): the outputs echo it already."""
    return {key: value for key, value in outputs.items() if key != "name"}


def main() -> None:
    with contextlib.suppress(KeyboardInterrupt):  # a plugin is ended by a signal
        serve(DockerStandIn())


if __name__ == "__main__":
    main()
