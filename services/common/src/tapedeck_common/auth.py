"""Bearer tokens with roles; each RPC's least role comes from its `required_role` option."""

from __future__ import annotations

import contextvars
import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from google.protobuf import descriptor_pool

from tapedeck.common.v1 import common_pb2
from tapedeck_common.errors import PermissionDenied, Unauthenticated

_ROLE_NAMES = {
    "viewer": common_pb2.ROLE_VIEWER,
    "operator": common_pb2.ROLE_OPERATOR,
    "admin": common_pb2.ROLE_ADMIN,
}


@dataclass(frozen=True)
class Principal:
    """Who is calling: a person's or a service's token name, and its role."""

    name: str
    role: int


ANONYMOUS = Principal(name="anonymous", role=common_pb2.ROLE_UNSPECIFIED)
DEVELOPMENT = Principal(name="development", role=common_pb2.ROLE_ADMIN)

current_principal: contextvars.ContextVar[Principal] = contextvars.ContextVar(
    "current_principal", default=ANONYMOUS
)


class TokenError(ValueError):
    """The tokens file cannot be used."""


class TokenStore:
    """Tokens by their SHA-256, so the raw secrets are not kept in a dict."""

    def __init__(self, principals: dict[str, Principal]) -> None:
        self._by_digest = {_digest(token): p for token, p in principals.items()}

    @classmethod
    def from_file(cls, path: Path) -> TokenStore:
        """Read `{"tokens": [{"name": ..., "role": "viewer|operator|admin", "token": ...}]}`."""
        try:
            entries = json.loads(path.read_text())["tokens"]
            principals = {}
            for entry in entries:
                role = _ROLE_NAMES[entry["role"]]
                token = str(entry["token"])
                if len(token) < 16:
                    raise TokenError(f"token {entry['name']!r} is shorter than 16 characters")
                principals[token] = Principal(name=str(entry["name"]), role=role)
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise TokenError(f"cannot use tokens file {path}: {error}") from None
        return cls(principals)

    def authenticate(self, authorization: str | None) -> Principal:
        """Return the principal of an `authorization: Bearer <token>` header."""
        if authorization is None:
            raise Unauthenticated("missing authorization: Bearer <token> metadata")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or token == "":
            raise Unauthenticated("authorization metadata must be 'Bearer <token>'")
        principal = self._by_digest.get(_digest(token.strip()))
        if principal is None:
            raise Unauthenticated("unknown bearer token")
        return principal


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@cache
def required_role(method: str) -> int:
    """Return the least role for `/pkg.Service/Method`; methods outside the contract are open."""
    service, _, name = method.lstrip("/").partition("/")
    if not service.startswith("tapedeck."):
        return common_pb2.ROLE_UNSPECIFIED
    try:
        descriptor = descriptor_pool.Default().FindMethodByName(f"{service}.{name}")
    except KeyError:
        return common_pb2.ROLE_ADMIN
    role: int = descriptor.GetOptions().Extensions[common_pb2.required_role]
    # A contract method without the option is closed to all but admins, never open.
    return role if role != common_pb2.ROLE_UNSPECIFIED else common_pb2.ROLE_ADMIN


def authorize(principal: Principal, method: str) -> None:
    """Refuse a principal whose role is below the method's."""
    needed = required_role(method)
    if principal.role < needed:
        raise PermissionDenied(
            f"{method} needs role {common_pb2.Role.Name(common_pb2.Role.ValueType(needed)).removeprefix('ROLE_').lower()}"
        )
