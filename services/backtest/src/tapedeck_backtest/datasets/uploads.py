"""Uploads into the data root in chunks, resumable across calls and service restarts.

An upload is two files in the staging folder: `<id>.json` (the file name and total size, written
once) and `<id>.part` (the bytes so far; its length is where the next chunk starts). The chunk that
completes it moves the part into `<data_root>/uploads/` under a hidden name and renames it into
place in one step, so an import never sees half a file; the part's absence then marks it done.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

from tapedeck_backtest.datasets.importer import check_format
from tapedeck_common.errors import AlreadyExists, InvalidArgument, NotFound
from tapedeck_common.limits import echo
from tapedeck_common.validation import new_id

logger = logging.getLogger(__name__)

UPLOADS = "uploads"
"""The folder under the data root that uploaded files land in."""
MAX_CHUNK_BYTES = 3 * 1024 * 1024
"""One chunk's bytes: with the message's other fields, well within limits.MAX_REQUEST_BYTES."""
MAX_FILE_NAME_BYTES = 255
STALE_SECONDS = 7 * 86_400.0
"""An unfinished upload untouched this long is removed when the service starts."""
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._()+=,-]*")


@dataclass(frozen=True)
class Upload:
    """An upload's state: its target name, size, and how many bytes have arrived."""

    id: str
    file_name: str
    total_bytes: int
    next_offset: int
    complete: bool

    @property
    def source_path(self) -> str:
        """Return the path under the data root the finished file has (ImportDataset's source)."""
        return f"{UPLOADS}/{self.file_name}"


def check_file_name(file_name: str) -> str:
    """Return a valid upload file name: one path component an import can read."""
    if file_name == "":
        raise InvalidArgument("file_name", "is required")
    if len(file_name.encode()) > MAX_FILE_NAME_BYTES:
        raise InvalidArgument("file_name", f"must be at most {MAX_FILE_NAME_BYTES} bytes")
    if "/" in file_name or "\\" in file_name or file_name in {".", ".."}:
        raise InvalidArgument("file_name", "must be a file name, not a path")
    if not _NAME.fullmatch(file_name):
        raise InvalidArgument(
            "file_name",
            f"{echo(file_name)} must start with a letter or digit and hold only letters, "
            "digits, spaces and ._()+=,-",
        )
    if check_format(file_name) is None:
        raise InvalidArgument("file_name", "must end in .csv, .txt, .parquet or .pq")
    return file_name


def check_total_bytes(total_bytes: int, *, max_bytes: int) -> int:
    """Return a valid upload size: at least one byte, at most the service's cap."""
    if total_bytes < 1:
        raise InvalidArgument("total_bytes", "must be at least 1")
    if total_bytes > max_bytes:
        raise InvalidArgument(
            "total_bytes", f"{total_bytes} is over this service's upload cap of {max_bytes} bytes"
        )
    return total_bytes


def check_chunk(data: bytes, *, offset: int) -> None:
    """Refuse a chunk that is empty, too large, or at a negative offset."""
    if offset < 0:
        raise InvalidArgument("offset", "must not be negative")
    if len(data) == 0:
        raise InvalidArgument("data", "must hold at least one byte")
    if len(data) > MAX_CHUNK_BYTES:
        raise InvalidArgument("data", f"must be at most {MAX_CHUNK_BYTES} bytes a chunk")


