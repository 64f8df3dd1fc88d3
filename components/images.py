"""What the upstream images imply, kept apart from config: pure functions of an image reference."""

from __future__ import annotations


def registry_config_path(image: str, configured: str | None) -> str:
    """Where a registry image reads its config.yml, unless `configured` says otherwise.

    registry:3 (and distribution/distribution:3, and the untagged `registry`, whose latest is 3.x) reads
    /etc/distribution/config.yml; registry:2 reads /etc/docker/registry/config.yml.
    """
    if configured:
        return configured
    if registry_major_version(image) >= 3:
        return "/etc/distribution/config.yml"
    return "/etc/docker/registry/config.yml"


def registry_major_version(image: str) -> int:
    """The registry's major version as its tag tells it: 3 for `registry:3...` and for an untagged or `latest`
    image (latest is 3.x), else 2. A digest alone says nothing: such a reference counts as its tag's."""
    reference = image.split("@", 1)[0]
    last = reference.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else "latest"
    return 3 if tag.startswith("3") or tag == "latest" else 2
