"""`tls`: the CA and the server certificate, and the Mozilla TLS profile nginx speaks."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import Field, StrictInt, field_validator, model_validator

from components.config.base import ConfigModel, check_printable

MODERN_MAX_CERT_DAYS = 90


class KeyAlgorithm(StrEnum):
    """Key type of the CA and the server certificate."""

    ECDSA = "ECDSA"
    """ECDSA on P-256 (set explicitly: the tls provider's default curve is P-224)."""
    RSA = "RSA"
    """RSA 2048 bits, as in the original cfssl recipe."""


class TlsSettings(ConfigModel):
    profile: Literal["intermediate", "modern"] = "intermediate"
    """Mozilla server-side TLS profile: intermediate (TLS 1.2 and 1.3) or modern (TLS 1.3 only)."""
    key_algorithm: KeyAlgorithm = KeyAlgorithm.ECDSA
    """ECDSA (P-256) or RSA (2048 bits)."""
    organization: str = Field(default="Private Registry", min_length=1, max_length=64)
    """Organization (O) in the CA and server certificate subjects."""
    ca_validity_days: StrictInt = Field(default=3650, ge=1, le=36500)
    """Lifetime of the CA certificate."""
    cert_validity_days: StrictInt = Field(default=365, ge=1, le=3650)
    """Lifetime of the server certificate; 90 by default with the modern profile (Mozilla's limit there)."""
    early_renewal_days: StrictInt = Field(default=30, ge=0, le=3650)
    """The server certificate is replaced on `pulumi up --refresh` this many days before it expires."""
    ca_generation: StrictInt = Field(default=1, ge=1, le=1000)
    """Which CA: raising it makes a new CA (a deliberate rotation); nothing else replaces an existing CA."""

    @field_validator("organization")
    @classmethod
    def _printable(cls, value: str) -> str:
        return check_printable(value)

    @model_validator(mode="before")
    @classmethod
    def _modern_certificates_live_90_days(cls, data: Any) -> Any:
        lifetime_given = isinstance(data, dict) and ("certValidityDays" in data or "cert_validity_days" in data)
        if isinstance(data, dict) and data.get("profile") == "modern" and not lifetime_given:
            return {**data, "certValidityDays": MODERN_MAX_CERT_DAYS}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> TlsSettings:
        if self.cert_validity_days > self.ca_validity_days:
            raise ValueError(
                f"certValidityDays ({self.cert_validity_days}) must not exceed caValidityDays "
                f"({self.ca_validity_days}): a certificate cannot outlive the CA that signed it"
            )
        if self.early_renewal_days >= self.cert_validity_days:
            raise ValueError(
                f"earlyRenewalDays ({self.early_renewal_days}) must be less than certValidityDays "
                f"({self.cert_validity_days}), or the certificate is due for renewal as soon as it is made"
            )
        return self
