"""Where the stack runs: `dockerHost` (and its TLS or ssh settings), `engine` and `swarm`."""

from __future__ import annotations

import re
from enum import StrEnum

from pydantic import Field, SecretStr, StrictInt, field_validator, model_validator

from components.config.base import ConfigModel, check_encodable, check_printable, check_url

# A Swarm placement constraint as `docker service create --constraint` takes it: attribute, == or !=, value
# (spaces around the operator, nothing else: the whole value must match).
_CONSTRAINT = re.compile(
    r"(?P<attribute>node\.(?:id|hostname|role|platform\.os|platform\.arch|labels\.[A-Za-z0-9._-]+)"
    r"|engine\.labels\.[A-Za-z0-9._-]+) *(?P<operator>==|!=) *(?P<value>[A-Za-z0-9._-]+)"
)
# The constraints that name one node: its hostname or its ID.
_ONE_NODE_ATTRIBUTES = ("node.hostname", "node.id")
# The user of an ssh:// dockerHost: a POSIX user name.
_SSH_USER = re.compile(r"[A-Za-z_][A-Za-z0-9._-]{0,31}")
_PEM_CERT = "-----BEGIN CERTIFICATE-----"


class Engine(StrEnum):
    DOCKER = "docker"
    """Containers on one Docker host (the default)."""
    SWARM = "swarm"
    """Services on a Docker Swarm (the Docker host is a manager)."""


class DockerTlsSettings(ConfigModel):
    """Client TLS for a tcp:// dockerHost (the daemon's --tlsverify)."""

    ca_pem: str
    """The CA that signed the daemon's certificate."""
    cert_pem: str
    """This client's certificate."""
    key_pem: SecretStr
    """This client's private key (secret)."""

    @field_validator("ca_pem", "cert_pem")
    @classmethod
    def _pem(cls, value: str) -> str:
        if _PEM_CERT not in value:
            raise ValueError(f"must be a PEM certificate ({_PEM_CERT})")
        return value

    @field_validator("key_pem")
    @classmethod
    def _key(cls, value: SecretStr) -> SecretStr:
        if "PRIVATE KEY-----" not in check_encodable(value.get_secret_value()):
            raise ValueError("must be a PEM private key")
        return value


