"""The README documents every setting the services read."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_readme_settings_reference_is_current() -> None:
    generated = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "settings_doc.py")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    readme = (REPO / "README.md").read_text()
    block = readme.split("<!-- settings:start -->\n", 1)[1].split("<!-- settings:end -->", 1)[0]
    assert block == generated, "run: .venv/bin/python scripts/settings_doc.py --write"
