"""Generated hostile requests against the whole stack through Envoy: codes, collateral, memory.

    .venv/bin/python -m bench.hostile [--per-service 10000] [--seed 14]

Starts its own stack on free ports (SQLite), records each service's RSS when idle, sends
`--per-service` generated requests to every service (tests/gateway/hostile.py: valid,
malformed, oversized, edge values, raw bytes, concurrent duplicates) beside well-formed calls
and an open SubscribeEvents stream, and prints the status codes, failures (UNKNOWN, INTERNAL,
UNAVAILABLE, hangs), collateral failures and RSS after against before (target: within 1.5x).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from tests.gateway import hostile
from tests.gateway.stack import Stack, descendants, start_stack

_SERVICES = {
    "backtest": b"tapedeck_backtest",
    "wallets": b"tapedeck_wallets",
    "live": b"tapedeck_live",
}


def rss_mb(stack: Stack) -> dict[str, float]:
    """Return the RSS in MB of each service process of the stack (its main process)."""
    found: dict[str, float] = {}
    for pid in sorted(descendants(stack.process.pid)):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for service, marker in _SERVICES.items():
            if marker in command and service not in found:
                fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
                found[service] = int(fields["VmRSS"].split()[0]) / 1024
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--per-service", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        stack = start_stack(Path(tmp))
        try:
            before = rss_mb(stack)
            started = time.monotonic()
            outcome = asyncio.run(
                hostile.run(
                    stack.address,
                    stack.admin_token(),
                    services=tuple(hostile.CONTRACT),
                    per_service=args.per_service,
                    seed=args.seed,
                )
            )
            took = time.monotonic() - started
            after = rss_mb(stack)
            tracebacks = stack.log().count("Traceback")
        finally:
            stack.stop()
    print(f"sent {outcome.sent} requests in {took:.0f} s (seed {args.seed})")
    for code, count in outcome.codes.most_common():
        print(f"  {code:<20} {count}")
    print(f"failures (UNKNOWN, INTERNAL, UNAVAILABLE, hang): {len(outcome.failures)}")
    for failure in outcome.failures[:20]:
        print(f"  {failure}")
    print(f"collateral failures of well-formed calls: {len(outcome.collateral)}")
    for failure in outcome.collateral[:20]:
        print(f"  {failure}")
    print(f"tracebacks in the stack's log: {tracebacks}")
    for service, idle in before.items():
        now = after.get(service, float("nan"))
        print(f"RSS {service:<9} idle {idle:7.0f} MB  after {now:7.0f} MB  ratio {now / idle:.2f}x")


if __name__ == "__main__":
    main()
