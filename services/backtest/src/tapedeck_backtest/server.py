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
from tapedeck_common.runtime import Components, ServiceApp, start_service
from tapedeck_common.server import GrpcService, Registration
from tapedeck_live_client.events import start_live_events

SERVICE = "backtest"
MIGRATIONS = Path(__file__).parent / "migrations"
BACKTEST_SERVICE = GrpcService.of(backtest_pb2, backtest_pb2_grpc, "BacktestService")


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
        live_events = start_live_events(settings, sessions=sessions, table=live_outbox)
        on_stop: list[Callable[[], Awaitable[None]]] = [live_events.stop]
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
                await live_events.stop()
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
            [Registration(BACKTEST_SERVICE, servicer)],
            on_stop=on_stop,
        )

    return await start_service(settings, service=SERVICE, migrations=MIGRATIONS, build=build)
