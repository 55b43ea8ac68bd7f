"""The fast Arrow path writes what NautilusTrader's own wranglers and write_data write."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from nautilus_trader.model.data import BarType
from nautilus_trader.model.objects import Price, Quantity
from nautilus_trader.persistence.catalog import ParquetDataCatalog
from nautilus_trader.persistence.wranglers import (
    BarDataWrangler,
    QuoteTickDataWrangler,
    TradeTickDataWrangler,
)

from tapedeck_backtest.datasets.catalog import fixed128, fixed128_to_float, scaled_units
from tapedeck_backtest.datasets.domain import DataKind
from tapedeck_backtest.datasets.importer import convert_file
from tapedeck_backtest.datasets.instruments import InstrumentKind, InstrumentSpec, to_nautilus
from tests.backtest.reference import BTCUSDT_SPEC, REAL
from tests.support import missing_dependency


@pytest.fixture
def real() -> Path:
    if not (REAL / "binance-btcusdt-trades.parquet").exists():
        missing_dependency(f"the shared real data at {REAL}")
    return REAL


def only_parquet(directory: Path, kind: str) -> Path:
    (path,) = (directory / "data" / kind).rglob("*.parquet")
    return path


def test_trades_are_identical_to_the_official_wrangler_and_write_data(real: Path, tmp_path: Path):
    source = real / "binance-btcusdt-trades.parquet"
    frame = pd.read_parquet(source).set_index("timestamp")
    frame["side"] = np.where(frame["buyer_maker"] == "True", "SELL", "BUY")
    official = ParquetDataCatalog(str(tmp_path / "official"))
    official.write_data(TradeTickDataWrangler(to_nautilus(BTCUSDT_SPEC)).process(frame))

    written = convert_file(
        source,
        display_path=source.name,
        file_format="parquet",
        kind=DataKind.TRADES,
        instrument=BTCUSDT_SPEC,
        catalog=tmp_path / "fast",
    )

    theirs = only_parquet(tmp_path / "official", "trade_tick")
    assert written.path.name == theirs.name
    ours_table, their_table = pq.read_table(written.path), pq.read_table(theirs)
    assert ours_table.schema.equals(their_table.schema, check_metadata=True)
    assert ours_table.equals(their_table)
    assert (
        pq.ParquetFile(written.path).metadata.num_row_groups
        == pq.ParquetFile(theirs).metadata.num_row_groups
    )

    ticks = ParquetDataCatalog(str(tmp_path / "fast")).trade_ticks(
        instrument_ids=[BTCUSDT_SPEC.instrument_id]
    )
    expected = official.trade_ticks(instrument_ids=[BTCUSDT_SPEC.instrument_id])
    assert [t.to_dict(t) for t in ticks] == [t.to_dict(t) for t in expected]


def test_quotes_match_the_official_wrangler(real: Path, tmp_path: Path):
    source = real / "binance-btcusdt-quotes.parquet"
    frame = pd.read_parquet(source).set_index("timestamp")
    frame = frame.rename(columns={"bid": "bid_price", "ask": "ask_price"})
    official = ParquetDataCatalog(str(tmp_path / "official"))
    official.write_data(
        QuoteTickDataWrangler(to_nautilus(BTCUSDT_SPEC)).process(
            frame[["bid_price", "ask_price", "bid_size", "ask_size"]].copy()
        )
    )
    convert_file(
        source,
        display_path=source.name,
        file_format="parquet",
        kind=DataKind.QUOTES,
        instrument=BTCUSDT_SPEC,
        catalog=tmp_path / "fast",
    )
    ours = pq.read_table(only_parquet(tmp_path / "fast", "quote_tick"))
    theirs = pq.read_table(only_parquet(tmp_path / "official", "quote_tick"))
    assert ours.schema.equals(theirs.schema, check_metadata=True)
    assert ours.equals(theirs)


def test_bars_match_the_official_wrangler_on_a_sample(real: Path, tmp_path: Path):
    sample = tmp_path / "raw" / "bars.csv"
    sample.parent.mkdir()
    lines = (real / "btc-perp-20211231-20220201_1m.csv").read_text().splitlines()[:2001]
    sample.write_text("\n".join(lines) + "\n")
    perp = InstrumentSpec(
        instrument_id="BTCUSDT-PERP.BINANCE",
        kind=InstrumentKind.PERPETUAL,
        base_currency="BTC",
        quote_currency="USDT",
        price_precision=1,
        size_precision=4,
        maker_fee=Decimal("0.0002"),
        taker_fee=Decimal("0.0004"),
    )
    frame = pd.read_csv(sample, parse_dates=["timestamp"]).set_index("timestamp")
    frame.index = frame.index.tz_localize("UTC")
    bar_type = BarType.from_str("BTCUSDT-PERP.BINANCE-1-MINUTE-LAST-EXTERNAL")
    official = ParquetDataCatalog(str(tmp_path / "official"))
    official.write_data(BarDataWrangler(bar_type, to_nautilus(perp)).process(frame))
    convert_file(
        sample,
        display_path=sample.name,
        file_format="csv",
        kind=DataKind.BARS,
        instrument=perp,
        catalog=tmp_path / "fast",
    )
    ours = pq.read_table(only_parquet(tmp_path / "fast", "bar"))
    theirs = pq.read_table(only_parquet(tmp_path / "official", "bar"))
    assert ours.num_rows == 2000
    assert ours.schema.equals(theirs.schema, check_metadata=True)
    assert ours.equals(theirs)


@pytest.mark.parametrize("precision", [0, 2, 5, 8, 9, 16])
def test_fixed_point_encoding_matches_nautilus_price_and_quantity(precision: int):
    rng = np.random.default_rng(precision)
    scale = 10.0 ** min(12 - precision, 6) if precision < 12 else 1e-3
    values = np.concatenate(
        [rng.uniform(0, 1, 500) * scale, rng.uniform(0, 1e-3, 100), [0.5, 1.5, 2.5, 0.0]]
    )
    if precision >= 12:
        values = rng.uniform(0, 100, 500)
    values = np.round(values, precision)
    encoded = fixed128(scaled_units(values, precision), precision)
    raw = [int.from_bytes(b, "little", signed=True) for b in encoded.to_pylist()]
    assert raw == [Price(float(v), precision).raw for v in values]
    assert raw == [Quantity(float(v), precision).raw for v in values]
    assert np.allclose(fixed128_to_float(encoded), values, rtol=1e-12, atol=10.0**-precision)


def test_fixed_point_encoding_of_negative_values_is_twos_complement():
    units = np.array([-1, -123456789, -(2**62)], dtype=np.int64)
    encoded = fixed128(units, 2)
    decoded = [int.from_bytes(b, "little", signed=True) for b in encoded.to_pylist()]
    assert decoded == [int(u) * 10**14 for u in units]
    assert encoded.type == pa.binary(16)
