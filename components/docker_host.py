"""The explicit Docker provider for a stack that deploys to another engine (`dockerHost`)."""

from __future__ import annotations

import shlex

import pulumi
import pulumi_docker as docker

from components.config import DockerHostSettings


def docker_provider(name: str, settings: DockerHostSettings) -> docker.Provider:
    """A provider for `settings.host`: client TLS for tcp:// (the key as a secret), ssh options for ssh://.

    Only stacks that set dockerHost get one: moving existing resources from the default provider to an explicit
    one would make Pulumi replace them all."""
    tls = settings.tls
    return docker.Provider(
        name,
        host=settings.host,
        ssh_opts=list(settings.ssh_opts) or None,
        ca_material=tls.ca_pem if tls is not None else None,
        cert_material=tls.cert_pem if tls is not None else None,
        key_material=pulumi.Output.secret(tls.key_pem.get_secret_value()) if tls is not None else None,
    )


def docker_cli(settings: DockerHostSettings | None) -> str:
    """The docker command an operator runs to reach the stack's engine, as outputs such as gcRunCommand spell it:
    `docker` for the local engine; with dockerHost `docker --host <host>`, and `--tlsverify` for tcp:// (the
    client certificate, key and CA then come from DOCKER_CERT_PATH, ~/.docker by default, as the docker CLI
    reads them)."""
    if settings is None:
        return "docker"
    tls = " --tlsverify" if settings.host.startswith("tcp://") else ""
    return f"docker --host {shlex.quote(settings.host)}{tls}"
