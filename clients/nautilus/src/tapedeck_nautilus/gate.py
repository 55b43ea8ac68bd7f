"""The pre-trade gate in the order path: an execution algorithm asking Tapedeck's CheckOrder.

A strategy routes an order through the gate by giving it `exec_algorithm_id=TAPEDECK_GATE`.
NautilusTrader then hands the order to this algorithm after the strategy put it in the cache
and before the risk engine sees it. The gate asks `LiveService/CheckOrder` with a deadline:
- allowed: the order goes on to the risk engine (`ExecAlgorithm.submit_order`);
- refused: NautilusTrader's own `OrderDenied`, through `ExecEngine.process` as the risk engine
  sends its denials, with Tapedeck's reason ("TAPEDECK_INSUFFICIENT_FUNDS: ..."); the live
  service has recorded the refusal as a `trade_blocked` event;
- no answer (unreachable, deadline passed, no price to check at): fail closed (the default)
  denies it, `fail_open` sends it unchecked; either way the gate records what it did through
  the bridge's queue (`trade_blocked` or `order_ungated`).

In a backtest the engine's loop waits for the answer (simulated time stands still, so the
run stays deterministic; the wait is at most the deadline). In a live node the call runs on
gRPC's own threads and the answer comes back to the node's event loop with
`call_soon_threadsafe`: the loop never waits, and the order stays in the cache as INITIALIZED
(cancellable) meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from decimal import Decimal
from typing import Any

import grpc
from nautilus_trader.common.component import TestClock
from nautilus_trader.common.config import PositiveInt
from nautilus_trader.core.uuid import UUID4
from nautilus_trader.execution.algorithm import ExecAlgorithm
from nautilus_trader.execution.config import ExecAlgorithmConfig
from nautilus_trader.model.enums import OrderSide, PriceType
from nautilus_trader.model.events import OrderDenied
from nautilus_trader.model.identifiers import ExecAlgorithmId

from tapedeck_nautilus import events
from tapedeck_nautilus.contract import live_pb2, live_pb2_grpc
from tapedeck_nautilus.link import TapedeckLink
from tapedeck_nautilus.queue import EventQueue
from tapedeck_nautilus.session import Session

TAPEDECK_GATE = ExecAlgorithmId("TAPEDECK-GATE")
"""The gate's default id: the `exec_algorithm_id` a strategy gives orders that must be checked."""
DENIAL_PREFIX = "TAPEDECK_"
"""Every denial the gate makes starts with this; the bridge leaves those to the gate."""

# What the gate records when it cannot ask Tapedeck about an order.
GATE_UNAVAILABLE = "gate_unavailable"
NO_REFERENCE_PRICE = "no_reference_price"
UNSUPPORTED_INSTRUMENT = "unsupported_instrument"
UNSUPPORTED_ORDER_LIST = "unsupported_order_list"


class TapedeckGateConfig(ExecAlgorithmConfig, kw_only=True, frozen=True):
    """Configuration of the gate.

    Parameters
    ----------
    wallet : str
        The Tapedeck wallet that pays for the orders, "wallets/{wallet_id}".
    link : TapedeckLink
        Where Tapedeck is, the token, the queue file and the session (the bridge's link).
    deadline_ms : int
        How long an order waits for Tapedeck's answer before the failure mode applies.
    fail_open : bool
        Without an answer, send the order unchecked (recorded as `order_ungated`) instead of
        denying it (the default: fail closed).

    """

    wallet: str
    exec_algorithm_id: ExecAlgorithmId | None = TAPEDECK_GATE
    link: TapedeckLink = TapedeckLink()
    deadline_ms: PositiveInt = 150
    fail_open: bool = False


