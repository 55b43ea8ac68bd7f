"""The sweep analysis RPC of BacktestService."""

from __future__ import annotations

from typing import Any

import grpc

from tapedeck.backtest.v1 import backtest_pb2 as pb
from tapedeck_backtest.analysis import messages
from tapedeck_backtest.analysis.service import SweepAnalyses

Context = grpc.aio.ServicerContext[Any, Any]


class AnalysisRpcs:
    """AnalyzeSweep."""

    def __init__(self, analyses: SweepAnalyses) -> None:
        self._analyses = analyses

    async def AnalyzeSweep(
        self, request: pb.AnalyzeSweepRequest, context: Context
    ) -> pb.AnalyzeSweepResponse:
        """Return a sweep's heatmap, neighbourhood scores and overfitting odds."""
        analysis = await self._analyses.analyze(messages.analysis_query(request))
        return messages.analysis_to_proto(analysis)
