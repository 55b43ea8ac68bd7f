"""The browser app in real Chromium, through the real Envoy gateway and the real services."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.stack import BIN, REPO, Stack, descendants, free_ports, start_stack
from tests.support import missing_dependency

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"
GRPCURL = BIN / "grpcurl"
# Totals (available + hold) of every emulator portfolio (see tapedeck_dev.emulator.__main__).
EXCHANGE_BALANCES = {"BTC": "1.75", "ETH": "10.123456789012345678", "USD": "1000.00"}
FILLER_WALLETS = 2000


@pytest.fixture(scope="module")
def exchange(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The Coinbase emulator with two portfolios, and the secrets file the wallet service reads."""
    tmp = tmp_path_factory.mktemp("exchange")
    port = free_ports()[0]
    info = tmp / "exchange.json"
    log = tmp / "emulator.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tapedeck_dev.emulator",
                "--port",
                str(port),
                "--portfolios",
                "2",
                "--secrets-out",
                str(tmp / "secrets.json"),
                "--info-out",
                str(info),
            ],
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    deadline = time.monotonic() + 30
    while not (info.exists() and info.stat().st_size > 0):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise AssertionError(f"the exchange emulator did not start: {log.read_text()}")
        time.sleep(0.1)
    yield json.loads(info.read_text())
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, exchange: dict[str, Any]) -> Iterator[Stack]:
    if not Path(CHROMIUM).exists():
        missing_dependency(f"Chromium at {CHROMIUM} (apt-get install chromium)")
    if shutil.which("node") is None:
        missing_dependency("node")
    saved = {key: os.environ.get(key) for key in exchange["env"]}
    os.environ.update(exchange["env"])  # the launcher passes them on to the wallet service
    try:
        running = start_stack(tmp_path_factory.mktemp("browser"))
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    yield running
    running.stop()


