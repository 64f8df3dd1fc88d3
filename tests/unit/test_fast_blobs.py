"""Blob downloads from disk (proxy.fastBlobDownloads): the rendered nginx locations and the proxy's mount."""

from __future__ import annotations

import dataclasses
import re

import pytest

from components.rendering import ProxyConfig, render_nginx_conf
from harness.program import plain
from tests.unit import test_rendering
from tests.unit.test_program import SITE, Run, container, upload

pytestmark = pytest.mark.unit

PROXY = dataclasses.replace(test_rendering.PROXY, blob_files_dir="/var/lib/registry")
HEX = "0123456789abcdef" * 4
BLOB_LOCATION = re.compile(r'location ~ "(?P<pattern>[^"]+)" \{(?P<body>.*?)\n    \}', re.S)


def blob_locations(conf: str) -> list[tuple[re.Pattern[str], str]]:
    """(pattern, body) of each regex location; PCRE's (?<name>...) is Python's (?P<name>...)."""
    return [(re.compile(m["pattern"].replace("(?<", "(?P<")), m["body"]) for m in BLOB_LOCATION.finditer(conf)]


def test_blob_downloads_from_disk_on_the_tls_and_the_plain_port() -> None:
    locations = blob_locations(render_nginx_conf(PROXY))
    assert len(locations) == 2  # the TLS server and the plain registry port
    for _, body in locations:
        assert "auth_request /_registry_says_blob_exists;" in body
        assert "error_page 401 403 404 500 502 503 504 = @registry_relay;" in body
        assert "if ($request_method != GET)" in body
        # The path is built from the two captured hex groups and nothing else.
        (alias,) = re.findall(r"alias ([^;]+);", body)
        assert alias == "/var/lib/registry/docker/registry/v2/blobs/sha256/$blob_head/$blob_head$blob_tail/data"
        assert 'add_header Docker-Content-Digest "sha256:$blob_head$blob_tail" always;' in body
        assert "etag off;" in body and 'add_header Last-Modified "";' in body


@pytest.mark.parametrize(
    ("path", "matches"),
    [
        (f"/v2/team/app/blobs/sha256:{HEX}", True),
        (f"/v2/a/b/c/blobs/sha256:{HEX}", True),
        (f"/v2/app/blobs/sha256:{HEX}", True),
        (f"/v2/team/app/blobs/sha256:{HEX.upper()}", False),
        (f"/v2/team/app/blobs/sha512:{HEX}{HEX}", False),
        (f"/v2/team/app/blobs/sha256:{HEX[:-1]}", False),
        (f"/v2/team/app/blobs/sha256:{HEX}0", False),
        ("/v2/team/app/blobs/sha256:../../../../etc/passwd", False),
        (f"/v2/team/app/blobs/sha256:{HEX}/../../x", False),
        (f"/v2/team/app/blobs/uploads/sha256:{HEX}", False),
        (f"/v2/team/app/manifests/sha256:{HEX}", False),
        (f"/v2/team app/blobs/sha256:{HEX}", False),
    ],
)
def test_only_well_formed_sha256_blob_paths_reach_the_disk(path: str, matches: bool) -> None:
    (pattern, _), _ = blob_locations(render_nginx_conf(PROXY))
    found = pattern.match(path)
    assert bool(found) is matches
    if found:
        assert found["blob_head"] + found["blob_tail"] == HEX


def test_the_existence_check_asks_the_registry_with_the_clients_request() -> None:
    conf = render_nginx_conf(PROXY)
    check = conf[conf.index("location = /_registry_says_blob_exists") :]
    check = check[: check.index("\n    }")]
    assert "internal;" in check
    assert "proxy_method HEAD;" in check
    assert "proxy_pass $registry_upstream$request_uri;" in check
    assert "proxy_pass_request_body off;" in check


def test_relayed_only_when_the_fast_path_is_off() -> None:
    conf = render_nginx_conf(ProxyConfig(**{**PROXY.__dict__, "blob_files_dir": None}))
    assert blob_locations(conf) == []
    assert "_registry_says_blob_exists" not in conf and "alias /var/lib/registry" not in conf


def test_a_mirror_sends_cached_blobs_from_its_own_volume_once_it_said_yes(run: Run) -> None:
    result = run(mirrors=[{"name": "dockerhub", "port": 5443}])
    proxy = container(result, "proxy")
    mounts = {volume["containerPath"]: volume for volume in proxy["volumes"]}
    assert mounts["/var/lib/registry-mirrors/dockerhub"] == {
        "containerPath": "/var/lib/registry-mirrors/dockerhub",
        "volumeName": "private-registry-test-mirror-dockerhub-data",
        "readOnly": True,
    }
    site = upload(proxy, SITE)["content"]
    mirror_server = site[site.index('Pull-through mirror "dockerhub"') :]
    (_, body), *_ = blob_locations(mirror_server)
    assert "/var/lib/registry-mirrors/dockerhub/docker/registry/v2/blobs/sha256/$blob_head/" in body
    check = mirror_server[mirror_server.index("location = /_registry_says_blob_exists") :]
    assert "set $registry_upstream http://mirror-dockerhub:5000;" in check.split("}")[0]
    assert "@writes_paused" not in mirror_server
    off = container(run(mirrors=[{"name": "dockerhub", "port": 5443}], proxy={"fastBlobDownloads": False}), "proxy")
    assert "/var/lib/registry-mirrors/dockerhub" not in {volume["containerPath"] for volume in off["volumes"]}


def test_the_proxy_mounts_the_data_volume_read_only(run: Run) -> None:
    proxy = container(run(), "proxy")
    mounts = {volume["containerPath"]: volume for volume in proxy["volumes"]}
    assert mounts["/var/lib/registry"] == {
        "containerPath": "/var/lib/registry",
        "volumeName": "private-registry-test-registry-data",
        "readOnly": True,
    }
    assert "alias /var/lib/registry/" in upload(proxy, SITE)["content"]


def test_fast_blob_downloads_off_mounts_nothing(run: Run) -> None:
    result = run(proxy={"fastBlobDownloads": False})
    proxy = container(result, "proxy")
    assert "/var/lib/registry" not in {volume["containerPath"] for volume in proxy["volumes"]}
    assert "alias /var/lib/registry" not in upload(proxy, SITE)["content"]
    assert plain(result.named("registry-proxy-container").inputs)["volumes"]
