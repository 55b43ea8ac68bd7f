"""Run the gateway's front service: `tapedeck-front` or `python -m tapedeck_gateway`."""

from tapedeck_common.entrypoint import run_service
from tapedeck_gateway.front import start_front
from tapedeck_gateway.settings import FrontSettings


def main() -> None:
    """Start the front service from the environment."""
    run_service(service="front", settings_cls=FrontSettings, start=start_front)


if __name__ == "__main__":
    main()
