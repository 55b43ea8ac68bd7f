"""The stack as `make run` starts it (`tapedeck --demo`), on free ports in a directory of its own."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc

from tapedeck.backtest.v1 import backtest_pb2 as bt
from tapedeck.backtest.v1 import backtest_pb2_grpc as bt_grpc
from tapedeck_gateway.launcher import grpc_ready
from tests.gateway.stack import free_ports, launcher_command, launcher_env

REPO = Path(__file__).resolve().parents[2]
SERVICES = {
    "backtest": (1, "tapedeck.backtest.v1.BacktestService"),
    "wallets": (2, "tapedeck.wallets.v1.WalletService"),
    "live": (3, "tapedeck.live.v1.LiveService"),
    "front": (0, ""),
}


@dataclass(frozen=True)
class Stack:
    """A running launcher and where it listens."""

    pid: int
    port: int
    base_port: int
    data_dir: Path
    output: Path

    def log(self) -> str:
        """Return what the launcher printed so far."""
        return self.output.read_text(errors="replace")

    async def serving(self) -> bool:
        """Tell whether every service, and the stack through Envoy, answers SERVING."""
        checks = [
            grpc_ready(f"127.0.0.1:{self.base_port + offset}", name)
            for offset, name in SERVICES.values()
        ]
        checks.append(grpc_ready(f"127.0.0.1:{self.port}", ""))
        return all(await asyncio.gather(*checks))

    async def runs_pending(self) -> int:
        """Return how many runs are QUEUED or RUNNING, asked through the gateway."""
        tokens = json.loads((self.data_dir / "tokens.json").read_text())["tokens"]
        admin = next(t["token"] for t in tokens if t["name"] == "admin")
        states = (bt.BACKTEST_STATE_QUEUED, bt.BACKTEST_STATE_RUNNING)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{self.port}") as channel:
            reply = await bt_grpc.BacktestServiceStub(channel).ListBacktests(
                bt.ListBacktestsRequest(page_size=100, states=states),
                metadata=(("authorization", f"Bearer {admin}"),),
                timeout=10,
            )
        return len(reply.backtests)


@contextlib.asynccontextmanager
async def demo_stack(directory: Path, *, database_url: str | None) -> AsyncIterator[Stack]:
    """Run `tapedeck --demo` until the block ends, then SIGTERM it and wait."""
    listen, admin, base = free_ports()
    env = launcher_env()
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    output = directory / "launcher.out"
    with output.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            *launcher_command(listen, admin, base, directory / "stack", "--demo"),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=sink,
            stderr=sink,
            env=env,
            cwd=REPO,
        )
    try:
        yield Stack(process.pid, listen, base, directory / "stack", output)
    finally:
        if process.returncode is None:
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 60)
        except TimeoutError:
            process.kill()
            await process.wait()


async def wait_until_idle(stack: Stack, *, within: float) -> None:
    """Wait until the demo is seeded, its runs have ended and every service is SERVING."""

    async def seeded() -> bool:
        return "press Ctrl-C" in stack.log()

    async def runs_ended() -> bool:
        return await stack.runs_pending() == 0

    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    for what, ready in (
        ("the demo seeded", seeded),
        ("the demo's runs ended", runs_ended),
        ("every service SERVING", stack.serving),
    ):
        while not await ready():
            if loop.time() > deadline:
                raise TimeoutError(f"not {what} within {within:.0f} s:\n{stack.log()}")
            await asyncio.sleep(0.5)
