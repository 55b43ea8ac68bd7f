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
    # Shared cache and single-flight across replicas; in process when unset.
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("WALLETS_REDIS_URL", "REDIS_URL")
    )
    redis_key_prefix: str = "tapedeck:wallets:"
    # JSON object {credentials_ref: {"name": <CDP key name>, "privateKey": <EC PEM>}}.
    secrets_file: Path | None = None
    coinbase_api_url: str = "https://api.coinbase.com"
    exchange_timeout_seconds: float = Field(default=10.0, gt=0)
    # Exchange calls in flight at once across all wallets and jobs (each account has its own key).
    exchange_concurrency: int = Field(default=32, ge=1, le=1000)
    balance_cache_ttl_seconds: float = Field(default=60.0, ge=0)
    # A job whose owner stopped renewing this lease is marked FAILED by any replica.
    reconciliation_lease_seconds: float = Field(default=30.0, gt=0)
