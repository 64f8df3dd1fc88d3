"""STAND-IN for pulumi-tls 5.6.2's plugin (`pulumi-resource-tls`), on the realizer's `harness/tls_provider.py`.

Keys, requests and certificates live in the state only. Every input replaces (RequiresReplace in
terraform-provider-tls) except a certificate's `earlyRenewalHours`, which is updated in place, as the real
provider does (the realizer replaces). A certificate whose state says `readyForRenewal` is replaced: a refresh
inside the renewal window sets it (the provider's Read), a plain `up` does not (pulumi-tls#39).
"""

from __future__ import annotations

import contextlib
import datetime

from harness import tls_provider
from harness.plugins.server import ResourceType, StandInProvider, State, serve

PRIVATE_KEY = "tls:index/privateKey:PrivateKey"
CERT_REQUEST = "tls:index/certRequest:CertRequest"
SELF_SIGNED = "tls:index/selfSignedCert:SelfSignedCert"
LOCALLY_SIGNED = "tls:index/locallySignedCert:LocallySignedCert"
PRIVATE_KEY_OUTPUTS = (
    "privateKeyPem", "privateKeyPemPkcs8", "privateKeyOpenssh", "publicKeyPem", "publicKeyOpenssh",
    "publicKeyFingerprintMd5", "publicKeyFingerprintSha256",
)  # fmt: skip
CERT_OUTPUTS = ("certPem", "validityStartTime", "validityEndTime", "readyForRenewal")


def _ready_for_renewal(state: State, early_hours: int) -> bool:
    end = datetime.datetime.strptime(str(state["validityEndTime"]), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    return datetime.datetime.now(datetime.UTC) >= end - datetime.timedelta(hours=early_hours)


def _renewal_update(cert_id: str, old: State, old_inputs: State, new: State) -> State:
    early = int(new.get("earlyRenewalHours", 0))
    computed = {key: old[key] for key in (*CERT_OUTPUTS, "keyAlgorithm", "caKeyAlgorithm") if key in old}
    return {**computed, "earlyRenewalHours": early, "readyForRenewal": _ready_for_renewal(old, early)}


def _renewal_read(cert_id: str, state: State) -> State:
    return {**state, "readyForRenewal": _ready_for_renewal(state, int(state.get("earlyRenewalHours", 0)))}


def _renewal_due(state: State) -> list[str]:
    return ["readyForRenewal"] if state.get("readyForRenewal") is True else []


class TlsStandIn(StandInProvider):
    name = "tls"
    version = "5.6.2"

    def __init__(self) -> None:
        super().__init__()
        certificate = {
            "in_place": frozenset({"earlyRenewalHours"}),
            "update": _renewal_update,
            "read": _renewal_read,
            "forced_replace": _renewal_due,
        }
        self.types = {
            PRIVATE_KEY: ResourceType(
                PRIVATE_KEY,
                create=tls_provider.private_key,
                computed=PRIVATE_KEY_OUTPUTS,
                secret_outputs=tls_provider.PRIVATE_KEY_SECRETS,
            ),
            CERT_REQUEST: ResourceType(
                CERT_REQUEST, create=tls_provider.cert_request, computed=("certRequestPem", "keyAlgorithm")
            ),
            SELF_SIGNED: ResourceType(
                SELF_SIGNED,
                create=tls_provider.self_signed_cert,
                computed=(*CERT_OUTPUTS, "keyAlgorithm"),
                **certificate,  # type: ignore[arg-type]
            ),
            LOCALLY_SIGNED: ResourceType(
                LOCALLY_SIGNED,
                create=tls_provider.locally_signed_cert,
                computed=(*CERT_OUTPUTS, "caKeyAlgorithm"),
                **certificate,  # type: ignore[arg-type]
            ),
        }


def main() -> None:
    with contextlib.suppress(KeyboardInterrupt):  # a plugin is ended by a signal
        serve(TlsStandIn())


if __name__ == "__main__":
    main()
