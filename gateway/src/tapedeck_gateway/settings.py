"""Settings of the gateway's front service, read from FRONT_*."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class FrontSettings(BaseSettings):
    """Where the front service listens and which upstreams it aggregates."""

    model_config = SettingsConfigDict(
        env_prefix="FRONT_", extra="ignore", frozen=True, use_attribute_docstrings=True
    )

    host: str = "127.0.0.1"
    port: int = Field(default=50060, ge=0, le=65535)
    backtest_address: str = "127.0.0.1:50061"
    wallets_address: str = "127.0.0.1:50062"
    live_address: str = "127.0.0.1:50063"
    backtest_metrics_address: str = ""
    """host:port of the backtest service's /metrics (empty: not read)."""
    wallets_metrics_address: str = ""
    """host:port of the wallet service's /metrics (empty: not read)."""
    live_metrics_address: str = ""
    """host:port of the live service's /metrics (empty: not read)."""
    stack_status_seconds: float = Field(default=2.0, gt=0)
    """Seconds between reads of the services' metrics for GetStackStatus, while it is asked for (no reads once nobody asked for a window)."""
    stack_status_window_seconds: float = Field(default=30.0, gt=0)
    """Seconds of readings GetStackStatus's rates, p99 and error ratios are computed over."""
    log_level: str = "INFO"
    shutdown_grace_seconds: float = Field(default=2.0, ge=0)
    tokens_file: Path | None = Field(
        default=None, validation_alias=AliasChoices("TAPEDECK_TOKENS_FILE")
    )
    """The services' tokens file: WhoAmI answers with a token's name and role, GetStackStatus
    needs a viewer. Unset: development (authentication off; every caller is an admin)."""
