"""Run the backtest service: `tapedeck-backtest` or `python -m tapedeck_backtest`."""

from tapedeck_backtest.server import SERVICE, start
from tapedeck_backtest.settings import BacktestSettings
from tapedeck_common.entrypoint import run_service


def main() -> None:
    """Start the backtest service from the environment."""
    run_service(service=SERVICE, settings_cls=BacktestSettings, start=start)


if __name__ == "__main__":
    main()
