"""Make deploy/secrets/* for deploy/compose.yaml: tokens, the service token, the database password.

Files that exist are kept, so running it again changes nothing. Needs only the Python standard
library (the tokens file has the format tapedeck_gateway.tokens writes).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
from pathlib import Path

ROLES = ("admin", "operator", "viewer")
SERVICE_TOKEN_NAME = "service"
DEFAULT_DIR = Path(__file__).resolve().parent / "secrets"


def _write(path: Path, content: str) -> None:
    if path.exists():
        return
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(descriptor, "w") as file:
        file.write(content)
    # Readable by the containers' uid 10001 through the bind mount; the directory guards it.
    path.chmod(0o644)


def make_secrets(directory: Path) -> dict[str, Path]:
    """Create the secret files that are missing and return them by compose secret name."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    tokens = directory / "tokens.json"
    if not tokens.exists():
        entries = [
            {"name": role, "role": role, "token": secrets.token_urlsafe(24)} for role in ROLES
        ]
        entries.append(
            {"name": SERVICE_TOKEN_NAME, "role": "operator", "token": secrets.token_urlsafe(24)}
        )
        _write(tokens, json.dumps({"tokens": entries}, indent=2) + "\n")
    by_name = {entry["name"]: entry["token"] for entry in json.loads(tokens.read_text())["tokens"]}
    _write(directory / "service_token", by_name[SERVICE_TOKEN_NAME])
    _write(directory / "postgres_password", secrets.token_urlsafe(24))
    password = (directory / "postgres_password").read_text().strip()
    _write(
        directory / "database_url",
        f"postgresql://tapedeck:{password}@postgres:5432/tapedeck",
    )
    return {
        "tokens": tokens,
        "service_token": directory / "service_token",
        "postgres_password": directory / "postgres_password",
        "database_url": directory / "database_url",
    }


def main() -> None:
    """Make the files in deploy/secrets (or --dir) and say where they are."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    args = parser.parse_args()
    made = make_secrets(args.dir)
    print(f"secrets in {args.dir}: {', '.join(sorted(made))}")


if __name__ == "__main__":
    main()
