"""Run the live service: `tapedeck-live` or `python -m tapedeck_live`."""

from tapedeck_common.entrypoint import run_service
from tapedeck_live.server import SERVICE, start
from tapedeck_live.settings import LiveSettings


def main() -> None:
    """Start the live service from the environment."""
    run_service(service=SERVICE, settings_cls=LiveSettings, start=start)


if __name__ == "__main__":
    main()
