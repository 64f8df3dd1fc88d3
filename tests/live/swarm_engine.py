"""A single-node Swarm on the engine under test, for the Swarm tests, and the engine left as it was found.

Leaving a Swarm has a side effect on Docker 20.10: containers that were running on user-defined networks before
`docker swarm leave --force` can no longer resolve each other's names through Docker's embedded DNS until they
are restarted (seen here: `getent hosts <alias>` answers before the init, during the Swarm, and no longer after
the leave). So the Swarm tests run after every other live test (tests/live/conftest.py orders them), and the
leave also removes the `docker_gwbridge` network the init made.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import docker
import pytest
from docker.errors import DockerException

GATEWAY_BRIDGE = "docker_gwbridge"
SWARM_TEST_MODULES = ("test_realizer_swarm.py", "test_swarm.py")


@contextlib.contextmanager
def single_node_swarm(client: docker.DockerClient) -> Iterator[None]:
    """The engine as a Swarm manager for the duration: made here when it is in no Swarm (and left again),
    used as it is when it already manages one."""
    swarm = client.info()["Swarm"]
    made = False
    if swarm["LocalNodeState"] == "inactive":
        had_bridge = bool(client.networks.list(names=[GATEWAY_BRIDGE]))
        client.swarm.init(advertise_addr="127.0.0.1", listen_addr="127.0.0.1:2377")
        made = True
    elif not swarm.get("ControlAvailable"):
        pytest.fail(f"the engine is in a swarm ({swarm['LocalNodeState']}) but not a manager: the test needs one")
    try:
        yield
    finally:
        if made:
            client.swarm.leave(force=True)
            if not had_bridge:
                for network in client.networks.list(names=[GATEWAY_BRIDGE]):
                    with contextlib.suppress(DockerException):
                        network.remove()
