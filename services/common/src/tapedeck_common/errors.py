"""Domain errors shared by every service, and their one mapping to gRPC status."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from tapedeck_common.limits import (
    MAX_DESCRIPTION_CHARS,
    MAX_MESSAGE_CHARS,
    MAX_VIOLATIONS,
    clip,
)


@dataclass(frozen=True)
class FieldViolation:
    """One request field that is wrong, and why."""

    field: str
    description: str

    def __post_init__(self) -> None:
        # Both may carry what the caller sent; an error must stay far below Envoy's header limit.
        object.__setattr__(self, "field", clip(self.field, MAX_DESCRIPTION_CHARS))
        object.__setattr__(self, "description", clip(self.description, MAX_DESCRIPTION_CHARS))


class TapedeckError(Exception):
    """Base of every error a caller may see; the message is safe to show."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        message = clip(message, MAX_MESSAGE_CHARS)
        super().__init__(message)
        self.message = message

    def to_status(self) -> status_pb2.Status:
        """Return the google.rpc.Status this error is sent as."""
        return status_pb2.Status(code=self.code.value[0], message=self.message)


class InvalidArgument(TapedeckError):
    """The request is malformed; names the fields that are wrong."""

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, violations: Sequence[FieldViolation] | str, description: str = "") -> None:
        if isinstance(violations, str):
            violations = [FieldViolation(violations, description)]
        # The first violations are named; the rest only counted.
        self.violations = list(violations[:MAX_VIOLATIONS])
        self.omitted = max(0, len(violations) - MAX_VIOLATIONS)
        named = "; ".join(f"{v.field}: {v.description}" for v in self.violations)
        super().__init__(f"{named}; and {self.omitted} more" if self.omitted else named)

    def to_status(self) -> status_pb2.Status:
        detail = any_pb2.Any()
        detail.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=v.field, description=v.description
                    )
                    for v in self.violations
                ]
            )
        )
        return status_pb2.Status(
            code=code_pb2.INVALID_ARGUMENT, message=self.message, details=[detail]
        )


class NotFound(TapedeckError):
    """The named resource does not exist."""

    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(TapedeckError):
    """A resource with the same unique key exists."""

    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(TapedeckError):
    """The resource is not in a state that allows the request."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class Unavailable(TapedeckError):
    """A dependency is down; the caller may retry, after `retry_after` seconds when given."""

    code = grpc.StatusCode.UNAVAILABLE

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def to_status(self) -> status_pb2.Status:
        status = super().to_status()
        if self.retry_after is not None:
            info = error_details_pb2.RetryInfo()
            info.retry_delay.FromNanoseconds(int(self.retry_after * 1_000_000_000))
            status.details.add().Pack(info)
        return status


class DeadlineExceeded(TapedeckError):
    """The work did not finish within the caller's deadline."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Unauthenticated(TapedeckError):
    """No valid bearer token."""

    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(TapedeckError):
    """The token's role does not allow the method."""

    code = grpc.StatusCode.PERMISSION_DENIED
