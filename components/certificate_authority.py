"""The private CA that signs the registry's server certificate (replaces the recipe's `cfssl gencert -initca`)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_tls as tls

from components.config import KeyAlgorithm


def private_key(name: str, algorithm: KeyAlgorithm, opts: pulumi.ResourceOptions) -> tls.PrivateKey:
    """ECDSA keys on P-256 (the provider defaults to P-224, which TLS clients reject), RSA with 2048 bits."""
    if algorithm is KeyAlgorithm.ECDSA:
        return tls.PrivateKey(name, algorithm="ECDSA", ecdsa_curve="P256", opts=opts)
    return tls.PrivateKey(name, algorithm="RSA", rsa_bits=2048, opts=opts)


@dataclass(frozen=True)
class CertificateAuthorityArgs:
    organization: str
    key_algorithm: KeyAlgorithm
    validity_days: int


class CertificateAuthority(pulumi.ComponentResource):
    """A self-signed CA certificate and its key."""

    cert_pem: pulumi.Output[str]
    """The CA certificate (PEM): what clients trust, in /etc/docker/certs.d/<endpoint>/ca.crt."""
    private_key_pem: pulumi.Output[str]
    """The CA key (PEM), a secret."""

    def __init__(self, name: str, args: CertificateAuthorityArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("private-registry:tls:CertificateAuthority", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        key = private_key(f"{name}-key", args.key_algorithm, child)
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
            opts=child,
        )

        self.cert_pem = cert.cert_pem
        self.private_key_pem = pulumi.Output.secret(key.private_key_pem)
        self.register_outputs({"certPem": self.cert_pem})
