"""Seed the demo through the gateway, as a user would: data, a run, a sweep, wallets, events.

`tapedeck --demo` runs `tapedeck-demo` once the stack is ready, with the admin token in
`TAPEDECK_DEMO_TOKEN`. Idempotent: the dataset is imported once (content hash), a run with the same spec is returned
from the cache, events have fixed ids, and demo wallets are re-pointed at this start's emulator
portfolios. A step whose RPC is not available is reported and skipped, never fatal.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp

from tapedeck.backtest.v1 import backtest_pb2 as bt
from tapedeck.backtest.v1 import backtest_pb2_grpc as bt_grpc
from tapedeck.common.v1 import common_pb2
from tapedeck.live.v1 import live_pb2 as lv
from tapedeck.live.v1 import live_pb2_grpc as lv_grpc
from tapedeck.wallets.v1 import wallets_pb2 as wl
from tapedeck.wallets.v1 import wallets_pb2_grpc as wl_grpc
from tapedeck_dev.synth import demo_ticks, write_ticks

logger = logging.getLogger(__name__)

TOKEN_ENV = "TAPEDECK_DEMO_TOKEN"
DEMO_TICKS = 300_000
DEMO_FILE = Path("demo") / "btcusdt-demo-trades.parquet"
BTCUSDT = bt.Instrument(
    instrument_id="BTCUSDT.BINANCE",
    kind=bt.INSTRUMENT_KIND_SPOT,
    base_currency="BTC",
    quote_currency="USDT",
    price_precision=2,
    size_precision=6,
    maker_fee="0.001",
    taker_fee="0.001",
)
# Stored balances differ from the emulator's on purpose, so reconciliation shows a mismatch.
DEMO_STORED_BALANCES = {
    "Demo Coinbase 1": [("BTC", "1.5", "1.25", "0.25"), ("USD", "1000.00", "1000.00", "0")],
    "Demo Coinbase 2": [("BTC", "1.4", "1.15", "0.25"), ("USD", "1000.00", "1000.00", "0")],
}


def say(message: str) -> None:
    """Print a demo line for the person at the terminal."""
    print(f"tapedeck: demo: {message}", flush=True)


async def _step(name: str, action: Callable[[], Awaitable[str]]) -> None:
    try:
        say(f"{name}: {await action()}")
    except grpc.aio.AioRpcError as error:
        if error.code() == grpc.StatusCode.UNIMPLEMENTED:
            say(f"{name}: skipped, not available in this version")
        else:
            say(f"{name}: failed: {error.code().name}: {error.details()}")


def _read_portfolios(emulator_info: Path | None) -> list[dict[str, str]]:
    if emulator_info is None or not emulator_info.exists():
        return []
    portfolios: list[dict[str, str]] = json.loads(emulator_info.read_text())["wallets"]
    return portfolios


def write_demo_ticks(data_root: Path) -> Path:
    """Generate the demo's trade ticks under the data root once."""
    path = data_root / DEMO_FILE
    if not path.exists():
        write_ticks(demo_ticks(DEMO_TICKS), path.with_suffix(".tmp.parquet")).rename(path)
    return path


async def seed_demo(
    address: str, *, token: str | None, data_dir: Path, emulator_info: Path | None = None
) -> None:
    """Seed every part of the demo that the running services support."""
    metadata = (("authorization", f"Bearer {token}"),) if token is not None else ()
    async with grpc.aio.insecure_channel(address) as channel:
        backtest = bt_grpc.BacktestServiceStub(channel)
        wallets = wl_grpc.WalletServiceStub(channel)
        live = lv_grpc.LiveServiceStub(channel)
        portfolios = _read_portfolios(emulator_info)
        await _step("events", lambda: _seed_events(live, metadata))
        await _step("wallets", lambda: _seed_wallets(wallets, metadata, portfolios))
        ticks = await asyncio.to_thread(write_demo_ticks, data_dir / "raw")
        await _step("backtest", lambda: _seed_backtest(backtest, metadata, ticks))


async def _seed_events(
    live: lv_grpc.LiveServiceAsyncStub, metadata: tuple[tuple[str, str], ...]
) -> str:
    events = []
    reasons = ["insufficient_funds", "max_notional", "stale_balance", "insufficient_funds"]
    for index, reason in enumerate(reasons):
        payload = Struct()
        payload.update({"order": f"demo-{index}", "quantity": "0.5", "price": "43000.00"})
        events.append(
            lv.Event(
                event_id=f"demo-block-{index}",
                type=lv.EVENT_TYPE_TRADE_BLOCKED,
                run_id="demo-live",
                symbol="BTC-USD",
                reason=reason,
                time=Timestamp(seconds=1_704_067_200 + 60 * index),
                payload=payload,
            )
        )
    reply = await live.AppendEvents(lv.AppendEventsRequest(events=events), metadata=metadata)
    return f"{reply.appended_count} appended, {reply.duplicate_count} already there"


