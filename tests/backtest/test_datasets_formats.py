"""The importer's accepted layouts, its errors, and the synthetic ticks that follow real bars."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from nautilus_trader.model.enums import AggressorSide
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from tapedeck_backtest.datasets.domain import DataKind
from tapedeck_backtest.datasets.importer import MalformedInput, convert_file
from tapedeck_dev.synth import (
    MINUTE_NS,
    demo_ticks,
    generate_bars,
    read_minute_bars,
    ticks_from_bars,
)
from tests.backtest.reference import BTCUSDT_SPEC, REAL
from tests.support import missing_dependency


def convert(tmp_path: Path, name: str, kind: DataKind = DataKind.TRADES) -> ParquetDataCatalog:
    source = tmp_path / name
    convert_file(
        source,
        display_path=name,
        file_format="csv" if name.endswith(".csv") else "parquet",
        kind=kind,
        instrument=BTCUSDT_SPEC,
        catalog=tmp_path / "catalog",
    )
    return ParquetDataCatalog(str(tmp_path / "catalog"))


def test_csv_with_odd_spacing_falls_back_to_text_parsing_and_imports(tmp_path: Path):
    (tmp_path / "t.csv").write_text(
        "Timestamp, Price ,Qty,Side\n"
        "2021-01-08T00:00:00.100Z, 100.5,1, buy\n"
        "2021-01-08T00:00:00.200Z,100.25 ,2,S\n"
    )
    ticks = convert(tmp_path, "t.csv").trade_ticks(instrument_ids=[BTCUSDT_SPEC.instrument_id])
    assert [t.price.as_double() for t in ticks] == [100.5, 100.25]
    assert [t.aggressor_side for t in ticks] == [AggressorSide.BUYER, AggressorSide.SELLER]
    assert ticks[0].ts_event == 1_610_064_000_100_000_000
    assert [t.trade_id.value for t in ticks] == ["2", "3"]  # the line numbers


def test_quotes_in_histdata_layout_without_a_header(tmp_path: Path):
    (tmp_path / "q.csv").write_text(
        "20200101 170000065,1.121200,1.121720,0\n20200101 170010447,1.121200,1.121920,0\n"
    )
    quotes = convert(tmp_path, "q.csv", DataKind.QUOTES).quote_ticks(
        instrument_ids=[BTCUSDT_SPEC.instrument_id]
    )
    assert [q.ts_event for q in quotes] == [1_577_898_000_065_000_000, 1_577_898_010_447_000_000]
    assert quotes[0].bid_price.as_double() == 1.12
    assert quotes[0].bid_size.as_double() == 1_000_000  # absent sizes default like the wrangler


def test_parquet_with_millisecond_integers_and_boolean_buyer_maker(tmp_path: Path):
    pq.write_table(
        pa.table(
            {
                "time": pa.array([1_610_064_000_000, 1_610_064_000_500], pa.int64()),
                "price": [10.0, 11.0],
                "quantity": [0.5, 0.25],
                "is_buyer_maker": [True, False],
                "id": pa.array([7, 8], pa.int64()),
            }
        ),
        tmp_path / "t.parquet",
    )
    ticks = convert(tmp_path, "t.parquet").trade_ticks(instrument_ids=[BTCUSDT_SPEC.instrument_id])
    assert [t.ts_event for t in ticks] == [1_610_064_000_000_000_000, 1_610_064_000_500_000_000]
    assert [t.aggressor_side for t in ticks] == [AggressorSide.SELLER, AggressorSide.BUYER]
    assert [t.trade_id.value for t in ticks] == ["7", "8"]


def test_a_bad_parquet_row_is_named_by_row_number(tmp_path: Path):
    pq.write_table(
        pa.table({"ts": [1, 2, 3], "price": [1.0, None, 2.0], "size": [1.0, 1.0, 1.0]}),
        tmp_path / "t.parquet",
    )
    with pytest.raises(MalformedInput) as caught:
        convert(tmp_path, "t.parquet")
    assert str(caught.value) == "t.parquet row 2, column 'price': is empty"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "timestamp,open,high,low,close\n2012-02-01 00:00:00+00:00,1.5,1.4,1.3,1.45\n",
            "b.csv line 2, column 'high': is inconsistent",
        ),
        ("timestamp,open,high,low,close\n", "b.csv: has no rows"),
        ("", "b.csv line 1: is empty"),
    ],
)
def test_bad_bar_files(tmp_path: Path, body: str, expected: str):
    (tmp_path / "b.csv").write_text(body)
    with pytest.raises(MalformedInput) as caught:
        convert(tmp_path, "b.csv", DataKind.BARS)
    assert str(caught.value).startswith(expected)
    assert not list((tmp_path / "catalog").rglob("*.parquet"))


def test_generated_ticks_follow_the_real_btc_bars_exactly():
    path = REAL / "btc-perp-20211231-20220201_1m.csv"
    if not path.exists():
        missing_dependency(f"the shared real data at {REAL}")
    bars = read_minute_bars(path)
    ticks = ticks_from_bars(bars, 200_000, price_precision=1, size_precision=3)
    ts = ticks.column("ts").to_numpy()
    price = ticks.column("price").to_numpy()
    assert ticks.num_rows >= 180_000
    assert (np.diff(ts) >= 0).all()
    bar = np.searchsorted(bars.open_ns, ts, side="right") - 1
    assert (ts - bars.open_ns[bar] < MINUTE_NS).all()
    starts = np.flatnonzero(np.diff(bar, prepend=-1))
    assert np.array_equal(price[starts], np.round(bars.open, 1))
    assert np.array_equal(np.maximum.reduceat(price, starts), np.round(bars.high, 1))
    assert np.array_equal(np.minimum.reduceat(price, starts), np.round(bars.low, 1))
    ends = np.append(starts[1:], len(price)) - 1
    assert np.array_equal(price[ends], np.round(bars.close, 1))


def test_demo_bars_have_the_target_volatility_and_cluster():
    bars = generate_bars(50_000, annual_volatility=0.6, seed=3)
    returns = np.diff(np.log(bars.close))
    annual = returns.std() * np.sqrt(525_600)
    assert 0.45 < annual < 0.75
    absolute = np.abs(returns)
    lag1 = np.corrcoef(absolute[:-1], absolute[1:])[0, 1]
    assert lag1 > 0.1  # volatility clustering: big moves follow big moves
    ticks = demo_ticks(20_000)
    assert 15_000 < ticks.num_rows < 30_000
    assert set(ticks.column("side").to_pylist()) == {"BUY", "SELL"}
