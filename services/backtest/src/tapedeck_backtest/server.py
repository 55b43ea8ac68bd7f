"""Build and run the backtest service."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from tapedeck.backtest.v1 import backtest_pb2, backtest_pb2_grpc
from tapedeck_backtest.dataset_imports import DatasetStore
from tapedeck_backtest.models import live_outbox
from tapedeck_backtest.playback.store import ResultStore
from tapedeck_backtest.run_control import Runs
from tapedeck_backtest.servicer import BacktestServicer
from tapedeck_backtest.settings import BacktestSettings
from tapedeck_backtest.strategies import load_registry
from tapedeck_backtest.workers import WorkerPool
from tapedeck_common.database import is_postgres, session_factory
from tapedeck_common.outbox_drainers import secret_value, start_drainer, stop_drainer
from tapedeck_common.runtime import (
    Components,
    ServiceApp,
    serve_until_signal,
    start_service,
)
from tapedeck_common.server import Registration

SERVICE = "backtest"
SERVICE_NAME = backtest_pb2.DESCRIPTOR.services_by_name["BacktestService"].full_name
MIGRATIONS = Path(__file__).parent / "migrations"


async def start(settings: BacktestSettings) -> ServiceApp:
    """Migrate the database and start serving."""

    async def build(engine: AsyncEngine) -> Components:
        # --- datasets and strategies ---
        sessions = session_factory(engine)
        datasets = DatasetStore(
            sessions=sessions,
            data_root=settings.resolved_data_root,
            catalog_dir=settings.resolved_catalog_dir,
            concurrency=settings.import_concurrency,
        )
        await datasets.remove_leftovers()
        strategies = load_registry(settings.strategy_paths)
        servicer = BacktestServicer(sessions, datasets=datasets, strategies=strategies)
        # --- runs and sweeps ---
        runs = Runs(
            sessions=sessions,
            catalog_dir=settings.resolved_catalog_dir,
            results_root=settings.resolved_results_dir,
            registry=strategies,
            pool=None,
            in_memory_rows=settings.run_in_memory_rows,
        )
        # Stopped last (on_stop runs in reverse): a pool stopping may still publish events.
        live_events = start_drainer(
            sessions=sessions,
            table=live_outbox,
            address=settings.live_address,
            service_token=secret_value(settings.service_token),
            retry_max_seconds=settings.live_retry_max_seconds,
        )
        on_stop: list[Callable[[], Awaitable[None]]] = [lambda: stop_drainer(live_events)]
        if settings.workers > 0:
            runs.pool = WorkerPool(
                sessions=sessions,
                postgres=is_postgres(engine),
                workers=settings.workers,
                results_root=settings.resolved_results_dir,
                resolve_job=runs.job_for,
                strategy_paths=tuple(str(path) for path in settings.strategy_paths),
                max_attempts=settings.run_max_attempts,
                lease_seconds=settings.run_lease_seconds,
                run_timeout_seconds=settings.run_timeout_seconds,
            )
            try:
                await runs.pool.start()
            except BaseException:
                await stop_drainer(live_events)
                raise
            on_stop.append(runs.pool.stop)
        servicer.attach_runs(runs)
        # --- playback ---
        servicer.attach_playback(
            ResultStore(
                results_root=settings.resolved_results_dir,
                get_run=runs.get,
                cache_bytes=settings.playback_cache_bytes,
            )
        )
        return Components(
            registrations=[
                Registration(
                    backtest_pb2_grpc.add_BacktestServiceServicer_to_server, servicer, SERVICE_NAME
                )
            ],
            on_stop=on_stop,
        )

    return await start_service(settings, service=SERVICE, migrations=MIGRATIONS, build=build)


async def serve(settings: BacktestSettings) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully."""
    await serve_until_signal(await start(settings))
