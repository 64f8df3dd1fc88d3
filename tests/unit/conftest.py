"""Fixtures for the unit tests: run the program under mocks whose computed outputs are fixed fakes.

The fakes are deterministic (derived from the resource name and inputs), so two runs of the same config
must give byte-identical inputs everywhere; secret provider outputs are returned wrapped as the engine
marks them.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Callable
from typing import Any

import pulumi
import pytest

from harness.program import PROJECT, ProgramRun, plain, run_program, secret

# Certificates start at today's midnight (UTC): stable within a test run, and never near an expiry the program
# warns about because of the day the tests happen to run.
VALIDITY_START = datetime.datetime.now(datetime.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def rfc3339(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class FakeMocks(pulumi.runtime.Mocks):
    """Returns every computed output the program consumes, faked but stable.

    Given the run, it leaves the inputs a resource's `ignore_changes` names out of its fakes, as the engine
    keeps those from state: a change to them changes nothing downstream.
    """

    def __init__(self, run: ProgramRun | None = None):
        self.run = run

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        inputs = dict(args.inputs)
        ignored = self.run.pending_options[f"{args.typ}::{args.name}"]["ignoreChanges"] if self.run else []
        fingerprint = _digest(args.typ, args.name, {k: v for k, v in plain(inputs).items() if k not in ignored})[:16]
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
                "validityStartTime": rfc3339(VALIDITY_START),
                "validityEndTime": rfc3339(
                    VALIDITY_START + datetime.timedelta(hours=plain(inputs)["validityPeriodHours"])
                ),
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
        result = ProgramRun()
        return run_program(config, FakeMocks(result), stack=stack, preview=preview, run=result)

    return _run
