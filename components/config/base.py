"""What every config block shares: the model base and the grammars of image references, host names and URLs.

Every pattern here is applied with `re.fullmatch`: with `re.match`, a `$` also matches before a final `\n`,
and a value such as `registry.example.com\n` would pass and break (or add to) a rendered file.
"""

from __future__ import annotations

import ipaddress
import re

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

# RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens, 253 characters at most.
_DNS_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_DNS_NAME = re.compile(rf"(?=.{{1,253}}\Z){_DNS_LABEL}(?:\.{_DNS_LABEL})*")
# Docker image reference, after distribution's reference grammar: [host[:port]/]path[:tag][@digest].
_IMAGE_REF = re.compile(
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?(?::[0-9]+)?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?"
)
# scheme://host[:port][/], taken apart here rather than by urlsplit, which drops tabs and line breaks
# silently (the raw value would still carry them into config files) and takes any character for a host.
_URL = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(?P<port>[0-9]{1,5}))?/?"
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
    if not _IMAGE_REF.fullmatch(value):
        raise ValueError("must be a Docker image reference like 'registry:2.8.3' or 'host:5000/team/app:1.0'")
    return value


def parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An IP address in its one canonical spelling: IPv6 compressed, an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`)
    as the IPv4 address it stands for. Raises ValueError for anything else, and for an IPv6 zone (`fe80::1%eth0`):
    a zone names an interface of one host, means nothing in a certificate or a URL, and `ipaddress` takes any
    text after the `%`."""
    address = ipaddress.ip_address(value)
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id is not None:
            raise ValueError("an IPv6 zone (%...) is not allowed")
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
    return address


def check_ip(value: str) -> str:
    """An IP address a client can reach the registry at (a certificate SAN, a host name): normalised, neither
    unspecified (0.0.0.0, ::) nor multicast."""
    try:
        address = parse_ip(value)
    except ValueError:
        raise ValueError("must be an IPv4 or IPv6 address (no IPv6 zone)") from None
    if address.is_unspecified or address.is_multicast:
        raise ValueError("must be an address clients can connect to (not unspecified or multicast)")
    return str(address)


def is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def check_dns_or_ip(value: str) -> str:
    """A DNS name (lowercased) or an IP address (normalised, see `check_ip`)."""
    if is_ip(value):
        return check_ip(value)
    name = value.lower()
    if not _DNS_NAME.fullmatch(name) or name.rsplit(".", 1)[-1].isdigit():
        raise ValueError(
            "must be a DNS name (letters, digits and inner hyphens in dot-separated labels of at most 63 "
            "characters, 253 in all, the last not all digits) or an IP address"
        )
    return name


def check_url(value: str, schemes: tuple[str, ...]) -> str:
    """`scheme://host[:port]` (a trailing `/` is dropped), host a DNS name, an IPv4 address or a bracketed IPv6
    address, normalised to lower case. Raises ValueError with a reason that reads after "it" or the key ("is
    not ...", "has ..."), never the URL: a wrong one may hold a password."""
    match = _URL.fullmatch(value)
    allowed = " or ".join(f"{scheme}://host[:port]" for scheme in schemes)
    if match is None:
        raise ValueError(f"holds more than {allowed} (a path, query, fragment, user@, space or control character)")
    if match["scheme"].lower() not in schemes:
        raise ValueError(f"is not {allowed}")
    scheme, host = match["scheme"].lower(), match["host"]
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError("has no IPv6 address in []") from None
        address = check_ip(host[1:-1])
        host = f"[{address}]" if ":" in address else address  # an IPv4-mapped address: the IPv4 address
    else:
        try:
            host = check_dns_or_ip(host)
        except ValueError as error:
            raise ValueError(f"has a host that {error.args[0].replace('must be', 'is not')}") from None
    port = match["port"]
    if port is not None and not 1 <= int(port) <= 65535:
        raise ValueError("has a port outside 1-65535")
    return f"{scheme}://{host}" + (f":{int(port)}" if port is not None else "")


def check_printable(value: str) -> str:
    """Text without control characters, line or paragraph separators, format characters (bidi overrides)
    or lone surrogates: `str.isprintable` refuses every character of Unicode's C and Z categories but space."""
    if not value.isprintable():
        raise ValueError("must be printable text without control characters or line breaks")
    return value


def check_encodable(value: str) -> str:
    """Text every file can hold: a lone surrogate (JSON's "\\ud800" reads as one) has no UTF-8 form, so a
    rendering would fail, or another program read something else. The message never shows the value."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be text UTF-8 can encode (it holds a lone surrogate, e.g. from \\ud800)") from None
    return value


def check_token(value: str, what: str, *, max_length: int = 255) -> str:
    """Printable ASCII without spaces: an identifier handed to another program (an access key, a user name)."""
    if not 1 <= len(value) <= max_length or not re.fullmatch(r"[\x21-\x7e]+", value):
        raise ValueError(f"must be {what}: 1-{max_length} printable ASCII characters, no spaces")
    return value
