"""The runs domain on its own, no database: resolving specs, releases, booking fills, equity."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import pytest

from tapedeck_backtest.datasets.domain import DataKind, DatasetSource
from tapedeck_backtest.datasets.instruments import InstrumentKind
from tapedeck_backtest.runs.domain import (
    MINUTE_NS,
    AccountKind,
    Fill,
    Holdings,
    RunState,
    SpecRequest,
    book,
    equity,
    final_content_version,
    new_run,
    release,
    resolve_spec,
    running_content_version,
    spec_hash,
)
from tapedeck_backtest.strategies import load_registry
from tapedeck_common.errors import InvalidArgument
from tests.backtest.reference import BTCUSDT_SPEC

REGISTRY = load_registry()
START, END = 1_000 * MINUTE_NS, 2_000 * MINUTE_NS


def source(
    kind: DataKind = DataKind.TRADES, instrument_kind: InstrumentKind = InstrumentKind.SPOT
) -> DatasetSource:
    return DatasetSource(
        dataset_id="d1",
        catalog_path="/nowhere",
        kind=kind,
        instrument=dataclasses.replace(BTCUSDT_SPEC, kind=instrument_kind),
        content_hash="c" * 64,
        start_ns=START,
        end_ns=END,
        row_count=1000,
    )


def request(**changes: object) -> SpecRequest:
    base = SpecRequest(
        dataset_id="d1",
        strategy_id="ema_cross",
        parameters={"fast_period": 5},
        start_ns=None,
        end_ns=None,
        starting_balances=(("USDT", Decimal("1000.00")),),
        account_type=AccountKind.CASH,
        bar_interval_ns=MINUTE_NS,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def violations(error: InvalidArgument) -> dict[str, str]:
    return {v.field: v.description for v in error.violations}


def test_resolving_clips_the_window_fills_defaults_and_normalizes_balances():
    spec = resolve_spec(
        request(
            start_ns=START - 5,
            end_ns=START + 10 * MINUTE_NS,
            starting_balances=(("USDT", Decimal("1000.00")), ("BTC", Decimal("0"))),
        ),
        source(),
        REGISTRY,
        field="spec",
    )
    assert (spec.start_ns, spec.end_ns) == (START, START + 10 * MINUTE_NS)
    assert spec.parameters["fast_period"] == 5
    assert spec.parameters["slow_period"] == 20  # the strategy's default
    assert spec.starting_balances == (("BTC", Decimal(0)), ("USDT", Decimal("1E+3")))


@pytest.mark.parametrize(
    ("changes", "kind", "instrument", "field", "why"),
    [
        ({"start_ns": 0, "end_ns": START}, DataKind.TRADES, InstrumentKind.SPOT, "spec.time_range", "overlap"),
        ({"starting_balances": ()}, DataKind.TRADES, InstrumentKind.SPOT, "spec.starting_balances", "at least one"),
        ({"starting_balances": (("EUR", Decimal(1)),)}, DataKind.TRADES, InstrumentKind.SPOT, "spec.starting_balances[0].currency", "BTC"),
        ({"starting_balances": (("BTC", Decimal(1)),), "account_type": AccountKind.MARGIN}, DataKind.TRADES, InstrumentKind.PERPETUAL, "spec.starting_balances[0].currency", "USDT"),
        ({"starting_balances": (("USDT", Decimal(-1)),)}, DataKind.TRADES, InstrumentKind.SPOT, "spec.starting_balances[0].amount", "negative"),
        ({"starting_balances": (("USDT", Decimal(1)), ("USDT", Decimal(2)))}, DataKind.TRADES, InstrumentKind.SPOT, "spec.starting_balances", "twice"),
        ({}, DataKind.TRADES, InstrumentKind.PERPETUAL, "spec.account_type", "MARGIN"),
        ({"bar_interval_ns": 90 * 10**9}, DataKind.BARS, InstrumentKind.SPOT, "spec.bar_interval", "whole minutes"),
        ({"strategy_id": "nope"}, DataKind.TRADES, InstrumentKind.SPOT, "spec.strategy", "unknown"),
        ({"parameters": {"fast_period": 1}}, DataKind.TRADES, InstrumentKind.SPOT, "spec.parameters[fast_period]", "at least 2"),
    ],
)  # fmt: skip
def test_resolving_refuses_what_the_data_or_strategy_cannot_run_naming_the_field(
    changes: dict[str, object], kind: DataKind, instrument: InstrumentKind, field: str, why: str
):
    with pytest.raises(InvalidArgument) as caught:
        resolve_spec(request(**changes), source(kind, instrument), REGISTRY, field="spec")
    assert why in violations(caught.value)[field]


def test_the_spec_hash_depends_on_the_data_not_on_the_dataset_id():
    spec = resolve_spec(request(), source(), REGISTRY, field="spec")
    same = spec_hash(spec, data_identity="data")
    assert spec_hash(dataclasses.replace(spec, dataset_id="other"), data_identity="data") == same
    assert spec_hash(spec, data_identity="other data") != same
    assert spec_hash(dataclasses.replace(spec, parameters={}), data_identity="data") != same


def test_a_new_run_is_queued_and_frozen():
    spec = resolve_spec(request(), source(), REGISTRY, field="spec")
    run = new_run("r1", spec, "h", sweep_id=None, now=datetime(2024, 1, 1, tzinfo=UTC))
    assert run.state is RunState.QUEUED
    assert run.content_version == running_content_version(RunState.QUEUED, 0) == "queued-0"
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.state = RunState.RUNNING  # type: ignore[misc]
    ended = final_content_version("r1", RunState.SUCCEEDED, '{"pnl": "1"}')
    assert ended.startswith("succeeded-")
    assert ended != final_content_version("r1", RunState.SUCCEEDED, '{"pnl": "2"}')


def test_a_run_whose_worker_is_gone_is_requeued_until_its_attempts_are_used():
    again = release(attempts=1, max_attempts=2, count_attempt=True, reason="worker died")
    assert (again.state, again.attempts, again.error_message) == (
        RunState.QUEUED,
        1,
        "re-queued: worker died",
    )
    failed = release(attempts=2, max_attempts=2, count_attempt=True, reason="worker died")
    assert (failed.state, failed.error_message) == (
        RunState.FAILED,
        "worker died (after 2 attempts)",
    )
    # A graceful shutdown gives the attempt back, however many were used.
    back = release(attempts=5, max_attempts=2, count_attempt=False, reason="stopping")
    assert (back.state, back.attempts) == (RunState.QUEUED, 4)


def trade(side: str, quantity: str, price: str, commission: str = "0", currency: str = "USDT"):
    return Fill(
        time=0,
        fill_id="f",
        order_id="o",
        position_id="p",
        instrument_id="BTCUSDT.BINANCE",
        side=side,
        quantity=Decimal(quantity),
        price=Decimal(price),
        commission=Decimal(commission),
        commission_currency=currency,
    )


def booked(account: AccountKind, *fills: Fill) -> Holdings:
    holdings = Holdings.starting(
        (("USDT", Decimal(1000)), ("BTC", Decimal(1))), quote_currency="USDT", base_currency="BTC"
    )
    for fill in fills:
        holdings = book(holdings, fill, account=account, base_currency="BTC")
    return holdings


def test_booking_nets_positions_at_average_cost():
    # Buy 2 at 10 and 2 at 20 (average 15), sell 3 at 25: 3 * (25 - 15) = 30 realized.
    after = booked(
        AccountKind.CASH,
        trade("BUY", "2", "10"),
        trade("BUY", "2", "20", commission="0.5"),
        trade("SELL", "3", "25", commission="0.01", currency="BTC"),
    )
    assert after.position == Decimal(1)
    assert after.average_price == Decimal(15)
    assert after.realized_pnl == Decimal(30)
    assert after.fees == Decimal("0.5") + Decimal("0.01") * 25
    # CASH pays for what it buys: 1000 - 20 - 40 - 0.5 + 75; base 1 + 4 - 3 - 0.01.
    assert after.cash == Decimal("1014.5")
    assert after.base_balance == Decimal("1.99")


def test_a_flip_opens_the_remainder_at_the_fill_price_and_margin_books_only_pnl():
    after = booked(AccountKind.MARGIN, trade("BUY", "1", "100"), trade("SELL", "3", "90"))
    assert after.position == Decimal(-2)
    assert after.average_price == Decimal(90)
    assert after.realized_pnl == Decimal(-10)
    assert after.cash == Decimal(990)  # the realized loss, nothing paid for the position
    assert after.base_balance == Decimal(1)
    closed = booked(AccountKind.MARGIN, trade("SELL", "2", "50"), trade("BUY", "2", "40"))
    assert (closed.position, closed.average_price, closed.realized_pnl) == (0, 0, 20)


def test_equity_is_cash_and_base_at_the_mark_plus_open_pnl_on_margin():
    values = {
        "cash": Decimal(100),
        "base": Decimal(2),
        "position": Decimal(3),
        "average_price": Decimal(10),
        "mark": Decimal(12),
    }
    assert equity(AccountKind.CASH, **values) == Decimal(124)
    assert equity(AccountKind.MARGIN, **values) == Decimal(130)
    arrays = {name: np.array([float(v), float(v)]) for name, v in values.items()}
    np.testing.assert_array_equal(equity(AccountKind.MARGIN, **arrays), [130.0, 130.0])


def test_an_unset_window_holds_every_row_half_open_on_the_engine_clock():
    # Ticks: the last tick + 1 ns. Bars (labelled by open, stored at the close): the first bar's
    # open to the last bar's close + 1 ns.
    ticks = resolve_spec(request(), source(DataKind.TRADES), REGISTRY, field="spec")
    assert (ticks.start_ns, ticks.end_ns) == (START, END + 1)
    bars = resolve_spec(request(), source(DataKind.BARS), REGISTRY, field="spec")
    assert (bars.start_ns, bars.end_ns) == (START, END + MINUTE_NS + 1)
    asked = resolve_spec(
        request(end_ns=END + 10 * MINUTE_NS), source(DataKind.BARS), REGISTRY, field="spec"
    )
    assert asked.end_ns == END + MINUTE_NS + 1
