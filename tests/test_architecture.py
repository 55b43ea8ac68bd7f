"""The code keeps its shape: SQL only in repositories, no service imports another.

Walks every Python source of the workspace packages with `ast` (no imports run):
- SQL (SQLAlchemy's select/insert/update/delete/text, or `<session|connection>.execute(...)`)
  appears only in repository modules (`repository.py`, `*_repository.py`, a `repository/`
  package), migrations and models;
- each package imports only the first-party packages it may use: the contract (`tapedeck`)
  everywhere, the shared runtime (`tapedeck_common`) everywhere else, the live client in the
  services that publish live events, and no service package (backtest, wallets, live, the
  gateway, the development package) from any other package;
- each package's pyproject declares no dependency on a package it may not import.
"""

from __future__ import annotations

import ast
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Package:
    """A first-party package of the workspace: where its sources are, its distribution name."""

    source: str
    distribution: str


PACKAGES = {
    "tapedeck_common": Package("services/common/src/tapedeck_common", "tapedeck-common"),
    "tapedeck_live_client": Package(
        "services/live-client/src/tapedeck_live_client", "tapedeck-live-client"
    ),
    "tapedeck_backtest": Package("services/backtest/src/tapedeck_backtest", "tapedeck-backtest"),
    "tapedeck_wallets": Package("services/wallets/src/tapedeck_wallets", "tapedeck-wallets"),
    "tapedeck_live": Package("services/live/src/tapedeck_live", "tapedeck-live"),
    "tapedeck_gateway": Package("gateway/src/tapedeck_gateway", "tapedeck-gateway"),
    "tapedeck_dev": Package("dev/src/tapedeck_dev", "tapedeck-dev"),
    "tapedeck_nautilus": Package("clients/nautilus/src/tapedeck_nautilus", "tapedeck-nautilus"),
}
# The generated contract (in tapedeck-common's distribution) is shared by every package.
CONTRACT = "tapedeck"
# What each package may import besides itself and the contract.
MAY_IMPORT: dict[str, frozenset[str]] = {
    "tapedeck_common": frozenset(),
    "tapedeck_live_client": frozenset({"tapedeck_common"}),
    "tapedeck_backtest": frozenset({"tapedeck_common", "tapedeck_live_client"}),
    "tapedeck_wallets": frozenset({"tapedeck_common", "tapedeck_live_client"}),
    "tapedeck_live": frozenset({"tapedeck_common"}),
    "tapedeck_gateway": frozenset({"tapedeck_common"}),
    "tapedeck_dev": frozenset({"tapedeck_common"}),
    # A client for trading nodes: it stands alone (its own copy of the contract).
    "tapedeck_nautilus": frozenset(),
}
FIRST_PARTY = {CONTRACT, *PACKAGES}

SQL_NAMES = {"select", "insert", "update", "delete", "text"}
SQL_METHODS = {
    # Statements, and the ORM's reads and writes.
    *("execute", "scalar", "scalars", "stream", "stream_scalars"),
    *("get", "add", "add_all", "delete", "merge", "refresh"),
}
# What holds a database session or connection, by its name: `session`, `self._session`,
# `connection`, `conn` (a DB-API `cursor` in an engine's connect hook is set-up, not SQL).
SQL_RECEIVER = re.compile(r"(^|_)(session|connection|conn)$")


def allowed_to_hold_sql(path: Path) -> bool:
    """Tell whether a module may hold SQL: repositories, migrations and models."""
    parts = set(path.parts[:-1])
    stem = path.stem
    return (
        stem in ("repository", "models", "migrations")
        or stem.endswith("_repository")
        or bool(parts & {"repository", "repositories", "migrations"})
    )


def sources(package: str) -> Iterator[Path]:
    """Every Python file of a package."""
    yield from sorted((ROOT / PACKAGES[package].source).rglob("*.py"))


def imported_packages(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, top-level package) of every absolute import in a module, nested ones included."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.split(".")[0]


def forbidden_imports(package: str, tree: ast.AST) -> list[str]:
    """The first-party imports a module of `package` may not make, as `line: name`."""
    allowed = {package, CONTRACT, *MAY_IMPORT[package]}
    return [
        f"{line}: {name}"
        for line, name in imported_packages(tree)
        if name in FIRST_PARTY and name not in allowed
    ]


