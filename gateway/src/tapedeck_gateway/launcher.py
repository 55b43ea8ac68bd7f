"""`tapedeck`: run the whole stack — three services, the front service and Envoy — supervised.

Every child gets the signal to stop when the launcher stops (and, through PR_SET_PDEATHSIG, when
the launcher dies), so no process is left behind. A child that dies is reported and restarted
with exponential backoff. Envoy is a direct child that stays supervised: it receives SIGTERM when
the process that launched it exits, so the launcher must stay alive while the stack runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import functools
import os
import shutil
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tapedeck_gateway import envoy_config
from tapedeck_gateway.tokens import SERVICE_TOKEN_NAME, ensure_tokens

REPO_ROOT = Path(__file__).resolve().parents[3]
RESTART_BASE_SECONDS = 1.0
RESTART_MAX_SECONDS = 30.0
HEALTHY_RESETS_BACKOFF_SECONDS = 60.0
# On stop, Envoy's health check fails first and calls already sent get this long to reach their
# service before the services stop taking calls.
STOP_SETTLE_SECONDS = 1.0
_PR_SET_PDEATHSIG = 1
LOCAL_HEALTH_CHECK_SECONDS = 30
# The demo's processes come from the development package (tapedeck-dev), never imported here.
DEMO_EMULATOR = "tapedeck-emulator"
DEMO_SEEDER = "tapedeck-demo"
DEMO_TOKEN_ENV = "TAPEDECK_DEMO_TOKEN"


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: SIGTERM it if the launcher goes away.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def say(message: str) -> None:
    """Print a launcher line for the person at the terminal."""
    print(f"tapedeck: {message}", flush=True)


@dataclass
class Child:
    """One supervised process."""

    name: str
    argv: list[str]
    env: dict[str, str]
    ready: Callable[[], Awaitable[bool]]
    log_path: Path
    stage: int = 1
    stops_last: bool = False
    """Stopped only after every other child has exited (Envoy: calls through it end first)."""
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    started_at: float = 0.0
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    async def start(self) -> None:
        """Start the process with its output appended to its log file."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                preexec_fn=_die_with_parent,
                cwd=REPO_ROOT,
            )
        self.started_at = time.monotonic()

    def tail(self, lines: int = 5) -> str:
        """Return the last lines of the child's log."""
        try:
            content = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(f"    {line}" for line in content[-lines:])


async def grpc_ready(address: str, service: str) -> bool:
    """Tell whether a gRPC health check for `service` at `address` answers SERVING."""
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=1
            )
    except grpc.aio.AioRpcError:
        return False
    serving: bool = reply.status == health_pb2.HealthCheckResponse.SERVING
    return serving


async def http_ready(host: str, port: int, path: str, *, method: str = "GET") -> bool:
    """Tell whether an HTTP request answers 200 (Envoy's admin /ready, /healthcheck/fail)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1)
    except (OSError, TimeoutError):
        return False
    try:
        request = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        writer.write(request.encode())
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 1)
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return b" 200 " in status


@dataclass(frozen=True)
class StackConfig:
    """Where everything listens and lives."""

    host: str
    port: int
    admin_port: int
    base_port: int
    data_dir: Path
    index_file: Path
    tokens_file: Path | None
    auth: bool
    demo: bool = False

    def service_port(self, name: str) -> int:
        """Return the port of a child service."""
        return (
            self.base_port
            + {"front": 0, "backtest": 1, "wallets": 2, "live": 3, "exchange": 4}[name]
        )

    def metrics_port(self, name: str) -> int:
        """Return the port of a service's Prometheus /metrics."""
        return self.base_port + {"backtest": 7, "wallets": 8, "live": 9}[name]

    @property
    def emulator_info(self) -> Path:
        """Return where the demo's exchange emulator describes its portfolios."""
        return self.data_dir / "demo" / "exchange.json"


def _bin(name: str, *, needed_for: str = "the stack") -> str:
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if found is None:
        raise SystemExit(
            f"tapedeck: {needed_for} needs the {name} executable; run `make run` for set-up"
        )
    return found


async def _exists(path: Path) -> bool:
    return await asyncio.to_thread(path.exists)


