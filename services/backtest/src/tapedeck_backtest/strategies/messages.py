"""Proto <-> domain for strategies and their parameter values."""

from __future__ import annotations

import math

from tapedeck.backtest.v1 import backtest_pb2 as pb
from tapedeck_backtest.datasets.messages import DATA_KINDS
from tapedeck_backtest.strategies.registry import (
    ParameterSpec,
    ParameterType,
    Scalar,
    StrategyDefinition,
)
from tapedeck_common.enums import EnumMapping
from tapedeck_common.errors import FieldViolation, InvalidArgument

PARAMETER_TYPES = EnumMapping(
    pb.ParameterType.DESCRIPTOR,
    {
        pb.PARAMETER_TYPE_INT: ParameterType.INT,
        pb.PARAMETER_TYPE_DOUBLE: ParameterType.DOUBLE,
        pb.PARAMETER_TYPE_BOOL: ParameterType.BOOL,
        pb.PARAMETER_TYPE_STRING: ParameterType.STRING,
    },
)


def parameter_value(value: pb.ParameterValue, *, field: str) -> Scalar:
    """Return a ParameterValue's Python value; an unset oneof and a non-finite double are refused."""
    kind = value.WhichOneof("kind")
    if kind is None:
        raise InvalidArgument([FieldViolation(field, "has no value set")])
    result: Scalar = getattr(value, kind)
    if isinstance(result, float) and not math.isfinite(result):
        raise InvalidArgument([FieldViolation(field, "must be a finite number")])
    return result


def parameter_value_to_proto(value: Scalar) -> pb.ParameterValue:
    """Return a typed parameter value."""
    if isinstance(value, bool):
        return pb.ParameterValue(bool_value=value)
    if isinstance(value, int):
        return pb.ParameterValue(int_value=value)
    if isinstance(value, float):
        return pb.ParameterValue(double_value=value)
    return pb.ParameterValue(string_value=value)


def _number_to_proto(number: float, kind: ParameterType) -> pb.ParameterValue:
    if kind is ParameterType.INT:
        return pb.ParameterValue(int_value=int(number))
    return pb.ParameterValue(double_value=float(number))


def parameter_spec_to_proto(spec: ParameterSpec) -> pb.ParameterSpec:
    """Return the proto form of a parameter's spec."""
    message = pb.ParameterSpec(
        name=spec.name,
        description=spec.description,
        type=PARAMETER_TYPES.to_proto(spec.type),
        default_value=parameter_value_to_proto(spec.default),
        choices=list(spec.choices),
    )
    if spec.minimum is not None:
        message.min_value.CopyFrom(_number_to_proto(spec.minimum, spec.type))
    if spec.maximum is not None:
        message.max_value.CopyFrom(_number_to_proto(spec.maximum, spec.type))
    return message


def strategy_to_proto(definition: StrategyDefinition) -> pb.Strategy:
    """Return the proto form of a strategy."""
    return pb.Strategy(
        name=f"strategies/{definition.id}",
        display_name=definition.display_name,
        description=definition.description,
        parameters=[parameter_spec_to_proto(p) for p in definition.parameters],
        data_kinds=[DATA_KINDS.to_proto(kind) for kind in definition.data_kinds],
    )
