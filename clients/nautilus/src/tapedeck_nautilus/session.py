"""A node's trading session: the run_id that every event of one start of a node carries.

Tapedeck groups a node's events into a session by run_id `{trader_id}:{instance_id}`, and the
events' payloads name both parts. NautilusTrader gives its components no access to the
kernel's instance id, so the bridge and the gate share one id per process (one node per
process), unless the node's configuration passes its own `instance_id` to both.
"""

from __future__ import annotations

import os
import threading
import uuid

MAX_RUN_ID_LENGTH = 128  # the live service's limit on run_id

_lock = threading.Lock()
_process_instance: tuple[int, str] | None = None


def instance_id(configured: str | None) -> str:
    """Return the configured instance id, or this process's own (the same for every caller)."""
    global _process_instance  # noqa: PLW0603 - one id per process is the point
    if configured:
        return configured
    with _lock:
        # A forked child is another node: it gets its own id.
        if _process_instance is None or _process_instance[0] != os.getpid():
            _process_instance = (os.getpid(), str(uuid.uuid4()))
        return _process_instance[1]


def run_id(trader_id: str, instance: str) -> str:
    """Return the run_id of a session; ValueError when it would not fit the live service's limit."""
    value = f"{trader_id}:{instance}"
    if len(value) > MAX_RUN_ID_LENGTH:
        raise ValueError(
            f"the session id {value[:40]}... is {len(value)} characters; the live service "
            f"stores at most {MAX_RUN_ID_LENGTH}: use a shorter trader id or instance id"
        )
    return value


class Session:
    """One node start as Tapedeck sees it: trader id, instance id and the run_id they make."""

    __slots__ = ("instance_id", "run_id", "trader_id")

    def __init__(self, trader_id: str, configured_instance_id: str | None) -> None:
        self.trader_id = trader_id
        self.instance_id = instance_id(configured_instance_id)
        self.run_id = run_id(trader_id, self.instance_id)

    def payload(self) -> dict[str, str]:
        """Return the fields every event's payload starts with (the live service reads them)."""
        return {"trader_id": self.trader_id, "instance_id": self.instance_id}
