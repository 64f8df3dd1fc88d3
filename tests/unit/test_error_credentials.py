"""Errors name the key and what is wrong, never a URL's user-info or a value that looks like a credential.

Config errors reach the CI log of every pull-request preview. The fields here are plain strings (not declared
secret), where a user may still type a password: a URL with `user:password@`, or a token pasted into the wrong
key.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components.config import ConfigError, load_settings
from components.config.credentials import SECRET, redact

pytestmark = pytest.mark.unit

HOST = "registry.example.com"
# Passwords that cannot appear in a message by chance: long, mixed, no character that ends a URL's user-info.
PASSWORDS = st.text(
    alphabet="abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789-_.~!$&*+=", min_size=8, max_size=24
)
USERS = st.from_regex(r"usr[a-z0-9]{3,9}", fullmatch=True)


def error_of(raw: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings({"hostname": HOST, **raw})
    return str(caught.value)


def _with_user_info(key: str, user: str, password: str) -> dict[str, str]:
    """A config that puts `user:password@` where the key's URL or address goes; each one is refused."""
    at = f"{user}:{password}@"
    match key:
        case "dockerHost.host":
            return {"dockerHost": json.dumps({"host": f"ssh://{at}build-host"})}
        case "storage.regionEndpoint":
            return {
                "storage": json.dumps({"driver": "s3", "bucket": "images", "regionEndpoint": f"https://{at}s3.lan"})
            }
        case "redis.address":
            return {"redis": json.dumps({"address": f"{at}redis.lan:6379"})}
        case "mirrors.remoteUrl":
            return {"mirrors": json.dumps([{"name": "ghcr", "remoteUrl": f"https://{at}ghcr.io", "port": 5443}])}
        case "mirrors.remoteUrl (http)":
            # Refused for being plain http: that message quoted the URL itself.
            return {"mirrors": json.dumps([{"name": "lan", "remoteUrl": f"http://{at}lan:5000", "port": 5443}])}
    raise AssertionError(key)


KEYS = ("dockerHost.host", "storage.regionEndpoint", "redis.address", "mirrors.remoteUrl", "mirrors.remoteUrl (http)")


@pytest.mark.parametrize("key", KEYS)
@settings(max_examples=25, deadline=None)
@given(user=USERS, password=PASSWORDS)
def test_a_url_with_user_info_is_refused_without_showing_it(key: str, user: str, password: str) -> None:
    message = error_of(_with_user_info(key, user, password))
    assert password not in message
    assert f"{user}:" not in message
    assert "private-registry:" in message  # the key is still named


def test_the_review_example_names_the_key_and_what_is_wrong() -> None:
    message = error_of({"dockerHost": json.dumps({"host": "ssh://deploy:PASSWORD@build-host"})})
    assert "PASSWORD" not in message and "deploy" not in message
    assert "private-registry:dockerHost.host: no password in the URL" in message


@pytest.mark.parametrize(
    "credential",
    [
        "AKIAIOSFODNN7EXAMPLE",  # an AWS access key ID
        "ghp_" + "x7Yb2Qm9" * 4 + "Ab3D",  # a GitHub token
        "glpat-" + "Zx8vQ2mN7kL4pR1sT6wY",  # a GitLab token
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjaSJ9.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",  # a JWT
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",  # an AWS secret key
    ],
)
@pytest.mark.parametrize("key", ["bindAddress", "registry.image", "storage.region", "mirrors.name"])
def test_a_credential_typed_into_a_plain_field_is_not_echoed(key: str, credential: str) -> None:
    raw = {
        "bindAddress": {"bindAddress": credential},
        "registry.image": {"registry": json.dumps({"image": credential})},
        "storage.region": {"storage": json.dumps({"driver": "s3", "bucket": "images", "region": credential})},
        "mirrors.name": {"mirrors": json.dumps([{"name": credential, "port": 5443}])},
    }[key]
    with pytest.raises(ConfigError) as caught:
        load_settings({"hostname": HOST, **raw})
    message = str(caught.value)
    assert credential not in message
    assert credential[:12] not in message
    assert f"private-registry:{key.split('.')[0]}" in message


def test_redact_keeps_ordinary_words_and_hides_user_info_of_every_form() -> None:
    assert redact("registry:2.8.3 at https://s3.example.com:9000 (got 'redis.lan:6379')") == (
        "registry:2.8.3 at https://s3.example.com:9000 (got 'redis.lan:6379')"
    )
    assert redact("ssh://deploy:pw@host") == f"ssh://{SECRET}@host"
    assert redact("https://token@host") == f"https://{SECRET}@host"
    assert redact("got 'alice:hunter22@redis:6379'") == f"got '{SECRET}@redis:6379'"


def test_warnings_go_through_redact() -> None:
    # warn_about's texts quote settings (bindAddress, regionEndpoint): each goes out redacted.
    import inspect

    from components import pulumi_config

    source = inspect.getsource(pulumi_config.warn_about)
    assert "pulumi.log.warn(" not in source and "_warn(" in source
