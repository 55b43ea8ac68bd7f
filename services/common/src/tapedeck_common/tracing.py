"""OpenTelemetry traces, off unless `OTEL_EXPORTER_OTLP_ENDPOINT` is set.

When set, every gRPC server and client call of the process and every database statement is a
span exported over OTLP/gRPC (the standard `OTEL_*` variables tune the exporter and batching).
When unset only the (no-op) API is loaded and nothing is patched: a call pays nothing.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

logger = logging.getLogger(__name__)

ENDPOINT_VARIABLE = "OTEL_EXPORTER_OTLP_ENDPOINT"

_enabled = False


def configure_tracing(*, service: str) -> None:
    """Export this process's spans over OTLP if the endpoint is set; call once, before serving."""
    global _enabled  # noqa: PLW0603 - one tracer provider per process is the point
    endpoint = os.environ.get(ENDPOINT_VARIABLE, "")
    if _enabled or not endpoint:
        return
    # Imported here so that a process without tracing never loads the SDK and exporter.
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter,
    )
    from opentelemetry.instrumentation.grpc import (  # noqa: PLC0415
        GrpcAioInstrumentorClient,
        GrpcAioInstrumentorServer,
    )
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415

    name = os.environ.get("OTEL_SERVICE_NAME") or f"tapedeck-{service}"
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    GrpcAioInstrumentorServer().instrument()  # type: ignore[no-untyped-call]
    GrpcAioInstrumentorClient().instrument()  # type: ignore[no-untyped-call]
    _enabled = True
    logger.info("tracing", extra={"endpoint": endpoint, "service_name": name})


def shutdown_tracing() -> None:
    """Flush the spans not yet exported (at process exit)."""
    if not _enabled:
        return
    provider: Any = trace.get_tracer_provider()
    provider.shutdown()


def trace_statements(engine: AsyncEngine) -> None:
    """Make each statement the engine runs a span, if tracing is on."""
    if not _enabled:
        return
    tracer = trace.get_tracer("tapedeck.database")
    system = engine.dialect.name
    key = "_tapedeck_span"

    def before(
        _conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: Any
    ) -> None:
        verb = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "SQL"
        span = tracer.start_span(
            f"{verb} {system}",
            kind=SpanKind.CLIENT,
            attributes={"db.system": system, "db.statement": statement[:2000]},
        )
        setattr(context, key, span)

    def after(
        _conn: Any, _cursor: Any, _statement: str, _params: Any, context: Any, _many: Any
    ) -> None:
        span = getattr(context, key, None)
        if span is not None:
            span.end()

    def failed(exception_context: Any) -> None:
        span = getattr(exception_context.execution_context, key, None)
        if span is not None:
            span.set_status(
                Status(StatusCode.ERROR, str(exception_context.original_exception)[:200])
            )
            span.end()

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    event.listen(engine.sync_engine, "after_cursor_execute", after)
    event.listen(engine.sync_engine, "handle_error", failed)
