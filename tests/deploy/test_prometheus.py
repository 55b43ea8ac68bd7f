"""The Prometheus configuration and alert rules in deploy/prometheus, checked by promtool."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.deploy.deployment import DEPLOY
from tests.support import missing_dependency

PROMETHEUS = DEPLOY / "prometheus"


def promtool(*arguments: str) -> subprocess.CompletedProcess[str]:
    found = shutil.which("promtool")
    if found is None:
        missing_dependency("promtool (Debian package prometheus; .ci/run installs it)")
    assert found is not None
    return subprocess.run(
        [found, *arguments], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    "arguments",
    [
        ("check", "config", "prometheus.yml"),
        ("check", "rules", "alerts.yml"),
        ("test", "rules", "alerts_test.yml"),
    ],
    ids=["config", "rules", "rule-tests"],
)
def test_promtool_accepts_the_configuration_and_the_alerts_fire_as_tested(arguments) -> None:
    checked = promtool(*arguments)
    assert checked.returncode == 0, checked.stdout + checked.stderr
