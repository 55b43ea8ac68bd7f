"""The bridge: an Actor forwarding a node's trading events to Tapedeck's live service.

Its handlers run on the node's trading loop (the event loop of a TradingNode, the run loop of
a BacktestEngine); each converts one event and appends it to the local queue, nothing more. A
drainer thread sends the queue to `LiveService/AppendEvents`, so Tapedeck being slow or down
costs the node nothing and loses nothing: the queue waits on disk until Tapedeck is back, and
a node restarted meanwhile sends what the last run left.
"""

from __future__ import annotations

from typing import Any

from nautilus_trader.common.actor import Actor
from nautilus_trader.common.config import ActorConfig, NonNegativeFloat, PositiveFloat, PositiveInt
from nautilus_trader.model.events import (
    AccountState,
    OrderDenied,
    OrderFilled,
    OrderRejected,
    PositionChanged,
    PositionClosed,
    PositionOpened,
)

from tapedeck_nautilus import events
from tapedeck_nautilus.contract import live_pb2
from tapedeck_nautilus.gate import DENIAL_PREFIX
from tapedeck_nautilus.link import TapedeckLink
from tapedeck_nautilus.queue import EventQueue
from tapedeck_nautilus.sender import Drainer, LiveEvents
from tapedeck_nautilus.session import Session

_POSITION_TYPES = {
    PositionOpened: live_pb2.EVENT_TYPE_POSITION_OPENED,
    PositionChanged: live_pb2.EVENT_TYPE_POSITION_CHANGED,
    PositionClosed: live_pb2.EVENT_TYPE_POSITION_CLOSED,
}


class TapedeckBridgeConfig(ActorConfig, kw_only=True, frozen=True):
    """Configuration of the bridge.

    Parameters
    ----------
    link : TapedeckLink
        Where Tapedeck is, the token, the queue file and the session (share it with the gate).
    account_states : bool
        Forward account states (balances and margins) too.
    batch_size : int
        Most events per AppendEvents call (the live service takes up to 10,000).
    send_timeout_seconds : float
        Deadline of one AppendEvents call.
    retry_initial_seconds, retry_max_seconds : float
        Backoff between attempts while Tapedeck is unreachable: doubles from the first to the
        second, with jitter.
    flush_timeout_seconds : float
        On stop, how long to keep sending before leaving the rest on disk for the next start.

    """

    link: TapedeckLink = TapedeckLink()
    account_states: bool = True
    batch_size: PositiveInt = 200
    send_timeout_seconds: PositiveFloat = 5.0
    retry_initial_seconds: PositiveFloat = 0.5
    retry_max_seconds: PositiveFloat = 30.0
    flush_timeout_seconds: NonNegativeFloat = 5.0


class TapedeckBridge(Actor):  # type: ignore[misc]  # nautilus_trader ships no type stubs
    """Forwards fills, denials, rejections, position events and account states to Tapedeck."""

    def __init__(self, config: TapedeckBridgeConfig | None = None) -> None:
        config = config or TapedeckBridgeConfig()
        super().__init__(config)
        self._settings = config
        self._session: Session | None = None
        self._queue: EventQueue | None = None
        self._drainer: Drainer | None = None
        self._subscriptions: list[tuple[str, Any]] = []
        self._last_account_event: dict[object, object] = {}

    @property
    def session(self) -> Session:
        """Return the trading session its events carry (after registration with a trader)."""
        assert self._session is not None, "the bridge is not registered with a trader yet"
        return self._session

    @property
    def queue(self) -> EventQueue:
        """Return the local queue (after registration with a trader)."""
        assert self._queue is not None, "the bridge is not registered with a trader yet"
        return self._queue

    def register_base(self, portfolio: Any, msgbus: Any, cache: Any, clock: Any) -> None:
        """Register with the trader, and subscribe to the node's events right away.

        Subscribing here, before anything is published, and not in on_start: NautilusTrader
        1.221's message bus never delivers a topic published before a wildcard subscription
        to that subscription (an exchange's first account state is published before actors
        start). From 1.222 on the bus has no such gap; subscribing early is right for both.
        """
        super().register_base(portfolio, msgbus, cache, clock)
        self._session = self._settings.link.session(str(msgbus.trader_id))
        self._queue = EventQueue.shared(self._settings.link.queue_path)
        topics: list[tuple[str, Any]] = [
            ("events.order.*", self._on_order_event),
            ("events.position.*", self._on_position_event),
        ]
        if self._settings.account_states:
            topics.append(("events.account.*", self._on_account_state))
        for topic, handler in topics:
            msgbus.subscribe(topic=topic, handler=handler)
        self._subscriptions = topics

    def on_start(self) -> None:
        """Start sending the queue (including what an earlier run left in it)."""
        waiting = self.queue.size()
        self.log.info(
            f"Tapedeck session {self.session.run_id}: sending to {self._settings.link.address}"
            f" from {self.queue.path} ({waiting} events waiting)"
        )
        self._drainer = Drainer(
            self.queue,
            LiveEvents(self._settings.link, timeout_seconds=self._settings.send_timeout_seconds),
            batch_size=self._settings.batch_size,
            retry_initial_seconds=self._settings.retry_initial_seconds,
            retry_max_seconds=self._settings.retry_max_seconds,
            log=self.log,
        )
        self._drainer.start()

    def on_stop(self) -> None:
        """Send what is queued for up to the flush timeout; the rest waits on disk."""
        if self._drainer is None:
            return
        left = self._drainer.stop(flush_timeout=self._settings.flush_timeout_seconds)
        self._drainer = None
        if left:
            self.log.warning(
                f"{left} events for Tapedeck stay in {self.queue.path}; they are sent on the next start"
            )

    def on_dispose(self) -> None:
        """Unsubscribe and close the queue file."""
        for topic, handler in self._subscriptions:
            self.msgbus.unsubscribe(topic=topic, handler=handler)
        self._subscriptions = []
        if self._queue is not None:
            self._queue.release()
            self._queue = None

    # The handlers: on the trading loop, one conversion and one append each.

    def _on_order_event(self, event: Any) -> None:
        kind = type(event)
        if kind is OrderFilled:
            self.queue.put(events.order_filled(event, self.session))
        elif kind is OrderDenied:
            # The gate records its own denials (the live service stored its refusals).
            if not event.reason.startswith(DENIAL_PREFIX):
                order = self.cache.order(event.client_order_id)
                self.queue.put(events.order_denied(event, self.session, order))
        elif kind is OrderRejected:
            order = self.cache.order(event.client_order_id)
            self.queue.put(events.order_rejected(event, self.session, order))

    def _on_position_event(self, event: Any) -> None:
        kind = _POSITION_TYPES.get(type(event))
        if kind is not None:
            self.queue.put(events.position_event(kind, event, self.session))

    def _on_account_state(self, event: Any) -> None:
        if type(event) is not AccountState:
            return
        # The portfolio republishes an account's last state on many order events: once is enough.
        last = self._last_account_event.get(event.account_id)
        if last is not None and last == event.id:
            return
        self._last_account_event[event.account_id] = event.id
        self.queue.put(events.account_state(event, self.session))
