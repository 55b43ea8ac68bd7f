"""Print (or --write into README.md) the reference of every setting, from the settings classes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from tapedeck_backtest.settings import BacktestSettings
from tapedeck_common.entrypoint import setting_env_names
from tapedeck_common.settings import ServiceSettings
from tapedeck_gateway.settings import FrontSettings
from tapedeck_live.settings import LiveSettings
from tapedeck_wallets.settings import WalletsSettings

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- settings:start -->", "<!-- settings:end -->"
CLASSES: list[tuple[str, Any]] = [
    ("Backtest service", BacktestSettings),
    ("Wallet service", WalletsSettings),
    ("Live-event service", LiveSettings),
    ("Gateway front service (started by the launcher)", FrontSettings),
]


def _default(info: FieldInfo) -> str:
    if info.default_factory is not None:
        return "computed"
    if info.default is PydanticUndefined:
        return "required"
    if info.default is None:
        return "unset"
    if isinstance(info.default, tuple | list):
        return ",".join(str(v) for v in info.default) or "empty"
    return str(info.default)


def render() -> str:
    """Return the markdown tables of every settings class."""
    parts = []
    for title, cls in CLASSES:
        parts.append(f"#### {title}\n\n| variable | default | meaning |\n|---|---|---|")
        for name, info in cls.model_fields.items():
            inherited = ServiceSettings.model_fields.get(name)
            fallback = inherited.description if inherited is not None else None
            description = (
                (info.description or fallback or "").replace("\n", " ").replace("|", "\\|")
            )
            parts.append(
                f"| `{setting_env_names(cls, name)}` | `{_default(info)}` | {description} |"
            )
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"


def main() -> None:
    """Print the reference, or replace it between the README's markers with --write."""
    text = render()
    if "--write" not in sys.argv:
        print(text, end="")
        return
    readme = README.read_text()
    head, _, rest = readme.partition(START)
    _, _, tail = rest.partition(END)
    README.write_text(f"{head}{START}\n{text}{END}{tail}")


if __name__ == "__main__":
    main()