class Uploads:
    """Uploads in progress, kept as files so that a restarted service resumes them."""

    def __init__(self, *, data_root: Path, staging_dir: Path, max_bytes: int) -> None:
        self._data_root = data_root
        self._staging = staging_dir
        self.max_bytes = max_bytes

    async def start(self, *, file_name: str, total_bytes: int) -> Upload:
        """Begin an upload; refused if the data root already has a file of that name."""
        check_file_name(file_name)
        check_total_bytes(total_bytes, max_bytes=self.max_bytes)
        return await asyncio.to_thread(self._start, file_name, total_bytes)

    async def get(self, upload_id: str) -> Upload:
        """Return an upload's state or raise NotFound."""
        return await asyncio.to_thread(self._read, upload_id)

    async def write(self, upload_id: str, *, offset: int, data: bytes) -> Upload:
        """Write a chunk at `offset`; at another offset write nothing and say where to resume."""
        check_chunk(data, offset=offset)
        return await asyncio.to_thread(self._write, upload_id, offset, data)

    async def remove_stale(self) -> None:
        """Delete the files of uploads untouched for a week (finished or not)."""
        await asyncio.to_thread(self._remove_stale)

    def _start(self, file_name: str, total_bytes: int) -> Upload:
        if (self._target_dir() / file_name).exists():
            raise AlreadyExists(
                f"{UPLOADS}/{file_name} already exists under the data root; import it or "
                "upload under another file_name"
            )
        self._staging.mkdir(parents=True, exist_ok=True)
        upload_id = new_id()
        meta = self._staging / f"{upload_id}.json"
        written = meta.with_suffix(".json.tmp")
        written.write_text(json.dumps({"file_name": file_name, "total_bytes": total_bytes}))
        self._part(upload_id).touch()
        os.replace(written, meta)  # the upload exists once its description does
        return Upload(upload_id, file_name, total_bytes, 0, complete=False)

    def _read(self, upload_id: str) -> Upload:
        meta = self._staging / f"{upload_id}.json"
        try:
            described = json.loads(meta.read_text())
        except FileNotFoundError:
            raise NotFound(f"{UPLOADS}/{upload_id} does not exist") from None
        file_name, total = str(described["file_name"]), int(described["total_bytes"])
        try:
            received = self._part(upload_id).stat().st_size
        except FileNotFoundError:
            # Moved into the data root: done (the hidden name left by a crash is renamed now).
            hidden = self._hidden(upload_id)
            if hidden.exists():
                os.replace(hidden, self._target_dir() / file_name)
            return Upload(upload_id, file_name, total, total, complete=True)
        return Upload(upload_id, file_name, total, received, complete=False)

    def _write(self, upload_id: str, offset: int, data: bytes) -> Upload:
        upload = self._read(upload_id)
        if upload.complete:
            return upload
        try:
            file = self._part(upload_id).open("r+b")
        except FileNotFoundError:
            return self._read(upload_id)  # finished meanwhile
        with file:
            # One writer at a time per upload, across threads and processes sharing the folder;
            # a caller that waited sees the offset the previous one left.
            fcntl.flock(file.fileno(), fcntl.LOCK_EX)
            if not self._part(upload_id).exists():
                return self._read(upload_id)
            received = os.fstat(file.fileno()).st_size
            if offset != received:
                return replace(upload, next_offset=received)
            if offset + len(data) > upload.total_bytes:
                raise InvalidArgument(
                    "data", f"runs past the upload's total_bytes ({upload.total_bytes})"
                )
            file.seek(offset)
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
            received += len(data)
            if received < upload.total_bytes:
                return replace(upload, next_offset=received)
            target = self._target_dir()
            target.mkdir(parents=True, exist_ok=True)
            hidden = self._hidden(upload_id)
            # A rename when the staging folder shares the data root's file system, else a copy.
            shutil.move(self._part(upload_id), hidden)
            os.replace(hidden, target / upload.file_name)
        os.utime(self._staging / f"{upload_id}.json")
        logger.info(
            "upload finished",
            extra={"upload": upload_id, "path": upload.source_path, "bytes": received},
        )
        return replace(upload, next_offset=received, complete=True)

    def _remove_stale(self) -> None:
        if not self._staging.is_dir():
            return
        cutoff = time.time() - STALE_SECONDS
        newest: dict[str, float] = {}
        for entry in self._staging.iterdir():
            upload_id = entry.name.split(".", 1)[0]
            newest[upload_id] = max(newest.get(upload_id, 0.0), entry.stat().st_mtime)
        for upload_id, touched in newest.items():
            if touched < cutoff:
                logger.warning("removing a stale upload", extra={"upload": upload_id})
                for entry in self._staging.glob(f"{upload_id}.*"):
                    entry.unlink(missing_ok=True)

    def _part(self, upload_id: str) -> Path:
        return self._staging / f"{upload_id}.part"

    def _hidden(self, upload_id: str) -> Path:
        return self._target_dir() / f".{upload_id}.upload"

    def _target_dir(self) -> Path:
        return self._data_root / UPLOADS
