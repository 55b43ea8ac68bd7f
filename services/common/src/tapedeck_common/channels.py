"""Channels from one service to another: a gRPC retry policy for the methods safe to repeat."""

from __future__ import annotations

import json
from collections.abc import Sequence

import grpc

# A call that found the other service down (restarting, or its connection just dropped) is sent
# again by gRPC itself, three more times within about 1.5 s, before the caller sees UNAVAILABLE.
_RETRY_POLICY = {
    "maxAttempts": 4,
    "initialBackoff": "0.1s",
    "maxBackoff": "1s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}


def service_channel(address: str, *, idempotent: Sequence[tuple[str, str]]) -> grpc.aio.Channel:
    """Return a channel retrying UNAVAILABLE on the (service, method) pairs safe to repeat."""
    config = {
        "methodConfig": [
            {
                "name": [{"service": service, "method": method} for service, method in idempotent],
                "retryPolicy": _RETRY_POLICY,
            }
        ]
    }
    return grpc.aio.insecure_channel(
        address,
        options=[("grpc.enable_retries", 1), ("grpc.service_config", json.dumps(config))],
    )
