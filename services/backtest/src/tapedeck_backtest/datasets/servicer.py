"""The dataset RPCs of BacktestService: requests to the datasets application, datasets to protos."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import grpc

from tapedeck.backtest.v1 import backtest_pb2 as pb
from tapedeck_backtest.datasets import messages
from tapedeck_backtest.datasets.service import Datasets
from tapedeck_backtest.keysets import KEYS, keyset, position
from tapedeck_common.paging import PageTokens

Context = grpc.aio.ServicerContext[Any, Any]


class DatasetRpcs:
    """ImportDataset, GetDataset and ListDatasets."""

    def __init__(self, datasets: Datasets, *, page_tokens: PageTokens) -> None:
        self._datasets = datasets
        self._page_tokens = page_tokens

    async def ImportDataset(
        self, request: pb.ImportDatasetRequest, context: Context
    ) -> AsyncGenerator[pb.ImportDatasetResponse, None]:
        """Import a raw file, streaming progress and ending with the dataset."""
        async for update in self._datasets.import_dataset(messages.import_request(request)):
            yield messages.import_update_to_proto(update)

    async def GetDataset(
        self, request: pb.GetDatasetRequest, context: Context
    ) -> pb.GetDatasetResponse:
        """Return one dataset."""
        dataset = await self._datasets.get(messages.dataset_id(request.name))
        return pb.GetDatasetResponse(dataset=messages.dataset_to_proto(dataset))

    async def ListDatasets(
        self, request: pb.ListDatasetsRequest, context: Context
    ) -> pb.ListDatasetsResponse:
        """List datasets newest first, optionally of one instrument, in keyset pages."""
        page = self._page_tokens.page(
            request, query=f"ListDatasets:instrument_id={request.instrument_id}", keys=KEYS
        )
        datasets = await self._datasets.page(
            instrument_id=request.instrument_id or None, after=keyset(page.after), limit=page.fetch
        )
        kept, token = page.cut(datasets, lambda d: position(d.create_time, d.id))
        return pb.ListDatasetsResponse(
            datasets=[messages.dataset_to_proto(d) for d in kept], next_page_token=token
        )
