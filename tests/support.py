"""Helpers shared by the test suite: bounded polling, databases, in-process services."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import asyncpg
import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
POSTGRES_ADMIN_DSN = os.environ.get(
    "TAPEDECK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)


# Servers the tests start listen on ports below the kernel's ephemeral range (32768-60999 here):
# a port taken from that range and bound later can be taken in between by any outgoing
# connection on the machine, which the suite makes by the thousand.
TEST_PORTS = range(20000, 32000)
_handed_out: set[int] = set()


def free_port() -> int:
    """Return a loopback port free now, never handed out before in this process."""
    (port,) = free_ports(1)
    return port


def free_ports(count: int) -> list[int]:
    """Return `count` distinct loopback ports free now, below the ephemeral range."""
    ports: list[int] = []
    for _ in range(10 * len(TEST_PORTS)):
        if len(ports) == count:
            return ports
        port = random.choice(TEST_PORTS)
        if port not in _handed_out and port_free(port):
            _handed_out.add(port)
            ports.append(port)
    raise RuntimeError(f"no {count} free ports in {TEST_PORTS}")


def port_free(port: int) -> bool:
    """Tell whether a loopback port can be bound now."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def missing_dependency(what: str) -> None:
    """Skip for a missing dependency locally; under CI=true that is a failure, never a skip."""
    if IN_CI:
        pytest.fail(f"{what} is required under CI=true")
    pytest.skip(f"{what} is not available")


async def eventually[T](
    probe: Callable[[], Awaitable[T]],
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    message: str = "condition",
) -> T:
    """Poll `probe` until it returns a truthy value or raises nothing falsy; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = await probe()
            if value:
                return value
        except AssertionError as error:
            last_error = error
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} not met within {timeout}s") from last_error
        await asyncio.sleep(interval)


@asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """Create a uniquely named PostgreSQL database, yield its asyncpg URL, drop it afterwards."""
    name = f"tapedeck_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=5)
    except (OSError, asyncpg.PostgresError) as error:
        missing_dependency(f"PostgreSQL at {POSTGRES_ADMIN_DSN} ({error})")
        raise  # unreachable: missing_dependency raises
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}".replace("postgresql://", "postgresql+asyncpg://", 1)
    finally:
        admin = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=5)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@contextmanager
def counted_statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """Collect every SQL statement the engine sends to the database while inside the block."""
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


def field_violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    """Return the google.rpc.BadRequest field violations of an error, by field."""
    status = rpc_status.from_call(error)
    assert status is not None, f"no google.rpc.Status details in {error.code()}: {error.details()}"
    violations: dict[str, str] = {}
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            violations.update({v.field: v.description for v in bad.field_violations})
    return violations


def retry_delay(error: grpc.aio.AioRpcError) -> float | None:
    """Return the google.rpc.RetryInfo delay of an error in seconds, or None without one."""
    status = rpc_status.from_call(error)
    for detail in status.details if status is not None else ():
        info = error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            return info.retry_delay.ToNanoseconds() / 1e9
    return None
