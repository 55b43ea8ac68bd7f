"""Readings of the stack's processes from /proc: the tree, CPU time, RSS and PSS."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")
# Marks in a command line that name the process; the first match wins.
_NAMES = (
    (b"forkserver", "backtest forkserver"),
    (b"resource_tracker", "backtest resource tracker"),
    (b"tapedeck_backtest", "backtest"),
    (b"tapedeck_wallets", "wallets"),
    (b"tapedeck_live", "live"),
    (b"tapedeck_gateway", "front"),
    (b"tapedeck-emulator", "exchange emulator"),
    (b"tapedeck-demo", "demo seeder"),
    (b"envoy", "envoy"),
    (b"bin/tapedeck", "launcher"),
)


@dataclass(frozen=True)
class Reading:
    """One process at one moment."""

    pid: int
    name: str
    cpu: float
    """User + system seconds of the process itself (all its threads)."""
    reaped_cpu: float
    """User + system seconds of its children that exited and were waited for."""
    rss_mb: float
    pss_mb: float


def tree(root: int) -> dict[int, int]:
    """Return `root` and every live descendant, each with its parent, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found = {root: 0}
    waiting = [root]
    while waiting:
        pid = waiting.pop()
        for child in children.get(pid, []):
            found[child] = pid
            waiting.append(child)
    return found


def _name(pid: int) -> str:
    command = Path(f"/proc/{pid}/cmdline").read_bytes()
    comm = Path(f"/proc/{pid}/comm").read_bytes()
    for mark, name in _NAMES:
        if mark in command or mark in comm:
            return name
    return command.split(b"\0", 1)[0].decode(errors="replace")


def read(pid: int) -> Reading | None:
    """Return a process's CPU and memory now, or None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        name = _name(pid)
    except (OSError, ProcessLookupError):
        return None
    if fields[0] == "Z":
        return None
    memory = {
        line.split(":", 1)[0]: int(line.split()[1]) / 1024
        for line in rollup.splitlines()[1:]
        if line.endswith("kB")
    }
    return Reading(
        pid=pid,
        name=name,
        cpu=(int(fields[11]) + int(fields[12])) / _TICK,
        reaped_cpu=(int(fields[13]) + int(fields[14])) / _TICK,
        rss_mb=memory.get("Rss", 0.0),
        pss_mb=memory.get("Pss", 0.0),
    )


def snapshot(root: int) -> dict[int, Reading]:
    """Return a reading of every process of the tree under `root`."""
    parents = tree(root)
    readings = {pid: read(pid) for pid in parents}
    found = {pid: reading for pid, reading in readings.items() if reading is not None}
    for pid, reading in found.items():
        parent = found.get(parents[pid])
        # A worker is forked by the forkserver: the same command line, so named by its parent.
        if parent is not None and parent.name == "backtest forkserver":
            found[pid] = replace(reading, name="backtest worker")
    return found
