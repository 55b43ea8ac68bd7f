"""Times as the service hands them over: exact epoch microseconds, Timestamps written in place."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def epoch_micros(value: datetime) -> int:
    """Return an aware datetime as exact microseconds since the Unix epoch."""
    return (value - _EPOCH) // _MICROSECOND


def from_epoch_micros(micros: int) -> datetime:
    """Return microseconds since the Unix epoch as an aware UTC datetime, exactly."""
    return _EPOCH + timedelta(microseconds=micros)


def stamp(target: Timestamp, value: datetime) -> None:
    """Write an aware datetime into a Timestamp field in place."""
    # Exact integer arithmetic, written in place: several times cheaper than building a
    # Timestamp (or calling FromDatetime) and copying it into the parent message.
    delta = value - _EPOCH
    target.seconds = delta.days * 86_400 + delta.seconds
    target.nanos = delta.microseconds * 1000


def stamp_micros(target: Timestamp, micros: int) -> None:
    """Write microseconds since the Unix epoch into a Timestamp field in place."""
    seconds, remainder = divmod(micros, 1_000_000)
    target.seconds = seconds
    target.nanos = remainder * 1000
