"""Backtest service settings, read from BACKTEST_* (and the stack-wide TAPEDECK_* / DATABASE_URL)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from tapedeck_common.settings import ServiceSettings, database_url_alias


class BacktestSettings(ServiceSettings):
    """Settings of the backtest service."""

    model_config = SettingsConfigDict(env_prefix="BACKTEST_", extra="ignore", frozen=True)

    port: int = Field(default=50061, ge=0, le=65535)
    database_url: str | None = Field(default=None, validation_alias=database_url_alias("BACKTEST_"))

    # --- datasets and strategies ---
    # Raw files are imported only from under this directory (default: <data_dir>/raw).
    data_root: Path | None = None
    catalog_dir: str | None = None
    """Where datasets live (one catalog each): a path (default <data_dir>/catalog) or s3://bucket/prefix."""
    # Imports running at once; further imports wait their turn.
    import_concurrency: int = Field(default=2, ge=1, le=64)
    upload_max_bytes: int = Field(default=2 * 1024**3, ge=1)
    """Largest file StartUpload accepts, in bytes (default 2 GiB)."""
    upload_staging_dir: Path | None = None
    """Where unfinished uploads wait for their last byte; unset: <data_dir>/upload-staging."""
    # Directories of user strategy modules (os.pathsep-separated in BACKTEST_STRATEGY_PATHS).
    strategy_paths: Annotated[tuple[Path, ...], NoDecode] = ()

    # --- runs and sweeps ---
    # Runs executed at once by this service (BACKTEST_WORKERS); 0: API only. With the local
    # executor, worker processes here; with Ray, tasks in flight on the cluster.
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=0, le=256)
    executor: Literal["local", "ray"] = "local"
    """Where engines run: `local` (worker processes here) or `ray` (one Ray task per run)."""
    ray_address: str | None = None
    """Ray cluster head (host:port) for `ray`; unset: RAY_ADDRESS, else a Ray started here."""
    results_dir: str | None = None
    """Where run results go: a path (default <data_dir>/runs) or s3://bucket/prefix (AWS_* from the environment)."""
    cache_dir: Path | None = None
    """Local copies for s3:// storage: import staging, played-back results (default <data_dir>/cache)."""
    # Times a run is started before a dying worker fails it for good.
    run_max_attempts: int = Field(default=2, ge=1, le=10)
    # Idle worker pools wake on a notification; they also look at the queue this often.
    queue_poll_seconds: float = Field(default=30.0, gt=0, le=3600.0)
    # Wait between attempts to re-open the queue's LISTEN connection on PostgreSQL.
    queue_listener_retry_seconds: float = Field(default=1.0, gt=0)
    # A RUNNING run whose service has not renewed its lease for this long is recovered.
    run_lease_seconds: float = Field(default=15.0, ge=1.0, le=3600.0)
    # A run still RUNNING after this many seconds is stopped and FAILED; unset: no limit.
    run_timeout_seconds: float | None = Field(default=None, gt=0)
    worker_idle_engine_seconds: float = Field(default=30.0, gt=0, le=86_400.0)
    """A worker idle this long with a dataset loaded is replaced by a fresh one, freeing its memory."""
    # Datasets up to this many rows stay loaded in a worker between runs; larger ones stream.
    run_in_memory_rows: int = Field(default=1_000_000, ge=1)

    # --- playback ---
    # Bytes of result files kept memory-mapped across requests (least recently used evicted).
    playback_cache_bytes: int = Field(default=2 * 1024**3, ge=0)

    # --- events for the live service ---
    live_address: str = "127.0.0.1:50063"
    """host:port of the live-event service that receives run events and order denials from its outbox (empty: none, events stay there)."""
    live_retry_max_seconds: float = Field(default=30.0, gt=0, le=3600.0)
    """Longest wait between attempts to send queued events while the live service is unreachable."""

    @field_validator("catalog_dir", "results_dir", mode="before")
    @classmethod
    def _location(cls, value: object) -> object:
        return str(value) if isinstance(value, Path) else value

    @field_validator("strategy_paths", mode="before")
    @classmethod
    def _split_strategy_paths(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(Path(part) for part in value.split(os.pathsep) if part.strip())
        return value

    @property
    def resolved_data_root(self) -> Path:
        """Return the data root, defaulting under the data directory."""
        return self.data_root if self.data_root is not None else self.data_dir / "raw"

    @property
    def resolved_catalog_dir(self) -> str:
        """Return the catalog location (path or URL), defaulting under the data directory."""
        return self.catalog_dir if self.catalog_dir is not None else str(self.data_dir / "catalog")

    @property
    def resolved_upload_staging_dir(self) -> Path:
        """Return the folder of unfinished uploads, defaulting under the data directory."""
        if self.upload_staging_dir is not None:
            return self.upload_staging_dir
        return self.data_dir / "upload-staging"

    @property
    def resolved_results_dir(self) -> str:
        """Return the run results location (path or URL), defaulting under the data directory."""
        return self.results_dir if self.results_dir is not None else str(self.data_dir / "runs")

    @property
    def resolved_cache_dir(self) -> Path:
        """Return the directory for local copies of remote files, defaulting under the data directory."""
        return self.cache_dir if self.cache_dir is not None else self.data_dir / "cache"
