"""Strategies: ListStrategies through a real server, parameter validation, user strategies, real runs."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import grpc
import pytest
from nautilus_trader.model.data import BarType

from tapedeck.backtest.v1 import backtest_pb2, backtest_pb2_grpc
from tapedeck_backtest import server
from tapedeck_backtest.datasets.domain import DataKind, DatasetSource
from tapedeck_backtest.datasets.instruments import InstrumentKind, InstrumentSpec
from tapedeck_backtest.settings import BacktestSettings
from tapedeck_backtest.strategies import load_registry
from tapedeck_backtest.strategies.messages import parameter_value
from tapedeck_common.errors import InvalidArgument
from tests.backtest.reference import REAL
from tests.support import field_violations, missing_dependency

USER_STRATEGY = '''
"""A user strategy: buy once on the first bar and hold."""

from nautilus_trader.model.enums import OrderSide

from tapedeck_backtest.strategies import (
    TRADE_SIZE, ParameterSpec, ParameterType, StrategyDefinition,
)
from tapedeck_backtest.strategies.base import BarStrategy, BarStrategyConfig


class HoldConfig(BarStrategyConfig, frozen=True):
    wait_bars: int = 0
    label: str = "a"


class Hold(BarStrategy):
    def on_start(self):
        if self.load_instrument():
            self.subscribe_bars(self.config.bar_type)
        self.seen = 0

    def on_bar(self, bar):
        self.seen += 1
        if self.seen > self.config.wait_bars and self.is_flat():
            self.market(OrderSide.BUY)


TAPEDECK_STRATEGY = StrategyDefinition(
    id="buy_and_hold",
    display_name="Buy and hold",
    description="Buys after wait_bars bars and holds.",
    strategy_path="MODULE:Hold",
    config_path="MODULE:HoldConfig",
    parameters=(
        ParameterSpec("wait_bars", "Bars to wait.", ParameterType.INT, 0, minimum=0, maximum=100),
        ParameterSpec("label", "A label.", ParameterType.STRING, "a", choices=("a", "b")),
        TRADE_SIZE,
    ),
)
'''


@pytest.fixture
def strategy_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "strategies"
    directory.mkdir()
    # Modules are cached per process, so every test gets its own module names.
    module = f"user_hold_{uuid.uuid4().hex[:8]}"
    (directory / f"{module}.py").write_text(USER_STRATEGY.replace("MODULE", module))
    (directory / f"broken_{uuid.uuid4().hex[:8]}.py").write_text("raise RuntimeError('boom')\n")
    (directory / f"helper_{uuid.uuid4().hex[:8]}.py").write_text("VALUE = 1\n")
    return directory


@pytest.fixture
async def stub(
    database_url: str, data_dir: Path, strategy_dir: Path
) -> AsyncIterator[backtest_pb2_grpc.BacktestServiceStub]:
    settings = BacktestSettings(
        database_url=database_url,
        port=0,
        data_dir=data_dir,
        strategy_paths=(strategy_dir,),
        workers=0,  # the API only, no backtest worker processes
        live_address="",  # no live service: events stay in the outbox
    )
    app = await server.start(settings)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            yield backtest_pb2_grpc.BacktestServiceStub(channel)
    finally:
        await app.stop()


def _value(message: backtest_pb2.ParameterValue) -> object:
    which = message.WhichOneof("kind")
    return None if which is None else getattr(message, which)


async def test_list_strategies_gives_both_builtins_and_the_user_strategy_with_bounds(
    stub: backtest_pb2_grpc.BacktestServiceStub,
):
    reply = await stub.ListStrategies(backtest_pb2.ListStrategiesRequest())
    by_name = {s.name: s for s in reply.strategies}
    assert set(by_name) == {
        "strategies/buy_and_hold",
        "strategies/ema_cross",
        "strategies/rsi_bollinger",
    }
    ema = {p.name: p for p in by_name["strategies/ema_cross"].parameters}
    assert ema["fast_period"].type == backtest_pb2.PARAMETER_TYPE_INT
    assert (_value(ema["fast_period"].default_value), _value(ema["fast_period"].min_value)) == (
        10,
        2,
    )
    assert _value(ema["fast_period"].max_value) == 500
    assert ema["allow_short"].type == backtest_pb2.PARAMETER_TYPE_BOOL
    assert not ema["allow_short"].HasField("min_value")
    rsi = {p.name: p for p in by_name["strategies/rsi_bollinger"].parameters}
    assert rsi["bb_std"].type == backtest_pb2.PARAMETER_TYPE_DOUBLE
    assert (_value(rsi["bb_std"].min_value), _value(rsi["bb_std"].max_value)) == (0.5, 5.0)
    assert _value(rsi["rsi_lower"].default_value) == 30.0
    assert all(p.description for s in reply.strategies for p in s.parameters)
    assert set(by_name["strategies/ema_cross"].data_kinds) == {
        backtest_pb2.DATA_KIND_TRADES,
        backtest_pb2.DATA_KIND_QUOTES,
        backtest_pb2.DATA_KIND_BARS,
    }
    user = {p.name: p for p in by_name["strategies/buy_and_hold"].parameters}
    assert list(user["label"].choices) == ["a", "b"]

    first = await stub.ListStrategies(backtest_pb2.ListStrategiesRequest(page_size=2))
    second = await stub.ListStrategies(
        backtest_pb2.ListStrategiesRequest(page_size=2, page_token=first.next_page_token)
    )
    assert [s.name for s in [*first.strategies, *second.strategies]] == sorted(by_name)
    assert second.next_page_token == ""


async def test_list_strategies_refuses_a_bad_page_size(
    stub: backtest_pb2_grpc.BacktestServiceStub,
):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListStrategies(backtest_pb2.ListStrategiesRequest(page_size=-1))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert list(field_violations(caught.value)) == ["page_size"]


def violations_of(error: InvalidArgument) -> dict[str, str]:
    return {v.field: v.description for v in error.violations}


def test_validation_fills_defaults_and_accepts_ints_for_doubles():
    registry = load_registry()
    resolved = registry.validate("rsi_bollinger", {"bb_std": 3, "rsi_period": 7})
    assert resolved["bb_std"] == 3.0
    assert isinstance(resolved["bb_std"], float)
    assert resolved["rsi_period"] == 7
    assert resolved["rsi_lower"] == 30.0
    assert registry.validate("ema_cross", {}) == {
        "fast_period": 10,
        "slow_period": 20,
        "trade_size": 1.0,
        "allow_short": False,
    }


@pytest.mark.parametrize(
    ("strategy", "values", "field", "why"),
    [
        ("ema_cross", {"fast_period": 1}, "spec.parameters[fast_period]", "at least 2"),
        ("ema_cross", {"fast_period": 501}, "spec.parameters[fast_period]", "at most 500"),
        ("ema_cross", {"fast_period": 12.5}, "spec.parameters[fast_period]", "whole number"),
        ("ema_cross", {"fast_period": True}, "spec.parameters[fast_period]", "whole number"),
        ("ema_cross", {"fast_period": "10"}, "spec.parameters[fast_period]", "whole number"),
        ("ema_cross", {"fastperiod": 10}, "spec.parameters[fastperiod]", "not a parameter"),
        ("ema_cross", {"fast_period": 30}, "spec.parameters[fast_period]", "less than slow"),
        ("ema_cross", {"allow_short": 1}, "spec.parameters[allow_short]", "true or false"),
        ("ema_cross", {"trade_size": 0.0}, "spec.parameters[trade_size]", "at least"),
        ("rsi_bollinger", {"bb_std": float("nan")}, "spec.parameters[bb_std]", "finite"),
        ("rsi_bollinger", {"rsi_upper": 100.0}, "spec.parameters[rsi_upper]", "at most 99"),
        ("rsi_bollinger", {"bb_std": "wide"}, "spec.parameters[bb_std]", "a number"),
    ],
)
def test_validation_refuses_bad_parameters_naming_the_field(
    strategy: str, values: dict[str, object], field: str, why: str
):
    with pytest.raises(InvalidArgument) as caught:
        load_registry().validate(strategy, values)  # type: ignore[arg-type]
    found = violations_of(caught.value)
    assert field in found
    assert why in found[field]


def test_validation_reports_every_bad_parameter_and_unknown_strategies():
    registry = load_registry()
    with pytest.raises(InvalidArgument) as caught:
        registry.validate("ema_cross", {"fast_period": 0, "slow_period": "x", "nope": 1})
    assert set(violations_of(caught.value)) == {
        "spec.parameters[fast_period]",
        "spec.parameters[slow_period]",
        "spec.parameters[nope]",
    }
    with pytest.raises(InvalidArgument) as caught:
        registry.validate("nope", {})
    assert "spec.strategy" in violations_of(caught.value)


def test_a_parameter_value_with_nothing_set_or_not_finite_is_refused_naming_it():
    for value in (
        backtest_pb2.ParameterValue(),
        backtest_pb2.ParameterValue(double_value=math.inf),
    ):
        with pytest.raises(InvalidArgument) as caught:
            parameter_value(value, field="spec.parameters[empty]")
        assert list(violations_of(caught.value)) == ["spec.parameters[empty]"]
    assert parameter_value(backtest_pb2.ParameterValue(double_value=1.5), field="x") == 1.5
    assert parameter_value(backtest_pb2.ParameterValue(bool_value=False), field="x") is False


def test_user_strategies_load_and_broken_modules_are_skipped(strategy_dir: Path):
    registry = load_registry((strategy_dir,))
    assert [d.id for d in registry.list()] == ["buy_and_hold", "ema_cross", "rsi_bollinger"]
    with pytest.raises(InvalidArgument) as caught:
        registry.validate("buy_and_hold", {"label": "c"})
    assert "one of a, b" in violations_of(caught.value)["spec.parameters[label]"]


RUN_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from decimal import Decimal
    from pathlib import Path

    from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
    from nautilus_trader.config import LoggingConfig
    from nautilus_trader.model.currencies import USDT
    from nautilus_trader.model.enums import AccountType, OmsType
    from nautilus_trader.model.identifiers import Venue
    from nautilus_trader.model.objects import Money
    from nautilus_trader.persistence.catalog import ParquetDataCatalog
    from nautilus_trader.trading.config import StrategyFactory

    from tapedeck_backtest.datasets.domain import DataKind, DatasetSource
    from tapedeck_backtest.datasets.importer import convert_file
    from tapedeck_backtest.datasets.instruments import InstrumentKind, InstrumentSpec
    from tapedeck_backtest.strategies import add_strategy_paths, load_registry

    source_csv, catalog, strategy_dir = map(Path, sys.argv[1:4])
    spec = InstrumentSpec("BTCUSDT-PERP.BINANCE", InstrumentKind.PERPETUAL, "BTC", "USDT", 1, 4,
                          Decimal("0.0002"), Decimal("0.0004"))
    written = convert_file(source_csv, display_path="bars.csv", file_format="csv",
                           kind=DataKind.BARS, instrument=spec, catalog=catalog)
    source = DatasetSource("d", catalog, DataKind.BARS, spec, "h", written.first_ns,
                           written.last_ns, written.rows)
    add_strategy_paths([strategy_dir])
    registry = load_registry([strategy_dir])
    bars = ParquetDataCatalog(str(catalog)).bars(bar_types=[source.bar_type(60)])
    fills = {}
    for strategy_id, params in [
        ("ema_cross", {"fast_period": 5, "slow_period": 20, "trade_size": 0.01,
                       "allow_short": True}),
        ("rsi_bollinger", {"trade_size": 0.01, "bb_std": 1.5, "rsi_lower": 40.0,
                           "rsi_upper": 60.0, "allow_short": True}),
        ("ema_cross", {"fast_period": 3, "slow_period": 6, "trade_size": 0.01}),
        ("buy_and_hold", {"wait_bars": 3, "trade_size": 0.01}),
    ]:
        engine = BacktestEngine(BacktestEngineConfig(
            logging=LoggingConfig(bypass_logging=True), run_analysis=False))
        engine.add_venue(Venue("BINANCE"), oms_type=OmsType.NETTING,
                         account_type=AccountType.MARGIN, base_currency=None,
                         starting_balances=[Money(100_000, USDT)], bar_execution=True)
        engine.add_instrument(source.nautilus_instrument())
        engine.add_data(bars)
        config = registry.importable_config(strategy_id, params,
                                            instrument_id=source.instrument_id,
                                            bar_type=source.bar_type(60))
        engine.add_strategy(StrategyFactory.create(config))
        engine.run()
        fills[strategy_id + str(len(fills))] = len(engine.trader.generate_order_fills_report())
        engine.dispose()
    print(json.dumps(fills))
    """
)


