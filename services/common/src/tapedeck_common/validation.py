"""Parsing of request fields shared by every servicer; each failure names its field."""

from __future__ import annotations

import re
import uuid
from decimal import Decimal, InvalidOperation

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from tapedeck.common.v1 import common_pb2
from tapedeck_common.errors import FieldViolation, InvalidArgument
from tapedeck_common.limits import MAX_DECIMAL_CHARS, echo

_MAX_DECIMAL_DIGITS = 38
# Amounts are stored as NUMERIC(38, 18): 20 digits before the point and 18 after.
_MAX_INTEGER_DIGITS = 20
_MAX_DECIMAL_PLACES = 18
# Times are int64 nanoseconds in storage and queries: the last one is 2262-04-11T23:47:16.854775807Z.
_MAX_NANOS = 2**63 - 1


def resource_id(name: str, *, collection: str, field: str = "name") -> str:
    """Return the id of `{collection}/{id}`, refusing any other shape."""
    prefix = f"{collection}/"
    if name == "":
        raise InvalidArgument([FieldViolation(field, f"is required, e.g. {prefix}<id>")])
    if not name.startswith(prefix) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name[len(prefix) :]):
        raise InvalidArgument(
            [FieldViolation(field, f"must look like {prefix}<id>, got {echo(name)}")]
        )
    return name[len(prefix) :]


def new_id() -> str:
    """Return a fresh resource id."""
    return uuid.uuid4().hex


def decimal_string(
    value: str,
    *,
    field: str,
    allow_negative: bool = False,
    allow_zero: bool = True,
    default: Decimal | None = None,
) -> Decimal:
    """Parse an exact decimal string; floats' spellings like NaN and 1e400 are refused.

    An empty string is `default`, or refused as required when there is none.
    """
    if value == "":
        if default is None:
            raise InvalidArgument([FieldViolation(field, "is required (a decimal string)")])
        return default
    if len(value) > MAX_DECIMAL_CHARS:
        # Refused unread: a long spelling is never a number we store.
        raise InvalidArgument(
            [FieldViolation(field, f"is longer than {MAX_DECIMAL_CHARS} characters")]
        )
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise InvalidArgument(
            [FieldViolation(field, f"{echo(value)} is not a decimal number")]
        ) from None
    if not number.is_finite() or len(number.as_tuple().digits) > _MAX_DECIMAL_DIGITS:
        raise InvalidArgument([FieldViolation(field, f"{echo(value)} is not a finite decimal")])
    if number.as_tuple().exponent < -_MAX_DECIMAL_PLACES:  # type: ignore[operator]
        raise InvalidArgument(
            [FieldViolation(field, f"has more than {_MAX_DECIMAL_PLACES} decimal places")]
        )
    if number != 0 and number.adjusted() >= _MAX_INTEGER_DIGITS:
        raise InvalidArgument(
            [FieldViolation(field, f"has more than {_MAX_INTEGER_DIGITS} digits before the point")]
        )
    if not allow_negative and number < 0:
        raise InvalidArgument([FieldViolation(field, "must not be negative")])
    if not allow_zero and number == 0:
        raise InvalidArgument([FieldViolation(field, "must not be zero")])
    return number


def timestamp_nanos(ts: Timestamp, *, field: str) -> int:
    """Return a Timestamp as integer nanoseconds since the epoch, refusing out-of-range values."""
    if ts.nanos < 0 or ts.nanos >= 1_000_000_000 or ts.seconds < 0:
        raise InvalidArgument([FieldViolation(field, "is not a valid timestamp")])
    nanos = ts.seconds * 1_000_000_000 + ts.nanos
    if nanos > _MAX_NANOS:
        raise InvalidArgument([FieldViolation(field, "must be before 2262-04-11T23:47:16Z")])
    return nanos


def duration_seconds(duration: Duration, *, field: str, maximum: float) -> float:
    """Return a non-negative Duration as seconds, refusing one over `maximum` seconds."""
    if duration.seconds < 0 or duration.nanos < 0 or duration.nanos >= 1_000_000_000:
        raise InvalidArgument([FieldViolation(field, "must not be negative")])
    if duration.seconds > maximum:
        raise InvalidArgument([FieldViolation(field, f"must be at most {maximum:g} seconds")])
    return duration.seconds + duration.nanos / 1_000_000_000


def time_range_nanos(
    time_range: common_pb2.TimeRange, *, field: str = "time_range"
) -> tuple[int | None, int | None]:
    """Return a TimeRange as (start, end) nanoseconds, None for open bounds; start must be < end."""
    start = (
        timestamp_nanos(time_range.start_time, field=f"{field}.start_time")
        if time_range.HasField("start_time")
        else None
    )
    end = (
        timestamp_nanos(time_range.end_time, field=f"{field}.end_time")
        if time_range.HasField("end_time")
        else None
    )
    if start is not None and end is not None and start >= end:
        raise InvalidArgument(
            [FieldViolation(f"{field}.end_time", "must be after time_range.start_time")]
        )
    return start, end


def nanos_to_timestamp(nanos: int) -> Timestamp:
    """Return integer nanoseconds since the epoch as a Timestamp."""
    seconds, remainder = divmod(nanos, 1_000_000_000)
    return Timestamp(seconds=seconds, nanos=remainder)
