"""The body of every service's __main__: settings, logging, serve, and one-line start-up errors."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn, TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings

from tapedeck_common.logs import configure_logging
from tapedeck_common.settings import ServiceSettings

S = TypeVar("S", bound=ServiceSettings)


class StartupError(Exception):
    """Start-up cannot continue; the message is the one line the operator sees."""


def setting_env_names(settings_cls: type[BaseSettings], field: str) -> str:
    """Return the environment variable(s) that set a field, for error messages."""
    info = settings_cls.model_fields.get(field)
    if info is None:
        return field  # pydantic reports the environment alias it read
    alias = info.validation_alias if info is not None else None
    choices = getattr(alias, "choices", None)
    if choices:
        return " or ".join(str(c) for c in choices)
    prefix = str(settings_cls.model_config.get("env_prefix", ""))
    return f"{prefix}{field}".upper()


def run_service(
    *, service: str, settings_cls: type[S], serve: Callable[[S], Coroutine[Any, Any, None]]
) -> NoReturn:
    """Load settings, configure logging once, serve until a signal; exit non-zero on bad set-up."""
    try:
        settings = settings_cls()
    except ValidationError as error:
        for problem in error.errors():
            field = str(problem["loc"][0]) if problem["loc"] else "?"
            name = setting_env_names(settings_cls, field)
            print(f"tapedeck-{service}: bad setting {name}: {problem['msg']}", file=sys.stderr)
        sys.exit(2)
    configure_logging(service=service, level=settings.log_level)
    try:
        asyncio.run(serve(settings))
    except StartupError as error:
        print(f"tapedeck-{service}: cannot start: {error}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        pass
    sys.exit(0)