def test_the_builtin_and_user_strategies_trade_real_btc_bars_in_nautilus(
    tmp_path: Path, strategy_dir: Path
):
    real_bars = REAL / "btc-perp-20211231-20220201_1m.csv"
    if not real_bars.exists():
        missing_dependency(f"the shared real data at {REAL}")
    sample = tmp_path / "bars.csv"
    sample.write_text("\n".join(real_bars.read_text().splitlines()[:3001]) + "\n")
    # NautilusTrader configures logging once per process: each engine set runs in its own.
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            RUN_SCRIPT,
            str(sample),
            str(tmp_path / "catalog"),
            str(strategy_dir),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    fills = json.loads(done.stdout.strip().splitlines()[-1])
    assert all(count > 0 for count in fills.values()), fills


def test_strategy_paths_and_data_root_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    monkeypatch.setenv("BACKTEST_STRATEGY_PATHS", f"{tmp_path / 'a'}{os.pathsep}{tmp_path / 'b'}")
    monkeypatch.setenv("BACKTEST_DATA_ROOT", str(tmp_path / "raw"))
    settings = BacktestSettings()
    assert settings.strategy_paths == (tmp_path / "a", tmp_path / "b")
    assert settings.resolved_data_root == tmp_path / "raw"
    assert settings.resolved_catalog_dir == str(settings.data_dir / "catalog")


