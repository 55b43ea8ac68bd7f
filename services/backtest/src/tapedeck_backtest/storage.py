"""Where catalogs and run results live: a local directory or an fsspec URL such as s3://bucket/prefix.

A location is a plain string, so it travels in a job to a worker process or a Ray task on another
node unchanged. Credentials and the endpoint never travel: every process, on every node, gets them
from its own environment through fsspec's usual chain (for S3: AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, AWS_REGION, or the node's role).

On local disk a directory is published with one rename, as before. An object store has no rename:
a directory is uploaded file by file with its marker file (a run's manifest.json) last, and readers
treat the marker, or the database row committed after the upload, as the sign that it is whole.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import fsspec
from fsspec import AbstractFileSystem


def filesystem(url: str) -> tuple[AbstractFileSystem, str]:
    """Return the filesystem holding `url` and the path of `url` within it."""
    # Other processes and replicas write to a bucket: a cached listing would hide their files.
    options = {} if local_path(url) is not None else {"use_listings_cache": False}
    fs, path = fsspec.core.url_to_fs(url, **options)
    return fs, path


def local_path(url: str) -> Path | None:
    """Return the directory on this machine that `url` names, or None for a remote URL."""
    protocol, _ = fsspec.core.split_protocol(url)
    if protocol in (None, "file", "local"):
        return Path(fsspec.core.strip_protocol(url))
    return None


def join(url: str, *names: str) -> str:
    """Return the location `names` below `url`."""
    return "/".join([url.rstrip("/"), *names])


def protocol(url: str) -> str:
    """Return the fsspec protocol of `url` (`file` for a local path)."""
    found, _ = fsspec.core.split_protocol(url)
    return found or "file"


# What every process (service and Ray node) reads to reach an S3 bucket; deployments set these.
ENVIRONMENT = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
)


def environment() -> dict[str, str]:
    """Return this process's object-store variables (those of `ENVIRONMENT` that are set)."""
    return {name: os.environ[name] for name in ENVIRONMENT if name in os.environ}


# NautilusTrader's Rust reader (its own object store, not fsspec) -> the AWS variable it needs.
_RUST_S3_OPTIONS = {
    "endpoint_url": "AWS_ENDPOINT_URL",
    "access_key_id": "AWS_ACCESS_KEY_ID",
    "secret_access_key": "AWS_SECRET_ACCESS_KEY",
    "session_token": "AWS_SESSION_TOKEN",
}


def rust_storage_options(url: str) -> dict[str, str]:
    """Return the options NautilusTrader's Rust catalog reader needs for `url`, from the environment.

    fsspec finds the AWS variables itself; the Rust reader is given them explicitly (it would
    otherwise ask the instance metadata service).
    """
    if protocol(url) != "s3":
        return {}
    found = {
        key: os.environ[name] for key, name in _RUST_S3_OPTIONS.items() if os.environ.get(name)
    }
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        found["region"] = region
    if found.get("endpoint_url", "").startswith("http://"):
        found["allow_http"] = "true"  # an S3-compatible server inside the cluster's network
    return found


def exists(url: str) -> bool:
    """Tell whether a file or a directory exists at `url`."""
    fs, path = filesystem(url)
    return bool(fs.exists(path))


def read_bytes(url: str) -> bytes:
    """Return the content of one file."""
    fs, path = filesystem(url)
    return bytes(fs.cat_file(path))


def publish(staging: Path, url: str, *, last: str | None = None) -> None:
    """Put the local directory `staging` in place at `url`; `staging` is gone afterwards.

    `last` names a file in `staging` uploaded after every other one, so a reader that waits for
    it never sees a partial directory.
    """
    target = local_path(url)
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging, target)
        return
    try:
        upload(staging, url, last=last)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def upload(directory: Path, url: str, *, last: str | None = None) -> None:
    """Copy the local `directory` to the remote `url`, the file `last` after every other one."""
    fs, root = filesystem(url)
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    files.sort(key=lambda p: p.relative_to(directory).as_posix() == last)
    for file in files:
        fs.put_file(str(file), f"{root}/{file.relative_to(directory).as_posix()}")


def remove(url: str) -> None:
    """Delete the directory at `url` and everything in it; nothing there is not an error."""
    target = local_path(url)
    if target is not None:
        shutil.rmtree(target, ignore_errors=True)
        return
    fs, path = filesystem(url)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def download(url: str, target: Path, *, skip: str | None = None) -> None:
    """Copy the remote directory `url` to the local `target`, which appears whole or not at all.

    `skip` names a subdirectory left out.
    """
    fs, root = filesystem(url)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for path in fs.find(root):
            relative = path[len(root) :].lstrip("/")
            if skip is not None and relative.startswith(f"{skip}/"):
                continue
            local = staging / relative
            local.parent.mkdir(parents=True, exist_ok=True)
            fs.get_file(path, str(local))
        try:
            os.rename(staging, target)
        except OSError:
            if not target.is_dir():  # not a concurrent download that won the rename
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def local_copy(url: str, cache_root: Path) -> Path:
    """Return this machine's copy of the remote directory `url`, downloading it the first time.

    Only for directories that never change once written (a dataset's catalog: a new import is a
    new dataset): a copy is never refreshed.
    """
    target = cache_root / hashlib.sha256(url.encode()).hexdigest()[:32]
    if not target.is_dir():
        download(url, target)
    return target


def size_bytes(url: str) -> int:
    """Return the total size of the files under the directory `url`."""
    fs, path = filesystem(url)
    return sum(int(info["size"]) for info in fs.find(path, detail=True).values())
