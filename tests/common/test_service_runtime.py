"""The shared runtime through real servers: health, reflection, errors, auth, migrations."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from tapedeck.backtest.v1 import backtest_pb2, backtest_pb2_grpc
from tapedeck.live.v1 import live_pb2
from tapedeck.wallets.v1 import wallets_pb2, wallets_pb2_grpc
from tapedeck_backtest import server as backtest_server
from tapedeck_backtest.settings import BacktestSettings
from tapedeck_common.errors import FieldViolation, InvalidArgument
from tapedeck_common.server import GrpcService, Registration, start_server
from tapedeck_live import server as live_server
from tapedeck_live.settings import LiveSettings
from tapedeck_wallets import server as wallets_server
from tapedeck_wallets.settings import WalletsSettings

SERVICES = [
    (wallets_server, WalletsSettings, "tapedeck.wallets.v1.WalletService", {"wallets", "balances"}),
    (live_server, LiveSettings, "tapedeck.live.v1.LiveService", {"events"}),
    (backtest_server, BacktestSettings, "tapedeck.backtest.v1.BacktestService", {"datasets"}),
]


def settings_of(settings_cls, **values):
    """A service's settings; a publisher's events stay in its outbox (no live service here)."""
    if settings_cls is not LiveSettings:
        values["live_address"] = ""
    return settings_cls(**values)


@pytest.mark.parametrize(("module", "settings_cls", "service_name", "tables"), SERVICES)
async def test_service_migrates_an_empty_database_and_serves_health(
    module, settings_cls, service_name, tables, database_url, data_dir
):
    settings = settings_of(settings_cls, database_url=database_url, port=0, data_dir=data_dir)
    app = await module.start(settings)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for name in (service_name, ""):
                reply = await health.Check(health_pb2.HealthCheckRequest(service=name))
                assert reply.status == health_pb2.HealthCheckResponse.SERVING
        engine = create_async_engine(database_url)
        async with engine.connect() as connection:
            present = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
            version = await connection.scalar(
                text(f"SELECT version_num FROM alembic_version_{module.SERVICE}")
            )
        await engine.dispose()
        assert tables <= present
        assert version is not None
    finally:
        await app.stop()


async def test_migrations_are_idempotent_across_restarts(database_url, data_dir):
    settings = settings_of(WalletsSettings, database_url=database_url, port=0, data_dir=data_dir)
    for _ in range(2):
        app = await wallets_server.start(settings)
        await app.stop()


async def test_health_turns_not_serving_when_shutting_down(data_dir):
    app = await live_server.start(LiveSettings(port=0, data_dir=data_dir, shutdown_grace_seconds=1))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
        first = await watch.read()
        assert first.status == health_pb2.HealthCheckResponse.SERVING
        await app.server.health.enter_graceful_shutdown()
        second = await watch.read()
        assert second.status == health_pb2.HealthCheckResponse.NOT_SERVING
        watch.cancel()
    await app.stop()


async def test_an_rpc_not_built_answers_unimplemented_not_internal():
    # The bare generated servicer raises NotImplementedError for every RPC; the interceptor
    # must turn that into UNIMPLEMENTED with the method named, never INTERNAL.
    running = await start_server(
        host="127.0.0.1",
        port=0,
        registrations=[
            Registration(
                GrpcService.of(backtest_pb2, backtest_pb2_grpc, "BacktestService"),
                backtest_pb2_grpc.BacktestServiceServicer(),
            )
        ],
        tokens=None,
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = backtest_pb2_grpc.BacktestServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.ListStrategies(backtest_pb2.ListStrategiesRequest())
            assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
            assert "ListStrategies is not implemented yet" in (caught.value.details() or "")
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                async for _ in stub.WatchBacktest(backtest_pb2.WatchBacktestRequest()):
                    pass
            assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        await running.stop(0)


def _write_tokens(path: Path) -> dict[str, str]:
    tokens = {
        "viewer": "viewer-token-0123456789",
        "operator": "operator-token-0123456789",
        "admin": "admin-token-0123456789",
    }
    path.write_text(
        json.dumps({"tokens": [{"name": r, "role": r, "token": t} for r, t in tokens.items()]})
    )
    return tokens


async def test_every_rpc_but_health_needs_a_token_with_enough_role(data_dir, tmp_path):
    tokens = _write_tokens(tmp_path / "tokens.json")
    settings = settings_of(
        WalletsSettings, port=0, data_dir=data_dir, tokens_file=tmp_path / "tokens.json"
    )
    app = await wallets_server.start(settings)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            stub = wallets_pb2_grpc.WalletServiceStub(channel)
            request = wallets_pb2.DeleteWalletRequest(name="wallets/abc")
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.DeleteWallet(request)
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.DeleteWallet(request, metadata=[("authorization", "Bearer wrong-token")])
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            bearer = [("authorization", f"Bearer {tokens['viewer']}")]
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.DeleteWallet(request, metadata=bearer)
            assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "admin" in (caught.value.details() or "")
            # With the admin token the call gets past auth to the handler.
            bearer = [("authorization", f"Bearer {tokens['admin']}")]
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.DeleteWallet(request, metadata=bearer)
            assert caught.value.code() not in (
                grpc.StatusCode.UNAUTHENTICATED,
                grpc.StatusCode.PERMISSION_DENIED,
            )
            health = health_pb2_grpc.HealthStub(channel)
            reply = await health.Check(health_pb2.HealthCheckRequest(service=""))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await app.stop()


def test_production_without_tokens_refuses_to_start(tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        "TAPEDECK_ENV": "production",
        "TAPEDECK_DATA_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "tapedeck_live"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "tapedeck-live: cannot start: TAPEDECK_TOKENS_FILE is required outside development"
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://::bad", "tapedeck-wallets: bad setting WALLETS_DATABASE_URL"),
        ("mysql://root@127.0.0.1/x", "tapedeck-wallets: bad setting WALLETS_DATABASE_URL"),
        (
            "postgresql://nobody@127.0.0.1:1/x",
            "tapedeck-wallets: cannot start: database postgresql+asyncpg://nobody@127.0.0.1:1/x",
        ),
    ],
)
def test_a_bad_database_url_stops_start_up_with_one_clear_line(tmp_path, url, expected):
    env = {"PATH": "/usr/bin:/bin", "WALLETS_DATABASE_URL": url, "TAPEDECK_DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "tapedeck_wallets"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode in (1, 2)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(expected)
    assert "Traceback" not in done.stderr


def test_invalid_argument_carries_bad_request_field_violations():
    error = InvalidArgument([FieldViolation("wallet.display_name", "is required")])
    status = rpc_status.to_status(error.to_status())
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    detail = error_details_pb2.BadRequest()
    error.to_status().details[0].Unpack(detail)
    assert detail.field_violations[0].field == "wallet.display_name"


async def test_event_type_names_round_trip(data_dir):
    # The contract's enums are importable and named as the event store stores them.
    assert live_pb2.EventType.Name(live_pb2.EVENT_TYPE_TRADE_BLOCKED) == "EVENT_TYPE_TRADE_BLOCKED"


async def test_the_three_services_can_share_one_database(database_url, data_dir):
    # A team may point every service at one PostgreSQL database (DATABASE_URL): their tables,
    # indexes and Alembic version tables must not collide.
    apps = []
    try:
        for module, settings_cls, _, _ in SERVICES:
            extra = {"workers": 0} if settings_cls is BacktestSettings else {}
            settings = settings_of(
                settings_cls, database_url=database_url, port=0, data_dir=data_dir, **extra
            )
            apps.append(await module.start(settings))
    finally:
        for app in apps:
            await app.stop()
    assert len(apps) == 3
