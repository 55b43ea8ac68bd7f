"""Sweep analysis, the application: read a sweep and its runs' equity curves, then score the grid
and compute the odds of overfitting off the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import numpy as np

from tapedeck_backtest.analysis import domain
from tapedeck_backtest.analysis.domain import AnalysisQuery, FloatArray, IntArray, SweepAnalysis
from tapedeck_backtest.playback.store import ResultStore
from tapedeck_backtest.runs.domain import RunState
from tapedeck_backtest.runs.sweeps import Sweep, SweepState
from tapedeck_backtest.runs.walkforward import WalkForward, WalkForwardState, stitch
from tapedeck_common.errors import FailedPrecondition


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
