"""The browser app in real Chromium, through the real Envoy gateway and the real services."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway.stack import REPO, Stack, start_stack
from tests.support import missing_dependency

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if not Path(CHROMIUM).exists():
        missing_dependency(f"Chromium at {CHROMIUM} (apt-get install chromium)")
    if shutil.which("node") is None:
        missing_dependency("node")
    running = start_stack(tmp_path_factory.mktemp("browser"))
    yield running
    running.stop()


def run_scenario(name: str, *args: str) -> None:
    done = subprocess.run(
        ["node", str(REPO / "tests" / "e2e" / f"{name}.mjs"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TAPEDECK_ARTIFACTS": str(ARTIFACTS), "CHROMIUM": CHROMIUM},
    )
    assert done.returncode == 0, f"{name} failed:\n{done.stdout}\n{done.stderr}"


def test_the_app_signs_in_from_the_launcher_link_and_reaches_every_service(stack: Stack) -> None:
    run_scenario("overview", f"http://{stack.address}/#token={stack.admin_token()}")
