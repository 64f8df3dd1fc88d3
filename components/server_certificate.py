"""The registry's TLS server certificate, signed by the private CA (the recipe's `cfssl gencert -profile=server`)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_tls as tls

from components.certificate_authority import CertificateAuthority, private_key
from components.config import KeyAlgorithm
from components.naming import child_of, renamed_from


@dataclass(frozen=True)
class ServerCertificateArgs:
    common_name: str
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    organization: str
    key_algorithm: KeyAlgorithm
    validity_days: int
    early_renewal_days: int
    ca: CertificateAuthority
    previous_name: str | None = None
    """The component's name in earlier versions of the program: it and its children keep their state through
    aliases to their old names."""


class ServerCertificate(pulumi.ComponentResource):
    """Key, CSR and CA-signed certificate for the registry's host name and IP addresses."""

    cert_pem: pulumi.Output[str]
    """The server certificate (PEM)."""
    private_key_pem: pulumi.Output[str]
    """The server key (PEM), a secret."""
    not_after: pulumi.Output[str]
    """When the certificate expires (RFC 3339)."""

    def __init__(self, name: str, args: ServerCertificateArgs, opts: pulumi.ResourceOptions | None = None):
        renamed = pulumi.ResourceOptions(aliases=renamed_from(args.previous_name))
        super().__init__(
            "private-registry:tls:ServerCertificate", name, None, pulumi.ResourceOptions.merge(opts, renamed)
        )

        def child(role: str) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, aliases=renamed_from(child_of(args.previous_name, role)))

        key = private_key(f"{name}-key", args.key_algorithm, child("key"))
        request = tls.CertRequest(
            f"{name}-csr",
            private_key_pem=key.private_key_pem,
            subject=tls.CertRequestSubjectArgs(common_name=args.common_name, organization=args.organization),
            dns_names=list(args.dns_names),
            ip_addresses=list(args.ip_addresses),
            opts=child("csr"),
        )
        # key_encipherment only means something for RSA key exchange; ECDSA keys only sign.
        uses = ["digital_signature", "server_auth"]
        if args.key_algorithm is KeyAlgorithm.RSA:
            uses.insert(1, "key_encipherment")
        cert = tls.LocallySignedCert(
            f"{name}-cert",
            cert_request_pem=request.cert_request_pem,
            ca_cert_pem=args.ca.cert_pem,
            ca_private_key_pem=args.ca.private_key_pem,
            validity_period_hours=args.validity_days * 24,
            # `pulumi up --refresh` inside this window replaces the certificate (and so the proxy container).
            early_renewal_hours=args.early_renewal_days * 24,
            set_subject_key_id=True,
            allowed_uses=uses,
            opts=child("cert"),
        )

        self.cert_pem = cert.cert_pem
        self.private_key_pem = pulumi.Output.secret(key.private_key_pem)
        self.not_after = cert.validity_end_time
        self.register_outputs({"certPem": self.cert_pem, "notAfter": self.not_after})
