"""The dataset RPCs of BacktestService: requests to the datasets application, datasets to protos."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import grpc

from tapedeck.backtest.v1 import backtest_pb2 as pb
from tapedeck_backtest.datasets import messages
from tapedeck_backtest.datasets.files import importable_files
from tapedeck_backtest.datasets.service import Datasets
from tapedeck_backtest.datasets.uploads import Uploads
from tapedeck_backtest.keysets import KEYS, keyset, position
from tapedeck_common.paging import PageTokens

Context = grpc.aio.ServicerContext[Any, Any]


class DatasetRpcs:
    """ImportDataset, GetDataset, ListDatasets, the importable files and uploads."""

    def __init__(self, datasets: Datasets, uploads: Uploads, *, page_tokens: PageTokens) -> None:
        self._datasets = datasets
        self._uploads = uploads
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

    async def ListImportableFiles(
        self, request: pb.ListImportableFilesRequest, context: Context
    ) -> pb.ListImportableFilesResponse:
        """List the importable files under the data root in path order, in pages."""
        page = self._page_tokens.page(request, query="ListImportableFiles", keys=(str,))
        after = None if page.after is None else str(page.after[0])
        files = await importable_files(self._datasets.data_root, after=after, limit=page.fetch)
        kept, token = page.cut(files, lambda f: (f.path,))
        return pb.ListImportableFilesResponse(
            files=[messages.importable_file_to_proto(f) for f in kept], next_page_token=token
        )

    async def StartUpload(
        self, request: pb.StartUploadRequest, context: Context
    ) -> pb.StartUploadResponse:
        """Begin an upload into the data root's uploads/ folder."""
        upload = await self._uploads.start(
            file_name=request.file_name, total_bytes=request.total_bytes
        )
        return pb.StartUploadResponse(upload=messages.upload_to_proto(upload))

    async def UploadChunk(
        self, request: pb.UploadChunkRequest, context: Context
    ) -> pb.UploadChunkResponse:
        """Write one chunk at its offset, or say where to resume."""
        upload = await self._uploads.write(
            messages.upload_id(request.name), offset=request.offset, data=request.data
        )
        return pb.UploadChunkResponse(upload=messages.upload_to_proto(upload))

    async def GetUpload(
        self, request: pb.GetUploadRequest, context: Context
    ) -> pb.GetUploadResponse:
        """Return one upload."""
        upload = await self._uploads.get(messages.upload_id(request.name))
        return pb.GetUploadResponse(upload=messages.upload_to_proto(upload))
