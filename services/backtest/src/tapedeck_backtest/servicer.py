"""BacktestService: proto <-> domain; RPCs not built yet answer UNIMPLEMENTED (the generated base)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import grpc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tapedeck.backtest.v1 import backtest_pb2, backtest_pb2_grpc
from tapedeck_backtest.dataset_imports import DatasetStore
from tapedeck_backtest.dataset_messages import (
    dataset_to_proto,
    import_request_from_proto,
    import_update_to_proto,
    strategy_to_proto,
)
from tapedeck_backtest.playback_servicer import PlaybackRpcs
from tapedeck_backtest.run_servicer import RunRpcs
from tapedeck_backtest.strategies import StrategyRegistry
from tapedeck_common.errors import FieldViolation, InvalidArgument
from tapedeck_common.pagination import decode_page_token, encode_page_token, page_size
from tapedeck_common.validation import resource_id


# --- runs and sweeps --- (the RPCs live in run_servicer.RunRpcs)
# --- playback --- (StreamCandles, GetPortfolioState, StreamEquity, ListFills: playback_servicer)
class BacktestServicer(RunRpcs, PlaybackRpcs, backtest_pb2_grpc.BacktestServiceServicer):
    """The backtest service's RPCs."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        datasets: DatasetStore,
        strategies: StrategyRegistry,
    ) -> None:
        self._sessions = sessions
        self.datasets = datasets
        self.strategies = strategies

    # --- datasets and strategies ---

    async def ImportDataset(
        self,
        request: backtest_pb2.ImportDatasetRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[backtest_pb2.ImportDatasetResponse]:
        """Import a raw file, streaming progress and ending with the dataset."""
        parsed = import_request_from_proto(request)
        async for update in self.datasets.import_dataset(parsed):
            yield import_update_to_proto(update)

    async def GetDataset(
        self, request: backtest_pb2.GetDatasetRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> backtest_pb2.GetDatasetResponse:
        """Return one dataset."""
        dataset_id = resource_id(request.name, collection="datasets")
        return backtest_pb2.GetDatasetResponse(
            dataset=dataset_to_proto(await self.datasets.get(dataset_id))
        )

    async def ListDatasets(
        self, request: backtest_pb2.ListDatasetsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> backtest_pb2.ListDatasetsResponse:
        """List datasets newest first, optionally of one instrument, in keyset pages."""
        limit = page_size(request.page_size, default=50, maximum=1000)
        query = f"datasets?instrument_id={request.instrument_id}"
        position = decode_page_token(request.page_token, query=query)
        after: tuple[datetime, str] | None = None
        if position is not None:
            try:
                after = (datetime.fromisoformat(position["t"]), str(position["id"]))
            except (KeyError, TypeError, ValueError):
                raise InvalidArgument(
                    [FieldViolation("page_token", "is not a token this service issued")]
                ) from None
        datasets = await self.datasets.list(
            instrument_id=request.instrument_id or None, after=after, limit=limit + 1
        )
        token = ""
        if len(datasets) > limit:
            last = datasets[limit - 1]
            token = encode_page_token(
                {"t": last.create_time.isoformat(), "id": last.id}, query=query
            )
        return backtest_pb2.ListDatasetsResponse(
            datasets=[dataset_to_proto(d) for d in datasets[:limit]], next_page_token=token
        )

    async def ListStrategies(
        self,
        request: backtest_pb2.ListStrategiesRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> backtest_pb2.ListStrategiesResponse:
        """List the strategies a run can use, with their parameters, by id."""
        limit = page_size(request.page_size, default=50, maximum=1000)
        position = decode_page_token(request.page_token, query="strategies")
        after = "" if position is None else str(position.get("id", ""))
        remaining = [d for d in self.strategies.list() if d.id > after]
        token = ""
        if len(remaining) > limit:
            token = encode_page_token({"id": remaining[limit - 1].id}, query="strategies")
        return backtest_pb2.ListStrategiesResponse(
            strategies=[strategy_to_proto(d) for d in remaining[:limit]], next_page_token=token
        )