class SwarmSettings(ConfigModel):
    """engine: swarm only."""

    registry_constraints: tuple[str, ...] = ()
    """Placement constraints of the registry replicas (e.g. node.labels.registry==true)."""
    edge_constraints: tuple[str, ...] = ()
    """Where the proxy (ports published on that node, host mode) and the maintenance task run. Required, and it
    must pin one node (`node.hostname==<name>` or `node.id==<id>`): the proxy reads the maintenance task's
    write-pause flags from a volume on its own node, so the two must share it (see `check_edge_pins_one_node`)."""
    stop_grace_seconds: StrictInt = Field(default=10, ge=1, le=600)
    """How long a replaced task finishes its requests before it is killed."""

    @field_validator("registry_constraints", "edge_constraints")
    @classmethod
    def _constraints(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            if not _CONSTRAINT.fullmatch(value):
                raise ValueError(
                    f"{value!r} is not a placement constraint like 'node.role==manager' or 'node.labels.registry==true'"
                )
        return values


def check_edge_pins_one_node(constraints: tuple[str, ...]) -> None:
    """engine swarm: `swarm.edgeConstraints` pin exactly one node. The proxy and the maintenance task both run
    where they match, and the proxy learns that writes are paused for garbage collection from flag files on a
    volume of its own node: were they on two nodes (two managers match the old default, node.role==manager),
    garbage collection would run while pushes go on, and delete the blobs of images being pushed."""
    pins: dict[str, set[str]] = {}
    for constraint in constraints:
        match = _CONSTRAINT.fullmatch(constraint)
        if match and match["operator"] == "==" and match["attribute"] in _ONE_NODE_ATTRIBUTES:
            # Swarm compares node names and IDs without regard to case.
            pins.setdefault(match["attribute"], set()).add(match["value"].lower())
    if not pins:
        raise ValueError(
            "swarm.edgeConstraints must pin one node with engine 'swarm', e.g. [\"node.hostname==edge-1\"] or "
            '["node.id==<id>"]: the proxy and the maintenance task run where these match, and the proxy reads '
            "the maintenance task's write-pause flags from a volume on its own node; on two nodes (a Swarm with "
            "several managers) garbage collection would run with writes not paused and could delete the blobs "
            "of images being pushed"
        )
    for attribute, values in pins.items():
        if len(values) > 1:
            raise ValueError(
                f"swarm.edgeConstraints give {attribute}== more than one value: every constraint must hold, so "
                "no node matches; pin one node"
            )


def check_docker_host(value: str) -> str:
    """unix:///path, tcp://host:port or ssh://[user@]host[:port], the scheme in lower case. The messages never
    repeat the value: a wrong one may hold a password."""
    check_printable(value)
    match = re.fullmatch(r"(?P<scheme>[A-Za-z]+)://(?P<rest>[\x21-\x7e]*)", value)
    if match is None:
        raise ValueError("must be unix:///path, tcp://host:2376 or ssh://user@host, in ASCII without spaces")
    scheme, rest = match["scheme"].lower(), match["rest"]
    if scheme == "unix":
        if not re.fullmatch(r"(/[A-Za-z0-9._-]+)+", rest):
            raise ValueError("a unix socket needs an absolute path: unix:///var/run/docker.sock")
        return f"{scheme}://{rest}"
    if scheme not in ("tcp", "ssh"):
        raise ValueError("must be unix:///path, tcp://host:2376 or ssh://user@host")
    authority, _, path = rest.partition("/")
    if path or "?" in authority or "#" in authority:
        raise ValueError("must name a host only: no path, query or fragment")
    user, at, host_port = authority.rpartition("@")
    if at and scheme != "ssh":
        raise ValueError("a user@ is for ssh:// hosts only")
    if ":" in user:
        raise ValueError("no password in the URL: ssh uses keys (sshOpts, ssh-agent)")
    if at and not _SSH_USER.fullmatch(user):
        raise ValueError("the ssh user must be a user name (letters, digits, '.', '_', '-')")
    try:
        host = check_url(f"{scheme}://{host_port}", (scheme,))
    except ValueError:
        raise ValueError(
            "must name a host: a DNS name, an IPv4 address or an IPv6 address in [], with an optional :port"
        ) from None
    if scheme == "tcp" and not re.search(r":[0-9]+\Z", host):
        raise ValueError("tcp:// needs the daemon's port, e.g. tcp://host:2376")
    return f"{scheme}://{rest}"


class DockerHostSettings(ConfigModel):
    """`dockerHost`: the Docker engine (or Swarm manager) the stack is deployed to, when it is not the local one."""

    host: str
    """unix:///path, tcp://host:2376 (with tls) or ssh://user@host."""
    tls: DockerTlsSettings | None = None
    """Client certificate for tcp:// (required there: a daemon without TLS gives root to anyone who reaches it)."""
    ssh_opts: tuple[str, ...] = ()
    """Extra ssh options for ssh:// (e.g. ["-o", "StrictHostKeyChecking=yes"])."""

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        return check_docker_host(value)

    @field_validator("ssh_opts")
    @classmethod
    def _ssh_opts(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            check_printable(value)
        return values

    @model_validator(mode="after")
    def _coherent(self) -> DockerHostSettings:
        scheme = self.host.split("://", 1)[0]
        if scheme == "tcp" and self.tls is None:
            raise ValueError("a tcp:// host needs tls (caPem, certPem, keyPem): plain tcp gives root to anyone")
        if scheme != "tcp" and self.tls is not None:
            raise ValueError(f"tls is for tcp:// hosts, not {scheme}://")
        if scheme != "ssh" and self.ssh_opts:
            raise ValueError(f"sshOpts are for ssh:// hosts, not {scheme}://")
        return self
