"""The request-field parsers every servicer shares: each failure names its field."""

from __future__ import annotations

from decimal import Decimal

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from tapedeck_common.errors import InvalidArgument
from tapedeck_common.validation import decimal_string, timestamp_nanos


def refusal(value: str, **options: object) -> str:
    with pytest.raises(InvalidArgument) as caught:
        decimal_string(value, field="amount", **options)  # type: ignore[arg-type]
    [violation] = caught.value.violations
    assert violation.field == "amount"
    return violation.description


def test_a_decimal_string_parses_exactly():
    assert decimal_string("0.1", field="amount") == Decimal("0.1")
    assert decimal_string("-2.50", field="amount", allow_negative=True) == Decimal("-2.50")
    largest = "9" * 20 + "." + "9" * 18
    assert decimal_string(largest, field="amount") == Decimal(largest)


def test_an_empty_decimal_is_required_unless_it_has_a_default():
    assert refusal("") == "is required (a decimal string)"
    assert decimal_string("", field="amount", default=Decimal(0)) == Decimal(0)
    assert decimal_string("3", field="amount", default=Decimal(0)) == Decimal(3)


@pytest.mark.parametrize(
    ("value", "options", "why"),
    [
        ("abc", {}, "'abc' is not a decimal number"),
        ("NaN", {}, "'NaN' is not a finite decimal"),
        ("1e400", {}, "has more than 20 digits before the point"),
        ("1" + "0" * 20, {}, "has more than 20 digits before the point"),
        ("0." + "0" * 18 + "1", {}, "has more than 18 decimal places"),
        ("-1", {}, "must not be negative"),
        ("0", {"allow_zero": False}, "must not be zero"),
    ],
)
def test_bad_decimals_are_refused_with_the_reason(value, options, why):
    assert refusal(value, **options) == why


def test_timestamps_int64_nanoseconds_cannot_hold_are_refused_saying_why():
    def why(ts: Timestamp) -> tuple[str, str]:
        with pytest.raises(InvalidArgument) as caught:
            timestamp_nanos(ts, field="time")
        [violation] = caught.value.violations
        return violation.field, violation.description

    assert timestamp_nanos(Timestamp(seconds=0), field="time") == 0
    last = Timestamp(seconds=9_223_372_036, nanos=854_775_807)
    assert timestamp_nanos(last, field="time") == 2**63 - 1
    assert why(Timestamp(seconds=-1)) == (
        "time",
        "1969-12-31T23:59:59Z is before 1970-01-01T00:00:00Z: times are int64 nanoseconds "
        "since the Unix epoch, as NautilusTrader keeps them",
    )
    assert why(Timestamp(seconds=-(10**12)))[1].startswith("-1000000000000 s is before 1970")
    assert why(Timestamp(seconds=9_223_372_036, nanos=854_775_808))[1].startswith(
        "is after 2262-04-11T23:47:16.854775807Z"
    )
    assert why(Timestamp(seconds=1, nanos=-1)) == (
        "time.nanos",
        "-1 is not between 0 and 999999999",
    )
