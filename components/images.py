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
    image (latest is 3.x), else 2. A digest pins the bytes but says nothing of the version, so `name:tag@digest`
    counts as its tag's; a digest without a tag (`registry@sha256:...`) is refused (ValueError): read as
    `latest`, a registry 2 image would get registry 3's config path and settings."""
    reference, _, digest = image.partition("@")
    last = reference.rsplit("/", 1)[-1]
    if digest and ":" not in last:
        raise ValueError(
            "names a digest without a tag: the tag tells which registry version (and config path) it is; write "
            "both, e.g. 'registry:2.8.3@sha256:<digest>'"
        )
    tag = last.split(":", 1)[1] if ":" in last else "latest"
    return 3 if tag.startswith("3") or tag == "latest" else 2
