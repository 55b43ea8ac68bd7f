"""Build and run the backtest service."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from tapedeck.backtest.v1 import backtest_pb2, backtest_pb2_grpc
from tapedeck_backtest.analysis.drift import MAX_DRIFT_TRADES
from tapedeck_backtest.analysis.service import SessionDrifts, SweepAnalyses
from tapedeck_backtest.analysis.servicer import AnalysisRpcs
from tapedeck_backtest.datasets.service import Datasets
from tapedeck_backtest.datasets.servicer import DatasetRpcs
from tapedeck_backtest.datasets.uploads import Uploads
from tapedeck_backtest.models import live_outbox
from tapedeck_backtest.playback.metrics import playback_probes
from tapedeck_backtest.playback.service import Playback
from tapedeck_backtest.playback.servicer import PlaybackRpcs
from tapedeck_backtest.playback.store import ResultStore
from tapedeck_backtest.runs.executors import Executor, LocalExecutor
from tapedeck_backtest.runs.metrics import run_probes
from tapedeck_backtest.runs.queue import RunQueue
from tapedeck_backtest.runs.repository import QUEUE_CHANNEL
from tapedeck_backtest.runs.service import RunJobs, Runs
from tapedeck_backtest.runs.servicer import RunRpcs
from tapedeck_backtest.runs.workers import (
    QUEUE_LISTENER_APPLICATION,
    WorkerPool,
    wake_pools_here,
)
from tapedeck_backtest.servicer import BacktestServicer
from tapedeck_backtest.settings import BacktestSettings
from tapedeck_backtest.strategies import load_registry
from tapedeck_backtest.strategies.servicer import StrategyRpcs
from tapedeck_common.database import Commits, is_postgres, listen_dsn, session_factory
from tapedeck_common.listener import PostgresListener
from tapedeck_common.paging import PageTokens
from tapedeck_common.runtime import Components, ServiceApp, start_service
from tapedeck_common.server import GrpcService, Registration
from tapedeck_common.settings import secret_value
from tapedeck_live_client.events import start_live_events
from tapedeck_live_client.sessions import LiveSessions

SERVICE = "backtest"
MIGRATIONS = Path(__file__).parent / "migrations"
BACKTEST_SERVICE = GrpcService.of(backtest_pb2, backtest_pb2_grpc, "BacktestService")


@dataclass
class BacktestComponents(Components):
    """The backtest service's components, with the parts operators (and tests) look into."""

    results: ResultStore | None = None
    pool: WorkerPool | None = None  # None with no workers in this process


def _executor(settings: BacktestSettings) -> Executor:
    if settings.executor == "ray":
        # Imported only here: Ray costs start-up time and memory a local executor has no use for.
        from tapedeck_backtest.runs.ray_executor import RayExecutor  # noqa: PLC0415

        return RayExecutor(
            address=settings.ray_address,
            warm_workers=settings.workers,
            strategy_paths=tuple(str(path) for path in settings.strategy_paths),
            idle_engine_seconds=settings.worker_idle_engine_seconds,
        )
    return LocalExecutor()


async def start(settings: BacktestSettings) -> ServiceApp:
    """Migrate the database and start serving."""

    async def build(engine: AsyncEngine) -> Components:
        sessions = session_factory(engine)
        page_tokens = PageTokens.for_deployment(settings)
        registry = load_registry(settings.strategy_paths)
        datasets = Datasets(
            sessions=sessions,
            data_root=settings.resolved_data_root,
            catalog_dir=settings.resolved_catalog_dir,
            cache_dir=settings.resolved_cache_dir,
            concurrency=settings.import_concurrency,
        )
        await datasets.remove_leftovers()
        uploads = Uploads(
            data_root=settings.resolved_data_root,
            staging_dir=settings.resolved_upload_staging_dir,
            max_bytes=settings.upload_max_bytes,
        )
        await uploads.remove_stale()
        # Stopped last (on_stop runs in reverse): a pool stopping may still publish events.
        live_events = start_live_events(settings, sessions=sessions, table=live_outbox)
        on_stop: list[Callable[[], Awaitable[None]]] = [live_events.stop]
        pool = None
        if settings.workers > 0:
            jobs = RunJobs(
                sessions=sessions,
                catalog_dir=settings.resolved_catalog_dir,
                results_root=settings.resolved_results_dir,
                in_memory_rows=settings.run_in_memory_rows,
            )
            pool = WorkerPool(
                queue=RunQueue(sessions=sessions, postgres=is_postgres(engine)),
                jobs=jobs.job_for,
                workers=settings.workers,
                results_root=settings.resolved_results_dir,
                executor=_executor(settings),
                strategy_paths=tuple(str(path) for path in settings.strategy_paths),
                max_attempts=settings.run_max_attempts,
                lease_seconds=settings.run_lease_seconds,
                run_timeout_seconds=settings.run_timeout_seconds,
                poll_seconds=settings.queue_poll_seconds,
                idle_engine_seconds=settings.worker_idle_engine_seconds,
            )
            try:
                await pool.start()
            except BaseException:
                await live_events.stop()
                raise
            on_stop.append(pool.stop)
            if is_postgres(engine):
                # Runs queued by any replica wake this pool at once; the poll is the safety net.
                listener = PostgresListener(
                    dsn=listen_dsn(engine),
                    channel=QUEUE_CHANNEL,
                    application=QUEUE_LISTENER_APPLICATION,
                    wake=pool.notify,
                    retry_seconds=settings.queue_listener_retry_seconds,
                )
                listener.start()
                on_stop.insert(0, listener.stop)
        runs = Runs(
            sessions=sessions,
            catalog_dir=settings.resolved_catalog_dir,
            registry=registry,
            wake=wake_pools_here,
        )
        await runs.resume_drivers()
        on_stop.append(runs.stop_drivers)
        # An empty live address means no live service: nothing published, no session to compare.
        live_sessions = None
        if settings.live_address:
            live_sessions = LiveSessions(
                address=settings.live_address, service_token=secret_value(settings.service_token)
            )
            on_stop.append(live_sessions.close)
        results = ResultStore(
            results_root=settings.resolved_results_dir,
            cache_dir=settings.resolved_cache_dir,
            get_run=runs.get,
            cache_bytes=settings.playback_cache_bytes,
        )
        servicer = BacktestServicer(
            datasets=DatasetRpcs(datasets, uploads, page_tokens=page_tokens),
            strategies=StrategyRpcs(registry, page_tokens=page_tokens),
            runs=RunRpcs(runs, page_tokens=page_tokens),
            playback=PlaybackRpcs(Playback(results), page_tokens=page_tokens),
            analysis=AnalysisRpcs(
                SweepAnalyses(
                    get_sweep=runs.get_sweep,
                    get_walk_forward=runs.get_walk_forward,
                    results=results,
                ),
                SessionDrifts(
                    get_run=runs.get,
                    get_dataset=datasets.get,
                    results=results,
                    live=live_sessions,
                    max_trades=MAX_DRIFT_TRADES,
                ),
            ),
        )
        return BacktestComponents(
            registrations=[Registration(BACKTEST_SERVICE, servicer)],
            on_stop=on_stop,
            health_reporters=[live_events.report_to],
            probes=[
                *run_probes(sessions, commits=Commits(engine)),
                *live_events.probes(),
                *playback_probes(results),
            ],
            results=results,
            pool=pool,
        )

    return await start_service(settings, service=SERVICE, migrations=MIGRATIONS, build=build)