def run_scenario(name: str, *args: str) -> str:
    done = subprocess.run(
        ["node", str(REPO / "tests" / "e2e" / f"{name}.mjs"), *args],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "TAPEDECK_ARTIFACTS": str(ARTIFACTS), "CHROMIUM": CHROMIUM},
    )
    assert done.returncode == 0, f"{name} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def rpc(stack: Stack, method: str, body: dict[str, Any]) -> dict[str, Any]:
    """Call one RPC through the gateway with grpcurl (the operators' tool) and return the JSON."""
    done = subprocess.run(
        [
            str(GRPCURL),
            "-plaintext",
            "-H",
            f"authorization: Bearer {stack.admin_token()}",
            "-d",
            json.dumps(body),
            stack.address,
            method,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"{method}: {done.stderr}"
    out = done.stdout.strip()
    if not out:
        return {}
    # Server streams print one JSON object per message; return the last.
    decoder = json.JSONDecoder()
    position, last = 0, {}
    while position < len(out):
        last, end = decoder.raw_decode(out, position)
        position = end
        while position < len(out) and out[position].isspace():
            position += 1
    return last


def link(stack: Stack) -> str:
    return f"http://{stack.address}/#token={stack.admin_token()}"


def test_the_app_signs_in_from_the_launcher_link_and_reaches_every_service(stack: Stack) -> None:
    run_scenario("overview", link(stack))


def test_an_appended_event_reaches_the_live_tail_once(stack: Stack) -> None:
    blocks = [
        ("b1", "insufficient_funds", "BTC-USD"),
        ("b2", "insufficient_funds", "ETH-USD"),
        ("b3", "max_notional", "BTC-USD"),
    ]
    events: list[dict[str, Any]] = [
        {
            "event_id": f"seed-{event_id}",
            "type": "EVENT_TYPE_TRADE_BLOCKED",
            "run_id": "seed-run",
            "symbol": symbol,
            "reason": reason,
            "time": "2026-01-02T03:04:05Z",
            "payload": {"required": "10.5", "available": "2.25"},
        }
        for event_id, reason, symbol in blocks
    ]
    events.append(
        {
            "event_id": "seed-fill",
            "type": "EVENT_TYPE_ORDER_FILLED",
            "run_id": "seed-run",
            "symbol": "BTC-USD",
            "time": "2026-01-02T03:04:06Z",
        }
    )
    rpc(stack, "tapedeck.live.v1.LiveService/AppendEvents", {"events": events})
    out = run_scenario("live", link(stack), str(GRPCURL), stack.address, stack.admin_token())
    assert "shown in the live tail" in out


def test_reconciling_against_the_exchange_highlights_a_mismatch(
    stack: Stack, exchange: dict[str, Any]
) -> None:
    import grpc

    from tapedeck.wallets.v1 import wallets_pb2, wallets_pb2_grpc

    first, second = exchange["wallets"]
    matching = {**first, "display_name": "desk-matching"}
    mismatching = {**second, "display_name": "desk-mismatching"}
    balances = [
        wallets_pb2.Balance(asset=asset, total=total, available=total, hold="0")
        for asset, total in EXCHANGE_BALANCES.items()
    ]
    short_btc = [
        wallets_pb2.Balance(asset="BTC", total="1.25", available="1.25", hold="0"),
        *balances[1:],
    ]
    metadata = (("authorization", f"Bearer {stack.admin_token()}"),)
    with grpc.insecure_channel(stack.address) as channel:
        stub = wallets_pb2_grpc.WalletServiceStub(channel)

        def create(spec: dict[str, str], stored: list[wallets_pb2.Balance]) -> None:
            wallet = wallets_pb2.Wallet(
                display_name=spec["display_name"],
                exchange=spec["exchange"],
                account_ref=spec["account_ref"],
                credentials_ref=spec["credentials_ref"],
                balances=stored,
            )
            stub.CreateWallet(wallets_pb2.CreateWalletRequest(wallet=wallet), metadata=metadata)

        create(matching, balances)
        create(mismatching, short_btc)
        # Many more wallets on the first portfolio: the table must stay fast (virtualised).
        for index in range(FILLER_WALLETS):
            create({**first, "display_name": f"filler-{index:04d}"}, balances)
    out = run_scenario("wallets", link(stack), str(FILLER_WALLETS + 2), _viewer_token(stack))
    assert "mismatch highlighted" in out
    assert "created, balance set, deleted" in out
    assert "viewer gated" in out
    print(out)


def _import_dataset(stack: Stack) -> str:
    raw = stack.data_dir / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tapedeck_dev.synth",
            str(raw / "ticks.csv"),
            "--ticks",
            "20000",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    dataset = rpc(
        stack,
        "tapedeck.backtest.v1.BacktestService/ImportDataset",
        {
            "source_path": "ticks.csv",
            "kind": "DATA_KIND_TRADES",
            "display_name": "BTC synthetic",
            "instrument": {
                "instrument_id": "BTCUSDT.BINANCE",
                "kind": "INSTRUMENT_KIND_SPOT",
                "base_currency": "BTC",
                "quote_currency": "USDT",
                "price_precision": 2,
                "size_precision": 6,
                "maker_fee": "0.001",
                "taker_fee": "0.001",
            },
        },
    )
    return str(dataset["dataset"]["name"])


@pytest.fixture(scope="module")
def launched(stack: Stack) -> tuple[str, str]:
    """A run launched from the form (it reaches the end) and a run of a sweep launched there."""
    _import_dataset(stack)
    out = run_scenario("runs", link(stack))
    run = next(line.split()[-1] for line in out.splitlines() if line.startswith("run "))
    other = next(line.split()[-1] for line in out.splitlines() if line.startswith("other "))
    return run, other


def test_a_run_launched_from_the_form_reaches_the_end_and_opens_in_playback(
    stack: Stack, launched: tuple[str, str]
) -> None:
    run, other = launched
    # The playback scenario checks the portfolio panel against GetPortfolioState at the cursor,
    # then compares the run's equity with a sweep run's.
    out = run_scenario(
        "playback", link(stack), str(GRPCURL), stack.address, stack.admin_token(), run, other
    )
    print(out)


def _ema_cross_run(stack: Stack, dataset: str) -> str:
    """Run EMA cross on a dataset through the API; return the succeeded run's id."""
    spec = {
        "dataset": dataset,
        "strategy": "strategies/ema_cross",
        "starting_balances": [{"currency": "USDT", "amount": "100000"}],
    }
    created = rpc(stack, "tapedeck.backtest.v1.BacktestService/CreateBacktest", {"spec": spec})
    name = str(created["backtest"]["name"])
    final = rpc(stack, "tapedeck.backtest.v1.BacktestService/WatchBacktest", {"name": name})
    assert final["backtest"]["state"] == "BACKTEST_STATE_SUCCEEDED", final
    return name.rsplit("/", maxsplit=1)[-1]


def _foreign_run(stack: Stack) -> str:
    """A succeeded run on another instrument's dataset: it cannot be compared with BTC runs."""
    raw = stack.data_dir / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tapedeck_dev.synth",
            str(raw / "eth.csv"),
            "--ticks",
            "5000",
            "--seed",
            "7",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    dataset = rpc(
        stack,
        "tapedeck.backtest.v1.BacktestService/ImportDataset",
        {
            "source_path": "eth.csv",
            "kind": "DATA_KIND_TRADES",
            "display_name": "ETH synthetic",
            "instrument": {
                "instrument_id": "ETHUSDT.BINANCE",
                "kind": "INSTRUMENT_KIND_SPOT",
                "base_currency": "ETH",
                "quote_currency": "USDT",
                "price_precision": 2,
                "size_precision": 4,
                "maker_fee": "0.001",
                "taker_fee": "0.001",
            },
        },
    )["dataset"]["name"]
    return _ema_cross_run(stack, dataset)


def test_playback_analyses_the_run_trades_drawdown_statistics_downloads_and_compare(
    stack: Stack, launched: tuple[str, str]
) -> None:
    run, other = launched
    foreign = _foreign_run(stack)
    out = run_scenario(
        "analysis",
        link(stack),
        str(GRPCURL),
        stack.address,
        stack.admin_token(),
        run,
        other,
        foreign,
    )
    assert "as ListTrades lists them" in out
    assert "is the max drawdown" in out
    assert "as declared" in out
    assert "Cannot compare" in out
    print(out)


def test_playback_replays_up_to_the_cursor_and_keeps_the_view_in_time(
    stack: Stack, launched: tuple[str, str]
) -> None:
    run, _ = launched
    out = run_scenario("replay", link(stack), str(GRPCURL), stack.address, stack.admin_token(), run)
    assert "opened at" in out
    print(out)


def test_a_search_draws_its_progress_and_heatmap_and_a_walk_forward_its_folds_and_equity(
    stack: Stack, launched: tuple[str, str]
) -> None:
    # After `launched`: the dataset is imported. The scenario checks the page against
    # GetSweep, AnalyzeSweep and GetWalkForward through the gateway.
    out = run_scenario("sweeps", link(stack), str(GRPCURL), stack.address, stack.admin_token())
    assert "walk-forward" in out
    print(out)


def test_the_header_names_the_role_and_gates_actions_and_a_bad_token_signs_in(
    stack: Stack, launched: tuple[str, str]
) -> None:
    # After `launched`: the form has a dataset and a strategy, so only the role disables Launch.
    origin = f"http://{stack.address}"
    out = run_scenario("identity", origin, _viewer_token(stack), stack.admin_token())
    assert "viewer gated" in out


def test_an_uploaded_csv_imports_and_opens_in_playback(stack: Stack) -> None:
    out = run_scenario("datasets", link(stack), _viewer_token(stack))
    assert "opens in playback" in out
    assert "viewer gated" in out
    print(out)


def _viewer_token(stack: Stack) -> str:
    tokens = json.loads((stack.data_dir / "tokens.json").read_text())["tokens"]
    return str(next(entry["token"] for entry in tokens if entry["name"] == "viewer"))


def _service_pid(stack: Stack, module: str) -> int:
    for pid in descendants(stack.process.pid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if module.encode() in cmdline:
            return pid
    raise AssertionError(f"no {module} process under the launcher")


def test_the_live_tail_reconnects_and_resumes_from_its_cursor_after_the_service_dies(
    stack: Stack,
) -> None:
    live = _service_pid(stack, "tapedeck_live")
    out = run_scenario(
        "live_reconnect", link(stack), str(GRPCURL), stack.address, stack.admin_token(), str(live)
    )
    assert "shown once" in out


def _btc_run(stack: Stack) -> str:
    """A succeeded EMA-cross run on the BTC synthetic dataset, created through the API."""
    dataset = _import_dataset(stack)
    return _ema_cross_run(stack, dataset)


def test_a_live_session_shows_its_fills_round_trips_and_drift_from_the_backtest(
    stack: Stack,
) -> None:
    import itertools
    from dataclasses import replace
    from decimal import Decimal

    import grpc

    from tapedeck.backtest.v1 import backtest_pb2, backtest_pb2_grpc
    from tapedeck.live.v1 import live_pb2, live_pb2_grpc
    from tests.backtest.test_drift import SECOND, SESSION, copy_of, session_of

    run = _btc_run(stack)
    metadata = (("authorization", f"Bearer {stack.admin_token()}"),)
    with grpc.insecure_channel(stack.address) as channel:
        listed = backtest_pb2_grpc.BacktestServiceStub(channel).ListTrades(
            backtest_pb2.ListTradesRequest(backtest=f"backtests/{run}", page_size=1000),
            metadata=metadata,
        )
        ran = sorted(listed.trades, key=lambda t: t.entry_time.ToNanoseconds())
        assert len(ran) >= 4
        assert listed.next_page_token == ""
        entries = [t.entry_time.ToNanoseconds() for t in ran]
        spacing = min(b - a for a, b in itertools.pairwise(entries))
        # The browser takes the gap in whole seconds; the delay stays well inside it.
        gap = spacing // 2 // SECOND
        assert gap >= 5, f"trades {spacing} ns apart are too close to match unambiguously"
        delay = gap // 3 * SECOND
        copies = [copy_of(t) for t in ran]
        # One trade late and at worse prices, one dropped, one short the run never made.
        late = replace(
            copies[0],
            entry_ns=copies[0].entry_ns + delay,
            entry_price=copies[0].entry_price + Decimal("2.50"),
        )
        extra = replace(copies[3], long=False, exit_price=copies[3].entry_price - 3)
        session = [late, copies[2], extra, *copies[3:]]
        live_pb2_grpc.LiveServiceStub(channel).AppendEvents(
            live_pb2.AppendEventsRequest(events=session_of(session)), metadata=metadata
        )
    out = run_scenario(
        "sessions",
        link(stack),
        str(GRPCURL),
        stack.address,
        stack.admin_token(),
        SESSION,
        run,
        str(gap),
    )
    assert f"matched {len(ran) - 1}, live only 1, backtest only 1" in out
    assert f"{2 * len(session)} fills" in out
    print(out)


def test_the_ops_page_shows_valued_balances_blocks_positions_and_reconciliation_as_the_rpcs(
    stack: Stack, exchange: dict[str, Any]
) -> None:
    import grpc

    from tapedeck.wallets.v1 import wallets_pb2, wallets_pb2_grpc

    first, second = exchange["wallets"]
    metadata = (("authorization", f"Bearer {stack.admin_token()}"),)
    with grpc.insecure_channel(stack.address) as channel:
        stub = wallets_pb2_grpc.WalletServiceStub(channel)
        names = []
        # SOL has no SOL-USD product on the emulator: it must be listed unpriced.
        for display_name, spec, held in (
            ("ops-desk", first, {"BTC": "1.75", "USD": "250.75", "SOL": "12"}),
            ("ops-short", second, {"BTC": "0.5", "ETH": "10.123456789012345678"}),
        ):
            wallet = wallets_pb2.Wallet(
                display_name=display_name,
                exchange=spec["exchange"],
                account_ref=spec["account_ref"],
                credentials_ref=spec["credentials_ref"],
                balances=[
                    wallets_pb2.Balance(asset=asset, available=total, hold="0")
                    for asset, total in held.items()
                ],
            )
            reply = stub.CreateWallet(
                wallets_pb2.CreateWalletRequest(wallet=wallet), metadata=metadata
            )
            names.append(reply.wallet.name)
        stub.ReconcileWallets(wallets_pb2.ReconcileWalletsRequest(wallets=names), metadata=metadata)
    now = time.time()

    def at(seconds_ago: float) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - seconds_ago))

    def position(
        event_id: str, kind: str, run: str, position_id: str, quantity: str
    ) -> dict[str, Any]:
        trader, instance = run.split(":")
        return {
            "event_id": event_id,
            "type": kind,
            "run_id": run,
            "symbol": position_id.split("-", maxsplit=1)[0],
            "time": at(120),
            "payload": {
                "trader_id": trader,
                "instance_id": instance,
                "position_id": position_id,
                "instrument_id": position_id.split("-", maxsplit=1)[0],
                "strategy_id": "EMACross-001",
                "quantity": quantity,
                "average_open_price": "64000.5",
                "realized_pnl": {"amount": "0", "currency": "USD"},
            },
        }

    blocked = [
        ("ops-b1", "insufficient_funds", 60),
        ("ops-b2", "insufficient_funds", 90),
        ("ops-b3", "max_notional", 30),
        ("ops-old", "stale_balance", 7200),  # two hours ago: outside the last hour
    ]
    events = [
        {
            "event_id": event_id,
            "type": "EVENT_TYPE_TRADE_BLOCKED",
            "run_id": "OPS-001:one",
            "symbol": "BTCUSD.OPS",
            "reason": reason,
            "time": at(seconds_ago),
        }
        for event_id, reason, seconds_ago in blocked
    ]
    events += [
        position("ops-p1", "EVENT_TYPE_POSITION_OPENED", "OPS-001:one", "BTCUSD.OPS-long", "0.5"),
        position("ops-p2", "EVENT_TYPE_POSITION_OPENED", "OPS-001:one", "ETHUSD.OPS-closed", "2"),
        position("ops-p3", "EVENT_TYPE_POSITION_CLOSED", "OPS-001:one", "ETHUSD.OPS-closed", "0"),
        position("ops-p4", "EVENT_TYPE_POSITION_OPENED", "OPS-002:two", "ETHUSD.OPS-short", "-3"),
    ]
    rpc(stack, "tapedeck.live.v1.LiveService/AppendEvents", {"events": events})
    out = run_scenario("ops", link(stack), str(GRPCURL), stack.address, stack.admin_token())
    assert "as GetBalanceTotals" in out
    assert "as ListBlocks" in out
    assert "as ListSessions" in out
    print(out)
