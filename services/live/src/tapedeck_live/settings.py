"""Live-event service settings, read from LIVE_* (and the stack-wide TAPEDECK_* / DATABASE_URL)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from tapedeck_common.settings import ServiceSettings, database_url_alias


class LiveSettings(ServiceSettings):
    """Settings of the live-event service."""

    model_config = SettingsConfigDict(env_prefix="LIVE_", extra="ignore", frozen=True)

    port: int = Field(default=50063, ge=0, le=65535)
    database_url: str | None = Field(default=None, validation_alias=database_url_alias("LIVE_"))
