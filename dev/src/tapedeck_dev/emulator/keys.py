"""Coinbase CDP-style API keys: a key name and an EC P-256 private key in PEM."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


@dataclass(frozen=True)
class CdpKey:
    """An API key as Coinbase hands it out (`name`, `privateKey`); the PEM stays out of repr."""

    name: str
    private_key_pem: str = field(repr=False)

    def as_secret(self) -> dict[str, str]:
        """Return the key in the CDP key file's JSON shape."""
        return {"name": self.name, "privateKey": self.private_key_pem}

    def public_key(self) -> ec.EllipticCurvePublicKey:
        """Return the public half, which is all the exchange keeps."""
        private = serialization.load_pem_private_key(self.private_key_pem.encode(), password=None)
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        return private.public_key()


def generate_key(name: str | None = None) -> CdpKey:
    """Create a fresh P-256 key named like a CDP key."""
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    key_name = name or f"organizations/{uuid.uuid4()}/apiKeys/{uuid.uuid4()}"
    return CdpKey(name=key_name, private_key_pem=pem)