def build_children(config: StackConfig) -> list[Child]:
    """Return the stack's children in start order: services, front, Envoy."""
    logs = config.data_dir / "logs"
    base_env = {key: value for key, value in os.environ.items() if not key.startswith("FRONT_")}
    base_env["TAPEDECK_DATA_DIR"] = str(config.data_dir)
    if config.auth and config.tokens_file is not None:
        tokens = ensure_tokens(config.tokens_file)
        base_env["TAPEDECK_TOKENS_FILE"] = str(config.tokens_file)
        base_env["TAPEDECK_SERVICE_TOKEN"] = tokens[SERVICE_TOKEN_NAME]
    addresses = {
        name: f"{config.host}:{config.service_port(name)}"
        for name in ("backtest", "wallets", "live")
    }
    children: list[Child] = []
    if config.demo:
        # The demo's wallets live on a local Coinbase Advanced Trade emulator; it starts first
        # so the wallet service starts with its address and the credentials it generated.
        demo_dir = config.data_dir / "demo"
        demo_dir.mkdir(parents=True, exist_ok=True)
        config.emulator_info.unlink(missing_ok=True)
        secrets = demo_dir / "exchange-secrets.json"
        children.append(
            Child(
                name="exchange",
                argv=[
                    _bin(DEMO_EMULATOR, needed_for="--demo"),
                    "--port",
                    str(config.service_port("exchange")),
                    "--portfolios",
                    "2",
                    "--secrets-out",
                    str(secrets),
                    "--info-out",
                    str(config.emulator_info),
                ],
                env=dict(base_env),
                ready=functools.partial(_exists, config.emulator_info),
                log_path=logs / "exchange.log",
                stage=0,
            )
        )
        base_env["WALLETS_COINBASE_API_URL"] = (
            f"http://{config.host}:{config.service_port('exchange')}"
        )
        base_env["WALLETS_SECRETS_FILE"] = str(secrets)
    for name, service in (
        ("backtest", "tapedeck.backtest.v1.BacktestService"),
        ("wallets", "tapedeck.wallets.v1.WalletService"),
        ("live", "tapedeck.live.v1.LiveService"),
    ):
        env = dict(base_env)
        prefix = name.upper()
        env[f"{prefix}_HOST"] = config.host
        env[f"{prefix}_PORT"] = str(config.service_port(name))
        env.setdefault(f"{prefix}_METRICS_HOST", config.host)
        env.setdefault(f"{prefix}_METRICS_PORT", str(config.metrics_port(name)))
        env.setdefault("LIVE_WALLETS_ADDRESS", addresses["wallets"])
        env.setdefault("BACKTEST_LIVE_ADDRESS", addresses["live"])
        env.setdefault("WALLETS_LIVE_ADDRESS", addresses["live"])
        children.append(
            Child(
                name=name,
                argv=[sys.executable, "-m", f"tapedeck_{name}"],
                env=env,
                ready=functools.partial(grpc_ready, addresses[name], service),
                log_path=logs / f"{name}.log",
            )
        )
    front_env = dict(base_env)
    front_env.update(
        FRONT_HOST=config.host,
        FRONT_PORT=str(config.service_port("front")),
        FRONT_BACKTEST_ADDRESS=addresses["backtest"],
        FRONT_WALLETS_ADDRESS=addresses["wallets"],
        FRONT_LIVE_ADDRESS=addresses["live"],
        **{
            f"FRONT_{name.upper()}_METRICS_ADDRESS": f"{config.host}:{config.metrics_port(name)}"
            for name in ("backtest", "wallets", "live")
        },
    )
    front_address = f"{config.host}:{config.service_port('front')}"
    children.append(
        Child(
            name="front",
            argv=[sys.executable, "-m", "tapedeck_gateway"],
            env=front_env,
            ready=functools.partial(grpc_ready, front_address, ""),
            log_path=logs / "front.log",
        )
    )
    rendered = envoy_config.render(
        REPO_ROOT / "gateway" / "envoy.yaml",
        listen=(config.host, config.port),
        admin=(config.host, config.admin_port),
        upstreams={
            name: (config.host, config.service_port(name))
            for name in ("backtest", "wallets", "live", "front")
        },
        index_file=config.index_file.resolve(),
        # Each upstream is one process: Envoy routes to it whatever its checks say (a lone host
        # is never left out: panic routing), the launcher restarts it and the front service
        # watches its health. Checked every 2 s, each service spent ~0.2 % of a core at rest.
        health_check_seconds=LOCAL_HEALTH_CHECK_SECONDS,
    )
    envoy_path = config.data_dir / "run" / "envoy.yaml"
    envoy_config.write(rendered, envoy_path)
    children.append(
        Child(
            name="envoy",
            # Hot restart is off: it is what needs shared memory and a distinct --base-id per
            # Envoy on one host, and the launcher restarts Envoy itself.
            argv=[
                _bin("envoy"),
                "-c",
                str(envoy_path),
                "--disable-hot-restart",
                "--log-level",
                "warn",
            ],
            env=dict(base_env),
            ready=functools.partial(http_ready, config.host, config.admin_port, "/ready"),
            log_path=logs / "envoy.log",
            stops_last=True,
        )
    )
    return children


