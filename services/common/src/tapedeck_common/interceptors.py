"""The one place requests are authenticated and domain errors become gRPC status codes.

The caller is authenticated from the metadata before the body is decoded: handlers receive the
raw bytes, and a body is decoded (and held to `limits`) only for a caller allowed to send it.

When the server stops, `end_streams` ends every server stream still open (watches, subscriptions,
imports) with UNAVAILABLE, `SHUTTING_DOWN` and a RetryInfo delay: the client calls again, from
its last cursor where the method has one, and misses nothing.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc
from grpc_status import rpc_status

from tapedeck.common.v1 import common_pb2
from tapedeck_common.auth import (
    ANONYMOUS,
    DEVELOPMENT,
    Principal,
    TokenStore,
    authorize,
    current_principal,
    required_role,
)
from tapedeck_common.database_faults import as_unavailable
from tapedeck_common.errors import FieldViolation, InvalidArgument, TapedeckError, Unavailable
from tapedeck_common.limits import oversized_field
from tapedeck_common.request_ids import current_request_id, new_request_id

logger = logging.getLogger(__name__)

SHUTTING_DOWN = "the server is shutting down; call again (a subscription: after its last cursor)"
"""The message of a server stream the server ends because it stops (with UNAVAILABLE)."""
SHUTDOWN_RETRY_SECONDS = 1.0
"""The retry delay a stream ended by shutdown carries: time for a replica or a restart."""

if TYPE_CHECKING:
    # grpc's stubs type handlers for the sync server; aio behaviours are coroutines, hence Any.
    Handler = grpc.RpcMethodHandler[Any, Any]
    Context = grpc.aio.ServicerContext[Any, Any]
    Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]]


def unary_handler(handler: Handler, behavior: Any) -> Handler:
    """Return a unary handler serving `behavior` with `handler`'s (de)serializers."""
    return grpc.unary_unary_rpc_method_handler(
        behavior,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def stream_handler(handler: Handler, behavior: Any) -> Handler:
    """Return a server-streaming handler serving `behavior` with `handler`'s (de)serializers."""
    return grpc.unary_stream_rpc_method_handler(
        behavior,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class ServiceInterceptor(grpc.aio.ServerInterceptor):
    """Authenticate, authorize, and map errors for every unary and server-streaming RPC."""

    def __init__(self, tokens: TokenStore | None) -> None:
        self._tokens = tokens
        self._streams: set[asyncio.Task[Any]] = set()
        self._ending = False

    def end_streams(self) -> None:
        """End every open server stream with UNAVAILABLE and a retry delay (the server stops)."""
        self._ending = True
        for task in self._streams:
            task.cancel()

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method: str = handler_call_details.method
        authorization = next(
            (
                str(value)
                for key, value in handler_call_details.invocation_metadata or ()
                if key == "authorization"
            ),
            None,
        )
        decode: Any = handler.request_deserializer
        if handler.unary_unary is not None:
            unary: Any = handler.unary_unary

            async def unary_behavior(body: bytes, context: Context) -> Any:
                try:
                    current_principal.set(self._principal(method, authorization))
                    return await unary(_decoded(decode, body), context)
                except Exception as error:
                    await _abort(context, method, error)

            return grpc.unary_unary_rpc_method_handler(
                unary_behavior, response_serializer=handler.response_serializer
            )
        if handler.unary_stream is not None:
            stream: Any = handler.unary_stream

            async def stream_behavior(body: bytes, context: Context) -> AsyncIterator[Any]:
                task = asyncio.current_task()
                assert task is not None
                self._streams.add(task)
                try:
                    if self._ending:
                        raise asyncio.CancelledError
                    current_principal.set(self._principal(method, authorization))
                    produced = stream(_decoded(decode, body), context)
                    if inspect.isawaitable(produced):
                        # Handlers may write with context.write() instead of yielding.
                        await produced
                    else:
                        async for response in produced:
                            yield response
                except asyncio.CancelledError:
                    if not self._ending:
                        raise  # the caller went away
                    task.uncancel()
                    await _abort(
                        context, method, Unavailable(SHUTTING_DOWN, SHUTDOWN_RETRY_SECONDS)
                    )
                except Exception as error:
                    await _abort(context, method, error)
                finally:
                    self._streams.discard(task)

            return grpc.unary_stream_rpc_method_handler(
                stream_behavior, response_serializer=handler.response_serializer
            )
        return handler

    def _principal(self, method: str, authorization: str | None) -> Principal:
        if self._tokens is None:
            # Development without a tokens file: every caller acts as admin (warned at start).
            return DEVELOPMENT
        if required_role(method) == common_pb2.ROLE_UNSPECIFIED:
            return ANONYMOUS
        principal = self._tokens.authenticate(authorization)
        authorize(principal, method)
        return principal


def _decoded(decode: Callable[[bytes], Any], body: bytes) -> Any:
    try:
        request = decode(body)
    except Exception:
        # Corrupt wire format, bad UTF-8, nesting too deep: the caller's mistake, not ours.
        raise InvalidArgument(
            [FieldViolation("request", "body could not be decoded as the method's message")]
        ) from None
    oversized = oversized_field(request)
    if oversized is not None:
        raise InvalidArgument([FieldViolation(*oversized)])
    return request


async def _abort(context: Context, method: str, error: Exception) -> None:
    if isinstance(error, grpc.aio.AbortError):
        raise error
    error = as_unavailable(error) or error
    if isinstance(error, TapedeckError):
        if error.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            logger.warning("%s: %s", method, error.message)
        status = rpc_status.to_status(error.to_status())
        await context.abort_with_status(status)
    if isinstance(error, NotImplementedError):
        # The generated servicer base raises this for RPCs a later release builds.
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{method} is not implemented yet")
    # The request id: the same reference finds the call in every service's logs.
    reference = current_request_id.get() or new_request_id()
    logger.error("unhandled error in %s (ref %s)", method, reference, exc_info=error)
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error (ref {reference})")
