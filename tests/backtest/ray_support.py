"""A real Ray cluster for the executor tests: a head and a second node, on 127.0.0.1 only.

Each node is a `ray start --block` process in a session of its own, so the test ends exactly the
processes it started (the node's raylet, object store and workers) by signalling that process
group; `ray stop` would end every Ray process on the machine. Every port is chosen free, the
dashboard is off, and every node runs with --node-ip-address=127.0.0.1 and
RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (see `ray_node.py`; set for the test process, which hosts the
service's Ray driver, in tests/conftest.py), so no process uses the machine's outward address.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import free_ports, missing_dependency

RAY = Path(sys.executable).parent / "ray"
REPO = Path(__file__).resolve().parents[2]
STARTED = b"Ray runtime started."
NODE_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    # Two cores shared by many: give a node's agents and workers minutes, not seconds, to start.
    "RAY_agent_register_timeout_ms": "120000",
    "RAY_raylet_start_wait_time_s": "120",
    "RAY_worker_register_timeout_seconds": "120",
}
HEAD_RESOURCE = "tapedeck_test_head"
SECOND_RESOURCE = "tapedeck_test_second"


@dataclass
class RayNode:
    """One `ray start --block` process and the session it leads."""

    process: subprocess.Popen[bytes]
    resource: str
    log: Path

    def started(self) -> bool:
        """Wait until `ray start` says the node runs (True) or gives up (False)."""
        deadline = time.monotonic() + 360
        while time.monotonic() < deadline:
            if STARTED in self.log.read_bytes():
                return True
            if self.process.poll() is not None:
                return False
            time.sleep(0.2)
        return False

    def check(self) -> None:
        """Fail with the end of the node's log when its process ended."""
        if self.process.poll() is not None:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise AssertionError(f"Ray node {self.resource} exited:\n{tail}")

    def kill(self) -> None:
        """End every process of the node at once (a machine lost mid-run).

        Every process of the session `ray start` leads: Ray puts each worker process in a process
        group of its own, which outlives its raylet for a while (and can finish its task).
        """
        kill_session(self.process.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)


def kill_session(session: int) -> None:
    """SIGKILL every process of a session (the one a process started with start_new_session)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.getsid(int(entry.name)) == session:
                    os.kill(int(entry.name), signal.SIGKILL)


@dataclass
class RayCluster:
    """A head node and a second node; `address` is the head's GCS."""

    address: str
    temp_dir: Path
    env: dict[str, str] = field(default_factory=dict)  # e.g. the object store's AWS environment
    nodes: list[RayNode] = field(default_factory=list)

    def start_node(self, *, head: bool, resource: str) -> RayNode:
        """Start a node with one CPU and a custom resource naming it; wait until it runs.

        `ray start` gives a node's agents 30 s to come up, which a loaded machine can miss: a node
        that gave up is started again (three times at most).
        """
        for _ in range(3):
            node = self._start_node(head=head, resource=resource)
            self.nodes.append(node)  # stopped with the cluster whatever happens next
            if node.started():
                return node
            tail = node.log.read_text(errors="replace")[-2000:]
            node.kill()
            self.nodes.remove(node)
        raise AssertionError(f"Ray node {resource} did not start:\n{tail}")

    def loopback_flags(self) -> list[str]:
        """`ray start` flags every node here takes: 127.0.0.1, this cluster's directory, free ports."""
        ports = free_ports(12)
        return [
            "--node-ip-address=127.0.0.1",
            "--object-store-memory=100000000",
            f"--temp-dir={self.temp_dir}",
            f"--node-manager-port={ports[0]}",
            f"--object-manager-port={ports[1]}",
            f"--dashboard-agent-listen-port={ports[2]}",
            f"--dashboard-agent-grpc-port={ports[3]}",
            f"--metrics-export-port={ports[4]}",
            f"--runtime-env-agent-port={ports[5]}",
            # One port per worker process alive at once (a run's task, the channel actor).
            f"--worker-port-list={','.join(str(p) for p in ports[6:])}",
            "--include-log-monitor=false",
        ]

    def _start_node(self, *, head: bool, resource: str) -> RayNode:
        ports = free_ports(2)
        port = self.address.rsplit(":", 1)[1]
        command = [
            sys.executable,
            "-m",
            "tests.backtest.ray_node",
            "start",
            "--block",
            "--num-cpus=1",
            f"--resources={json.dumps({resource: 1})}",
            "--disable-usage-stats",
            *self.loopback_flags(),
        ]
        if head:
            command += [
                "--head",
                f"--port={port}",
                "--include-dashboard=false",
                f"--ray-client-server-port={ports[0]}",
                # The head still runs the dashboard's API process: never on the default 8265.
                f"--dashboard-port={ports[1]}",
            ]
        else:
            command.append(f"--address={self.address}")
        # A node's copies of catalogs it read from a bucket go with the cluster's directory.
        cache = {"BACKTEST_CACHE_DIR": str(self.temp_dir / f"cache-{resource}")}
        env = {**os.environ, **NODE_ENV, **cache, **self.env}
        log_path = self.temp_dir / f"{resource}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command,
                env=env,
                cwd=REPO,
                start_new_session=True,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return RayNode(process, resource, log_path)

    def stop(self) -> None:
        """End the nodes this cluster started, and only those."""
        for node in reversed(self.nodes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.process.pid, signal.SIGTERM)
        for node in reversed(self.nodes):
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.process.wait(10)
            node.kill()  # whatever did not end with its raylet


@contextlib.contextmanager
def ray_cluster(env: dict[str, str] | None = None, *, second: bool = True) -> Iterator[RayCluster]:
    """Start a head and a second node (one CPU each) on 127.0.0.1; end them afterwards.

    `env` is added to the nodes' environment (their tasks find the object store through it);
    `second=False` starts the head alone.
    """
    if not RAY.exists():
        missing_dependency("ray")
    # Ray's socket paths must stay short: a temp dir under /tmp, not pytest's deep tmp_path.
    temp_dir = Path(tempfile.mkdtemp(prefix="tdray", dir="/tmp"))
    (port,) = free_ports(1)
    cluster = RayCluster(address=f"127.0.0.1:{port}", temp_dir=temp_dir, env=env or {})
    try:
        cluster.start_node(head=True, resource=HEAD_RESOURCE)
        if second:
            cluster.start_node(head=False, resource=SECOND_RESOURCE)
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(temp_dir, ignore_errors=True)
