"""Credentials by reference: from the environment or the secrets file, never stored or logged."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path

import aiohttp
from sqlalchemy import text

from tapedeck.wallets.v1 import wallets_pb2
from tapedeck_dev.emulator import generate_key


async def test_credentials_can_come_from_an_environment_variable(service, exchange, monkeypatch):
    key = generate_key()
    pid, _ = exchange.emulator.add_portfolio({"BTC": ("2", "0")}, key=key)
    monkeypatch.setenv("DESK_CDP_KEY", json.dumps(key.as_secret()))
    async with service() as svc:
        await svc.create_wallet(
            "from-env", balances={"BTC": ("2", "0")}, portfolio=(pid, "DESK_CDP_KEY")
        )
        report = await svc.finished((await svc.reconcile()).name)
    assert report.results[0].status == wallets_pb2.WALLET_STATUS_MATCHED


async def test_secrets_are_neither_stored_nor_logged(service, exchange, caplog):
    caplog.set_level(logging.DEBUG)
    async with service() as svc:
        good = await svc.create_wallet("good", exchange_balances={"BTC": ("1", "0")})
        await svc.create_wallet("refused")
        secrets = json.loads(exchange.secrets_file.read_text())
        pem_lines = [
            line
            for entry in secrets.values()
            for line in entry["privateKey"].splitlines()
            if "-----" not in line
        ]
        # The second wallet's key is replaced by one the exchange has never seen.
        refused_ref = next(r for r in secrets if r != good.credentials_ref)
        secrets[refused_ref] = generate_key().as_secret()
        exchange.secrets_file.write_text(json.dumps(secrets))
        report = await svc.finished((await svc.reconcile()).name)
        rows = []
        async with svc.app.engine.connect() as connection:
            for table in ("wallets", "balances", "reconciliations", "reconciliation_results"):
                rows += (await connection.execute(text(f"SELECT * FROM {table}"))).all()
        dumped = " ".join(str(row) for row in rows)
    assert sorted(r.error_kind for r in report.results) == [
        wallets_pb2.EXCHANGE_ERROR_KIND_UNSPECIFIED,
        wallets_pb2.EXCHANGE_ERROR_KIND_AUTHENTICATION,
    ]
    for line in pem_lines:
        assert line not in caplog.text
        assert line not in dumped
        assert line not in str(report)
    assert "Bearer ey" not in caplog.text


async def test_the_emulator_runs_by_hand(tmp_path: Path):
    secrets = tmp_path / "secrets.json"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tapedeck_dev.emulator",
        "--port",
        "0",
        "--portfolios",
        "1",
        "--secrets-out",
        str(secrets),
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        lines = []
        async with asyncio.timeout(20):
            while not lines or lines[-1] != "}":
                lines.append((await process.stdout.readline()).decode().rstrip())
        announced = json.loads("\n".join(lines))
        async with (
            aiohttp.ClientSession() as session,
            session.get(announced["control"]) as reply,
        ):
            state = await reply.json()
        assert list(json.loads(secrets.read_text())) == ["COINBASE_KEY_1"]
        assert announced["wallets"][0]["account_ref"] in state["portfolios"]
        assert announced["env"]["WALLETS_COINBASE_API_URL"] == announced["base_url"]
    finally:
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(20):
            assert await process.wait() == 0
