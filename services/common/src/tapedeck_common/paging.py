"""Keyset paging for every List RPC: page sizes, and signed page tokens bound to their request.

A token carries the position of the last row of a page (a short tuple of ints and strings, the
keyset the repository orders by), the fingerprint of the request that made it (method and
filter) and an HMAC over both with the deployment's key. A token the service did not issue,
issued for another request, cut short or altered, is refused as INVALID_ARGUMENT naming
`page_token` before any query runs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from tapedeck_common.errors import FieldViolation, InvalidArgument
from tapedeck_common.settings import ServiceSettings

T = TypeVar("T")
Position = tuple[int | str, ...]
"""Where a page ended: the values of the repository's ordering columns for its last row."""

MAX_TOKEN_LENGTH = 1024
_INT64 = 2**63
_MAC_BYTES = 16
_NOT_OURS = "is not a token this service issued"
_OTHER_REQUEST = "was issued for a different request; start from the first page"


class PagedRequest(Protocol):
    """The two paging fields every List request has."""

    @property
    def page_size(self) -> int: ...

    @property
    def page_token(self) -> str: ...


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class PageTokens:
    """Issues and checks page tokens with one deployment's key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def for_deployment(cls, settings: ServiceSettings) -> PageTokens:
        """Return tokens keyed by the deployment's tokens file, or a per-process key without one.

        Every replica of a deployment reads the same tokens file, so a page token issued by one
        replica is accepted by the others; without a tokens file (development, authentication
        off) tokens are valid only in the process that issued them.
        """
        if settings.tokens_file is None:
            return cls(secrets.token_bytes(32))
        material = settings.tokens_file.read_bytes()
        return cls(hashlib.sha256(b"tapedeck page tokens\0" + material).digest())

    def page(
        self,
        request: PagedRequest,
        *,
        query: str,
        keys: tuple[type[int] | type[str], ...],
        default_size: int = 50,
        max_size: int = 1000,
    ) -> Page:
        """Return the page a request asks for: its size and the position it resumes after.

        `query` names the method and its canonical filter; `keys` are the types of the
        position's values, checked before the position reaches a query.
        """
        size = page_size(request.page_size, default=default_size, maximum=max_size)
        fingerprint = hashlib.sha256(query.encode()).hexdigest()[:16]
        after = self._read(request.page_token, fingerprint=fingerprint, keys=keys)
        return Page(size=size, after=after, _tokens=self, _fingerprint=fingerprint)

    def _issue(self, position: Position, *, fingerprint: str) -> str:
        body = json.dumps({"q": fingerprint, "p": list(position)}, separators=(",", ":")).encode()
        return f"{_b64(body)}.{_b64(self._mac(body))}"

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()[:_MAC_BYTES]

    def _read(
        self, token: str, *, fingerprint: str, keys: tuple[type[int] | type[str], ...]
    ) -> Position | None:
        if token == "":
            return None
        body, _, mac = token.partition(".")
        if len(token) > MAX_TOKEN_LENGTH or not mac:
            raise InvalidArgument([FieldViolation("page_token", _NOT_OURS)])
        try:
            raw, signature = _unb64(body), _unb64(mac)
        except (binascii.Error, ValueError):
            raise InvalidArgument([FieldViolation("page_token", _NOT_OURS)]) from None
        if not hmac.compare_digest(signature, self._mac(raw)):
            raise InvalidArgument([FieldViolation("page_token", _NOT_OURS)])
        document = json.loads(raw)  # signed by us: well formed
        if document["q"] != fingerprint:
            raise InvalidArgument([FieldViolation("page_token", _OTHER_REQUEST)])
        position = tuple(document["p"])
        if not _matches(position, keys):
            # Signed by this deployment for the same request text but another position shape:
            # a token from an older release of the method. Refused like a foreign one.
            raise InvalidArgument([FieldViolation("page_token", _NOT_OURS)])
        return position


def _matches(position: tuple[object, ...], keys: tuple[type[int] | type[str], ...]) -> bool:
    if len(position) != len(keys):
        return False
    for value, kind in zip(position, keys, strict=True):
        if kind is int:
            if not isinstance(value, int) or isinstance(value, bool):
                return False
            if not -_INT64 <= value < _INT64:
                return False
        elif not isinstance(value, str):
            return False
    return True


@dataclass(frozen=True)
class Page:
    """One page of a List RPC: how many rows, after which position, and its next token."""

    size: int
    after: Position | None
    _tokens: PageTokens
    _fingerprint: str

    @property
    def fetch(self) -> int:
        """Return how many rows to read: one more than the page, to know whether more follow."""
        return self.size + 1

    def token_after(self, position: Position) -> str:
        """Return the token of the page that follows `position`."""
        return self._tokens._issue(position, fingerprint=self._fingerprint)

    def cut(self, rows: Sequence[T], position: Callable[[T], Position]) -> tuple[Sequence[T], str]:
        """Return the page's rows out of up to `fetch` read, and the next token ("" at the end)."""
        if len(rows) <= self.size:
            return rows, ""
        kept = rows[: self.size]
        return kept, self.token_after(position(kept[-1]))


def page_size(value: int, *, default: int, maximum: int, field: str = "page_size") -> int:
    """Return the effective page size: the default for 0, refused when negative or too large."""
    if value == 0:
        return default
    if value < 0 or value > maximum:
        raise InvalidArgument(
            [FieldViolation(field, f"must be between 1 and {maximum} (0 means {default})")]
        )
    return value