class TapedeckGate(ExecAlgorithm):  # type: ignore[misc]  # nautilus_trader ships no type stubs
    """Checks each order it is given with Tapedeck before NautilusTrader's risk engine sees it."""

    def __init__(self, config: TapedeckGateConfig) -> None:
        super().__init__(config)
        self._settings = config
        self._deadline = config.deadline_ms / 1000
        self._session: Session | None = None
        self._queue: EventQueue | None = None
        self._channel: grpc.Channel | None = None
        self._stub: live_pb2_grpc.LiveServiceStub | None = None
        self._metadata: tuple[tuple[str, str], ...] = ()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: dict[Any, grpc.Future[live_pb2.CheckOrderResponse]] = {}

    def on_start(self) -> None:
        """Open the channel; a live node's checks answer on its running event loop."""
        link = self._settings.link
        self._session = link.session(str(self.trader_id))
        self._queue = EventQueue.shared(link.queue_path)
        self._channel = link.channel()
        self._stub = live_pb2_grpc.LiveServiceStub(self._channel)
        self._metadata = link.metadata()
        self._loop = None
        if not isinstance(self.clock, TestClock):
            try:
                self._loop = asyncio.get_running_loop()
            except RuntimeError:
                self._loop = None  # a live clock outside an event loop: wait, as in a backtest
        mode = "waits for each answer" if self._loop is None else "answers on the event loop"
        self.log.info(
            f"Tapedeck gate for {self._settings.wallet} at {link.address}: deadline "
            f"{self._settings.deadline_ms} ms, fails {'open' if self._settings.fail_open else 'closed'}, {mode}"
        )

    def on_stop(self) -> None:
        """Drop checks in flight (their orders stay INITIALIZED) and close the channel."""
        for future in self._pending.values():
            future.cancel()
        if self._pending:
            self.log.warning(f"{len(self._pending)} orders were waiting for Tapedeck's answer")
        self._pending.clear()
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self._queue is not None:
            self._queue.release()
            self._queue = None

    def on_order(self, order: Any) -> None:
        """Ask Tapedeck about the order, then submit or deny it."""
        assert self._stub is not None
        request = self._request(order)
        if isinstance(request, tuple):
            self._unanswered(order, *request)
            return
        if self._loop is None:
            try:
                reply = self._stub.CheckOrder(
                    request, timeout=self._deadline, metadata=self._metadata
                )
            except grpc.RpcError as error:
                self._unanswered(order, GATE_UNAVAILABLE, _describe(error, self._deadline))
                return
            self._decide(order, reply)
            return
        future = self._stub.CheckOrder.future(
            request, timeout=self._deadline, metadata=self._metadata
        )
        self._pending[order.client_order_id] = future
        future.add_done_callback(functools.partial(self._answered_elsewhere, order))

    def on_order_list(self, order_list: Any) -> None:
        """Deny an order list: the gate checks single orders (submit lists without it)."""
        for order in order_list.orders:
            self._refuse(
                order,
                UNSUPPORTED_ORDER_LIST,
                f"order list {order_list.id} cannot pass the gate; it checks single orders",
            )

    def _answered_elsewhere(
        self, order: Any, future: grpc.Future[live_pb2.CheckOrderResponse]
    ) -> None:
        # On one of gRPC's threads: hand the answer to the node's loop, the only thread that
        # may touch NautilusTrader's components.
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop closed: the node is gone
            self._loop.call_soon_threadsafe(self._answered, order, future)

    def _answered(self, order: Any, future: grpc.Future[live_pb2.CheckOrderResponse]) -> None:
        if self._pending.pop(order.client_order_id, None) is None or future.cancelled():
            return  # stopped meanwhile
        if order.is_closed:
            return  # the strategy cancelled it while Tapedeck was asked
        try:
            reply = future.result()
        except grpc.RpcError as error:
            self._unanswered(order, GATE_UNAVAILABLE, _describe(error, self._deadline))
            return
        self._decide(order, reply)

    def _request(self, order: Any) -> live_pb2.CheckOrderRequest | tuple[str, str]:
        instrument = self.cache.instrument(order.instrument_id)
        base = None if instrument is None else instrument.get_base_currency()
        if instrument is None or base is None:
            return (
                UNSUPPORTED_INSTRUMENT,
                f"{order.instrument_id} has no base currency; the gate checks spot pairs",
            )
        price = self._reference_price(order)
        if price is None:
            return (
                NO_REFERENCE_PRICE,
                f"no order, trigger, quote or trade price for {order.instrument_id}",
            )
        quantity = order.quantity.as_decimal()
        if getattr(order, "is_quote_quantity", False):
            quantity = instrument.make_qty(quantity / price).as_decimal()
        assert self._session is not None
        return live_pb2.CheckOrderRequest(
            wallet=self._settings.wallet,
            symbol=str(order.instrument_id),
            base_asset=base.code,
            quote_asset=instrument.quote_currency.code,
            side=live_pb2.SIDE_BUY if order.side == OrderSide.BUY else live_pb2.SIDE_SELL,
            quantity=str(quantity),
            price=str(price),
            run_id=self._session.run_id,
            client_order_id=str(order.client_order_id),
        )

    def _reference_price(self, order: Any) -> Decimal | None:
        if order.has_price:
            return Decimal(order.price.as_decimal())
        if order.has_trigger_price:
            return Decimal(order.trigger_price.as_decimal())
        # A market order: what it would pay now, else the last trade.
        touch = PriceType.ASK if order.side == OrderSide.BUY else PriceType.BID
        for price_type in (touch, PriceType.LAST):
            price = self.cache.price(order.instrument_id, price_type)
            if price is not None:
                return Decimal(price.as_decimal())
        return None

    def _decide(self, order: Any, reply: live_pb2.CheckOrderResponse) -> None:
        if reply.allowed:
            self.submit_order(order)
            return
        code = live_pb2.BlockReason.Name(reply.reason).removeprefix("BLOCK_REASON_")
        self._deny(order, f"{DENIAL_PREFIX}{code}: {reply.message}")

    def _unanswered(self, order: Any, reason: str, detail: str) -> None:
        if not self._settings.fail_open:
            self._refuse(order, reason, detail)
            return
        self.log.warning(f"{order.client_order_id} sent without Tapedeck's check: {detail}")
        self._record(order, passed=True, reason=reason, message=detail)
        self.submit_order(order)

    def _refuse(self, order: Any, reason: str, detail: str) -> None:
        self._record(order, passed=False, reason=reason, message=detail)
        self._deny(order, f"{DENIAL_PREFIX}{reason.upper()}: {detail}")

    def _record(self, order: Any, *, passed: bool, reason: str, message: str) -> None:
        assert self._queue is not None
        assert self._session is not None
        self._queue.put(
            events.gate_outcome(
                order,
                self._session,
                passed=passed,
                reason=reason,
                message=message,
                ts_ns=self.clock.timestamp_ns(),
            )
        )

    def _deny(self, order: Any, reason: str) -> None:
        # As NautilusTrader's risk engine denies: the execution engine applies the event to the
        # cached order and publishes it to the strategy (on_order_denied) and everyone else.
        denied = OrderDenied(
            trader_id=order.trader_id,
            strategy_id=order.strategy_id,
            instrument_id=order.instrument_id,
            client_order_id=order.client_order_id,
            reason=reason,
            event_id=UUID4(),
            ts_init=self.clock.timestamp_ns(),
        )
        self.msgbus.send(endpoint="ExecEngine.process", msg=denied)


def _describe(error: grpc.RpcError, deadline: float) -> str:
    code = error.code()
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"Tapedeck did not answer within {deadline * 1000:g} ms"
    return f"Tapedeck could not check the order ({code.name}: {error.details()})"
