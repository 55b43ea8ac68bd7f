"""Run the gateway's front service: `tapedeck-front`."""

from __future__ import annotations

import asyncio
import sys

from pydantic import ValidationError

from tapedeck_common.logs import configure_logging
from tapedeck_common.server import wait_for_shutdown_signal
from tapedeck_gateway.front import CONTRACT_SERVICES, start_front
from tapedeck_gateway.settings import FrontSettings


async def _serve(settings: FrontSettings) -> None:
    backtest, wallets, live = CONTRACT_SERVICES
    app = await start_front(
        host=settings.host,
        port=settings.port,
        upstreams={
            backtest: settings.backtest_address,
            wallets: settings.wallets_address,
            live: settings.live_address,
        },
    )
    try:
        await wait_for_shutdown_signal()
    finally:
        await app.stop(settings.shutdown_grace_seconds)


def main() -> None:
    """Start the front service from the environment."""
    try:
        settings = FrontSettings()
    except ValidationError as error:
        for problem in error.errors():
            name = f"FRONT_{str(problem['loc'][0]).upper()}"
            print(f"tapedeck-front: bad setting {name}: {problem['msg']}", file=sys.stderr)
        sys.exit(2)
    configure_logging(service="front", level=settings.log_level)
    asyncio.run(_serve(settings))


if __name__ == "__main__":
    main()