class Supervisor:
    """Start children, wait for health, restart the ones that die, stop them all on request."""

    def __init__(
        self,
        children: list[Child],
        *,
        gateway_ready: Callable[[], Awaitable[bool]],
        before_stop: Callable[[], Awaitable[object]] | None = None,
        stop_grace: float = 10.0,
    ) -> None:
        self.children = children
        self.gateway_ready = gateway_ready
        self.before_stop = before_stop
        self.stop_grace = stop_grace
        self.stopping = asyncio.Event()

    async def run_child(self, child: Child) -> None:
        """Keep one child running until the supervisor stops."""
        delay = RESTART_BASE_SECONDS
        while not self.stopping.is_set():
            await child.start()
            assert child.process is not None
            code = await child.process.wait()
            if self.stopping.is_set():
                return
            if time.monotonic() - child.started_at > HEALTHY_RESETS_BACKOFF_SECONDS:
                delay = RESTART_BASE_SECONDS
            child.restarts += 1
            say(
                f"{child.name} exited with code {code}; restarting in {delay:.0f}s "
                f"(restart {child.restarts}); last log lines:\n{child.tail()}"
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)
            delay = min(delay * 2, RESTART_MAX_SECONDS)

    async def start(self, *, ready_within: float) -> None:
        """Start the children stage by stage, each stage once the previous one is ready."""
        deadline = time.monotonic() + ready_within
        for stage in sorted({child.stage for child in self.children}):
            pending = [child for child in self.children if child.stage == stage]
            for child in pending:
                child.task = asyncio.create_task(self.run_child(child), name=f"child-{child.name}")
            while pending:
                if time.monotonic() > deadline:
                    names = ", ".join(child.name for child in pending)
                    details = "\n".join(f"  {c.name} ({c.log_path}):\n{c.tail()}" for c in pending)
                    raise TimeoutError(f"not healthy after {ready_within:.0f}s: {names}\n{details}")
                results = await asyncio.gather(*(child.ready() for child in pending))
                pending = [child for child, ok in zip(pending, results, strict=True) if not ok]
                if pending:
                    await asyncio.sleep(0.2)
        # Last, the stack as a user sees it: health "" through Envoy.
        while not await self.gateway_ready():
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the gateway did not report the stack healthy in {ready_within:.0f}s"
                )
            await asyncio.sleep(0.2)

    async def stop(self) -> None:
        """SIGTERM the services, then Envoy once they exited; SIGKILL what outlives the grace.

        The services refuse new calls, let unary calls finish and end their server streams
        with UNAVAILABLE ("resume from your cursor"); Envoy stays up meanwhile, so each of those
        answers reaches its client instead of a reset connection.
        """
        self.stopping.set()
        deadline = time.monotonic() + self.stop_grace
        if self.before_stop is not None:
            await self.before_stop()
        for last in (False, True):
            await self._stop_group([c for c in self.children if c.stops_last is last], deadline)
        for child in self.children:
            if child.task is not None:
                await child.task

    async def _stop_group(self, children: list[Child], deadline: float) -> None:
        running = [c for c in children if c.process is not None and c.process.returncode is None]
        for child in running:
            assert child.process is not None
            with contextlib.suppress(ProcessLookupError):
                child.process.terminate()
        waits = [c.process.wait() for c in running if c.process is not None]
        try:
            await asyncio.wait_for(asyncio.gather(*waits), max(deadline - time.monotonic(), 0.1))
        except TimeoutError:
            for child in running:
                if child.process is not None and child.process.returncode is None:
                    say(f"{child.name} did not stop within {self.stop_grace:.0f}s; killing it")
                    with contextlib.suppress(ProcessLookupError):
                        child.process.kill()
            await asyncio.gather(*(c.process.wait() for c in running if c.process))


async def fail_gateway_health(config: StackConfig) -> None:
    """Fail Envoy's health check (a balancer stops sending), then let sent calls arrive."""
    await http_ready(config.host, config.admin_port, "/healthcheck/fail", method="POST")
    await asyncio.sleep(STOP_SETTLE_SECONDS)


