"""Reference data shared by the backtest tests: the real data sets and the BTCUSDT instrument."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

from tapedeck.backtest.v1 import backtest_pb2
from tapedeck_backtest.datasets.instruments import InstrumentKind, InstrumentSpec

# The real market data beside the checkout (../shared/data/real), never copied into it.
REAL = Path(
    os.environ.get("TAPEDECK_REAL_DATA", Path(__file__).resolve().parents[3] / "shared/data/real")
)

# Binance BTCUSDT spot as NautilusTrader prints it: precision 2 / 6, taker fee 0.1%.
BTCUSDT = backtest_pb2.Instrument(
    instrument_id="BTCUSDT.BINANCE",
    kind=backtest_pb2.INSTRUMENT_KIND_SPOT,
    base_currency="BTC",
    quote_currency="USDT",
    price_precision=2,
    size_precision=6,
    maker_fee="0.001",
    taker_fee="0.001",
)
# The BTCUSDT perpetual of the real one-minute bars (btc-perp-20211231-20220201_1m.csv).
BTCUSDT_PERP = backtest_pb2.Instrument(
    instrument_id="BTCUSDT-PERP.BINANCE",
    kind=backtest_pb2.INSTRUMENT_KIND_PERPETUAL,
    base_currency="BTC",
    quote_currency="USDT",
    price_precision=3,
    size_precision=4,
    maker_fee="0.0002",
    taker_fee="0.0004",
)
BTCUSDT_SPEC = InstrumentSpec(
    instrument_id="BTCUSDT.BINANCE",
    kind=InstrumentKind.SPOT,
    base_currency="BTC",
    quote_currency="USDT",
    price_precision=2,
    size_precision=6,
    maker_fee=Decimal("0.001"),
    taker_fee=Decimal("0.001"),
)
