"""Containers a test or the benchmark attaches to a stack's network from outside the program: an S3 store, an
upstream registry. They join the network while `up` runs (it exists from the start, the registries a few
seconds later), and leave it before the stack goes (attached, they would keep the network from being removed).
The S3 stand-in they attach is started here too."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import docker
import requests
from docker.errors import DockerException, NotFound

from harness.clients import wait_until
from harness.docker_provider import LIVE_STACK_LABEL


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


# The S3 stand-in (images/moto): moto's server on its port 5000.
S3_STORE_IMAGE = "private-registry-test/moto:5"
S3_STORE_PORT = 5000


def start_s3_store(
    client: docker.DockerClient, name: str, label: str, port: int, buckets: tuple[str, ...]
) -> docker.models.containers.Container:
    """moto's S3 server as container `name` (labelled for leftover removal), published on 127.0.0.1:`port`,
    once it answers, with `buckets` made (moto takes an unsigned bucket PUT)."""
    store = client.containers.run(
        S3_STORE_IMAGE,
        name=name,
        detach=True,
        labels={LIVE_STACK_LABEL: label},
        ports={f"{S3_STORE_PORT}/tcp": ("127.0.0.1", port)},
    )

    def answers() -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{port}/", timeout=5).ok
        except requests.RequestException:
            return False

    wait_until(answers, 60, f"moto answers on 127.0.0.1:{port}")
    for bucket in buckets:
        requests.put(f"http://127.0.0.1:{port}/{bucket}", timeout=30).raise_for_status()
    return store
