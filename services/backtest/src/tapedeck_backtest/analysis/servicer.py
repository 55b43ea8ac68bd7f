"""The sweep analysis RPC of BacktestService."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import grpc

from tapedeck.backtest.v1 import backtest_pb2 as pb
from tapedeck_backtest.analysis import messages
from tapedeck_backtest.analysis.service import SessionDrifts, SweepAnalyses
from tapedeck_backtest.playback.messages import equity_chunk_size
from tapedeck_backtest.runs.messages import walk_forward_id

Context = grpc.aio.ServicerContext[Any, Any]


class AnalysisRpcs:
    """AnalyzeSweep, StreamWalkForwardEquity and CompareWithSession."""

    def __init__(self, analyses: SweepAnalyses, drifts: SessionDrifts) -> None:
        self._analyses = analyses
        self._drifts = drifts

    async def CompareWithSession(
        self, request: pb.CompareWithSessionRequest, context: Context
    ) -> pb.CompareWithSessionResponse:
        """Return the drift between a finished run and a live session, trade by trade."""
        drift = await self._drifts.compare(messages.drift_query(request))
        return messages.drift_to_proto(drift)

    async def AnalyzeSweep(
        self, request: pb.AnalyzeSweepRequest, context: Context
    ) -> pb.AnalyzeSweepResponse:
        """Return a sweep's heatmap, neighbourhood scores and overfitting odds."""
        analysis = await self._analyses.analyze(messages.analysis_query(request))
        return messages.analysis_to_proto(analysis)

    async def StreamWalkForwardEquity(
        self, request: pb.StreamWalkForwardEquityRequest, context: Context
    ) -> AsyncGenerator[pb.StreamWalkForwardEquityResponse, None]:
        """Stream a finished walk-forward's stitched out-of-sample equity in chunks."""
        walk_id = walk_forward_id(request.name)
        size = equity_chunk_size(request.chunk_size)
        times, values = await self._analyses.walk_forward_equity(walk_id)
        for offset in range(0, max(times.size, 1), size):
            yield pb.StreamWalkForwardEquityResponse(
                chunk=pb.EquityChunk(
                    times=times[offset : offset + size].tolist(),
                    equity=values[offset : offset + size].tolist(),
                ),
                total_points=times.size,
            )
