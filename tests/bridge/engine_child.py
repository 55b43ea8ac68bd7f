"""A NautilusTrader BacktestEngine with the bridge (and the gate), run in its own interpreter.

`python -m tests.bridge.engine_child SPEC.json` (NautilusTrader allows one engine and one
logging set-up per process). It imports only NautilusTrader, pyarrow and tapedeck_nautilus, so
it runs under another interpreter too (TAPEDECK_BRIDGE_PYTHON: another NautilusTrader release).

Protocol on stdout, one line each: `PAUSED` (after the first segment, when the spec asks for a
pause; the parent answers with a line on stdin), `RAN` (the engine ran every tick; the bridge
is still flushing), then `RESULT {json}`: what NautilusTrader itself saw, to compare with what
reached the live service.
"""

from __future__ import annotations

import json
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import nautilus_trader
import pyarrow.parquet as pq
from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
from nautilus_trader.common.actor import Actor
from nautilus_trader.config import LoggingConfig, StrategyConfig
from nautilus_trader.core.uuid import UUID4
from nautilus_trader.model.currencies import BTC, USDT
from nautilus_trader.model.data import TradeTick
from nautilus_trader.model.enums import (
    AccountType,
    AggressorSide,
    OmsType,
    OrderSide,
    OrderStatus,
)
from nautilus_trader.model.events import OrderDenied, OrderFilled, OrderRejected, PositionClosed
from nautilus_trader.model.identifiers import InstrumentId, Symbol, TradeId, TraderId, Venue
from nautilus_trader.model.instruments import CurrencyPair
from nautilus_trader.model.objects import Money, Price, Quantity
from nautilus_trader.trading.strategy import Strategy

from tapedeck_nautilus.bridge import TapedeckBridge, TapedeckBridgeConfig
from tapedeck_nautilus.gate import TAPEDECK_GATE, TapedeckGate, TapedeckGateConfig
from tapedeck_nautilus.link import TapedeckLink
from tapedeck_nautilus.sender import LiveEvents

BTCUSDT = InstrumentId.from_str("BTCUSDT.BINANCE")


def instrument() -> CurrencyPair:
    """Binance BTCUSDT spot as the real data's instrument file prints it."""
    return CurrencyPair(
        instrument_id=BTCUSDT,
        raw_symbol=Symbol("BTCUSDT"),
        base_currency=BTC,
        quote_currency=USDT,
        price_precision=2,
        size_precision=6,
        price_increment=Price.from_str("0.01"),
        size_increment=Quantity.from_str("0.000001"),
        lot_size=None,
        max_quantity=None,
        min_quantity=None,
        max_notional=None,
        min_notional=None,
        max_price=None,
        min_price=None,
        margin_init=Decimal(0),
        margin_maint=Decimal(0),
        maker_fee=Decimal("0.001"),
        taker_fee=Decimal("0.001"),
        ts_event=0,
        ts_init=0,
    )


def trade_ticks(path: Path) -> list[TradeTick]:
    """The real Binance BTCUSDT trades of 2021-01-08."""
    ticks = []
    for row in pq.read_table(path).to_pylist():
        ts = int(row["timestamp"].timestamp() * 1_000_000) * 1000
        ticks.append(
            TradeTick(
                BTCUSDT,
                Price(row["price"], 2),
                Quantity(row["quantity"], 6),
                AggressorSide.SELLER if row["buyer_maker"] == "True" else AggressorSide.BUYER,
                TradeId(str(row["trade_id"])),
                ts,
                ts,
            )
        )
    return ticks


