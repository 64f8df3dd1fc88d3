"""The rules of the private-registry policy pack: what a reviewer of this stack checks in a `pulumi preview`.

Each policy reads only what the engine hands an analyzer: a resource's type, name and properties (inputs in
`Analyze`, the planned outputs in `AnalyzeStack`) and a few resource options. The analyzer protocol carries
no `retainOnDelete` (see `registry-data-on-named-volume` below and docs/policy.md).

The pack runs in its own virtualenv, without the program's code, so the few facts it shares with the program
(paths, ports, labels, limits) are repeated here; tests/unit/test_policy_pack.py checks that they agree.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

PACK_NAME = "private-registry"

CONTAINER = "docker:index/container:Container"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
VOLUME = "docker:index/volume:Volume"
LOCALLY_SIGNED_CERT = "tls:index/locallySignedCert:LocallySignedCert"

# Facts of the program (components/), repeated because the pack cannot import it.
COMPONENT_LABEL = "org.private-registry.component"
"""Docker label naming each container's role: registry, ui or proxy (components/docker_common.py)."""
STORAGE_LABEL = "org.private-registry.storage"
"""Set on registry containers whose data is not on a volume: `s3` (components/registry.py)."""
REGISTRY_PORT = 5000
"""The registry's own plain-HTTP port inside its container (components/rendering.py)."""
HTPASSWD_PATH = "/auth/htpasswd"
"""Uploaded into the registry container when, and only when, the stack has accounts (components/registry.py)."""
REGISTRY_DATA_DIR = "/var/lib/registry"
"""Where the registry keeps blobs and manifests (components/rendering.py)."""
NGINX_CONF_DIR = "/etc/nginx/"
NGINX_CAPABILITIES = ("CHOWN", "SETGID", "SETUID", "NET_BIND_SERVICE")
"""What the proxy adds back after dropping ALL (components/docker_common.py)."""
MODERN_MAX_CERT_DAYS = 90
"""The program warns about a modern stack's certificate beyond this (components/config/tls.py)."""
INTERMEDIATE_MAX_CERT_DAYS = 366
"""Mozilla's Server Side TLS guidelines: certificates live 90 days (recommended) to 366 days at most."""

# Mozilla Server Side TLS 5.7, "intermediate": TLS 1.2 suites (TLS 1.3 suites are not set with ssl_ciphers).
MOZILLA_INTERMEDIATE_CIPHERS = frozenset(
    {
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "DHE-RSA-AES128-GCM-SHA256",
        "DHE-RSA-AES256-GCM-SHA384",
        "DHE-RSA-CHACHA20-POLY1305",
    }
)
PROFILE_PROTOCOLS = {"modern": frozenset({"TLSv1.3"}), "intermediate": frozenset({"TLSv1.2", "TLSv1.3"})}

POLICY_CONFIG_HINT = "pulumi preview --policy-pack policy --policy-pack-config <file>.json"


# ---- policy configuration ----


class PolicyConfigError(ValueError):
    """A policy configuration value that does not fit the policy's schema."""


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, Sequence):
        return "an array"
    return type(value).__name__


def _check_value(where: str, schema: Mapping[str, Any], value: Any) -> Any:
    """The value, checked against the subset of JSON Schema the pack's schemas use (type, items, enum,
    minimum). Numbers arrive as floats from the engine's protobuf Struct: a whole float is an integer."""
    kind = schema["type"]
    wrong = PolicyConfigError(f"{where} must be {_describe(schema)}, got {value!r} ({_json_kind(value)})")
    if kind == "boolean":
        if not isinstance(value, bool):
            raise wrong
        return value
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
            raise wrong
        if "minimum" in schema and value < schema["minimum"]:
            raise wrong
        return int(value)
    if kind == "string":
        if not isinstance(value, str) or ("enum" in schema and value not in schema["enum"]):
            raise wrong
        return value
    if kind == "array":
        if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence):
            raise wrong
        return [_check_value(f"{where}[{index}]", schema["items"], item) for index, item in enumerate(value)]
    raise AssertionError(f"schema type {kind!r} is not implemented")


