"""The drift rules alone: which trades pair, and how the PnL gap splits."""

from __future__ import annotations

from decimal import Decimal

from tapedeck_backtest.analysis.drift import RoundTrip, compare

MINUTE = 60 * 10**9


def trip(
    trade_id: str,
    entry_min: int,
    *,
    long: bool = True,
    entry: str = "100",
    exit_: str = "110",
    quantity: str = "1",
    fees: str = "0",
) -> RoundTrip:
    q, e, x, f = Decimal(quantity), Decimal(entry), Decimal(exit_), Decimal(fees)
    return RoundTrip(
        trade_id=trade_id,
        long=long,
        quantity=q,
        entry_ns=entry_min * MINUTE,
        exit_ns=(entry_min + 5) * MINUTE,
        entry_price=e,
        exit_price=x,
        realized_pnl=(1 if long else -1) * q * (x - e) - f,
        fees=f,
    )


def test_the_closest_entries_pair_first_each_trade_once_and_only_on_the_same_side():
    backtest = [trip("b1", 10), trip("b2", 14), trip("b3", 30, long=False)]
    # l1 is nearer b2 than b1 is: b2 goes to l2 (exactly on it), l1 takes b1.
    live = [trip("l1", 12), trip("l2", 14), trip("l3", 30)]
    drift = compare(live, backtest, max_entry_gap_ns=3 * MINUTE)
    assert [(m.live.trade_id, m.backtest.trade_id) for m in drift.matched] == [
        ("l1", "b1"),
        ("l2", "b2"),
    ]
    assert [t.trade_id for t in drift.live_only] == ["l3"]  # a long never pairs with a short
    assert [t.trade_id for t in drift.backtest_only] == ["b3"]


def test_entries_further_apart_than_the_gap_never_pair():
    drift = compare([trip("l", 10)], [trip("b", 13)], max_entry_gap_ns=3 * MINUTE - 1)
    assert (drift.matched, len(drift.live_only), len(drift.backtest_only)) == ([], 1, 1)
    assert len(compare([trip("l", 10)], [trip("b", 13)], max_entry_gap_ns=3 * MINUTE).matched) == 1


def test_the_gap_splits_into_missing_trades_slippage_fees_and_quantity():
    backtest = [trip("b1", 0, quantity="2", fees="1"), trip("b2", 100, exit_="90")]
    # Short: sold 1 higher (better) and bought back 2 higher (worse); a larger size; more fees.
    short_bt = trip("b3", 200, long=False, entry="100", exit_="95", fees="0.5")
    short_live = trip("l3", 200, long=False, entry="101", exit_="97", quantity="3", fees="0.75")
    live = [trip("l1", 0, entry="100.5", exit_="109", quantity="2", fees="1.5"), short_live]
    drift = compare(live, [*backtest, short_bt], max_entry_gap_ns=MINUTE)
    first, short = drift.matched
    assert (first.entry_slippage, first.exit_slippage) == (Decimal("0.5"), Decimal(1))
    assert first.slippage_cost == Decimal(3)
    assert (short.entry_slippage, short.exit_slippage) == (Decimal(-1), Decimal(2))
    assert short.slippage_cost == Decimal(3)
    summary = drift.summary
    assert summary.missing_trades == -backtest[1].realized_pnl == Decimal(10)
    assert summary.slippage == Decimal(-6)
    assert summary.fees == Decimal("-0.75")
    # The short's extra 2 units earned the backtest's move of 5 each.
    assert summary.other == Decimal(10)
    parts = summary.missing_trades + summary.slippage + summary.fees + summary.other
    assert parts == summary.gap == summary.live_pnl - summary.backtest_pnl
