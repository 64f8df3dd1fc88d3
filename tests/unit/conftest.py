"""Fixtures for the unit tests: run the program under mocks whose computed outputs are fixed fakes.

The fakes are deterministic (derived from the resource name and inputs), so two runs of the same config
must give byte-identical inputs everywhere; secret provider outputs are returned wrapped as the engine
marks them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import pulumi
import pytest

from tests.harness import PROJECT, ProgramRun, plain, run_program, secret


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class FakeMocks(pulumi.runtime.Mocks):
    """Returns every computed output the program consumes, faked but stable."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        inputs = dict(args.inputs)
        fingerprint = _digest(args.typ, args.name, plain(inputs))[:16]
        computed: dict[str, Any] = {}
        if args.typ == "tls:index/privateKey:PrivateKey":
            computed = {
                "privateKeyPem": secret(f"-----BEGIN PRIVATE KEY-----\n{fingerprint}\n-----END PRIVATE KEY-----\n"),
                "publicKeyPem": f"-----BEGIN PUBLIC KEY-----\n{fingerprint}\n-----END PUBLIC KEY-----\n",
            }
        elif args.typ == "tls:index/certRequest:CertRequest":
            computed = {
                "certRequestPem": f"-----BEGIN CERTIFICATE REQUEST-----\n{fingerprint}\n-----END CERTIFICATE REQUEST-----\n"
            }
        elif args.typ in ("tls:index/selfSignedCert:SelfSignedCert", "tls:index/locallySignedCert:LocallySignedCert"):
            computed = {
                "certPem": f"-----BEGIN CERTIFICATE-----\n{fingerprint}\n-----END CERTIFICATE-----\n",
                "validityStartTime": "2026-01-01T00:00:00Z",
                "validityEndTime": "2027-01-01T00:00:00Z",
                "readyForRenewal": False,
            }
        elif args.typ == "random:index/randomPassword:RandomPassword":
            computed = {"result": secret("generated-" + fingerprint * 2)}
        elif args.typ == "docker:index/remoteImage:RemoteImage":
            computed = {"imageId": "sha256:" + _digest(inputs.get("name"))}
        return f"{args.name}-id", {**inputs, **computed}

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        raise AssertionError(f"the program made an unexpected invoke: {args.token}")


BASE_CONFIG = {
    f"{PROJECT}:hostname": "registry.example.com",
}


def namespaced(**values: Any) -> dict[str, str]:
    """Stack config from Python values: keys get the project namespace, values Pulumi's string form."""
    return {f"{PROJECT}:{key}": value if isinstance(value, str) else json.dumps(value) for key, value in values.items()}


@pytest.fixture
def run() -> Callable[..., ProgramRun]:
    """run(**config) -> ProgramRun; config keys un-namespaced, hostname defaulted."""

    def _run(*, preview: bool = False, stack: str = "test", **values: Any) -> ProgramRun:
        config = {**BASE_CONFIG, **namespaced(**values)}
        return run_program(config, FakeMocks(), stack=stack, preview=preview)

    return _run
