"""Open result files of finished runs, kept in a cache bounded in mapped bytes."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path

from tapedeck_backtest import storage
from tapedeck_backtest.playback.files import (
    SIDECAR,
    SIDECAR_DONE,
    RunFiles,
    build_sidecar,
    open_run,
    sidecar_ready,
)
from tapedeck_backtest.playback.metrics import CACHE_HIT, CACHE_MISS
from tapedeck_backtest.runs.domain import Run, RunState
from tapedeck_backtest.runs.results import MANIFEST, ResultFiles
from tapedeck_common.errors import FailedPrecondition, NotFound

logger = logging.getLogger(__name__)

# Finished runs whose content version is remembered, so a request needs no database round trip.
_FINISHED_RUNS_KEPT = 10_000


class ResultStore:
    """Resolve a run to its memory-mapped results; only SUCCEEDED runs have any."""

    def __init__(
        self,
        *,
        results_root: str,
        cache_dir: Path,
        get_run: Callable[[str], Awaitable[Run]],
        cache_bytes: int,
    ) -> None:
        self._root = results_root
        self._copies = cache_dir / "runs"
        self._get_run = get_run
        self._cache_bytes = cache_bytes
        self._open: OrderedDict[tuple[str, str], RunFiles] = OrderedDict()
        self._open_bytes = 0
        self._versions: OrderedDict[str, str] = OrderedDict()
        self._building: dict[str, asyncio.Lock] = {}

    @property
    def open_bytes(self) -> int:
        """Return the bytes mapped by the cached runs."""
        return self._open_bytes

    async def content_version(self, run_id: str) -> str:
        """Return a SUCCEEDED run's content version; NotFound or FailedPrecondition otherwise."""
        version = self._versions.get(run_id)
        if version is not None:
            self._versions.move_to_end(run_id)
            return version
        run = await self._get_run(run_id)
        if run.state is not RunState.SUCCEEDED:
            why = "has not finished" if not run.state.is_final else "has no results"
            raise FailedPrecondition(
                f"backtests/{run_id} is {run.state.value} and {why}; playback needs a SUCCEEDED run"
            )
        # Finished runs are immutable: their version can be remembered for good.
        self._versions[run_id] = run.content_version
        while len(self._versions) > _FINISHED_RUNS_KEPT:
            self._versions.popitem(last=False)
        return run.content_version

    async def open(self, run_id: str) -> tuple[str, RunFiles]:
        """Return a SUCCEEDED run's content version and its opened result files."""
        version = await self.content_version(run_id)
        key = (run_id, version)
        files = self._open.get(key)
        if files is not None:
            CACHE_HIT.inc()
            self._open.move_to_end(key)
            return version, files
        CACHE_MISS.inc()
        lock = self._building.setdefault(run_id, asyncio.Lock())
        async with lock:
            files = self._open.get(key)
            if files is None:
                files = await asyncio.to_thread(self._load, run_id)
                self._remember(key, files)
        self._building.pop(run_id, None)
        return version, files

    async def run(self, run_id: str) -> Run:
        """Return the run as stored."""
        return await self._get_run(run_id)

    async def results(self, run_id: str) -> tuple[str, ResultFiles]:
        """Return a SUCCEEDED run's content version and its Parquet result files."""
        version = await self.content_version(run_id)
        return version, ResultFiles(await asyncio.to_thread(self._run_dir, run_id))

    def _load(self, run_id: str) -> RunFiles:
        run_dir = self._run_dir(run_id)
        if not sidecar_ready(run_dir):
            logger.info("building the playback files of run %s", run_id)
            build_sidecar(run_dir)
            if storage.local_path(self._root) is None:  # other replicas download it, not build it
                url = storage.join(self._root, run_id, SIDECAR)
                storage.upload(run_dir / SIDECAR, url, last=SIDECAR_DONE)
        return open_run(run_dir)

    def _run_dir(self, run_id: str) -> Path:
        """Return the run's result directory on this machine: the store's, or a local copy."""
        url = storage.join(self._root, run_id)
        run_dir = storage.local_path(url)
        if run_dir is None:
            # A finished run never changes: a whole local copy is good for good.
            run_dir = self._copies / run_id
            if not ResultFiles(run_dir).exists() and storage.exists(storage.join(url, MANIFEST)):
                storage.download(url, run_dir, skip=SIDECAR)
            if not sidecar_ready(run_dir) and storage.exists(
                storage.join(url, SIDECAR, SIDECAR_DONE)
            ):
                storage.download(storage.join(url, SIDECAR), run_dir / SIDECAR)
        if not ResultFiles(run_dir).exists():
            raise NotFound(f"the results of backtests/{run_id} are missing from the result store")
        return run_dir

    def _remember(self, key: tuple[str, str], files: RunFiles) -> None:
        if files.mapped_bytes > self._cache_bytes:
            return  # served from a fresh mapping each time rather than evicting everything
        self._open[key] = files
        self._open_bytes += files.mapped_bytes
        while self._open_bytes > self._cache_bytes:
            _, evicted = self._open.popitem(last=False)
            self._open_bytes -= evicted.mapped_bytes