def _receiver_name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def sql_uses(tree: ast.AST) -> list[str]:
    """Where a module builds or runs SQL, as `line: what`."""
    found: list[str] = []
    sqlalchemy_modules: set[str] = set()  # local names bound to a sqlalchemy module
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
            found += [
                f"{node.lineno}: from {node.module} import {alias.name}"
                for alias in node.names
                if alias.name in SQL_NAMES
            ]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("sqlalchemy"):
                    sqlalchemy_modules.add(alias.asname or alias.name.split(".")[0])
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        owner, method = node.func.value, node.func.attr
        if method in SQL_NAMES and isinstance(owner, ast.Name) and owner.id in sqlalchemy_modules:
            found.append(f"{node.lineno}: {owner.id}.{method}(...)")
        elif method in SQL_METHODS and SQL_RECEIVER.search(_receiver_name(owner)):
            found.append(f"{node.lineno}: {_receiver_name(owner)}.{method}(...)")
    return sorted(found, key=lambda where: int(where.split(":")[0]))


def _parse(path: Path) -> ast.AST:
    return ast.parse(path.read_text(), filename=str(path))


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_no_package_imports_a_service_package_it_may_not_use(package: str) -> None:
    problems = {
        _relative(path): found
        for path in sources(package)
        if (found := forbidden_imports(package, _parse(path)))
    }
    assert problems == {}, f"{package} imports what it may not: {problems}"


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_sql_is_only_in_repository_migration_and_model_modules(package: str) -> None:
    problems = {
        _relative(path): found
        for path in sources(package)
        if not allowed_to_hold_sql(path.relative_to(ROOT / PACKAGES[package].source))
        and (found := sql_uses(_parse(path)))
    }
    assert problems == {}, f"SQL outside repositories in {package}: {problems}"


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_no_package_depends_on_a_package_it_may_not_import(package: str) -> None:
    project = tomllib.loads(
        (ROOT / PACKAGES[package].source).parents[1].joinpath("pyproject.toml").read_text()
    )["project"]
    declared = {re.split(r"[\s<>=!~\[;]", d, maxsplit=1)[0] for d in project["dependencies"]}
    first_party = {p.distribution: name for name, p in PACKAGES.items()}
    may = {PACKAGES[name].distribution for name in MAY_IMPORT[package]}
    assert sorted(d for d in declared if d in first_party and d not in may) == []


def test_every_workspace_member_is_a_package_the_checks_know() -> None:
    members = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]["workspace"][
        "members"
    ]
    known = {str(Path(p.source).parents[1]) for p in PACKAGES.values()}
    assert set(members) == known
    assert set(MAY_IMPORT) == set(PACKAGES)


def test_the_checks_find_sql_and_imports_that_break_the_rules() -> None:
    module = ast.parse(
        "import sqlalchemy as sa\n"
        "from sqlalchemy import select, func\n"
        "from tapedeck_wallets.domain import Wallet\n"
        "from tapedeck.live.v1 import live_pb2\n"
        "from tapedeck_common.errors import NotFound\n"
        "async def f(session, self):\n"
        "    from tapedeck_dev import synth\n"
        "    await session.execute(sa.update(T))\n"
        "    await self._session.scalar(q)\n"
        "    cursor.execute('PRAGMA x')\n"
        "    session.add(row)\n"
        "    return func.count()\n"
    )
    assert forbidden_imports("tapedeck_backtest", module) == [
        "3: tapedeck_wallets",
        "7: tapedeck_dev",
    ]
    assert forbidden_imports("tapedeck_common", module) == [
        "3: tapedeck_wallets",
        "7: tapedeck_dev",
    ]
    assert sql_uses(module) == [
        "2: from sqlalchemy import select",
        "8: session.execute(...)",
        "8: sa.update(...)",
        "9: _session.scalar(...)",
        "11: session.add(...)",
    ]
    assert allowed_to_hold_sql(Path("runs/repository.py"))
    assert allowed_to_hold_sql(Path("reconciliation_repository.py"))
    assert allowed_to_hold_sql(Path("repository/wallets.py"))
    assert allowed_to_hold_sql(Path("migrations/versions/0001_x.py"))
    assert allowed_to_hold_sql(Path("models.py"))
    assert not allowed_to_hold_sql(Path("run_queue.py"))
    assert not allowed_to_hold_sql(Path("runs/service.py"))
