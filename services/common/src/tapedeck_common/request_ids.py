"""The id of the request being served: read from `x-request-id` (Envoy sets it) or made here.

It is in every log line written while the request is served, travels on to the services this
one calls (and with the outbox events it publishes), and is the reference of INTERNAL errors,
so one id finds everything a request did.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterable, Iterator
from contextvars import ContextVar

HEADER = "x-request-id"

# Envoy's ids are UUIDs; anything longer or stranger than this is replaced, not logged.
_ACCEPTED = re.compile(r"[A-Za-z0-9._:-]{1,64}")

current_request_id: ContextVar[str | None] = ContextVar("tapedeck_request_id", default=None)


def from_metadata(metadata: Iterable[tuple[str, str | bytes]] | None) -> str:
    """Return the caller's request id if it is well formed, else a new one."""
    for key, value in metadata or ():
        if key == HEADER and isinstance(value, str) and _ACCEPTED.fullmatch(value):
            return value
    return new_request_id()


def new_request_id() -> str:
    """Return a fresh request id."""
    return uuid.uuid4().hex


def outgoing(metadata: tuple[tuple[str, str], ...] = ()) -> tuple[tuple[str, str], ...]:
    """Return call metadata carrying the current request id onward, if there is one."""
    request_id = current_request_id.get()
    return metadata if request_id is None else (*metadata, (HEADER, request_id))


@contextlib.contextmanager
def bound(request_id: str | None) -> Iterator[None]:
    """Serve a block of work (an outbox delivery) under a request id."""
    token = current_request_id.set(request_id)
    try:
        yield
    finally:
        current_request_id.reset(token)
