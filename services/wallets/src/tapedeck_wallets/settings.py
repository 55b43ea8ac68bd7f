"""Wallet service settings, read from WALLETS_* (and the stack-wide TAPEDECK_* / DATABASE_URL)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from tapedeck_common.settings import ServiceSettings, database_url_alias


class WalletsSettings(ServiceSettings):
    """Settings of the wallet service."""

    model_config = SettingsConfigDict(env_prefix="WALLETS_", extra="ignore", frozen=True)

    port: int = Field(default=50062, ge=0, le=65535)
    database_url: str | None = Field(default=None, validation_alias=database_url_alias("WALLETS_"))