@pytest.mark.parametrize(
    ("kind", "seconds", "expected"),
    [
        (DataKind.TRADES, 60, "X.SIM-1-MINUTE-LAST-INTERNAL"),
        (DataKind.QUOTES, 300, "X.SIM-5-MINUTE-MID-INTERNAL"),
        (DataKind.TRADES, 15, "X.SIM-15-SECOND-LAST-INTERNAL"),
        (DataKind.BARS, 60, "X.SIM-1-MINUTE-LAST-EXTERNAL"),
        (DataKind.BARS, 3600, "X.SIM-1-HOUR-LAST-INTERNAL@1-MINUTE-EXTERNAL"),
    ],
)
def test_dataset_sources_name_bar_types_nautilus_accepts(
    kind: DataKind, seconds: int, expected: str
):
    spec = InstrumentSpec("X.SIM", InstrumentKind.SPOT, "AAA", "USD", 2, 2, Decimal(0), Decimal(0))
    source = DatasetSource("d", Path("/c"), kind, spec, "h", 0, 1, 1)
    assert source.bar_type(seconds) == expected
    assert str(BarType.from_str(expected)) == expected
    assert (
        source.data_cls.__name__
        == {
            DataKind.TRADES: "TradeTick",
            DataKind.QUOTES: "QuoteTick",
            DataKind.BARS: "Bar",
        }[kind]
    )
