"""BacktestService: each RPC is answered by the part that owns its resource."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import grpc

from tapedeck.backtest.v1 import backtest_pb2 as pb
from tapedeck.backtest.v1 import backtest_pb2_grpc
from tapedeck_backtest.analysis.servicer import AnalysisRpcs
from tapedeck_backtest.datasets.servicer import DatasetRpcs
from tapedeck_backtest.playback.servicer import PlaybackRpcs
from tapedeck_backtest.runs.servicer import RunRpcs
from tapedeck_backtest.strategies.servicer import StrategyRpcs

Context = grpc.aio.ServicerContext[Any, Any]


class BacktestServicer(backtest_pb2_grpc.BacktestServiceServicer):
    """The backtest service's RPCs: datasets, strategies, runs and sweeps, playback.

    A stream is closed with the call, so the part's clean-up runs when a caller leaves early.
    """

    def __init__(
        self,
        *,
        datasets: DatasetRpcs,
        strategies: StrategyRpcs,
        runs: RunRpcs,
        playback: PlaybackRpcs,
        analysis: AnalysisRpcs,
    ) -> None:
        self.datasets = datasets
        self.strategies = strategies
        self.runs = runs
        self.playback = playback
        self.analysis = analysis

    async def ImportDataset(
        self, request: pb.ImportDatasetRequest, context: Context
    ) -> AsyncIterator[pb.ImportDatasetResponse]:
        """Import a raw file, streaming progress and ending with the dataset."""
        async with aclosing(self.datasets.ImportDataset(request, context)) as messages:
            async for message in messages:
                yield message

    async def GetDataset(
        self, request: pb.GetDatasetRequest, context: Context
    ) -> pb.GetDatasetResponse:
        """Return one dataset."""
        return await self.datasets.GetDataset(request, context)

    async def ListDatasets(
        self, request: pb.ListDatasetsRequest, context: Context
    ) -> pb.ListDatasetsResponse:
        """List datasets newest first, optionally of one instrument."""
        return await self.datasets.ListDatasets(request, context)

    async def ListImportableFiles(
        self, request: pb.ListImportableFilesRequest, context: Context
    ) -> pb.ListImportableFilesResponse:
        """List the files under the data root an import can read."""
        return await self.datasets.ListImportableFiles(request, context)

    async def StartUpload(
        self, request: pb.StartUploadRequest, context: Context
    ) -> pb.StartUploadResponse:
        """Begin a chunked upload into the data root."""
        return await self.datasets.StartUpload(request, context)

    async def UploadChunk(
        self, request: pb.UploadChunkRequest, context: Context
    ) -> pb.UploadChunkResponse:
        """Write one chunk of an upload."""
        return await self.datasets.UploadChunk(request, context)

    async def GetUpload(
        self, request: pb.GetUploadRequest, context: Context
    ) -> pb.GetUploadResponse:
        """Return one upload."""
        return await self.datasets.GetUpload(request, context)

    async def ListStrategies(
        self, request: pb.ListStrategiesRequest, context: Context
    ) -> pb.ListStrategiesResponse:
        """List the strategies a run can use, with their parameters."""
        return await self.strategies.ListStrategies(request, context)

    async def CreateBacktest(
        self, request: pb.CreateBacktestRequest, context: Context
    ) -> pb.CreateBacktestResponse:
        """Store a run (QUEUED) or return the finished run with the same spec."""
        return await self.runs.CreateBacktest(request, context)

    async def GetBacktest(
        self, request: pb.GetBacktestRequest, context: Context
    ) -> pb.GetBacktestResponse:
        """Return one run."""
        return await self.runs.GetBacktest(request, context)

    async def ListBacktests(
        self, request: pb.ListBacktestsRequest, context: Context
    ) -> pb.ListBacktestsResponse:
        """Return a page of runs, newest first."""
        return await self.runs.ListBacktests(request, context)

    async def CancelBacktest(
        self, request: pb.CancelBacktestRequest, context: Context
    ) -> pb.CancelBacktestResponse:
        """Cancel a queued or running run."""
        return await self.runs.CancelBacktest(request, context)

    async def WatchBacktest(
        self, request: pb.WatchBacktestRequest, context: Context
    ) -> AsyncIterator[pb.WatchBacktestResponse]:
        """Stream the run on every change until it reaches a final state."""
        async with aclosing(self.runs.WatchBacktest(request, context)) as messages:
            async for message in messages:
                yield message

    async def CreateSweep(
        self, request: pb.CreateSweepRequest, context: Context
    ) -> pb.CreateSweepResponse:
        """Start a sweep over the cartesian product of the axes."""
        return await self.runs.CreateSweep(request, context)

    async def GetSweep(self, request: pb.GetSweepRequest, context: Context) -> pb.GetSweepResponse:
        """Return one sweep with its ranked results so far."""
        return await self.runs.GetSweep(request, context)

    async def ListSweeps(
        self, request: pb.ListSweepsRequest, context: Context
    ) -> pb.ListSweepsResponse:
        """Return a page of sweeps, newest first, without their results."""
        return await self.runs.ListSweeps(request, context)

    async def WatchSweep(
        self, request: pb.WatchSweepRequest, context: Context
    ) -> AsyncIterator[pb.WatchSweepResponse]:
        """Stream each result as its run finishes, then the whole ranked sweep."""
        async with aclosing(self.runs.WatchSweep(request, context)) as messages:
            async for message in messages:
                yield message

    async def AnalyzeSweep(
        self, request: pb.AnalyzeSweepRequest, context: Context
    ) -> pb.AnalyzeSweepResponse:
        """Return a sweep's heatmap, neighbourhood scores and overfitting odds."""
        return await self.analysis.AnalyzeSweep(request, context)

    async def CompareWithSession(
        self, request: pb.CompareWithSessionRequest, context: Context
    ) -> pb.CompareWithSessionResponse:
        """Return the drift between a finished run and a live session, trade by trade."""
        return await self.analysis.CompareWithSession(request, context)

    async def CreateWalkForward(
        self, request: pb.CreateWalkForwardRequest, context: Context
    ) -> pb.CreateWalkForwardResponse:
        """Start a walk-forward analysis."""
        return await self.runs.CreateWalkForward(request, context)

    async def GetWalkForward(
        self, request: pb.GetWalkForwardRequest, context: Context
    ) -> pb.GetWalkForwardResponse:
        """Return one walk-forward with its folds."""
        return await self.runs.GetWalkForward(request, context)

    async def ListWalkForwards(
        self, request: pb.ListWalkForwardsRequest, context: Context
    ) -> pb.ListWalkForwardsResponse:
        """Return a page of walk-forwards, newest first, with their folds."""
        return await self.runs.ListWalkForwards(request, context)

    async def StreamWalkForwardEquity(
        self, request: pb.StreamWalkForwardEquityRequest, context: Context
    ) -> AsyncIterator[pb.StreamWalkForwardEquityResponse]:
        """Stream a finished walk-forward's stitched out-of-sample equity."""
        async with aclosing(self.analysis.StreamWalkForwardEquity(request, context)) as messages:
            async for message in messages:
                yield message

    async def StreamCandles(
        self, request: pb.StreamCandlesRequest, context: Context
    ) -> AsyncIterator[pb.StreamCandlesResponse]:
        """Stream a window of a finished run's candles."""
        async with aclosing(self.playback.StreamCandles(request, context)) as messages:
            async for message in messages:
                yield message

    async def GetPortfolioState(
        self, request: pb.GetPortfolioStateRequest, context: Context
    ) -> pb.GetPortfolioStateResponse:
        """Return a finished run's portfolio at an instant."""
        return await self.playback.GetPortfolioState(request, context)

    async def StreamEquity(
        self, request: pb.StreamEquityRequest, context: Context
    ) -> AsyncIterator[pb.StreamEquityResponse]:
        """Stream a page of a finished run's equity curve in chunks."""
        async with aclosing(self.playback.StreamEquity(request, context)) as messages:
            async for message in messages:
                yield message

    async def ListFills(
        self, request: pb.ListFillsRequest, context: Context
    ) -> pb.ListFillsResponse:
        """Return a page of a finished run's fills in a time range."""
        return await self.playback.ListFills(request, context)

    async def ListTrades(
        self, request: pb.ListTradesRequest, context: Context
    ) -> pb.ListTradesResponse:
        """Return a page of a finished run's trades in a time range."""
        return await self.playback.ListTrades(request, context)

    async def ExportBacktest(
        self, request: pb.ExportBacktestRequest, context: Context
    ) -> AsyncIterator[pb.ExportBacktestResponse]:
        """Stream a finished run's results as files."""
        async with aclosing(self.playback.ExportBacktest(request, context)) as messages:
            async for message in messages:
                yield message
