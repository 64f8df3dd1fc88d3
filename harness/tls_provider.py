"""pulumi-tls resources realized with `cryptography`, as terraform-provider-tls makes them.

Key formats, curves, subjects, SANs, validity, CA flags, key usages and extended key usages follow the
provider (and Go's x509.CreateCertificate, which it calls). An input this module does not implement is an
error that names it.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import secrets
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from harness.errors import UnsupportedInput, require_known

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

CURVES: dict[str, ec.EllipticCurve] = {
    "P224": ec.SECP224R1(),
    "P256": ec.SECP256R1(),
    "P384": ec.SECP384R1(),
    "P521": ec.SECP521R1(),
}
KEY_USAGES = {
    "digital_signature": "digital_signature",
    "content_commitment": "content_commitment",
    "key_encipherment": "key_encipherment",
    "data_encipherment": "data_encipherment",
    "key_agreement": "key_agreement",
    "cert_signing": "key_cert_sign",
    "crl_signing": "crl_sign",
    "encipher_only": "encipher_only",
    "decipher_only": "decipher_only",
}
EXTENDED_KEY_USAGES = {
    "any_extended": ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
    "server_auth": ExtendedKeyUsageOID.SERVER_AUTH,
    "client_auth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "code_signing": ExtendedKeyUsageOID.CODE_SIGNING,
    "email_protection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "timestamping": ExtendedKeyUsageOID.TIME_STAMPING,
    "ocsp_signing": ExtendedKeyUsageOID.OCSP_SIGNING,
    "ipsec_end_system": x509.ObjectIdentifier("1.3.6.1.5.5.7.3.5"),
    "ipsec_tunnel": x509.ObjectIdentifier("1.3.6.1.5.5.7.3.6"),
    "ipsec_user": x509.ObjectIdentifier("1.3.6.1.5.5.7.3.7"),
    "microsoft_server_gated_crypto": x509.ObjectIdentifier("1.3.6.1.4.1.311.10.3.3"),
    "netscape_server_gated_crypto": x509.ObjectIdentifier("2.16.840.1.113730.4.1"),
    "microsoft_commercial_code_signing": x509.ObjectIdentifier("1.3.6.1.4.1.311.2.1.22"),
    "microsoft_kernel_code_signing": x509.ObjectIdentifier("1.3.6.1.4.1.311.61.1.1"),
}
# Go's pkix.Name.ToRDNSequence order.
SUBJECT_FIELDS = [
    ("country", NameOID.COUNTRY_NAME),
    ("province", NameOID.STATE_OR_PROVINCE_NAME),
    ("locality", NameOID.LOCALITY_NAME),
    ("streetAddresses", NameOID.STREET_ADDRESS),
    ("postalCode", NameOID.POSTAL_CODE),
    ("organization", NameOID.ORGANIZATION_NAME),
    ("organizationalUnit", NameOID.ORGANIZATIONAL_UNIT_NAME),
    ("commonName", NameOID.COMMON_NAME),
    ("serialNumber", NameOID.SERIAL_NUMBER),
]


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def _rfc3339(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _algorithm_name(key: PublicKey) -> str:
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "ECDSA"
    return "ED25519"


def _signature_hash(key: PrivateKey) -> hashes.SHA256 | hashes.SHA384 | hashes.SHA512 | None:
    """Go's defaults: SHA-256, SHA-384 for P-384, SHA-512 for P-521, none for Ed25519."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.name == "secp384r1":
            return hashes.SHA384()
        if key.curve.name == "secp521r1":
            return hashes.SHA512()
    return hashes.SHA256()


def _load_key(pem: str) -> PrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise UnsupportedInput(f"private key type {type(key).__name__}")
    return key


def _subject(subject: dict[str, Any] | None) -> x509.Name:
    subject = dict(subject or {})
    require_known("subject", subject, {name for name, _ in SUBJECT_FIELDS})
    attributes = []
    for field, oid in SUBJECT_FIELDS:
        value = subject.get(field)
        for item in value if isinstance(value, list) else [value] if value else []:
            attributes.append(x509.NameAttribute(oid, item))
    return x509.Name(attributes)


