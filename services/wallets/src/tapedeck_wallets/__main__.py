"""Run the wallet service: `tapedeck-wallets` or `python -m tapedeck_wallets`."""

from tapedeck_common.entrypoint import run_service
from tapedeck_wallets.server import SERVICE, start
from tapedeck_wallets.settings import WalletsSettings


def main() -> None:
    """Start the wallet service from the environment."""
    run_service(service=SERVICE, settings_cls=WalletsSettings, start=start)


if __name__ == "__main__":
    main()
