"""Fixtures shared by every test: real databases on both backends, isolated data directories."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.s3_support import S3Server, s3_server
from tests.support import postgres_database

# Ray reads this when first imported: every Ray process of a test (the service's driver included)
# then talks over 127.0.0.1, never the machine's outward address.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database: a SQLite file, then a new PostgreSQL database (dropped after)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
        return
    async with postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    """A real S3 API server (moto) on 127.0.0.1 with a fresh bucket, shared by the session."""
    with s3_server() as server:
        yield server


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A private data directory for a service under test."""
    path = tmp_path / "data"
    path.mkdir()
    return path
