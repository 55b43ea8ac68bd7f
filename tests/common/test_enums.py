"""The one proto-enum <-> domain mapping: defaults for the zero value, errors naming the value."""

from __future__ import annotations

import enum

import pytest

from tapedeck.backtest.v1 import backtest_pb2 as pb
from tapedeck_common.enums import EnumMapping
from tapedeck_common.errors import InvalidArgument


class Kind(enum.Enum):
    TRADES = "trades"
    QUOTES = "quotes"
    BARS = "bars"


KINDS = EnumMapping(
    pb.DataKind.DESCRIPTOR,
    {
        pb.DATA_KIND_TRADES: Kind.TRADES,
        pb.DATA_KIND_QUOTES: Kind.QUOTES,
        pb.DATA_KIND_BARS: Kind.BARS,
    },
)


def violation(number: int, mapping: EnumMapping[pb.DataKind.ValueType, Kind]) -> str:
    with pytest.raises(InvalidArgument) as caught:
        mapping.from_proto(number, field="kind")
    [found] = caught.value.violations
    assert found.field == "kind"
    return found.description


def test_values_map_both_ways():
    assert KINDS.from_proto(pb.DATA_KIND_QUOTES, field="kind") is Kind.QUOTES
    assert KINDS.to_proto(Kind.BARS) == pb.DATA_KIND_BARS
    assert KINDS.short_name(pb.DATA_KIND_TRADES) == "TRADES"


def test_an_unknown_number_is_named_with_the_values_it_may_take():
    assert violation(999, KINDS) == (
        "999 is not one of DATA_KIND_TRADES, DATA_KIND_QUOTES, DATA_KIND_BARS"
    )


def test_zero_is_required_unless_it_has_a_default():
    assert violation(0, KINDS).startswith("is required: one of DATA_KIND_TRADES")
    defaulted = EnumMapping(
        pb.DataKind.DESCRIPTOR, {pb.DATA_KIND_TRADES: Kind.TRADES}, unspecified=Kind.TRADES
    )
    assert defaulted.from_proto(0, field="kind") is Kind.TRADES
