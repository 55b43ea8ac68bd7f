"""Settings of the gateway's front service, read from FRONT_*."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class FrontSettings(BaseSettings):
    """Where the front service listens and which upstreams it aggregates."""

    model_config = SettingsConfigDict(env_prefix="FRONT_", extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=50060, ge=0, le=65535)
    backtest_address: str = "127.0.0.1:50061"
    wallets_address: str = "127.0.0.1:50062"
    live_address: str = "127.0.0.1:50063"
    log_level: str = "INFO"
    shutdown_grace_seconds: float = Field(default=2.0, ge=0)
    # The services' tokens file: WhoAmI answers with a token's name and role. Unset: development
    # (authentication off; every caller is "development", an admin).
    tokens_file: Path | None = Field(
        default=None, validation_alias=AliasChoices("TAPEDECK_TOKENS_FILE")
    )
