"""STAND-IN for pulumi-random 4.21.4's plugin (`pulumi-resource-random`), on `harness/random_provider.py`.

A RandomPassword lives in the state only; every input replaces it (RequiresReplace in terraform-provider-random);
`result` and `bcryptHash` are secrets.
"""

from __future__ import annotations

import contextlib

from harness import random_provider
from harness.plugins.server import ResourceType, StandInProvider, serve

RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"


class RandomStandIn(StandInProvider):
    name = "random"
    version = "4.21.4"

    def __init__(self) -> None:
        super().__init__()
        self.types = {
            RANDOM_PASSWORD: ResourceType(
                RANDOM_PASSWORD,
                create=random_provider.random_password,
                computed=random_provider.SECRET_OUTPUTS,
                secret_outputs=random_provider.SECRET_OUTPUTS,
            )
        }


def main() -> None:
    with contextlib.suppress(KeyboardInterrupt):  # a plugin is ended by a signal
        serve(RandomStandIn())


if __name__ == "__main__":
    main()
