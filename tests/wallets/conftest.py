"""Fixtures for the wallet service: the Coinbase emulator, a secrets file, a running service."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from tapedeck_dev.emulator import CoinbaseEmulator
from tests.wallets.harness import Exchange, Service, running_service


@pytest.fixture
async def exchange(tmp_path: Path) -> AsyncIterator[Exchange]:
    """A Coinbase emulator on loopback and a secrets file the service reads keys from."""
    emulator = await CoinbaseEmulator().start()
    secrets = tmp_path / "secrets.json"
    secrets.write_text(json.dumps({}))
    try:
        yield Exchange(emulator=emulator, secrets_file=secrets)
    finally:
        await emulator.stop()


@pytest.fixture
def service(
    database_url: str, data_dir: Path, exchange: Exchange
) -> Callable[..., AbstractAsyncContextManager[Service]]:
    """Start the wallet service against the emulator: `async with service(**settings) as svc`."""

    def start(**overrides: object) -> AbstractAsyncContextManager[Service]:
        return running_service(
            database_url=database_url, data_dir=data_dir, exchange=exchange, **overrides
        )

    return start