class CycleTrader(Strategy):
    """Every 100 ticks: a buy that fills, a buy the risk engine denies, a post-only order the
    venue rejects, and a sell that closes the position. Gated, only the buys, through the gate,
    their quantities taking turns from `quantities`."""

    def __init__(self, *, gated: bool, quantities: list[str]) -> None:
        super().__init__(StrategyConfig(strategy_id="CYCLE-001"))
        self._gated = gated
        self._quantities = [Decimal(q) for q in quantities]
        self._ticks = 0
        self.denied: list[dict[str, str]] = []

    def on_start(self) -> None:
        self.subscribe_trade_ticks(BTCUSDT)

    def on_trade_tick(self, tick: TradeTick) -> None:
        self._ticks += 1
        step = self._ticks % 100
        btc = self.cache.instrument(BTCUSDT)
        algorithm = TAPEDECK_GATE if self._gated else None
        if step == 10:
            quantity = self._quantities[(self._ticks // 100) % len(self._quantities)]
            self.submit_order(
                self.order_factory.market(
                    BTCUSDT, OrderSide.BUY, btc.make_qty(quantity), exec_algorithm_id=algorithm
                )
            )
        elif step == 20 and not self._gated:
            self.submit_order(self.order_factory.market(BTCUSDT, OrderSide.BUY, btc.make_qty(100)))
        elif step == 30 and not self._gated:
            crossing = Price(tick.price.as_double() + 100, 2)
            self.submit_order(
                self.order_factory.limit(
                    BTCUSDT, OrderSide.BUY, btc.make_qty(0.01), crossing, post_only=True
                )
            )
        elif step == 60 and not self._gated:
            position = self.cache.positions_open(instrument_id=BTCUSDT, strategy_id=self.id)
            if position:
                self.close_position(position[0])

    def on_order_denied(self, event: OrderDenied) -> None:
        self.denied.append({"client_order_id": str(event.client_order_id), "reason": event.reason})


class Recorder(Actor):
    """NautilusTrader's own view of the position and account events (beside the bridge)."""

    def __init__(self) -> None:
        super().__init__()
        self.positions: list[dict[str, str]] = []
        self.closed: list[dict[str, Any]] = []
        self.accounts: set[str] = set()

    def register_base(self, portfolio: Any, msgbus: Any, cache: Any, clock: Any) -> None:
        super().register_base(portfolio, msgbus, cache, clock)
        msgbus.subscribe(topic="events.position.*", handler=self._position)
        msgbus.subscribe(topic="events.account.*", handler=self._account)

    def _position(self, event: Any) -> None:
        self.positions.append({"type": type(event).__name__, "id": str(event.id)})
        if isinstance(event, PositionClosed):
            self.closed.append(
                {
                    "position_id": str(event.position_id),
                    "long": event.entry == OrderSide.BUY,
                    "peak_quantity": str(event.peak_qty),
                    "realized_pnl": str(event.realized_pnl.as_decimal()),
                    "ts_opened": event.ts_opened,
                    "ts_closed": event.ts_closed,
                }
            )

    def _account(self, event: Any) -> None:
        self.accounts.add(str(event.id))


class TimedBridge(TapedeckBridge):
    """The bridge, each handler timed (perf_counter_ns) as the trading loop runs it."""

    def __init__(self, config: TapedeckBridgeConfig) -> None:
        super().__init__(config)
        self.handler_ns: list[int] = []

    def _on_order_event(self, event: Any) -> None:
        start = time.perf_counter_ns()
        super()._on_order_event(event)
        self.handler_ns.append(time.perf_counter_ns() - start)

    def _on_position_event(self, event: Any) -> None:
        start = time.perf_counter_ns()
        super()._on_position_event(event)
        self.handler_ns.append(time.perf_counter_ns() - start)

    def _on_account_state(self, event: Any) -> None:
        start = time.perf_counter_ns()
        super()._on_account_state(event)
        self.handler_ns.append(time.perf_counter_ns() - start)


class SendNow:
    """The naive baseline (bench/bridge): each event sent to Tapedeck inside its handler."""

    def __init__(self, queue: Any, client: LiveEvents) -> None:
        self.path = queue.path
        self._queue = queue
        self._client = client

    def put(self, event: Any) -> None:
        self._client.append([event])

    def size(self) -> int:
        return 0

    def release(self) -> None:
        self._queue.release()


class NaiveBridge(TimedBridge):
    """The bridge with its queue replaced by a synchronous AppendEvents per event."""

    def register_base(self, portfolio: Any, msgbus: Any, cache: Any, clock: Any) -> None:
        super().register_base(portfolio, msgbus, cache, clock)
        client = LiveEvents(self._settings.link, timeout_seconds=5)
        self._queue = SendNow(self._queue, client)

    def on_start(self) -> None:
        pass  # nothing is queued: no drainer

    def on_stop(self) -> None:
        pass


def main(spec: dict[str, Any]) -> dict[str, Any]:
    """Run the spec's engine; return NautilusTrader's view of what happened."""
    link = TapedeckLink(
        address=spec["address"],
        token_env="TAPEDECK_TOKEN",
        queue_path=spec["queue_path"],
        instance_id=spec["instance_id"],
    )
    engine = BacktestEngine(
        BacktestEngineConfig(
            trader_id=TraderId(spec["trader_id"]),
            instance_id=UUID4.from_str(spec["instance_id"]),
            logging=LoggingConfig(log_level="ERROR"),
        )
    )
    engine.add_venue(
        Venue("BINANCE"),
        OmsType.NETTING,
        AccountType.CASH,
        starting_balances=[Money(10_000, USDT), Money(1, BTC)],
        base_currency=None,
        trade_execution=True,
    )
    engine.add_instrument(instrument())
    ticks = trade_ticks(Path(spec["trades"]))
    engine.add_data(ticks)
    bridge = (NaiveBridge if spec.get("naive") else TimedBridge)(
        TapedeckBridgeConfig(
            link=link,
            retry_initial_seconds=0.05,
            retry_max_seconds=0.5,
            flush_timeout_seconds=spec.get("flush_timeout", 60.0),
        )
    )
    recorder = Recorder()
    engine.add_actor(bridge)
    engine.add_actor(recorder)
    gate = spec.get("gate")
    strategy = CycleTrader(gated=gate is not None, quantities=spec.get("quantities", ["0.01"]))
    engine.add_strategy(strategy)
    if gate is not None:
        engine.add_exec_algorithm(
            TapedeckGate(
                TapedeckGateConfig(
                    wallet=gate["wallet"],
                    link=link,
                    deadline_ms=gate.get("deadline_ms", 5000),
                    fail_open=gate.get("fail_open", False),
                )
            )
        )
    pause = spec.get("pause_at_tick")
    if pause is None:
        engine.run(streaming=True)
    else:
        middle = ticks[pause].ts_event
        engine.run(end=middle, streaming=True)
        print("PAUSED", flush=True)
        sys.stdin.readline()
        engine.run(start=middle, streaming=True)
    print("RAN", flush=True)
    engine.end()  # stops the bridge: it flushes the queue before returning
    orders = engine.cache.orders()
    fills = [
        {"trade_id": str(e.trade_id), "client_order_id": str(e.client_order_id)}
        for order in orders
        for e in order.events
        if isinstance(e, OrderFilled)
    ]
    refused = [
        {
            "client_order_id": str(e.client_order_id),
            "kind": "denied" if isinstance(e, OrderDenied) else "rejected",
            "reason": e.reason,
        }
        for order in orders
        for e in order.events
        if isinstance(e, OrderDenied | OrderRejected)
    ]
    result = {
        "nautilus_trader": nautilus_trader.__version__,
        "fills": fills,
        "refused": refused,
        "denied_seen_by_strategy": strategy.denied,
        "positions": recorder.positions,
        "closed": recorder.closed,
        "accounts": sorted(recorder.accounts),
        "orders": [
            {
                "client_order_id": str(o.client_order_id),
                "quantity": str(o.quantity),
                "status": o.status_string(),
            }
            for o in orders
        ],
        "filled_orders": sum(1 for o in orders if o.status == OrderStatus.FILLED),
        "handler_ns": bridge.handler_ns,
        "left_in_queue": bridge.queue.size(),
    }
    engine.dispose()
    return result


if __name__ == "__main__":
    outcome = main(json.loads(Path(sys.argv[1]).read_text()))
    print("RESULT " + json.dumps(outcome), flush=True)
