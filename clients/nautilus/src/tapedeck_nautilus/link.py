"""Where Tapedeck is, as the bridge and the gate both see it: one config value for both."""

from __future__ import annotations

import os

import grpc
from nautilus_trader.common.config import NautilusConfig, PositiveFloat

from tapedeck_nautilus.session import Session


class TapedeckLink(NautilusConfig, kw_only=True, frozen=True):
    """The live service's address, the token, and the node-local queue and session.

    Give the bridge and the gate the same link: they share its queue file (the gate records
    what it decided without Tapedeck there, the bridge sends it) and its session.

    Parameters
    ----------
    address : str
        host:port of Tapedeck's gateway (native gRPC) or of the live service itself.
    secure : bool
        Use TLS with the system's roots (a gateway behind a TLS terminator).
    token_env : str, optional
        The environment variable holding an operator bearer token; None or unset: no token.
    queue_path : str
        The SQLite file of events waiting for Tapedeck; one per node, on local disk.
    instance_id : str, optional
        The node's instance id, as in its `TradingNodeConfig`; None: one id per process.
    reconnect_max_seconds : float
        Longest wait between reconnection attempts while Tapedeck is unreachable (gRPC's own
        default grows to two minutes, which would hold events and checks back long after
        Tapedeck returned).

    """

    address: str = "127.0.0.1:8080"
    secure: bool = False
    token_env: str | None = "TAPEDECK_TOKEN"
    queue_path: str = "tapedeck-events.sqlite"
    instance_id: str | None = None
    reconnect_max_seconds: PositiveFloat = 5.0

    def session(self, trader_id: str) -> Session:
        """Return the session of this node for a trader id."""
        return Session(trader_id, self.instance_id)

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """Return the authorization metadata (none without a token)."""
        token = os.environ.get(self.token_env, "") if self.token_env else ""
        return (("authorization", f"Bearer {token}"),) if token else ()

    def channel(self) -> grpc.Channel:
        """Return a new channel to Tapedeck (connects lazily)."""
        ceiling = int(self.reconnect_max_seconds * 1000)
        options = [
            ("grpc.initial_reconnect_backoff_ms", min(200, ceiling)),
            ("grpc.min_reconnect_backoff_ms", min(200, ceiling)),
            ("grpc.max_reconnect_backoff_ms", ceiling),
        ]
        if self.secure:
            return grpc.secure_channel(self.address, grpc.ssl_channel_credentials(), options)
        return grpc.insecure_channel(self.address, options)
