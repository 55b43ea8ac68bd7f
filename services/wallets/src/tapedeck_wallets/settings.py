"""Wallet service settings, read from WALLETS_* (and the stack-wide TAPEDECK_* / DATABASE_URL)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from tapedeck_common.settings import ServiceSettings, database_url_alias


class WalletsSettings(ServiceSettings):
    """Settings of the wallet service."""

    model_config = SettingsConfigDict(
        env_prefix="WALLETS_", extra="ignore", frozen=True, validate_by_name=True
    )

    port: int = Field(default=50062, ge=0, le=65535)
    database_url: str | None = Field(default=None, validation_alias=database_url_alias("WALLETS_"))

    # Exchange access.
    coinbase_api_url: str = "https://api.coinbase.com"
    """Base URL of Coinbase Advanced Trade; point it at the emulator for local runs."""
    secrets_file: Path | None = None
    """JSON file {credentials_ref: CDP key JSON}; a ref not in it is read from the environment."""
    exchange_timeout_seconds: float = Field(default=10.0, gt=0)
    """Longest one balance fetch (every page) may take before it counts as a timeout."""
    exchange_concurrency: int = Field(default=32, ge=1, le=1000)
    """Exchange calls in flight at once, across all wallets and reconciliations."""

    # The balance cache.
    balance_cache_ttl_seconds: float = Field(default=60.0, ge=0)
    """How long fetched exchange balances are reused; requests may only ask for fresher."""
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("WALLETS_REDIS_URL", "REDIS_URL")
    )
    """Redis for a balance cache and single-flight shared by replicas; unset keeps it in process."""
    redis_key_prefix: str = "tapedeck:wallets:"
    """Prefix of the wallet service's Redis keys."""

    # Prices for valuing balance totals.
    price_cache_ttl_seconds: float = Field(default=10.0, ge=0)
    """How long an exchange product price is reused when valuing balance totals."""
    price_timeout_seconds: float = Field(default=3.0, gt=0)
    """Longest one price fetch may take; past it the asset is valued as unavailable."""

    # Reconciliation jobs.
    reconciliation_lease_seconds: float = Field(default=30.0, gt=0)
    """A job whose process stopped renewing its lease this long ago is marked FAILED."""

    # Events for the live service.
    live_address: str = "127.0.0.1:50063"
    """host:port of the live-event service that receives reconciliation mismatch events from its outbox (empty: none, events stay there)."""
    live_retry_max_seconds: float = Field(default=30.0, gt=0, le=3600.0)
    """Longest wait between attempts to send queued events while the live service is unreachable."""
