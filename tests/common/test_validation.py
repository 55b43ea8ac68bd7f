"""The request-field parsers every servicer shares: each failure names its field."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tapedeck_common.errors import InvalidArgument
from tapedeck_common.validation import decimal_string


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
