"""Live-event service settings, read from LIVE_* (and the stack-wide TAPEDECK_* / DATABASE_URL)."""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from tapedeck_common.settings import ServiceSettings, database_url_alias


class LiveSettings(ServiceSettings):
    """Settings of the live-event service."""

    model_config = SettingsConfigDict(env_prefix="LIVE_", extra="ignore", frozen=True)

    port: int = Field(default=50063, ge=0, le=65535)
    database_url: str | None = Field(default=None, validation_alias=database_url_alias("LIVE_"))

    # The live tail.
    subscribe_batch_size: int = Field(default=500, ge=1, le=10_000)
    """Most events one subscriber reads from the database (and holds) at a time."""
    tail_window_events: int = Field(default=5_000, ge=1, le=1_000_000)
    """Newest events the shared tail reader keeps for subscribers; one behind it reads the store."""
    encoded_events: int = Field(default=20_000, ge=1, le=1_000_000)
    """Newest events kept encoded for responses (each encoded once, whoever sends it)."""
    heartbeat_seconds: float = Field(default=10.0, gt=0)
    """An idle subscription gets an empty message this often, so proxies keep it open."""
    listener_retry_seconds: float = Field(default=1.0, gt=0)
    """Wait between attempts to re-open the LISTEN connection on PostgreSQL."""

    # The pre-trade gate.
    wallets_address: str = "127.0.0.1:50062"
    """host:port of the wallet service that CheckOrder asks for balances."""
    wallets_timeout_seconds: float = Field(default=2.0, gt=0)
    """Longest CheckOrder waits for the wallet service, even when its caller would wait longer."""
    max_order_notional: Decimal = Field(default=Decimal("1000000"), gt=0)
    """Largest order CheckOrder allows, as quantity x price in the quote asset."""
    max_balance_age_seconds: float = Field(default=300.0, gt=0)
    """A balance last set longer ago than this is stale and blocks the order."""
