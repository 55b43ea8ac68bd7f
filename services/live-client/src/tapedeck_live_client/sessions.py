"""Read a live session's round trips from the live service (for backtest-vs-live drift)."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from tapedeck.common.v1 import common_pb2
from tapedeck.live.v1 import live_pb2, live_pb2_grpc
from tapedeck_common.channels import service_channel
from tapedeck_common.errors import FailedPrecondition, NotFound, Unavailable
from tapedeck_common.request_ids import outgoing
from tapedeck_common.validation import nanos_to_timestamp

_LIVE_SERVICE = "tapedeck.live.v1.LiveService"
_PAGE_SIZE = 1000


@dataclass(frozen=True)
class SessionTrades:
    """A session's round trips in a window, and the times of its first and latest events."""

    trades: list[live_pb2.SessionTrade]
    start_ns: int
    last_ns: int


class LiveSessions:
    """A pooled channel to the live service, reading sessions with the service token."""

    def __init__(
        self, *, address: str, service_token: str | None, timeout_seconds: float = 10.0
    ) -> None:
        self._address = address
        self._channel = service_channel(address, idempotent=[(_LIVE_SERVICE, "ListSessionTrades")])
        self._stub = live_pb2_grpc.LiveServiceStub(self._channel)
        self._metadata: tuple[tuple[str, str], ...] = (
            () if service_token is None else (("authorization", f"Bearer {service_token}"),)
        )
        self._timeout = timeout_seconds

    async def trades(
        self, run_id: str, *, instrument_id: str, start_ns: int, end_ns: int, limit: int
    ) -> SessionTrades:
        """Return the session's trades of an instrument exiting in [start, end), at most `limit`."""
        found: list[live_pb2.SessionTrade] = []
        token = ""
        while True:
            request = live_pb2.ListSessionTradesRequest(
                run_id=run_id,
                instrument_id=instrument_id,
                time_range=common_pb2.TimeRange(
                    start_time=nanos_to_timestamp(start_ns), end_time=nanos_to_timestamp(end_ns)
                ),
                page_size=_PAGE_SIZE,
                page_token=token,
            )
            try:
                page = await self._stub.ListSessionTrades(
                    request, timeout=self._timeout, metadata=outgoing(self._metadata)
                )
            except grpc.aio.AioRpcError as error:
                if error.code() == grpc.StatusCode.NOT_FOUND:
                    raise NotFound(f"no live session has run_id {run_id[:64]!r}") from None
                raise Unavailable(
                    f"the live service at {self._address} could not list the session's trades "
                    f"({error.code().name})"
                ) from None
            found.extend(page.trades)
            if len(found) > limit:
                raise FailedPrecondition(
                    f"the session has more than {limit} trades in the run's window; "
                    "compare a shorter run"
                )
            token = page.next_page_token
            if not token:
                return SessionTrades(
                    trades=found,
                    start_ns=page.session_start_time.ToNanoseconds(),
                    last_ns=page.session_last_time.ToNanoseconds(),
                )

    async def close(self) -> None:
        """Close the channel."""
        await self._channel.close()