def _sans(inputs: dict[str, Any]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in inputs.get("dnsNames") or []]
    for ip in inputs.get("ipAddresses") or []:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(ip)))
        except ValueError:
            raise UnsupportedInput(f"invalid IP address {ip!r} in ipAddresses") from None
    names += [x509.UniformResourceIdentifier(u) for u in inputs.get("uris") or []]
    return names


def _usages(allowed: list[str]) -> tuple[x509.KeyUsage | None, x509.ExtendedKeyUsage | None]:
    unknown = [use for use in allowed if use not in KEY_USAGES and use not in EXTENDED_KEY_USAGES]
    if unknown:
        raise UnsupportedInput(f"allowedUses {unknown}")
    flags = {attribute: False for attribute in KEY_USAGES.values()}
    for use in allowed:
        if use in KEY_USAGES:
            flags[KEY_USAGES[use]] = True
    key_usage = x509.KeyUsage(**flags) if any(flags.values()) else None
    extended = [EXTENDED_KEY_USAGES[use] for use in allowed if use in EXTENDED_KEY_USAGES]
    return key_usage, (x509.ExtendedKeyUsage(extended) if extended else None)


def private_key(inputs: dict[str, Any]) -> dict[str, Any]:
    require_known("tls PrivateKey", inputs, {"algorithm", "rsaBits", "ecdsaCurve"})
    algorithm = inputs["algorithm"]
    key: PrivateKey
    if algorithm == "RSA":
        key = rsa.generate_private_key(public_exponent=65537, key_size=int(inputs.get("rsaBits", 2048)))
        traditional = serialization.PrivateFormat.TraditionalOpenSSL  # PKCS#1 "RSA PRIVATE KEY"
    elif algorithm == "ECDSA":
        curve = inputs.get("ecdsaCurve", "P224")
        if curve not in CURVES:
            raise UnsupportedInput(f"ecdsaCurve {curve!r}")
        key = ec.generate_private_key(CURVES[curve])
        traditional = serialization.PrivateFormat.TraditionalOpenSSL  # SEC1 "EC PRIVATE KEY"
    elif algorithm == "ED25519":
        key = ed25519.Ed25519PrivateKey.generate()
        traditional = serialization.PrivateFormat.PKCS8
    else:
        raise UnsupportedInput(f"algorithm {algorithm!r}")
    pem = serialization.Encoding.PEM
    public = key.public_key()
    public_der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    openssh_public, openssh_private = "", ""
    if not (isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp224r1"):  # no OpenSSH form
        openssh_public = (
            public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode() + "\n"
        )
        openssh_private = key.private_bytes(
            pem, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        ).decode()
    ssh_blob = base64.b64decode(openssh_public.split()[1]) if openssh_public else b""
    return {
        "id": hashlib.sha1(public_der).hexdigest(),
        "privateKeyPem": key.private_bytes(pem, traditional, serialization.NoEncryption()).decode(),
        "privateKeyPemPkcs8": key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
        "privateKeyOpenssh": openssh_private,
        "publicKeyPem": public.public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo).decode(),
        "publicKeyOpenssh": openssh_public,
        "publicKeyFingerprintMd5": ":".join(f"{b:02x}" for b in hashlib.md5(ssh_blob).digest()) if ssh_blob else "",
        "publicKeyFingerprintSha256": "SHA256:"
        + base64.b64encode(hashlib.sha256(ssh_blob).digest()).decode().rstrip("=")
        if ssh_blob
        else "",
    }


PRIVATE_KEY_SECRETS = ("privateKeyPem", "privateKeyPemPkcs8", "privateKeyOpenssh")


def cert_request(inputs: dict[str, Any]) -> dict[str, Any]:
    require_known("tls CertRequest", inputs, {"privateKeyPem", "subject", "dnsNames", "ipAddresses", "uris"})
    key = _load_key(inputs["privateKeyPem"])
    builder = x509.CertificateSigningRequestBuilder().subject_name(_subject(inputs.get("subject")))
    sans = _sans(inputs)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    csr = builder.sign(key, _signature_hash(key))
    return {
        "id": hashlib.sha1(csr.public_bytes(serialization.Encoding.DER)).hexdigest(),
        "certRequestPem": csr.public_bytes(serialization.Encoding.PEM).decode(),
        "keyAlgorithm": _algorithm_name(key.public_key()),
    }


