"""The runs and sweeps RPCs of BacktestService: requests to the runs application, runs to protos."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import grpc

from tapedeck.backtest.v1 import backtest_pb2 as pb
from tapedeck_backtest.keysets import KEYS, keyset, position
from tapedeck_backtest.runs import messages
from tapedeck_backtest.runs.service import Runs
from tapedeck_backtest.runs.sweeps import Sweep
from tapedeck_common.errors import FieldViolation, InvalidArgument
from tapedeck_common.paging import PageTokens

Context = grpc.aio.ServicerContext[Any, Any]


class RunRpcs:
    """CreateBacktest, GetBacktest, ListBacktests, CancelBacktest, WatchBacktest, the sweeps and
    the walk-forwards."""

    def __init__(self, runs: Runs, *, page_tokens: PageTokens) -> None:
        self._runs = runs
        self._page_tokens = page_tokens

    async def CreateBacktest(
        self, request: pb.CreateBacktestRequest, context: Context
    ) -> pb.CreateBacktestResponse:
        """Store a run (QUEUED) or return the finished run with the same spec."""
        if not request.HasField("spec"):
            raise InvalidArgument([FieldViolation("spec", "is required")])
        run, cached = await self._runs.create(messages.spec_request(request.spec, field="spec"))
        return pb.CreateBacktestResponse(backtest=messages.run_to_proto(run), cached=cached)

    async def GetBacktest(
        self, request: pb.GetBacktestRequest, context: Context
    ) -> pb.GetBacktestResponse:
        """Return one run."""
        run = await self._runs.get(messages.run_id(request.name))
        return pb.GetBacktestResponse(backtest=messages.run_to_proto(run))

    async def ListBacktests(
        self, request: pb.ListBacktestsRequest, context: Context
    ) -> pb.ListBacktestsResponse:
        """Return a page of runs, newest first."""
        states = messages.states(request.states)
        sweep_id = messages.sweep_id(request.sweep, field="sweep") if request.sweep else None
        page = self._page_tokens.page(
            request,
            query=f"ListBacktests:states={sorted(s.value for s in states)}&sweep={sweep_id}",
            keys=KEYS,
        )
        runs = await self._runs.page(
            states=states, sweep_id=sweep_id, after=keyset(page.after), limit=page.fetch
        )
        kept, token = page.cut(runs, lambda run: position(run.create_time, run.id))
        return pb.ListBacktestsResponse(
            backtests=[messages.run_to_proto(run) for run in kept], next_page_token=token
        )

    async def CancelBacktest(
        self, request: pb.CancelBacktestRequest, context: Context
    ) -> pb.CancelBacktestResponse:
        """Cancel a queued or running run."""
        run = await self._runs.cancel(messages.run_id(request.name))
        return pb.CancelBacktestResponse(backtest=messages.run_to_proto(run))

    async def WatchBacktest(
        self, request: pb.WatchBacktestRequest, context: Context
    ) -> AsyncGenerator[pb.WatchBacktestResponse, None]:
        """Stream the run on every change until it reaches a final state."""
        async for run in self._runs.watch(messages.run_id(request.name)):
            yield pb.WatchBacktestResponse(backtest=messages.run_to_proto(run))

    async def CreateSweep(
        self, request: pb.CreateSweepRequest, context: Context
    ) -> pb.CreateSweepResponse:
        """Start a sweep: the cartesian product of the axes, or a search over them."""
        parts = messages.sweep_parts(request)
        sweep = await self._runs.create_sweep(parts.spec, parts.axes, parts.metric, parts.search)
        return pb.CreateSweepResponse(sweep=messages.sweep_to_proto(sweep))

    async def CreateWalkForward(
        self, request: pb.CreateWalkForwardRequest, context: Context
    ) -> pb.CreateWalkForwardResponse:
        """Start a walk-forward: in-sample sweeps per fold, winners run out of sample."""
        if not request.HasField("walk_forward"):
            raise InvalidArgument([FieldViolation("walk_forward", "is required")])
        parts = messages.sweep_parts(request, walk_forward=request.walk_forward)
        walk = await self._runs.create_walk_forward(
            parts.spec, parts.axes, parts.metric, parts.search, parts.walk_forward
        )
        return pb.CreateWalkForwardResponse(walk_forward=messages.walk_forward_to_proto(walk))

    async def GetWalkForward(
        self, request: pb.GetWalkForwardRequest, context: Context
    ) -> pb.GetWalkForwardResponse:
        """Return one walk-forward with its folds."""
        walk = await self._runs.get_walk_forward(messages.walk_forward_id(request.name))
        return pb.GetWalkForwardResponse(walk_forward=messages.walk_forward_to_proto(walk))

    async def ListWalkForwards(
        self, request: pb.ListWalkForwardsRequest, context: Context
    ) -> pb.ListWalkForwardsResponse:
        """Return a page of walk-forwards, newest first, with their folds."""
        page = self._page_tokens.page(request, query="ListWalkForwards:", keys=KEYS)
        walks = await self._runs.page_walk_forwards(after=keyset(page.after), limit=page.fetch)
        kept, token = page.cut(walks, lambda walk: position(walk.create_time, walk.id))
        return pb.ListWalkForwardsResponse(
            walk_forwards=[messages.walk_forward_to_proto(walk) for walk in kept],
            next_page_token=token,
        )

    async def GetSweep(self, request: pb.GetSweepRequest, context: Context) -> pb.GetSweepResponse:
        """Return one sweep with its ranked results so far."""
        sweep = await self._runs.get_sweep(messages.sweep_id(request.name))
        return pb.GetSweepResponse(sweep=messages.sweep_to_proto(sweep))

    async def ListSweeps(
        self, request: pb.ListSweepsRequest, context: Context
    ) -> pb.ListSweepsResponse:
        """Return a page of sweeps, newest first, without their results."""
        page = self._page_tokens.page(request, query="ListSweeps:", keys=KEYS)
        sweeps = await self._runs.page_sweeps(after=keyset(page.after), limit=page.fetch)
        kept, token = page.cut(sweeps, lambda sweep: position(sweep.create_time, sweep.id))
        return pb.ListSweepsResponse(
            sweeps=[messages.sweep_to_proto(sweep) for sweep in kept], next_page_token=token
        )

    async def WatchSweep(
        self, request: pb.WatchSweepRequest, context: Context
    ) -> AsyncGenerator[pb.WatchSweepResponse, None]:
        """Stream each result as its run finishes, then the whole ranked sweep."""
        async for event in self._runs.watch_sweep(messages.sweep_id(request.name)):
            if isinstance(event, Sweep):
                yield pb.WatchSweepResponse(sweep=messages.sweep_to_proto(event))
            else:
                (point, rank), (best, best_rank) = event
                yield pb.WatchSweepResponse(
                    result=messages.sweep_result_to_proto(point, rank),
                    best_so_far=messages.sweep_result_to_proto(best, best_rank),
                )
