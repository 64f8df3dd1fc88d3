"""Image knowledge: which config path a registry image reads."""

from __future__ import annotations

import pytest

from components.images import registry_config_path

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("image", "path"),
    [
        ("registry:2.8.3", "/etc/docker/registry/config.yml"),
        ("registry:2", "/etc/docker/registry/config.yml"),
        ("docker.io/library/registry:3.0.0", "/etc/distribution/config.yml"),
        ("registry", "/etc/distribution/config.yml"),  # latest is 3.x now
        ("localhost:5000/mirror/registry:2.8.2", "/etc/docker/registry/config.yml"),
        (f"registry:2.8.3@sha256:{'a' * 64}", "/etc/docker/registry/config.yml"),
        (f"registry:3.0.0@sha256:{'a' * 64}", "/etc/distribution/config.yml"),
    ],
)
def test_registry_config_path_follows_the_image(image: str, path: str) -> None:
    assert registry_config_path(image, None) == path


def test_registry_config_path_can_be_set() -> None:
    assert registry_config_path("registry:2.8.3", "/srv/registry.yml") == "/srv/registry.yml"


@pytest.mark.parametrize("image", [f"registry@sha256:{'a' * 64}", f"localhost:5000/team/registry@sha256:{'b' * 64}"])
def test_a_registry_digest_without_its_tag_is_refused_not_read_as_registry_3(image: str) -> None:
    # Read as `latest` (3.x), a registry 2 image pinned by digest would get /etc/distribution/config.yml and
    # start with the image's default config instead of ours.
    with pytest.raises(ValueError, match="digest without a tag"):
        registry_config_path(image, None)


def test_the_config_refuses_a_registry_digest_without_its_tag_naming_the_key() -> None:
    from components.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match=r"private-registry:registry\.image: names a digest without a tag"):
        load_settings({"hostname": "registry.example.com", "registry": f'{{"image": "registry@sha256:{"a" * 64}"}}'})
