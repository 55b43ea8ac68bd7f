"""Run the Coinbase emulator by hand: `tapedeck-emulator --portfolios 2`."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path

from tapedeck_dev.emulator.server import CoinbaseEmulator

# Deterministic prices of the demo's assets in USD (ETH-EUR and the like stay unlisted).
DEFAULT_PRICES = ("BTC-USD=64250.5", "ETH-USD=3120.25")


async def _main(args: argparse.Namespace) -> None:
    emulator = CoinbaseEmulator(port=args.port)
    secrets: dict[str, dict[str, str]] = {}
    wallets = []
    for index in range(args.portfolios):
        pid, key = emulator.add_portfolio(
            {"BTC": ("1.5", "0.25"), "ETH": ("10.123456789012345678", "0"), "USD": ("1000.00", "0")}
        )
        ref = f"COINBASE_KEY_{index + 1}"
        secrets[ref] = key.as_secret()
        wallets.append({"exchange": "coinbase", "account_ref": pid, "credentials_ref": ref})
    emulator.set_prices(dict(price.split("=", 1) for price in args.price or DEFAULT_PRICES))
    await emulator.start()
    if args.secrets_out is not None:
        args.secrets_out.write_text(json.dumps(secrets, indent=2))
        args.secrets_out.chmod(0o600)
    info = json.dumps(
        {
            "base_url": emulator.base_url,
            "env": {"WALLETS_COINBASE_API_URL": emulator.base_url}
            | ({"WALLETS_SECRETS_FILE": str(args.secrets_out)} if args.secrets_out else {}),
            "wallets": wallets,
            "prices": emulator.prices,
            "control": f"{emulator.base_url}/_emulator/state",
        },
        indent=2,
    )
    if args.info_out is not None:
        # Written last: its presence tells a launcher the emulator and its secrets are ready.
        args.info_out.write_text(info)
    sys.stdout.write(info + "\n")
    sys.stdout.flush()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    await emulator.stop()


def main() -> None:
    """Parse arguments and serve until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument("--portfolios", type=int, default=2)
    parser.add_argument(
        "--secrets-out", type=Path, default=None, help="write a WALLETS_SECRETS_FILE here"
    )
    parser.add_argument(
        "--price",
        action="append",
        metavar="PRODUCT=PRICE",
        help=f"list a product at a price (repeatable; default {' '.join(DEFAULT_PRICES)})",
    )
    parser.add_argument(
        "--info-out", type=Path, default=None, help="also write the printed JSON to this file"
    )
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
