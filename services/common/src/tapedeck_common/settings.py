"""Settings every service shares; each service subclasses with its own env prefix."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

Environment = Literal["development", "production"]


class ServiceSettings(BaseSettings):
    """Settings shared by the three services; fields read `<PREFIX>_<FIELD>` from the environment."""

    model_config = SettingsConfigDict(
        env_prefix="TAPEDECK_",
        extra="ignore",
        frozen=True,
        validate_by_name=True,
        use_attribute_docstrings=True,
    )

    host: str = "127.0.0.1"
    """Interface the gRPC server binds to."""
    port: int = Field(default=50051, ge=0, le=65535)
    """Port of the gRPC server (0 picks a free one)."""
    environment: Environment = Field(
        default="development",
        validation_alias=AliasChoices("TAPEDECK_ENV", "TAPEDECK_ENVIRONMENT"),
    )
    """`development` or `production`; production refuses to start without a tokens file."""
    data_dir: Path = Field(default=Path("var"), validation_alias=AliasChoices("TAPEDECK_DATA_DIR"))
    """Directory for SQLite files, catalogs, results, logs and tokens."""
    database_url: str | None = None
    """SQLAlchemy URL; unset means a SQLite file in the data directory; postgresql://... uses asyncpg."""
    db_pool_size: int = Field(default=10, ge=1)
    """Database connections kept in the pool."""
    db_max_overflow: int = Field(default=10, ge=0)
    """Extra database connections allowed above the pool size under load."""
    db_pool_timeout_seconds: float = Field(default=10.0, gt=0)
    """Seconds to wait for a pooled connection before failing the request."""
    db_pool_recycle_seconds: int = Field(default=1800, ge=-1)
    """Seconds after which a pooled connection is replaced (-1: never)."""
    db_pool_pre_ping: bool = True
    """Check that a pooled connection is alive before using it, if it has been idle."""
    db_pool_pre_ping_idle_seconds: float = Field(default=1.0, ge=0)
    """With pre-ping, connections used within this many seconds are not checked (0: always)."""
    db_stall_seconds: float = Field(default=5.0, gt=0)
    """Seconds the database may stall (no free pooled connection, a lock held) before health says NOT_SERVING."""
    db_check_seconds: float = Field(default=2.0, gt=0)
    """Seconds between checks of the database while it is in use or stalled (idle: none)."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", validation_alias=AliasChoices("TAPEDECK_LOG_LEVEL")
    )
    """Level of the JSON logs on stdout."""
    shutdown_grace_seconds: float = Field(default=5.0, ge=0)
    """Seconds in-flight calls get to finish after SIGTERM."""
    tokens_file: Path | None = Field(
        default=None, validation_alias=AliasChoices("TAPEDECK_TOKENS_FILE")
    )
    """JSON file of bearer tokens and roles; without it (development only) authentication is off."""
    metrics_host: str = "127.0.0.1"
    """Interface the Prometheus `/metrics` HTTP server binds to."""
    metrics_port: int = Field(default=0, ge=0, le=65535)
    """Port of the Prometheus `/metrics` HTTP server (0: metrics are not served)."""
    metrics_sample_seconds: float = Field(default=5.0, gt=0)
    """Seconds between samples of the database-backed gauges (queue depth, outbox age, ...); a gauge is re-read only once its rows may have changed."""
    access_log: bool = Field(default=False, validation_alias=AliasChoices("TAPEDECK_ACCESS_LOG"))
    """Log one line per call (method, status code, seconds, request id)."""
    service_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("TAPEDECK_SERVICE_TOKEN")
    )
    """This service's own bearer token for its calls to the other services."""

    @field_validator("database_url")
    @classmethod
    def _database_url_parses(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        try:
            url = make_url(value)
        except (ArgumentError, ValueError):
            raise ValueError(
                "is not a database URL; expected sqlite:///path or postgresql://user@host/db"
            ) from None
        if url.get_backend_name() not in ("sqlite", "postgresql"):
            raise ValueError(
                f"backend {url.get_backend_name()!r} is not supported; use sqlite or postgresql"
            )
        return value


def secret_value(secret: SecretStr | None) -> str | None:
    """Return a secret setting's value, or None when unset."""
    return None if secret is None else secret.get_secret_value()


def database_url_alias(prefix: str) -> AliasChoices:
    """Accept `<PREFIX>DATABASE_URL` first, then the stack-wide `DATABASE_URL`."""
    return AliasChoices(f"{prefix}DATABASE_URL", "DATABASE_URL")
