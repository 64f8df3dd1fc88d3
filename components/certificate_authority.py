"""The private CA that signs the registry's server certificate (replaces the recipe's `cfssl gencert -initca`).

Every client host that trusts the registry holds this CA's certificate, so the CA must not change by accident.
Once created it keeps its key, subject and lifetime whatever `tls.organization`, `tls.caValidityDays` or
`tls.keyAlgorithm` say later (`ignore_changes`); those apply to the next CA. A new CA comes only from a new
`tls.caGeneration`, which names a new CA component: `pulumi preview` then lists the old CA's resources as
deleted and the new one's as created, and the program warns about it.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import pulumi
import pulumi_tls as tls

from components.config import KeyAlgorithm

# Inputs an existing CA keeps: ordinary config edits must not replace it (see the module docstring).
CA_KEY_KEPT_INPUTS = ["algorithm", "ecdsa_curve", "rsa_bits"]
CA_CERT_KEPT_INPUTS = ["subject", "validity_period_hours", "allowed_uses"]
# The provider's names for the key algorithms.
_PROVIDER_ALGORITHM = {KeyAlgorithm.ECDSA: "ECDSA", KeyAlgorithm.RSA: "RSA"}


def private_key(name: str, algorithm: KeyAlgorithm, opts: pulumi.ResourceOptions) -> tls.PrivateKey:
    """ECDSA keys on P-256 (the provider defaults to P-224, which TLS clients reject), RSA with 2048 bits."""
    if algorithm is KeyAlgorithm.ECDSA:
        return tls.PrivateKey(name, algorithm="ECDSA", ecdsa_curve="P256", opts=opts)
    return tls.PrivateKey(name, algorithm="RSA", rsa_bits=2048, opts=opts)


def ca_component_name(name: str, generation: int) -> str:
    """Generation 1 keeps the name stacks have had from the start; each later one is a new CA."""
    return name if generation == 1 else f"{name}-{generation}"


@dataclass(frozen=True)
class CertificateAuthorityArgs:
    organization: str
    key_algorithm: KeyAlgorithm
    validity_days: int
    generation: int
    """tls.caGeneration: part of the component's name, so a new generation is a new CA."""
    signed_validity_days: int
    """Lifetime of the certificates this CA signs: a CA that expires sooner than that is warned about."""


class CertificateAuthority(pulumi.ComponentResource):
    """A self-signed CA certificate and its key."""

    cert_pem: pulumi.Output[str]
    """The CA certificate (PEM): what clients trust, in /etc/docker/certs.d/<endpoint>/ca.crt."""
    private_key_pem: pulumi.Output[str]
    """The CA key (PEM), a secret."""
    not_after: pulumi.Output[str]
    """When the CA certificate expires (RFC 3339); every certificate it signed stops verifying then."""

    def __init__(self, name: str, args: CertificateAuthorityArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("private-registry:tls:CertificateAuthority", name, None, opts)
        key = private_key(
            f"{name}-key",
            args.key_algorithm,
            pulumi.ResourceOptions(parent=self, ignore_changes=CA_KEY_KEPT_INPUTS),
        )
        cert = tls.SelfSignedCert(
            f"{name}-cert",
            private_key_pem=key.private_key_pem,
            is_ca_certificate=True,
            set_subject_key_id=True,
            subject=tls.SelfSignedCertSubjectArgs(
                common_name=f"{args.organization} Registry CA",
                organization=args.organization,
            ),
            validity_period_hours=args.validity_days * 24,
            allowed_uses=["cert_signing", "crl_signing", "digital_signature"],
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=CA_CERT_KEPT_INPUTS),
        )
        # What the existing CA really is (its state), against what the config asks of a new one.
        pulumi.Output.all(key.algorithm, cert.subject, cert.validity_period_hours, cert.validity_end_time).apply(
            lambda kept: self._warn_about(args, *kept)
        )

        self.cert_pem = cert.cert_pem
        self.private_key_pem = pulumi.Output.secret(key.private_key_pem)
        self.not_after = cert.validity_end_time
        self.register_outputs({"certPem": self.cert_pem, "notAfter": self.not_after})

    def _warn_about(
        self,
        args: CertificateAuthorityArgs,
        algorithm: str | None,
        subject: tls.outputs.SelfSignedCertSubject | dict[str, str] | None,
        validity_hours: float | None,
        not_after: str | None,
    ) -> None:
        kept = []
        if algorithm and algorithm != _PROVIDER_ALGORITHM[args.key_algorithm]:
            kept.append(f"tls.keyAlgorithm {args.key_algorithm.value} (the CA's key is {algorithm})")
        # An output type (the engine) or a plain dict (mocks); "organization" is the same name in both.
        organization = (
            subject.get("organization") if isinstance(subject, dict) else getattr(subject, "organization", None)
        )
        if organization and organization != args.organization:
            kept.append(f"tls.organization {args.organization!r} (the CA's is {organization!r})")
        if validity_hours and int(validity_hours) != args.validity_days * 24:
            kept.append(
                f"tls.caValidityDays {args.validity_days} (the CA was made for {int(validity_hours) // 24} days)"
            )
        if kept:
            pulumi.log.warn(
                "the CA is kept as it is, so clients that trust it go on trusting the registry: "
                + "; ".join(kept)
                + f" will apply to a new CA only. To make one, raise tls.caGeneration (now {args.generation}) "
                "and install the new caCertPem on every client host.",
                resource=self,
            )
        if not_after:
            expires = datetime.datetime.fromisoformat(not_after.replace("Z", "+00:00"))
            left = expires - datetime.datetime.now(datetime.UTC)
            if left < datetime.timedelta(days=args.signed_validity_days):
                pulumi.log.warn(
                    f"the CA expires on {not_after}, sooner than a server certificate signed now "
                    f"({args.signed_validity_days} days); after that no client verifies the registry. Raise "
                    "tls.caGeneration to make a new CA and install its caCertPem on every client host.",
                    resource=self,
                )
