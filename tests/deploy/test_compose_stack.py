"""The compose stack's configuration, run as compose would run it, without Docker.

Each Python service of deploy/compose.yaml starts through deploy/docker-entrypoint.sh with the
compose file's environment and command, its secrets made by deploy/make_secrets.py, and its
compose health check decides when it is up; Envoy runs deploy/envoy.yaml. Only what a container
engine provides is mapped: compose host names and ports to free loopback ports, /run/secrets/<name>
to the secret files, the data directory to a private one, PostgreSQL to a fresh test database.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tapedeck.wallets.v1 import wallets_pb2, wallets_pb2_grpc
from tests.deploy.deployment import (
    DEPLOY,
    ENTRYPOINT,
    ROOT,
    compose,
    compose_env,
    envoy,
    envoy_upstreams,
    interpolated,
    render_script,
)
from tests.support import eventually, free_port, missing_dependency, postgres_database

ENVOY = ROOT / ".venv" / "bin" / "envoy"
SERVICES = ["backtest", "wallets", "live", "front"]
REDIS = ("127.0.0.1", 6379)


def _reachable(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True


class Stack:
    """Maps compose's world (host names, /run/secrets, ports) onto this machine."""

    def __init__(self, tmp_path: Path, secrets_dir: Path) -> None:
        self.tmp_path = tmp_path
        self.ports = {name: free_port() for name in [*SERVICES, "gateway", "admin"]}
        self.replacements: dict[str, str] = {"redis:6379": f"{REDIS[0]}:{REDIS[1]}"}
        for name, upstream in envoy_upstreams().items():
            self.replacements[f"{upstream.host}:{upstream.port}"] = f"127.0.0.1:{self.ports[name]}"
        for name, secret in compose()["secrets"].items():
            self.replacements[f"/run/secrets/{name}"] = str(secrets_dir / Path(secret["file"]).name)
        self.processes: dict[str, asyncio.subprocess.Process] = {}

    def local(self, value: str) -> str:
        value = interpolated(value)
        for old, new in self.replacements.items():
            value = value.replace(old, new)
        return value

    def environment(self, name: str, service: dict[str, Any]) -> dict[str, str]:
        env = {key: self.local(value) for key, value in compose_env(service).items()}
        prefix = "FRONT" if name == "front" else name.upper()
        assert env.pop(f"{prefix}_HOST") == "0.0.0.0"
        env[f"{prefix}_HOST"] = "127.0.0.1"
        env[f"{prefix}_PORT"] = str(self.ports[name])
        if "TAPEDECK_DATA_DIR" in env:
            env["TAPEDECK_DATA_DIR"] = str(self.tmp_path / name)
        return env

    async def start(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        log = (self.tmp_path / f"{name}.log").open("ab")
        venv_bin = str(Path(sys.executable).parent)
        self.processes[name] = await asyncio.create_subprocess_exec(
            *argv,
            env={"PATH": f"{venv_bin}:{os.environ['PATH']}", "HOME": str(self.tmp_path), **env},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.tmp_path,
        )
        log.close()

    def log(self, name: str) -> str:
        path = self.tmp_path / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    async def healthy(self, name: str, test: list[str]) -> bool:
        assert test[:2] == ["CMD", "python"]
        argv = [sys.executable, *(self.local(arg) for arg in test[2:])]
        argv[1] = (
            str(DEPLOY / "healthcheck.py") if argv[1] == "/app/bin/healthcheck.py" else argv[1]
        )
        argv[2] = argv[2].replace(argv[2].rsplit(":", 1)[1], str(self.ports[name]))
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        code = await process.wait()
        if self.processes[name].returncode is not None:
            pytest.fail(f"{name} exited with {self.processes[name].returncode}:\n{self.log(name)}")
        return code == 0

    async def stop(self) -> None:
        for process in self.processes.values():
            if process.returncode is None:
                process.terminate()
        for process in self.processes.values():
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()


@contextlib.asynccontextmanager
async def running_stack(tmp_path: Path) -> AsyncIterator[Stack]:
    if not ENVOY.exists():
        missing_dependency("the envoy binary (.venv/bin/envoy)")
    if not _reachable(*REDIS):
        missing_dependency(f"Redis at {REDIS[0]}:{REDIS[1]}")
    async with postgres_database() as database_url:
        secrets_dir = tmp_path / "secrets"
        maker = await asyncio.create_subprocess_exec(
            sys.executable,
            str(DEPLOY / "make_secrets.py"),
            "--dir",
            str(secrets_dir),
            stdout=asyncio.subprocess.DEVNULL,
        )
        assert await maker.wait() == 0
        # The generated URL names the compose host `postgres`; here it is the test database.
        (secrets_dir / "database_url").write_text(database_url.replace("+asyncpg", "") + "\n")
        stack = Stack(tmp_path, secrets_dir)
        try:
            services = compose()["services"]
            for name in SERVICES:
                service = services[name]
                command = [stack.local(arg) for arg in service["command"]]
                await stack.start(
                    name, ["sh", str(ENTRYPOINT), *command], stack.environment(name, service)
                )
            for name in SERVICES:
                test = services[name]["healthcheck"]["test"]
                await eventually(
                    lambda name=name, test=test: stack.healthy(name, test),
                    timeout=120,
                    interval=0.5,
                    message=f"{name}'s compose health check",
                )
            await stack.start("envoy", _envoy_argv(stack), {})
            yield stack
        finally:
            await stack.stop()


def _envoy_argv(stack: Stack) -> list[str]:
    config = copy.deepcopy(envoy())  # the parsed file is shared by every test
    config["admin"]["address"]["socket_address"]["port_value"] = stack.ports["admin"]
    (listener,) = config["static_resources"]["listeners"]
    listener["address"]["socket_address"] = {
        "address": "127.0.0.1",
        "port_value": stack.ports["gateway"],
    }
    for cluster in config["static_resources"]["clusters"]:
        cluster["type"] = "STATIC"
        endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
        endpoint["address"]["socket_address"] = {
            "address": "127.0.0.1",
            "port_value": stack.ports[cluster["name"]],
        }
    text = yaml.safe_dump(config, sort_keys=False)
    page = stack.tmp_path / "index.html"
    page.write_text("<!doctype html><title>Tapedeck</title>\n")
    text = text.replace(render_script().INDEX_FILE, str(page))
    path = stack.tmp_path / "envoy.yaml"
    path.write_text(text)
    return [str(ENVOY), "-c", str(path), "--disable-hot-restart", "--log-level", "warn"]


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.envoy
async def test_the_compose_configuration_runs_the_stack_in_production_mode(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        tokens = yaml.safe_load((tmp_path / "secrets" / "tokens.json").read_text())["tokens"]
        admin = next(t["token"] for t in tokens if t["name"] == "admin")
        address = f"127.0.0.1:{stack.ports['gateway']}"
        async with grpc.aio.insecure_channel(address) as channel:
            health = health_pb2_grpc.HealthStub(channel)

            async def serving(service: str) -> bool:
                try:
                    reply = await health.Check(
                        health_pb2.HealthCheckRequest(service=service), timeout=2
                    )
                except grpc.aio.AioRpcError:
                    return False
                return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

            for service in ["", *(u.health_service for u in envoy_upstreams().values())]:
                await eventually(
                    lambda service=service: serving(service),
                    timeout=60,
                    interval=0.5,
                    message=f"health {service!r} through the gateway",
                )
            wallets = wallets_pb2_grpc.WalletServiceStub(channel)
            # Production with the tokens file from the compose secret: no token, no answer.
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await wallets.ListWallets(wallets_pb2.ListWalletsRequest(page_size=5), timeout=5)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            reply = await wallets.ListWallets(
                wallets_pb2.ListWalletsRequest(page_size=5),
                metadata=[("authorization", f"Bearer {admin}")],
                timeout=10,
            )
            assert list(reply.wallets) == []
        # The gateway container's compose health check (Envoy's admin /ready over bash's /dev/tcp).
        test = compose()["services"]["gateway"]["healthcheck"]["test"]
        assert test[:2] == ["CMD", "bash"]
        admin = envoy()["admin"]["address"]["socket_address"]
        command = [
            arg.replace(f"/{admin['port_value']}", f"/{stack.ports['admin']}") for arg in test[1:]
        ]
        assert command != test[1:]

        async def gateway_healthy() -> bool:
            process = await asyncio.create_subprocess_exec(*command)
            return await process.wait() == 0

        await eventually(gateway_healthy, timeout=30, message="the gateway's compose health check")
        for name in [*SERVICES, "envoy"]:
            assert stack.processes[name].returncode is None, stack.log(name)
