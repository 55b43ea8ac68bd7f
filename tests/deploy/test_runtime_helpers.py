"""The image's helpers do what compose relies on: file secrets, the health check, secret files."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tapedeck_common.auth import TokenStore
from tapedeck_common.settings import ServiceSettings
from tapedeck_wallets import server
from tapedeck_wallets.settings import WalletsSettings
from tests.backtest.ray_support import NODE_ENV, REPO, kill_session, ray_cluster
from tests.deploy.deployment import DEPLOY, ENTRYPOINT, compose
from tests.deploy.test_files import SECRET_LIKE
from tests.support import free_port

HEALTHCHECK = DEPLOY / "healthcheck.py"


def _entrypoint(env: dict[str, str], *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(ENTRYPOINT), *command],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_entrypoint_turns_file_secrets_into_variables_and_runs_the_command(
    tmp_path: Path,
) -> None:
    url = tmp_path / "database_url"
    url.write_text("postgresql://tapedeck:pw@postgres:5432/tapedeck\n")
    token = tmp_path / "service_token"
    token.write_text("service-token-value")
    result = _entrypoint(
        {"DATABASE_URL_FILE": str(url), "TAPEDECK_SERVICE_TOKEN_FILE": str(token), "KEEP": "1"},
        "env",
    )
    assert result.returncode == 0, result.stderr
    env = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    assert env["DATABASE_URL"] == "postgresql://tapedeck:pw@postgres:5432/tapedeck"
    assert env["TAPEDECK_SERVICE_TOKEN"] == "service-token-value"
    assert env["KEEP"] == "1"
    assert "DATABASE_URL_FILE" not in env
    assert "TAPEDECK_SERVICE_TOKEN_FILE" not in env


def test_entrypoint_passes_the_command_s_exit_code_and_leaves_other_files_alone(
    tmp_path: Path,
) -> None:
    tokens = tmp_path / "tokens.json"
    tokens.write_text("{}")
    result = _entrypoint({"TAPEDECK_TOKENS_FILE": str(tokens)}, "sh", "-c", "env; exit 3")
    assert result.returncode == 3
    assert f"TAPEDECK_TOKENS_FILE={tokens}" in result.stdout
    assert "TAPEDECK_TOKENS=" not in result.stdout


def test_entrypoint_refuses_a_missing_file_or_both_forms(tmp_path: Path) -> None:
    missing = _entrypoint({"REDIS_URL_FILE": str(tmp_path / "nope")}, "true")
    assert missing.returncode == 2
    assert "REDIS_URL_FILE" in missing.stderr
    value = tmp_path / "url"
    value.write_text("redis://redis:6379/0")
    both = _entrypoint({"REDIS_URL_FILE": str(value), "REDIS_URL": "redis://x"}, "true")
    assert both.returncode == 2
    assert "both REDIS_URL and REDIS_URL_FILE" in both.stderr


async def _healthcheck(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HEALTHCHECK),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, stderr.decode()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_entrypoint_joins_a_ray_backtest_service_to_its_cluster_as_a_node_without_cpus(
    tmp_path: Path,
) -> None:
    # A Ray driver runs on a node of its cluster: given BACKTEST_EXECUTOR=ray and the head's
    # address, the backtest container joins the cluster before the service starts, as a node no
    # run lands on. The command stands in for the service and lists the cluster's nodes.
    with ray_cluster(second=False) as cluster:
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        # This machine's `ray`: the real CLI, with the loopback address and free ports every
        # test node takes (tests/backtest/ray_node.py).
        ray = [sys.executable, "-m", "tests.backtest.ray_node"]
        (bin_dir / "ray").write_text(
            f'#!/bin/sh\nexec {shlex.join(ray)} "$@" {shlex.join(cluster.loopback_flags())}\n'
        )
        (bin_dir / "ray").chmod(0o755)
        nodes = (
            "import json, os, ray; "
            "ray.init(address=os.environ['BACKTEST_RAY_ADDRESS'], log_to_driver=False); "
            "print(json.dumps(sorted([n['Alive'], n['Resources'].get('CPU', 0)] "
            "for n in ray.nodes())))"
        )
        env = {
            **os.environ,
            **NODE_ENV,
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "BACKTEST_EXECUTOR": "ray",
            "BACKTEST_RAY_ADDRESS": cluster.address,
        }
        entrypoint = subprocess.Popen(
            ["sh", str(ENTRYPOINT), sys.executable, "-c", nodes],
            env=env,
            cwd=REPO,
            start_new_session=True,  # the joined node's processes: ended with this group
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            out, err = entrypoint.communicate(timeout=420)
        finally:
            kill_session(entrypoint.pid)
        assert entrypoint.returncode == 0, err[-3000:]
        assert json.loads(out.splitlines()[-1]) == [[True, 0], [True, 1.0]]


async def test_healthcheck_script_against_a_running_wallet_service(tmp_path: Path) -> None:
    app = await server.start(
        WalletsSettings(
            port=0,
            data_dir=tmp_path,
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'wallets.db'}",
            redis_url=None,
            live_address="",
            shutdown_grace_seconds=0.2,
        )
    )
    try:
        address = f"127.0.0.1:{app.port}"
        assert await _healthcheck(address, "tapedeck.wallets.v1.WalletService") == (0, "")
        code, stderr = await _healthcheck(address, "tapedeck.nope.v1.Nothing")
        assert code == 1
        assert "NOT_FOUND" in stderr
    finally:
        await app.stop()


async def test_healthcheck_script_fails_when_nothing_listens() -> None:
    code, stderr = await _healthcheck(f"127.0.0.1:{free_port()}", "")
    assert code == 1
    assert "UNAVAILABLE" in stderr or "DEADLINE_EXCEEDED" in stderr


def _make_secrets(directory: Path) -> None:
    subprocess.run(
        [sys.executable, str(DEPLOY / "make_secrets.py"), "--dir", str(directory)],
        check=True,
        capture_output=True,
        timeout=30,
    )


def test_make_secrets_writes_what_compose_mounts_in_the_formats_the_services_read(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "secrets"
    _make_secrets(directory)
    files = {p.name for p in directory.iterdir()}
    mounted = {Path(s["file"]).name for s in compose()["secrets"].values()}
    assert files == mounted
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    tokens = directory / "tokens.json"
    store = TokenStore.from_file(tokens)
    entries = {e["name"]: e for e in json.loads(tokens.read_text())["tokens"]}
    assert {"admin", "operator", "viewer", "service"} <= set(entries)
    service_token = (directory / "service_token").read_text()
    assert service_token == entries["service"]["token"]
    assert store.authenticate(f"Bearer {service_token}") is not None
    url = (directory / "database_url").read_text()
    password = (directory / "postgres_password").read_text()
    assert url == f"postgresql://tapedeck:{password}@postgres:5432/tapedeck"
    assert ServiceSettings(database_url=url).database_url == url
    # The committed-secret check would catch every one of these values.
    for value in (url, service_token):
        assert any(pattern.search(f" {value} ") for pattern in SECRET_LIKE), value


def test_make_secrets_keeps_existing_files(tmp_path: Path) -> None:
    directory = tmp_path / "secrets"
    _make_secrets(directory)
    before = {p.name: p.read_text() for p in directory.iterdir()}
    _make_secrets(directory)
    assert {p.name: p.read_text() for p in directory.iterdir()} == before


@pytest.mark.parametrize("name", ["docker-entrypoint.sh"])
def test_entrypoint_is_executable_in_git(name: str) -> None:
    mode = subprocess.run(
        ["git", "ls-files", "-s", f"deploy/{name}"],
        cwd=DEPLOY.parent,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[0]
    assert mode == "100755"