CERT_COMMON = {"validityPeriodHours", "allowedUses", "earlyRenewalHours", "isCaCertificate", "setSubjectKeyId"}


def _certificate(
    inputs: dict[str, Any],
    *,
    subject: x509.Name,
    sans: list[x509.GeneralName],
    public_key: PublicKey,
    issuer: x509.Name,
    signing_key: PrivateKey,
    authority_key_id: x509.AuthorityKeyIdentifier | None,
) -> tuple[x509.Certificate, dict[str, Any]]:
    now = _now()
    hours = int(inputs["validityPeriodHours"])
    not_after = now + datetime.timedelta(hours=hours)
    is_ca = bool(inputs.get("isCaCertificate", False))
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(secrets.randbits(128) | 1)
        .not_valid_before(now)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    key_usage, extended = _usages(list(inputs["allowedUses"]))
    if key_usage:
        builder = builder.add_extension(key_usage, critical=True)
    if extended:
        builder = builder.add_extension(extended, critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if is_ca or inputs.get("setSubjectKeyId"):
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    if authority_key_id is not None:
        builder = builder.add_extension(authority_key_id, critical=False)
    cert = builder.sign(signing_key, _signature_hash(signing_key))
    early = datetime.timedelta(hours=int(inputs.get("earlyRenewalHours", 0)))
    outputs = {
        "id": str(cert.serial_number),
        "certPem": cert.public_bytes(serialization.Encoding.PEM).decode(),
        "validityStartTime": _rfc3339(now),
        "validityEndTime": _rfc3339(not_after),
        "readyForRenewal": now >= not_after - early,
        "earlyRenewalHours": int(inputs.get("earlyRenewalHours", 0)),
    }
    return cert, outputs


def self_signed_cert(inputs: dict[str, Any]) -> dict[str, Any]:
    require_known(
        "tls SelfSignedCert",
        inputs,
        CERT_COMMON | {"privateKeyPem", "subject", "dnsNames", "ipAddresses", "uris", "setAuthorityKeyId"},
    )
    key = _load_key(inputs["privateKeyPem"])
    subject = _subject(inputs.get("subject"))
    if inputs.get("isCaCertificate") and not list(subject):
        raise UnsupportedInput("isCaCertificate needs a non-empty subject (the provider refuses it)")
    authority = (
        x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key())
        if inputs.get("setAuthorityKeyId")
        else None
    )
    _, outputs = _certificate(
        inputs,
        subject=subject,
        sans=_sans(inputs),
        public_key=key.public_key(),
        issuer=subject,
        signing_key=key,
        authority_key_id=authority,
    )
    return {**outputs, "keyAlgorithm": _algorithm_name(key.public_key())}


def locally_signed_cert(inputs: dict[str, Any]) -> dict[str, Any]:
    require_known("tls LocallySignedCert", inputs, CERT_COMMON | {"certRequestPem", "caPrivateKeyPem", "caCertPem"})
    csr = x509.load_pem_x509_csr(inputs["certRequestPem"].encode())
    ca_cert = x509.load_pem_x509_certificate(inputs["caCertPem"].encode())
    ca_key = _load_key(inputs["caPrivateKeyPem"])
    try:
        sans = list(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        sans = []
    try:
        ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        authority = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski)
    except x509.ExtensionNotFound:
        authority = None
    public_key = csr.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
        raise UnsupportedInput(f"CSR key type {type(public_key).__name__}")
    _, outputs = _certificate(
        inputs,
        subject=csr.subject,  # the provider copies subject and SANs from the CSR, nothing else
        sans=sans,
        public_key=public_key,
        issuer=ca_cert.subject,
        signing_key=ca_key,
        authority_key_id=authority,
    )
    return {**outputs, "caKeyAlgorithm": _algorithm_name(ca_key.public_key())}