def _describe(schema: Mapping[str, Any]) -> str:
    kind = schema["type"]
    if kind == "array":
        return f"an array of {_describe(schema['items']).removeprefix('a ').removeprefix('an ')}s"
    if "enum" in schema:
        return "one of " + ", ".join(repr(choice) for choice in schema["enum"])
    if kind == "integer" and "minimum" in schema:
        return f"an integer >= {schema['minimum']}"
    return {"boolean": "a boolean", "integer": "an integer", "string": "a string"}[kind]


def checked_config(policy: str, schema: PolicyConfigSchema, given: Mapping[str, Any]) -> dict[str, Any]:
    """The policy's configuration with defaults filled in, or a `PolicyConfigError` naming the policy, the key,
    the value and what is allowed.

    The Pulumi CLI validates `--policy-pack-config` against the schema before it configures the pack; this
    check holds the pack to the same schema whatever configured it, so a wrong value is never half-used.
    """
    values: dict[str, Any] = {}
    for key, value in given.items():
        if key == "enforcementLevel":
            continue
        if key not in schema.properties:
            known = ", ".join(sorted(schema.properties))
            raise PolicyConfigError(f"policy {policy!r}: unknown config key {key!r} (known: {known})")
        values[key] = _check_value(f"policy {policy!r}: config {key!r}", schema.properties[key], value)
    for key, property_schema in schema.properties.items():
        values.setdefault(key, copy.deepcopy(property_schema["default"]))
    return values


TRUSTED_ADDRESSES = {
    "type": "array",
    "items": {"type": "string"},
    "default": [],
    "description": "Host addresses or CIDR ranges (besides loopback) where a published port counts as private, "
    'e.g. ["192.168.56.0/24"] for a host-only lab network.',
}


