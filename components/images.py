"""What the upstream images imply, kept apart from config: pure functions of an image reference."""

from __future__ import annotations


def registry_config_path(image: str, configured: str | None) -> str:
    """Where a registry image reads its config.yml, unless `configured` says otherwise.

    registry:3 (and distribution/distribution:3, and the untagged `registry`, whose latest is 3.x) reads
    /etc/distribution/config.yml; registry:2 reads /etc/docker/registry/config.yml.
    """
    if configured:
        return configured
    reference = image.split("@", 1)[0]
    last = reference.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else "latest"
    if tag.startswith("3") or tag == "latest":
        return "/etc/distribution/config.yml"
    return "/etc/docker/registry/config.yml"
