"""Sweep analysis, the application: read a sweep and its runs' equity curves, then score the grid
and compute the odds of overfitting off the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import numpy as np

from tapedeck_backtest.analysis import domain, messages
from tapedeck_backtest.analysis import drift as domain_drift
from tapedeck_backtest.analysis.domain import AnalysisQuery, FloatArray, IntArray, SweepAnalysis
from tapedeck_backtest.analysis.drift import DriftQuery, SessionDrift
from tapedeck_backtest.datasets.domain import Dataset
from tapedeck_backtest.playback import trades
from tapedeck_backtest.playback.domain import TradeQuery
from tapedeck_backtest.playback.store import ResultStore
from tapedeck_backtest.runs.domain import Run, RunState
from tapedeck_backtest.runs.sweeps import Sweep, SweepState
from tapedeck_backtest.runs.walkforward import WalkForward, WalkForwardState, stitch
from tapedeck_common.errors import FailedPrecondition
from tapedeck_live_client.sessions import LiveSessions


class SweepAnalyses:
    """AnalyzeSweep (heatmap, neighbourhood scores, Deflated Sharpe Ratio and PBO) and a
    walk-forward's stitched out-of-sample equity."""

    def __init__(
        self,
        *,
        get_sweep: Callable[[str], Awaitable[Sweep]],
        get_walk_forward: Callable[[str], Awaitable[WalkForward]],
        results: ResultStore,
    ):
        self._get_sweep = get_sweep
        self._get_walk_forward = get_walk_forward
        self._results = results

    async def walk_forward_equity(self, walk_id: str) -> tuple[IntArray, FloatArray]:
        """Return a finished walk-forward's out-of-sample equity, the folds' curves chained."""
        walk = await self._get_walk_forward(walk_id)
        if walk.state is not WalkForwardState.SUCCEEDED:
            raise FailedPrecondition(
                f"walkForwards/{walk_id} is {walk.state.value}; its equity needs SUCCEEDED"
            )
        curves = []
        for fold in walk.folds:
            if fold.out_run is not None and fold.out_run.state is RunState.SUCCEEDED:
                _, files = await self._results.open(fold.out_run.id)
                curves.append((np.array(files.equity_times), np.array(files.equity_values)))
        return await asyncio.to_thread(stitch, curves)

    async def analyze(self, query: AnalysisQuery) -> SweepAnalysis:
        """Return the analysis of a sweep."""
        sweep = await self._get_sweep(query.sweep_id)
        x, y = domain.check_heatmap_axes(sweep.axes, query.x_parameter, query.y_parameter)
        metric = query.metric or sweep.metric
        succeeded = [p.run.id for p in sweep.points if p.run.state is RunState.SUCCEEDED]
        curves: list[tuple[IntArray, FloatArray]] = []
        if sweep.state is not SweepState.RUNNING:
            for run_id in succeeded:
                _, files = await self._results.open(run_id)
                # Copies: the mapped files may be closed by the cache while the thread works.
                curves.append((np.array(files.equity_times), np.array(files.equity_values)))

        def work() -> SweepAnalysis:
            points = domain.score_points(sweep, metric)
            return SweepAnalysis(
                metric=metric,
                points=points,
                heatmap=domain.heatmap(sweep, points, metric, x, y),
                odds=domain.odds(sweep, succeeded, curves, query.splits),
            )

        return await asyncio.to_thread(work)


class SessionDrifts:
    """CompareWithSession: a finished run's trades against a live session's, over their overlap."""

    def __init__(
        self,
        *,
        get_run: Callable[[str], Awaitable[Run]],
        get_dataset: Callable[[str], Awaitable[Dataset]],
        results: ResultStore,
        live: LiveSessions | None,
        max_trades: int,
    ) -> None:
        self._get_run = get_run
        self._get_dataset = get_dataset
        self._results = results
        self._live = live
        self._max_trades = max_trades

    async def compare(self, query: DriftQuery) -> SessionDrift:
        """Return the drift between the run and the session in the run's window while it lived."""
        _, files = await self._results.results(query.run_id)
        run = await self._get_run(query.run_id)
        instrument = (await self._get_dataset(run.spec.dataset_id)).instrument
        if self._live is None:
            raise FailedPrecondition(
                "this backtest service has no live service to read sessions from "
                "(BACKTEST_LIVE_ADDRESS is empty)"
            )
        session = await self._live.trades(
            query.session,
            instrument_id=query.instrument_id or instrument.instrument_id,
            start_ns=run.spec.start_ns,
            end_ns=run.spec.end_ns,
            limit=self._max_trades,
        )
        # The run's window while the session lived, widened by the gap: a trade the session made
        # a little late at its start still finds its backtest partner.
        gap = query.max_entry_gap_ns
        start = max(run.spec.start_ns, session.start_ns - gap)
        end = min(run.spec.end_ns, session.last_ns + gap + 1)
        selected, ran = await asyncio.to_thread(
            trades.page,
            files,
            TradeQuery(query.run_id, None, None, None),
            offset=0,
            size=self._max_trades,
        )
        if selected > self._max_trades:
            raise FailedPrecondition(
                f"the run has more than {self._max_trades} trades; compare a shorter run"
            )
        live = [messages.live_round_trip(t) for t in session.trades]
        backtest = [domain_drift.of_trade(t) for t in ran]
        drift = domain_drift.compare(
            [t for t in live if start <= t.entry_ns < end],
            [t for t in backtest if start <= t.entry_ns < end],
            max_entry_gap_ns=query.max_entry_gap_ns,
        )
        return SessionDrift(drift, start, max(start, end), instrument.quote_currency)