def _trusted_networks(policy: str, config: Mapping[str, Any]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    networks = []
    for entry in config["trustedAddresses"]:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise PolicyConfigError(
                f"policy {policy!r}: config 'trustedAddresses' entry {entry!r} is not an IP address or CIDR range"
            ) from None
    return networks


# ---- what the resources say ----


def _items(value: Any) -> Iterator[Any]:
    """The elements of a list property; nothing when it is absent or null."""
    if value is None:
        return
    yield from value


def _label(props: Mapping[str, Any], key: str) -> str | None:
    for label in _items(props.get("labels")):
        if label.get("label") == key:
            value = label.get("value")
            return str(value) if value is not None else None
    return None


def _role(props: Mapping[str, Any]) -> str | None:
    """The container's role in the stack (registry, ui, proxy), from the label the program sets."""
    return _label(props, COMPONENT_LABEL)


def _upload_files(props: Mapping[str, Any]) -> list[str]:
    """The paths uploaded into a container. Only `file` is read: the contents (keys, passwords, computed
    config) may be secret or unknown during preview."""
    return [str(upload.get("file")) for upload in _items(props.get("uploads"))]


def _upload_content(props: Mapping[str, Any], path: str) -> str:
    for upload in _items(props.get("uploads")):
        if upload.get("file") == path:
            return str(upload.get("content") or "")
    raise KeyError(path)


def _nginx_sites(props: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(path, text) of each nginx config file uploaded into a container."""
    return [
        (path, _upload_content(props, path))
        for path in _upload_files(props)
        if path.startswith(NGINX_CONF_DIR) and path.endswith(".conf")
    ]


def _published_ports(props: Mapping[str, Any]) -> list[tuple[int, int, str]]:
    """(internal, external, host address) of each published port; Docker binds an empty address everywhere."""
    published = []
    for port in _items(props.get("ports")):
        external = port.get("external")
        if external is None or int(external) == 0:
            continue
        published.append((int(port.get("internal")), int(external), str(port.get("ip") or "0.0.0.0")))
    return published


def _is_private(address: str, trusted: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False  # not an address Docker would take: treat it as public rather than guess
    return ip.is_loopback or any(ip in network for network in trusted)


def _directives(nginx_conf: str, name: str) -> list[list[str]]:
    """The arguments of every `name ...;` directive in an nginx config, comments removed."""
    text = "\n".join(line.split("#", 1)[0] for line in nginx_conf.splitlines())
    return [match.group(1).split() for match in re.finditer(rf"(?:^|[;{{}}\s]){name}\s+([^;{{}}]*);", text)]


def _serves_tls(nginx_conf: str) -> bool:
    return any("ssl" in args for args in _directives(nginx_conf, "listen"))


def _tls_profile(resources: Sequence[PolicyResource]) -> str:
    """The stack's TLS profile as nginx is configured: `modern` when every TLS site speaks TLS 1.3 only."""
    protocols: set[str] = set()
    for resource in resources:
        if resource.resource_type != CONTAINER:
            continue
        for _, text in _nginx_sites(resource.props):
            for args in _directives(text, "ssl_protocols"):
                protocols.update(args)
    return "modern" if protocols and protocols <= PROFILE_PROTOCOLS["modern"] else "intermediate"


# ---- the policies ----

PORTS_WITHOUT_ACCOUNTS = "published-ports-without-accounts"
PORTS_WITHOUT_ACCOUNTS_SCHEMA = PolicyConfigSchema(properties={"trustedAddresses": TRUSTED_ADDRESSES})


def _ports_without_accounts(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    config = checked_config(PORTS_WITHOUT_ACCOUNTS, PORTS_WITHOUT_ACCOUNTS_SCHEMA, args.get_config())
    trusted = _trusted_networks(PORTS_WITHOUT_ACCOUNTS, config)
    containers = [r for r in args.resources if r.resource_type == CONTAINER]
    registries = [r for r in containers if _role(r.props) == "registry"]
    if not registries:
        args.not_applicable("no registry container (label org.private-registry.component=registry) in this stack")
    if all(HTPASSWD_PATH in _upload_files(r.props) for r in registries):
        return
    for container in containers:
        for _, external, address in _published_ports(container.props):
            if _is_private(address, trusted):
                continue
            report_violation(
                f"{container.name} publishes port {external} on {address} and the registry has no accounts "
                f"(nothing uploaded to {HTPASSWD_PATH}): anyone who reaches {address} can push, pull and delete. "
                "Add accounts: pulumi config set --secret --path 'private-registry:auth.users.<name>' <password>. "
                "Or keep the ports on this host: pulumi config set private-registry:bindAddress 127.0.0.1.",
                container.urn,
            )


PLAINTEXT_PORTS = "registry-or-ui-port-without-tls"
PLAINTEXT_PORTS_SCHEMA = PolicyConfigSchema(properties={"trustedAddresses": TRUSTED_ADDRESSES})


def _plaintext_ports(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    config = checked_config(PLAINTEXT_PORTS, PLAINTEXT_PORTS_SCHEMA, args.get_config())
    trusted = _trusted_networks(PLAINTEXT_PORTS, config)
    role = _role(args.props)
    for internal, external, address in _published_ports(args.props):
        if _is_private(address, trusted):
            continue
        if role == "ui":
            report_violation(
                f"{args.name} publishes the UI's own port {internal} on {address}:{external}, plain HTTP without "
                "the TLS proxy. Reach the UI through the proxy (the uiUrl output) and publish none: "
                "pulumi config set private-registry:uiPort 0.",
                None,
            )
        elif role == "registry" or internal == REGISTRY_PORT:
            report_violation(
                f"{args.name} publishes the registry API's plain-HTTP port {internal} on {address}:{external}, "
                "without TLS: images and logins cross the network in clear. Use registryUrl (HTTPS) and publish "
                "none: pulumi config set private-registry:registryPort 0 (or bindAddress 127.0.0.1 for a local "
                "check).",
                None,
            )


UNPINNED_IMAGES = "images-pinned"
UNPINNED_IMAGES_SCHEMA = PolicyConfigSchema(
    properties={
        "requireDigest": {
            "type": "boolean",
            "default": False,
            "description": "Accept only images pinned by digest (name:tag@sha256:...), not by tag alone.",
        }
    }
)
# Which stack setting chooses each image, by the RemoteImage's name (components/: <component>-image).
IMAGE_SETTINGS = {"distribution": "registry.image", "ui": "ui.image", "proxy": "proxy.image"}


def image_pin(reference: str) -> tuple[str | None, str | None]:
    """(tag, digest) of an image reference; a registry host's `:port` is not a tag."""
    name, _, digest = reference.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = last.partition(":")[2] if ":" in last else None
    return tag or None, digest or None


def _image_setting(resource_name: str) -> str:
    role = resource_name.removesuffix("-image").rsplit("-", 1)[-1]
    return IMAGE_SETTINGS.get(role, "<the setting that chooses this image>")


def _unpinned_images(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    config = checked_config(UNPINNED_IMAGES, UNPINNED_IMAGES_SCHEMA, args.get_config())
    reference = str(args.props.get("name") or "")
    tag, digest = image_pin(reference)
    setting = _image_setting(args.name)
    repository = reference.partition("@")[0].rsplit(":", 1)[0] if tag else reference.partition("@")[0]
    if digest:
        return
    if config["requireDigest"]:
        report_violation(
            f"{args.name} uses {reference!r}, pinned by tag only, and this pack requires digests. Set "
            f"private-registry:{setting} to {reference}@sha256:<digest>, keeping the tag, which tells the program "
            f"the image's version (docker buildx imagetools inspect {reference} shows the digest).",
            None,
        )
    elif tag is None or tag == "latest":
        report_violation(
            f"{args.name} uses {reference!r}, which is whatever {repository} means on the day of the next "
            f"`pulumi up`: a preview cannot show what changes. Pin a version: pulumi config set --path "
            f"'private-registry:{setting}' {repository}:<version> (or {repository}:<version>@sha256:<digest>).",
            None,
        )


TLS_PROFILE = "tls-profile-intermediate-or-better"
TLS_PROFILE_SCHEMA = PolicyConfigSchema(
    properties={
        "minimumProfile": {
            "type": "string",
            "enum": ["intermediate", "modern"],
            "default": "intermediate",
            "description": "The weakest Mozilla Server Side TLS profile a TLS site may speak.",
        }
    }
)


def _tls_profile_policy(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    config = checked_config(TLS_PROFILE, TLS_PROFILE_SCHEMA, args.get_config())
    minimum = config["minimumProfile"]
    allowed = PROFILE_PROTOCOLS[minimum]
    fix = f"pulumi config set --path 'private-registry:tls.profile' {minimum}"
    for path, text in _nginx_sites(args.props):
        if not _serves_tls(text):
            continue
        declared = _directives(text, "ssl_protocols")
        if not declared:
            report_violation(
                f"{path} in {args.name} serves TLS without ssl_protocols, so nginx's version decides (TLS 1.0 "
                f"and 1.1 before nginx 1.23.4). Render the site from config_templates/nginx-registry.conf.j2 "
                f"and set the profile: {fix}.",
                None,
            )
            continue
        protocols = {protocol for args_ in declared for protocol in args_}
        below = sorted(protocols - allowed)
        if below:
            report_violation(
                f"{path} in {args.name} accepts {' '.join(below)}, below Mozilla's {minimum} profile "
                f"({' and '.join(sorted(allowed))} only). Set the profile: {fix}.",
                None,
            )
        if "TLSv1.2" in protocols:
            ciphers = [c for args_ in _directives(text, "ssl_ciphers") for c in ":".join(args_).split(":") if c]
            weak = sorted(set(ciphers) - MOZILLA_INTERMEDIATE_CIPHERS)
            if not ciphers or weak:
                if ciphers:
                    what = f"TLS 1.2 ciphers outside Mozilla's intermediate list: {':'.join(weak)}"
                else:
                    what = "TLS 1.2 without ssl_ciphers (nginx's default, HIGH:!aNULL:!MD5, has CBC and SHA-1 suites)"
                report_violation(f"{path} in {args.name} allows {what}. Set the profile: {fix}.", None)


CERT_LIFETIME = "certificate-lifetime-within-profile"
CERT_LIFETIME_SCHEMA = PolicyConfigSchema(
    properties={
        "modernMaxDays": {
            "type": "integer",
            "minimum": 1,
            "default": MODERN_MAX_CERT_DAYS,
            "description": "Longest server certificate lifetime, in days, on a modern (TLS 1.3 only) stack.",
        },
        "intermediateMaxDays": {
            "type": "integer",
            "minimum": 1,
            "default": INTERMEDIATE_MAX_CERT_DAYS,
            "description": "Longest server certificate lifetime, in days, on an intermediate stack.",
        },
    }
)


def _cert_lifetime(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    config = checked_config(CERT_LIFETIME, CERT_LIFETIME_SCHEMA, args.get_config())
    profile = _tls_profile(args.resources)
    limit = config[f"{profile}MaxDays"]
    for resource in args.resources:
        if resource.resource_type != LOCALLY_SIGNED_CERT:
            continue
        hours = resource.props.get("validityPeriodHours")
        if hours is None:
            continue
        days = float(hours) / 24
        if days > limit:
            report_violation(
                f"{resource.name} is valid {days:g} days; the stack's TLS profile ({profile}) allows {limit}. "
                f"Shorten it: pulumi config set --path 'private-registry:tls.certValidityDays' {limit}, and renew "
                "with `pulumi up --refresh` inside tls.earlyRenewalDays (docs/operations.md).",
                resource.urn,
            )


HARDENING = "containers-hardened"
HARDENING_SCHEMA = PolicyConfigSchema(
    properties={
        "allowedCapabilities": {
            "type": "array",
            "items": {"type": "string"},
            "default": list(NGINX_CAPABILITIES),
            "description": "Capabilities a container may add back after dropping ALL.",
        }
    }
)


def _capability(name: Any) -> str:
    return str(name).upper().removeprefix("CAP_")


def _hardening(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    config = checked_config(HARDENING, HARDENING_SCHEMA, args.get_config())
    allowed = {_capability(name) for name in config["allowedCapabilities"]}
    fix = "declare it with hardened_container (components/docker_common.py), as every component does"
    props = args.props
    capabilities = props.get("capabilities") or {}
    drops = {_capability(name) for name in _items(capabilities.get("drops"))}
    adds = {_capability(name) for name in _items(capabilities.get("adds"))}
    if "ALL" not in drops:
        report_violation(
            f"{args.name} keeps Docker's default capabilities (drops: {sorted(drops) or 'none'}): drop ALL and "
            f"add back only what it needs; {fix}.",
            None,
        )
    extra = sorted(adds - allowed)
    if extra:
        report_violation(
            f"{args.name} adds capabilities {', '.join(extra)}, beyond {', '.join(sorted(allowed)) or 'none'}. "
            "Remove them from its Hardening, or allow them on purpose in the pack's allowedCapabilities config.",
            None,
        )
    memory = props.get("memory")
    if not memory or int(memory) <= 0:
        report_violation(
            f"{args.name} has no memory limit: one leak can take the whole Docker host. Give its Hardening a "
            f"memory_mib (swap is limited to the same); {fix}.",
            None,
        )
    if props.get("privileged"):
        report_violation(f"{args.name} runs privileged: remove privileged=True; {fix}.", None)
    if "no-new-privileges:true" not in [str(option) for option in _items(props.get("securityOpts"))]:
        report_violation(
            f"{args.name} lets its processes gain privileges (setuid binaries): set security_opts "
            f'["no-new-privileges:true"]; {fix}.',
            None,
        )


DATA_VOLUME = "registry-data-on-named-volume"


def _data_volume(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    registries = [
        r
        for r in args.resources
        if r.resource_type == CONTAINER and _role(r.props) == "registry" and _label(r.props, STORAGE_LABEL) is None
    ]
    if not registries:
        args.not_applicable(
            "no registry container keeping its data on the Docker host (label org.private-registry.component="
            "registry, without org.private-registry.storage: s3 keeps it in a bucket) in this stack"
        )
    declared = {str(r.props.get("name")) for r in args.resources if r.resource_type == VOLUME}
    for registry in registries:
        mounts = [v for v in _items(registry.props.get("volumes")) if v.get("containerPath") == REGISTRY_DATA_DIR]
        if any(mount.get("volumeName") in declared for mount in mounts):
            continue
        where = (
            f"mounts {', '.join(str(m.get('volumeName') or m.get('hostPath') or 'an anonymous volume') for m in mounts)}"
            if mounts
            else "mounts nothing"
        )
        report_violation(
            f"{registry.name} {where} at {REGISTRY_DATA_DIR}, not a volume this stack declares: a replaced "
            "container would start empty. Mount the stack's docker.Volume there, declared with retain_on_delete "
            "(components/registry.py, `<name>-data`).",
            registry.urn,
        )


def _only(resource_type: str, validate: ResourceValidation) -> ResourceValidation:
    """A resource validation that looks at resources of one type and lets every other pass."""

    def validate_one(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if args.resource_type == resource_type:
            validate(args, report_violation)

    return validate_one


POLICIES: list[ResourceValidationPolicy | StackValidationPolicy] = [
    StackValidationPolicy(
        name=PORTS_WITHOUT_ACCOUNTS,
        description="Ports published beyond loopback need registry accounts (auth.users).",
        enforcement_level=EnforcementLevel.MANDATORY,
        validate=_ports_without_accounts,
        config_schema=PORTS_WITHOUT_ACCOUNTS_SCHEMA,
    ),
    ResourceValidationPolicy(
        name=PLAINTEXT_PORTS,
        description="The registry's and the UI's own plain-HTTP ports (registryPort, uiPort) stay on loopback.",
        enforcement_level=EnforcementLevel.MANDATORY,
        validate=_only(CONTAINER, _plaintext_ports),
        config_schema=PLAINTEXT_PORTS_SCHEMA,
    ),
    ResourceValidationPolicy(
        name=UNPINNED_IMAGES,
        description="Images are pinned to a version tag or a digest, never latest or no tag.",
        enforcement_level=EnforcementLevel.MANDATORY,
        validate=_only(REMOTE_IMAGE, _unpinned_images),
        config_schema=UNPINNED_IMAGES_SCHEMA,
    ),
    ResourceValidationPolicy(
        name=TLS_PROFILE,
        description="nginx speaks Mozilla's intermediate TLS profile or stricter.",
        enforcement_level=EnforcementLevel.MANDATORY,
        validate=_only(CONTAINER, _tls_profile_policy),
        config_schema=TLS_PROFILE_SCHEMA,
    ),
    StackValidationPolicy(
        name=CERT_LIFETIME,
        description="The server certificate lives no longer than the stack's TLS profile allows.",
        # Advisory, as in the program: a longer lifetime is allowed there and draws a warning.
        enforcement_level=EnforcementLevel.ADVISORY,
        validate=_cert_lifetime,
        config_schema=CERT_LIFETIME_SCHEMA,
    ),
    ResourceValidationPolicy(
        name=HARDENING,
        description="Containers drop ALL capabilities, have a memory limit, no-new-privileges and no privileged mode.",
        enforcement_level=EnforcementLevel.MANDATORY,
        validate=_only(CONTAINER, _hardening),
        config_schema=HARDENING_SCHEMA,
    ),
    StackValidationPolicy(
        name=DATA_VOLUME,
        description="The registry keeps its data on a named volume the stack declares.",
        enforcement_level=EnforcementLevel.MANDATORY,
        validate=_data_volume,
    ),
]
