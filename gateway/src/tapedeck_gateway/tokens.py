"""The local stack's bearer tokens: created once under the data directory, private to the user."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

ROLES = ("admin", "operator", "viewer")
SERVICE_TOKEN_NAME = "service"


def ensure_tokens(path: Path) -> dict[str, str]:
    """Return tokens by name, creating the file (mode 0600) with fresh random tokens if missing."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        entries = [
            {"name": role, "role": role, "token": secrets.token_urlsafe(24)} for role in ROLES
        ]
        # Services call each other with an operator-level token of their own.
        entries.append(
            {"name": SERVICE_TOKEN_NAME, "role": "operator", "token": secrets.token_urlsafe(24)}
        )
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            json.dump({"tokens": entries}, file, indent=2)
    document = json.loads(path.read_text())
    return {entry["name"]: entry["token"] for entry in document["tokens"]}
