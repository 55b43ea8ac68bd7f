"""A real S3 API server for tests: moto's server mode on 127.0.0.1, one bucket per test session.

The service and every Ray node find it the way they would find a team's object store: through
the standard AWS environment (`S3_ENV`), never through a request or a setting holding a secret.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support import free_port, missing_dependency

MOTO_SERVER = Path(sys.executable).parent / "moto_server"


@dataclass(frozen=True)
class S3Server:
    """A running moto server: its endpoint, the environment that reaches it, and one bucket."""

    endpoint: str
    bucket: str

    @property
    def env(self) -> dict[str, str]:
        """Return the AWS environment a process needs to use this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "tapedeck-test",
            "AWS_SECRET_ACCESS_KEY": "tapedeck-test-secret",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def url(self, *names: str) -> str:
        """Return an s3:// URL in this server's bucket."""
        return "/".join([f"s3://{self.bucket}", *names])


@contextlib.contextmanager
def s3_server() -> Iterator[S3Server]:
    """Start moto_server on a free 127.0.0.1 port with a fresh bucket; stop it afterwards."""
    if not MOTO_SERVER.exists():
        missing_dependency("moto_server (moto[server])")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("moto_server did not start") from None
                time.sleep(0.1)
        server = S3Server(endpoint=endpoint, bucket=f"tapedeck-{uuid.uuid4().hex[:12]}")
        _create_bucket(server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _create_bucket(server: S3Server) -> None:
    request = urllib.request.Request(f"{server.endpoint}/{server.bucket}", method="PUT")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


@contextlib.contextmanager
def s3_environment(server: S3Server) -> Iterator[None]:
    """Set the AWS environment of `server` in this process, restoring the old values after."""
    saved = {name: os.environ.get(name) for name in server.env}
    os.environ.update(server.env)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
