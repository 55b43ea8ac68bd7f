"""The files under the data root that an import can read: their paths, sizes and a guessed kind."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tapedeck_backtest.datasets.domain import REQUIRED, DataKind, FileFormat
from tapedeck_backtest.datasets.importer import ALIASES, check_format
from tapedeck_backtest.datasets.service import resolve_source
from tapedeck_common.errors import TapedeckError

HEADER_BYTES = 64 * 1024
# The first kind whose required columns a file has is its guess: a quote file may also have a
# "price"-less volume column, a bar file a "volume", so the narrower kinds are tried first.
GUESS_ORDER = (DataKind.QUOTES, DataKind.BARS, DataKind.TRADES)


@dataclass(frozen=True)
class ImportableFile:
    """A file an import can read: where it is under the data root, and what it looks like."""

    path: str
    size_bytes: int
    modify_ns: int
    file_format: FileFormat
    guessed_kind: DataKind | None


def importable_paths(data_root: Path) -> list[str]:
    """Return the paths (relative to the root, sorted) of every importable file under it.

    Hidden files and folders (a dot first, like unfinished uploads) are skipped, and so is any
    path that resolves outside the root through a symlink.
    """
    if not data_root.is_dir():
        return []
    root = data_root.resolve()
    found = []
    for folder, folders, names in os.walk(root):
        folders[:] = [name for name in folders if not name.startswith(".")]
        for name in names:
            if name.startswith(".") or check_format(name) is None:
                continue
            relative = (Path(folder) / name).relative_to(root).as_posix()
            try:
                resolve_source(root, relative)
            except TapedeckError:
                continue
            found.append(relative)
    return sorted(found)


def describe(data_root: Path, relative: str) -> ImportableFile | None:
    """Return one importable file's description, or None if it went away meanwhile."""
    path = data_root.resolve() / relative
    file_format = check_format(path.name)
    assert file_format is not None
    try:
        stat = path.stat()
        kind = guess_kind(path, file_format)
    except OSError:
        return None
    return ImportableFile(relative, stat.st_size, stat.st_mtime_ns, file_format, kind)


def guess_kind(path: Path, file_format: FileFormat) -> DataKind | None:
    """Return the kind of rows a file's column names name, or None when they do not tell."""
    if file_format is FileFormat.PARQUET:
        try:
            names = pq.read_schema(path).names
        except (pa.ArrowInvalid, OSError):
            return None
    else:
        with path.open("rb") as file:
            first = file.read(HEADER_BYTES).split(b"\n", 1)[0]
        names = first.decode("utf-8", "replace").split(",")
    columns = {name.strip().strip("\"'").lower() for name in names}
    for kind in GUESS_ORDER:
        if all(any(alias in columns for alias in ALIASES[role]) for role in REQUIRED[kind]):
            return kind
    return None


async def importable_files(
    data_root: Path, *, after: str | None, limit: int
) -> list[ImportableFile]:
    """Return up to `limit` importable files in path order, after the path `after`."""

    def scan() -> list[ImportableFile]:
        found: list[ImportableFile] = []
        for path in importable_paths(data_root):
            if len(found) == limit:
                break
            if after is not None and path <= after:
                continue
            file = describe(data_root, path)
            if file is not None:
                found.append(file)
        return found

    return await asyncio.to_thread(scan)