async def seed_demo(seeder: str, config: StackConfig, *, token: str | None) -> None:
    """Seed the demo through the gateway with `tapedeck-demo`, its lines going to the terminal."""
    env = {key: value for key, value in os.environ.items() if key != DEMO_TOKEN_ENV}
    if token is not None:
        env[DEMO_TOKEN_ENV] = token
    process = await asyncio.create_subprocess_exec(
        seeder,
        "--address",
        f"{config.host}:{config.port}",
        "--data-dir",
        str(config.data_dir),
        "--emulator-info",
        str(config.emulator_info),
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        preexec_fn=_die_with_parent,
        cwd=REPO_ROOT,
    )
    code = await process.wait()
    if code != 0:
        say(f"demo seeding failed (exit code {code})")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the launcher's options; each has an environment variable default."""
    env = os.environ.get
    parser = argparse.ArgumentParser(
        prog="tapedeck", description="Run the Tapedeck stack behind its Envoy gateway."
    )
    parser.add_argument("command", nargs="?", default="run", choices=["run"])
    parser.add_argument("--host", default=env("TAPEDECK_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(env("TAPEDECK_PORT", "8080")))
    parser.add_argument("--admin-port", type=int, default=int(env("TAPEDECK_ADMIN_PORT", "9901")))
    parser.add_argument(
        "--base-port",
        type=int,
        default=int(env("TAPEDECK_BASE_PORT", "50060")),
        help="front service port; backtest, wallets and live use the next three, their metrics +7..+9",
    )
    parser.add_argument("--data-dir", type=Path, default=Path(env("TAPEDECK_DATA_DIR", "var")))
    parser.add_argument(
        "--index-file",
        type=Path,
        default=Path(env("TAPEDECK_INDEX_FILE", str(REPO_ROOT / "gateway/web/dist/index.html"))),
    )
    parser.add_argument(
        "--no-auth",
        action="store_true",
        default=env("TAPEDECK_NO_AUTH", "") == "1",
        help="development only: run without bearer tokens",
    )
    parser.add_argument(
        "--demo",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="also run a local exchange emulator and seed demo data (make run does)",
    )
    parser.add_argument("--ready-timeout", type=float, default=180.0)
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> int:
    """Run the stack until SIGTERM or SIGINT."""
    data_dir: Path = args.data_dir.resolve()
    if not args.index_file.exists():
        say(f"{args.index_file} is missing; build the web app first (make run does)")
        return 2
    tokens_env = os.environ.get("TAPEDECK_TOKENS_FILE")
    tokens_file = Path(tokens_env) if tokens_env else data_dir / "tokens.json"
    config = StackConfig(
        host=args.host,
        port=args.port,
        admin_port=args.admin_port,
        base_port=args.base_port,
        data_dir=data_dir,
        index_file=args.index_file,
        tokens_file=tokens_file,
        auth=not args.no_auth,
        demo=args.demo,
    )
    seeder = _bin(DEMO_SEEDER, needed_for="--demo") if args.demo else None
    supervisor = Supervisor(
        build_children(config),
        gateway_ready=functools.partial(grpc_ready, f"{config.host}:{config.port}", ""),
        before_stop=functools.partial(fail_gateway_health, config),
    )
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop_requested.set)
    say(f"starting the stack (logs in {data_dir / 'logs'})")
    starting = asyncio.create_task(supervisor.start(ready_within=args.ready_timeout))
    stop_wait = asyncio.create_task(stop_requested.wait())
    await asyncio.wait({starting, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if starting.done() and starting.exception() is None:
        url = f"http://{config.host}:{config.port}/"
        if config.auth:
            admin = ensure_tokens(tokens_file)["admin"]
            say(f"ready — open {url}#token={admin}")
            say(f"tokens (admin, operator, viewer) are in {tokens_file}")
        else:
            say(f"ready — open {url} (authentication off)")
        say(f"operators: grpcurl -plaintext {config.host}:{config.port} list")
        if seeder is not None:
            token = ensure_tokens(tokens_file)["admin"] if config.auth else None
            await seed_demo(seeder, config, token=token)
        say("press Ctrl-C to stop")
        await stop_wait
    elif starting.done():
        say(f"start-up failed: {starting.exception()}")
        code = 1
    starting.cancel()
    stop_wait.cancel()
    say("stopping")
    await supervisor.stop()
    say("stopped")
    return code


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `tapedeck` command."""
    args = parse_args(argv)
    sys.exit(asyncio.run(run(args)))
