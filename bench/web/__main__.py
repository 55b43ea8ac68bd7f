"""Browser budgets of the web app, measured in Chromium through the real stack.

    .venv/bin/python -m bench.web                 # 1M-candle run, a few minutes on 2 cores
    .venv/bin/python -m bench.web --candles 200000

Starts the stack (launcher, services, Envoy) on free ports, writes a synthetic finished run of
`--candles` one-minute candles (with fills and the writer's equity curve) into its result store
(bench.playback.synthetic), then runs `budgets.mjs` in Chromium. Budgets (issue 7): JS + CSS
<= 250 KB gzipped; first chart painted <= 1.5 s after navigation; >= 50 frames per second while
moving the cursor and playing; zooming the whole 1M-candle run out and back without a frame longer
than 200 ms. The naive baseline (every candle given to lightweight-charts, as peers do) is
measured in the same browser.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import tempfile
import time
from pathlib import Path

from bench.playback.__main__ import register
from bench.playback.synthetic import write_run
from tests.gateway.stack import REPO, start_stack


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--candles", type=int, default=1_000_000)
    parser.add_argument("--fills", type=int, default=20_000)
    parser.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    os.environ["BACKTEST_WORKERS"] = "0"  # playback only: no engine processes on the cores
    with tempfile.TemporaryDirectory(prefix="bench-web-") as tmp:
        print("starting the stack (launcher, services, Envoy) ...", flush=True)
        stack = start_stack(Path(tmp))
        try:
            started = time.perf_counter()
            run_id = f"benchweb{args.candles}"
            write_run(
                stack.data_dir / "runs",
                run_id,
                candles=args.candles,
                fills=args.fills,
                equity_points=0,
                seed=11,
            )
            asyncio.run(register(stack.data_dir / "backtest.db", [run_id]))
            print(
                f"synthetic run: {args.candles:,} candles, {args.fills:,} fills, "
                f"written in {time.perf_counter() - started:.1f} s",
                flush=True,
            )
            subprocess.run(
                [
                    "node",
                    str(REPO / "bench" / "web" / "budgets.mjs"),
                    f"http://{stack.address}/#token={stack.admin_token()}",
                    run_id,
                    str(args.candles),
                    "baseline" if args.baseline else "no-baseline",
                ],
                check=True,
                timeout=900,
            )
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
