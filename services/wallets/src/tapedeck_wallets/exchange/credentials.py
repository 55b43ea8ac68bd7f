"""Exchange credentials, resolved by reference from a secrets file or the environment."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

CREDENTIALS_REF = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,199}")


class CredentialsError(Exception):
    """The credentials a wallet names cannot be found or used; the message holds no secret."""


@dataclass(frozen=True)
class ApiKey:
    """A Coinbase CDP API key: its name and EC private key (PEM); the key never appears in repr."""

    name: str
    private_key: str = field(repr=False)


def _parse(ref: str, value: object) -> ApiKey:
    # The CDP key file's own shape: {"name": "organizations/.../apiKeys/...", "privateKey": "..."}.
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise CredentialsError(f"credentials {ref!r} are not a JSON CDP key") from None
    if not isinstance(value, dict):
        raise CredentialsError(f"credentials {ref!r} must be an object with name and privateKey")
    name, key = value.get("name"), value.get("privateKey")
    if not isinstance(name, str) or not isinstance(key, str) or not name or not key:
        raise CredentialsError(f"credentials {ref!r} must have a name and a privateKey")
    return ApiKey(name=name, private_key=key)


class CredentialStore:
    """Looks credentials up by reference: the secrets file first, then an environment variable."""

    def __init__(self, secrets_file: Path | None) -> None:
        self._secrets_file = secrets_file

    def resolve(self, ref: str) -> ApiKey:
        """Return the API key `ref` names; read on each call so rotated secrets are picked up."""
        if self._secrets_file is not None:
            try:
                secrets = json.loads(self._secrets_file.read_text())
            except (OSError, ValueError) as error:
                raise CredentialsError(
                    f"secrets file {self._secrets_file} is not readable JSON ({type(error).__name__})"
                ) from None
            if isinstance(secrets, dict) and ref in secrets:
                return _parse(ref, secrets[ref])
        value = os.environ.get(ref)
        if value is None:
            raise CredentialsError(
                f"credentials {ref!r} are in neither the secrets file nor the environment"
            )
        return _parse(ref, value)
