"""Opaque page tokens: what a List RPC needs to resume, bound to the request that made it."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from tapedeck_common.errors import FieldViolation, InvalidArgument


def _fingerprint(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()[:16]


def encode_page_token(position: dict[str, Any], *, query: str) -> str:
    """Return a token that resumes after `position`, valid only for the same `query`."""
    body = json.dumps({"q": _fingerprint(query), "p": position}, separators=(",", ":"))
    return base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")


def decode_page_token(
    token: str, *, query: str, field: str = "page_token"
) -> dict[str, Any] | None:
    """Return the position a token resumes after, or None for an empty token."""
    if token == "":
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        body = json.loads(raw)
        fingerprint, position = body["q"], body["p"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise InvalidArgument(
            [FieldViolation(field, "is not a token this service issued")]
        ) from None
    if not isinstance(position, dict) or fingerprint != _fingerprint(query):
        raise InvalidArgument(
            [FieldViolation(field, "was issued for a different request; start from the first page")]
        )
    return position


def page_size(value: int, *, default: int, maximum: int, field: str = "page_size") -> int:
    """Return the effective page size: the default for 0, refused when negative or too large."""
    if value == 0:
        return default
    if value < 0 or value > maximum:
        raise InvalidArgument([FieldViolation(field, f"must be between 1 and {maximum}")])
    return value
