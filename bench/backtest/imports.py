"""Import benchmark: the Arrow fast path vs NautilusTrader's pandas wrangler + write_data.

Run: `.venv/bin/python -m bench.backtest.imports [--ticks 1000000]`

Generates trade ticks that follow the real BTC perpetual one-minute bars (or the demo's generated
bars when ../shared is absent), then measures in this same run, each step in a fresh process so
peak RSS is its own, repeats interleaved so contenders share the machine's load alike, reporting
the best wall time and the best CPU time (steadier on a shared machine) of each:
- fast path: the raw Parquet (and CSV) file streamed in batches into the catalog schema;
- baseline: pandas read + TradeTickDataWrangler.process + ParquetDataCatalog.write_data;
- the service's import (hash + convert + database row) vs re-importing the unchanged file and a
  renamed copy (content hash only).
Outputs are checked to be the same ticks before ratios are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

REAL_BARS = (
    Path(__file__).resolve().parents[3] / "shared/data/real/btc-perp-20211231-20220201_1m.csv"
)
REPEATS = 3
INSTRUMENT = {
    "instrument_id": "BTCUSDT-PERP.BINANCE",
    "base_currency": "BTC",
    "quote_currency": "USDT",
    "price_precision": 1,
    "size_precision": 3,
}


def _spec():  # type: ignore[no-untyped-def]
    from tapedeck_backtest.datasets.instruments import InstrumentKind, validate_instrument

    return validate_instrument(
        kind=InstrumentKind.PERPETUAL,
        maker_fee=Decimal("0.0002"),
        taker_fee=Decimal("0.0004"),
        **INSTRUMENT,  # type: ignore[arg-type]
    )


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def step_generate(out_dir: Path, ticks: int) -> dict[str, object]:
    from tapedeck_dev.synth import demo_ticks, read_minute_bars, ticks_from_bars, write_ticks

    if REAL_BARS.exists():
        table = ticks_from_bars(
            read_minute_bars(REAL_BARS), ticks, price_precision=1, size_precision=3
        )
        source = "real BTC perpetual 1-minute bars"
    else:
        table = demo_ticks(ticks)
        source = "generated demo bars"
    write_ticks(table, out_dir / "raw" / "ticks.parquet")
    write_ticks(table, out_dir / "raw" / "ticks.csv")
    return {"rows": table.num_rows, "bars": source}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def step_fast(out_dir: Path, fmt: str) -> dict[str, object]:
    from tapedeck_backtest.datasets.domain import DataKind
    from tapedeck_backtest.datasets.importer import convert_file

    spec = _spec()
    target = out_dir / f"fast_{fmt}"
    shutil.rmtree(target, ignore_errors=True)
    cpu, started = _cpu_seconds(), time.perf_counter()
    written = convert_file(
        out_dir / "raw" / f"ticks.{fmt}",
        display_path=f"ticks.{fmt}",
        file_format=fmt,
        kind=DataKind.TRADES,
        instrument=spec,
        catalog=target,
    )
    return {
        "seconds": time.perf_counter() - started,
        "cpu": _cpu_seconds() - cpu,
        "rows": written.rows,
        "rss_mb": _peak_rss_mb(),
        "file": str(written.path),
    }


def step_wrangler(out_dir: Path) -> dict[str, object]:
    import pandas as pd
    from nautilus_trader.persistence.catalog import ParquetDataCatalog
    from nautilus_trader.persistence.wranglers import TradeTickDataWrangler

    from tapedeck_backtest.datasets.instruments import to_nautilus

    instrument = to_nautilus(_spec())
    shutil.rmtree(out_dir / "wrangler", ignore_errors=True)
    cpu, started = _cpu_seconds(), time.perf_counter()
    frame = pd.read_parquet(out_dir / "raw" / "ticks.parquet")
    frame.index = pd.to_datetime(frame.pop("ts"), unit="ns", utc=True)
    frame = frame.rename(columns={"size": "quantity"})
    ticks = TradeTickDataWrangler(instrument).process(frame)
    catalog = ParquetDataCatalog(str(out_dir / "wrangler"))
    catalog.write_data(ticks)
    seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
    (written,) = (out_dir / "wrangler" / "data" / "trade_tick").rglob("*.parquet")
    return {
        "seconds": seconds,
        "cpu": cpu,
        "rows": len(ticks),
        "rss_mb": _peak_rss_mb(),
        "file": str(written),
    }


def best(results: list[dict[str, object]]) -> dict[str, object]:
    """Return the best wall and CPU times and the highest peak RSS of repeated runs."""
    return {
        **results[-1],
        "seconds": min(float(r["seconds"]) for r in results),  # type: ignore[arg-type]
        "cpu": min(float(r["cpu"]) for r in results),  # type: ignore[arg-type]
        "rss_mb": max(float(r["rss_mb"]) for r in results),  # type: ignore[arg-type]
    }


def step_service(out_dir: Path) -> dict[str, object]:
    from sqlalchemy.ext.asyncio import create_async_engine

    from tapedeck_backtest.datasets.domain import DataKind, ImportRequest
    from tapedeck_backtest.datasets.service import Datasets
    from tapedeck_backtest.models import Base
    from tapedeck_common.database import session_factory

    async def run() -> dict[str, object]:
        engine = create_async_engine(f"sqlite+aiosqlite:///{out_dir / 'bench.db'}")
        async with engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)
        store = Datasets(
            sessions=session_factory(engine),
            data_root=out_dir / "raw",
            catalog_dir=str(out_dir / "service"),
            cache_dir=out_dir / "cache",
        )
        shutil.copy(out_dir / "raw" / "ticks.parquet", out_dir / "raw" / "copy.parquet")
        timings: dict[str, object] = {}
        for label, path in (
            ("first", "ticks.parquet"),
            ("again", "ticks.parquet"),
            ("copy", "copy.parquet"),
        ):
            request = ImportRequest(
                source_path=path,
                instrument=_spec(),
                kind=DataKind.TRADES,
                file_format=None,
                display_name="",
            )
            started = time.perf_counter()
            last = None
            async for update in store.import_dataset(request):
                last = update
            timings[label] = time.perf_counter() - started
            assert last is not None
            assert last.dataset is not None
            timings[f"{label}_already"] = last.already_imported
        await engine.dispose()
        timings["rss_mb"] = _peak_rss_mb()
        return timings

    return asyncio.run(run())


def step_compare(out_dir: Path, fast: str, wrangler: str) -> dict[str, object]:
    import pyarrow.parquet as pq

    ours, theirs = pq.read_table(fast), pq.read_table(wrangler)
    return {
        "same_rows": ours.num_rows == theirs.num_rows,
        "same_table": ours.equals(theirs),
        "same_schema": ours.schema.equals(theirs.schema, check_metadata=True),
        "same_bytes": Path(fast).read_bytes() == Path(wrangler).read_bytes(),
    }


STEPS = {
    "generate": lambda d, a: step_generate(d, int(a[0])),
    "fast": lambda d, a: step_fast(d, a[0]),
    "wrangler": lambda d, a: step_wrangler(d),
    "service": lambda d, a: step_service(d),
    "compare": lambda d, a: step_compare(d, a[0], a[1]),
}


def run_step(out_dir: Path, name: str, *args: str) -> dict[str, object]:
    """Run one step in a fresh interpreter so its peak RSS is its own."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.backtest.imports",
            "--step",
            name,
            "--dir",
            str(out_dir),
            *args,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"step {name} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description="Import benchmark")
    parser.add_argument("--ticks", type=int, default=1_000_000)
    parser.add_argument(
        "--skip-baseline", action="store_true", help="fast path only (the baseline needs ~1 GB/1M)"
    )
    parser.add_argument("--step")
    parser.add_argument("--dir", type=Path)
    parser.add_argument("args", nargs="*")
    options = parser.parse_args()
    if options.step is not None:
        print(json.dumps(STEPS[options.step](options.dir, options.args)))
        return

    with tempfile.TemporaryDirectory(prefix="tapedeck-bench-") as tmp:
        out_dir = Path(tmp)
        generated = run_step(out_dir, "generate", str(options.ticks))
        rows = int(generated["rows"])  # type: ignore[call-overload]
        size_mb = os.path.getsize(out_dir / "raw" / "ticks.parquet") / 1e6
        csv_mb = os.path.getsize(out_dir / "raw" / "ticks.csv") / 1e6
        print(
            f"{rows:,} trade ticks following {generated['bars']} (Parquet {size_mb:.1f} MB, CSV {csv_mb:.1f} MB)"
        )
        # Interleaved repeats, each in a fresh process: on a shared machine every contender
        # sees the same load; the best wall and CPU times of each are compared.
        runs: dict[str, list[dict[str, object]]] = {"parquet": [], "csv": [], "baseline": []}
        for _ in range(REPEATS):
            runs["parquet"].append(run_step(out_dir, "fast", "parquet"))
            runs["csv"].append(run_step(out_dir, "fast", "csv"))
            if not options.skip_baseline:
                runs["baseline"].append(run_step(out_dir, "wrangler"))
        fast, fast_csv = best(runs["parquet"]), best(runs["csv"])
        baseline = best(runs["baseline"]) if runs["baseline"] else None
        same = (
            None
            if baseline is None
            else run_step(out_dir, "compare", str(fast["file"]), str(baseline["file"]))
        )
        service = run_step(out_dir, "service")

    def line(label: str, result: dict[str, object]) -> str:
        seconds = float(result["seconds"])  # type: ignore[arg-type]
        cpu = float(result["cpu"])  # type: ignore[arg-type]
        return (
            f"  {label:<40} {seconds:7.3f} s wall  {cpu:7.3f} s CPU"
            f"  {rows / seconds / 1e6:5.2f} M ticks/s"
            f"  peak RSS {float(result['rss_mb']):5.0f} MB"  # type: ignore[arg-type]
        )

    print(f"import to the catalog (interleaved, each in its own process, best of {REPEATS}):")
    print(line("fast path, Parquet source", fast))
    print(line("fast path, CSV source", fast_csv))
    if baseline is not None:
        print(line("pandas wrangler + write_data (baseline)", baseline))
        for unit in ("seconds", "cpu"):
            ratio = float(baseline[unit]) / float(fast[unit])  # type: ignore[arg-type]
            ratio_csv = float(baseline[unit]) / float(fast_csv[unit])  # type: ignore[arg-type]
            print(
                f"  speed-up vs baseline ({'wall' if unit == 'seconds' else 'CPU'}): "
                f"{ratio:.1f}x (Parquet source), {ratio_csv:.1f}x (CSV source)"
            )
        print(f"  output vs baseline: {same}")
    first, again, copy = (float(service[k]) for k in ("first", "again", "copy"))  # type: ignore[arg-type]
    print("service import (hash + convert + row), then the same content again:")
    print(f"  first import                 {first:8.3f} s")
    print(
        f"  unchanged file again         {again:8.4f} s  = {again / first:.2%} of the first"
        f"  (already_imported={service['again_already']})"
    )
    print(
        f"  renamed copy (hash only)     {copy:8.4f} s  = {copy / first:.2%} of the first"
        f"  (already_imported={service['copy_already']})"
    )


if __name__ == "__main__":
    main()