async def _seed_wallets(
    wallets: wl_grpc.WalletServiceAsyncStub,
    metadata: tuple[tuple[str, str], ...],
    portfolios: list[dict[str, str]],
) -> str:
    if not portfolios:
        return "skipped, no exchange emulator running"
    existing = await wallets.ListWallets(wl.ListWalletsRequest(page_size=1000), metadata=metadata)
    by_name = {w.display_name: w for w in existing.wallets}
    for (display_name, balances), portfolio in zip(
        DEMO_STORED_BALANCES.items(), portfolios, strict=False
    ):
        if display_name in by_name:
            await wallets.DeleteWallet(
                wl.DeleteWalletRequest(name=by_name[display_name].name), metadata=metadata
            )
        await wallets.CreateWallet(
            wl.CreateWalletRequest(
                wallet=wl.Wallet(
                    display_name=display_name,
                    exchange="coinbase",
                    account_ref=portfolio["account_ref"],
                    credentials_ref=portfolio["credentials_ref"],
                    balances=[
                        wl.Balance(asset=a, total=t, available=v, hold=h) for a, t, v, h in balances
                    ],
                )
            ),
            metadata=metadata,
        )
    job = await wallets.ReconcileWallets(
        wl.ReconcileWalletsRequest(threshold="0.0001"), metadata=metadata
    )
    return f"{len(DEMO_STORED_BALANCES)} wallets on the emulator; reconciliation {job.reconciliation.name} started"


async def _seed_backtest(
    backtest: bt_grpc.BacktestServiceAsyncStub, metadata: tuple[tuple[str, str], ...], ticks: Path
) -> str:
    del ticks  # imported by its path under the data root
    dataset: bt.Dataset | None = None
    async for update in backtest.ImportDataset(
        bt.ImportDatasetRequest(
            source_path=str(DEMO_FILE),
            instrument=BTCUSDT,
            kind=bt.DATA_KIND_TRADES,
            display_name="BTCUSDT demo trades",
        ),
        metadata=metadata,
    ):
        if update.HasField("dataset"):
            dataset = update.dataset
    if dataset is None:
        return "import ended without a dataset"
    spec = bt.BacktestSpec(
        dataset=dataset.name,
        strategy="strategies/ema_cross",
        parameters={
            "fast_period": bt.ParameterValue(int_value=10),
            "slow_period": bt.ParameterValue(int_value=30),
        },
        starting_balances=[common_pb2.Money(currency="USDT", amount="100000")],
        account_type=bt.ACCOUNT_TYPE_CASH,
        bar_interval=Duration(seconds=60),
    )
    run = await backtest.CreateBacktest(bt.CreateBacktestRequest(spec=spec), metadata=metadata)
    sweep_note = ""
    try:
        sweep = await backtest.CreateSweep(
            bt.CreateSweepRequest(
                base_spec=spec,
                axes=[
                    bt.ParameterAxis(
                        name="fast_period",
                        values=[bt.ParameterValue(int_value=v) for v in (5, 10)],
                    ),
                    bt.ParameterAxis(
                        name="slow_period",
                        values=[bt.ParameterValue(int_value=v) for v in (20, 40)],
                    ),
                ],
                metric=bt.RANK_METRIC_SHARPE_RATIO,
            ),
            metadata=metadata,
        )
        sweep_note = f"; sweep {sweep.sweep.name} of {sweep.sweep.total_runs} runs"
    except grpc.aio.AioRpcError as error:
        sweep_note = f"; sweep not started ({error.code().name})"
    state = bt.BacktestState.Name(run.backtest.state).removeprefix("BACKTEST_STATE_").lower()
    return (
        f"dataset {dataset.name} ({dataset.row_count:,} ticks); run {run.backtest.name} {state}"
        f"{sweep_note}"
    )


def main(argv: list[str] | None = None) -> None:
    """Seed the demo through a running stack's gateway; exit 1 if seeding broke off."""
    parser = argparse.ArgumentParser(
        prog="tapedeck-demo", description="Seed Tapedeck's demo data through its gateway."
    )
    parser.add_argument("--address", required=True, help="the gateway's host:port")
    parser.add_argument(
        "--data-dir", type=Path, required=True, help="the stack's data directory (ticks go to raw/)"
    )
    parser.add_argument(
        "--emulator-info", type=Path, default=None, help="the exchange emulator's --info-out file"
    )
    args = parser.parse_args(argv)
    try:
        asyncio.run(
            seed_demo(
                args.address,
                token=os.environ.get(TOKEN_ENV) or None,
                data_dir=args.data_dir,
                emulator_info=args.emulator_info,
            )
        )
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as error:
        say(f"seeding failed: {type(error).__name__}: {error}")
        sys.exit(1)


if __name__ == "__main__":
    main()
