"""Containers a test or the benchmark attaches to a stack's network from outside the program: an S3 store, an
upstream registry. They join the network while `up` runs (it exists from the start, the registries a few
seconds later), and leave it before the stack goes (attached, they would keep the network from being removed)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import docker
from docker.errors import DockerException, NotFound


def join_when_the_network_exists(
    client: docker.DockerClient,
    container: docker.models.containers.Container,
    network: str,
    aliases: list[str],
    stop: threading.Event,
    seconds: float = 300,
) -> None:
    """Poll for `network` (bounded) and connect `container` to it with `aliases` as soon as it appears."""
    deadline = time.monotonic() + seconds
    while not stop.is_set() and time.monotonic() < deadline:
        found = client.networks.list(names=[network])
        if found:
            found[0].connect(container, aliases=aliases)
            return
        time.sleep(0.1)


@contextlib.contextmanager
def joining(
    client: docker.DockerClient, container: docker.models.containers.Container, network: str, aliases: list[str]
) -> Iterator[None]:
    """Join `network` in the background for the duration of the block (e.g. a `realizer.up`)."""
    stop = threading.Event()
    joiner = threading.Thread(target=join_when_the_network_exists, args=(client, container, network, aliases, stop))
    joiner.start()
    try:
        yield
    finally:
        stop.set()
        joiner.join(timeout=30)


def remove_attached(client: docker.DockerClient, name: str) -> None:
    """Disconnect the container `name` from every network but the default one, then remove it (if it exists)."""
    with contextlib.suppress(NotFound):
        container = client.containers.get(name)
        for network in container.attrs["NetworkSettings"]["Networks"]:
            if network != "bridge":
                with contextlib.suppress(DockerException):
                    client.networks.get(network).disconnect(container, force=True)
        container.remove(force=True)
