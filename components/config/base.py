"""What every config block shares: the model base and the grammars of image references and host names."""

from __future__ import annotations

import ipaddress
import re

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

# RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens, 253 characters at most.
_DNS_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_DNS_NAME = re.compile(rf"^(?=.{{1,253}}$){_DNS_LABEL}(\.{_DNS_LABEL})*$")
# Docker image reference, after distribution's reference grammar: [host[:port]/]path[:tag][@digest].
_IMAGE_REF = re.compile(
    r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?(?::[0-9]+)?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
)


class ConfigModel(BaseModel):
    """camelCase keys as in stack config, unknown keys refused, immutable once loaded.

    Secret fields are typed `SecretStr` (or hold it, as `dict[str, SecretStr]`): error messages then never
    show what was given there, whatever its shape (see `masking.py`).
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_enum_values=False,
    )


def check_image(value: str) -> str:
    if not _IMAGE_REF.match(value):
        raise ValueError("must be a Docker image reference like 'registry:2.8.3' or 'host:5000/team/app:1.0'")
    return value


def check_dns_or_ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    name = value.lower()
    if not _DNS_NAME.match(name):
        raise ValueError(
            "must be a DNS name (letters, digits and inner hyphens in dot-separated labels of at most 63 "
            "characters, 253 in all) or an IP address"
        )
    return name


def check_printable(value: str) -> str:
    if not value.isprintable():
        raise ValueError("must be printable text without control characters or line breaks")
    return value
