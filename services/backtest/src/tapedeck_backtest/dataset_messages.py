"""Proto <-> domain for datasets, instruments and strategies; every refusal names its field."""

from __future__ import annotations

from collections.abc import Mapping

from tapedeck.backtest.v1 import backtest_pb2
from tapedeck_backtest.dataset_imports import ImportRequest, ImportUpdate
from tapedeck_backtest.datasets import DataKind, Dataset
from tapedeck_backtest.importer import OPTIONAL, REQUIRED
from tapedeck_backtest.instruments import InstrumentKind, InstrumentSpec, validate_instrument
from tapedeck_backtest.strategies.registry import (
    ParameterSpec,
    ParameterType,
    Scalar,
    StrategyDefinition,
)
from tapedeck_common.errors import FieldViolation, InvalidArgument
from tapedeck_common.validation import decimal_string, nanos_to_timestamp

_KINDS = {
    backtest_pb2.DATA_KIND_TRADES: DataKind.TRADES,
    backtest_pb2.DATA_KIND_QUOTES: DataKind.QUOTES,
    backtest_pb2.DATA_KIND_BARS: DataKind.BARS,
}
_KINDS_BACK = {kind: value for value, kind in _KINDS.items()}
_INSTRUMENT_KINDS = {
    backtest_pb2.INSTRUMENT_KIND_UNSPECIFIED: InstrumentKind.SPOT,
    backtest_pb2.INSTRUMENT_KIND_SPOT: InstrumentKind.SPOT,
    backtest_pb2.INSTRUMENT_KIND_PERPETUAL: InstrumentKind.PERPETUAL,
    backtest_pb2.INSTRUMENT_KIND_FX: InstrumentKind.FX,
}
_INSTRUMENT_KINDS_BACK = {
    InstrumentKind.SPOT: backtest_pb2.INSTRUMENT_KIND_SPOT,
    InstrumentKind.PERPETUAL: backtest_pb2.INSTRUMENT_KIND_PERPETUAL,
    InstrumentKind.FX: backtest_pb2.INSTRUMENT_KIND_FX,
}
_FORMATS = {
    backtest_pb2.FILE_FORMAT_UNSPECIFIED: None,
    backtest_pb2.FILE_FORMAT_CSV: "csv",
    backtest_pb2.FILE_FORMAT_PARQUET: "parquet",
}
_PARAMETER_TYPES = {
    ParameterType.INT: backtest_pb2.PARAMETER_TYPE_INT,
    ParameterType.DOUBLE: backtest_pb2.PARAMETER_TYPE_DOUBLE,
    ParameterType.BOOL: backtest_pb2.PARAMETER_TYPE_BOOL,
    ParameterType.STRING: backtest_pb2.PARAMETER_TYPE_STRING,
}


def kind_from_proto(value: int, *, field: str = "kind") -> DataKind:
    """Return the data kind, refusing UNSPECIFIED and unknown values."""
    kind: DataKind | None = _KINDS.get(value)  # type: ignore[call-overload]
    if kind is None:
        raise InvalidArgument([FieldViolation(field, "must be TRADES, QUOTES or BARS")])
    return kind


def kind_to_proto(kind: DataKind) -> backtest_pb2.DataKind.ValueType:
    """Return the proto enum value of a data kind."""
    return _KINDS_BACK[kind]


def instrument_from_proto(
    message: backtest_pb2.Instrument, *, field: str = "instrument"
) -> InstrumentSpec:
    """Return a validated instrument spec; fees default to 0 when empty."""
    violations: list[FieldViolation] = []
    kind = _INSTRUMENT_KINDS.get(message.kind)
    if kind is None:
        violations.append(FieldViolation(f"{field}.kind", "must be SPOT, PERPETUAL or FX"))
    fees = {}
    for name in ("maker_fee", "taker_fee"):
        text = getattr(message, name)
        try:
            fee = decimal_string(text or "0", field=f"{field}.{name}", allow_negative=True)
        except InvalidArgument as error:
            violations.extend(error.violations)
            continue
        assert fee is not None
        fees[name] = fee
    try:
        spec = validate_instrument(
            instrument_id=message.instrument_id,
            kind=kind or InstrumentKind.SPOT,
            base_currency=message.base_currency,
            quote_currency=message.quote_currency,
            price_precision=message.price_precision,
            size_precision=message.size_precision,
            maker_fee=fees.get("maker_fee", 0),  # type: ignore[arg-type]
            taker_fee=fees.get("taker_fee", 0),  # type: ignore[arg-type]
            field=field,
        )
    except InvalidArgument as error:
        violations.extend(error.violations)
    if violations:
        raise InvalidArgument(violations)
    return spec


def instrument_to_proto(spec: InstrumentSpec) -> backtest_pb2.Instrument:
    """Return the proto form of an instrument spec."""
    return backtest_pb2.Instrument(
        instrument_id=spec.instrument_id,
        kind=_INSTRUMENT_KINDS_BACK[spec.kind],
        base_currency=spec.base_currency,
        quote_currency=spec.quote_currency,
        price_precision=spec.price_precision,
        size_precision=spec.size_precision,
        maker_fee=str(spec.maker_fee),
        taker_fee=str(spec.taker_fee),
    )


def import_request_from_proto(request: backtest_pb2.ImportDatasetRequest) -> ImportRequest:
    """Return a validated import request (the path is checked against the root later)."""
    violations: list[FieldViolation] = []
    if request.source_path.strip() == "":
        violations.append(FieldViolation("source_path", "is required (a path under the data root)"))
    if not request.HasField("instrument"):
        violations.append(FieldViolation("instrument", "is required"))
    if request.format not in _FORMATS:
        violations.append(FieldViolation("format", "must be CSV, PARQUET or unset"))
    if len(request.display_name) > 200:
        violations.append(FieldViolation("display_name", "must be at most 200 characters"))
    parsed: dict[str, object] = {}
    for name, parse in (
        ("kind", lambda: kind_from_proto(request.kind)),
        ("instrument", lambda: instrument_from_proto(request.instrument)),
    ):
        if name == "instrument" and not request.HasField("instrument"):
            continue
        try:
            parsed[name] = parse()
        except InvalidArgument as error:
            violations.extend(error.violations)
    columns = dict(request.column_mapping)
    kind_value = parsed.get("kind")
    if isinstance(kind_value, DataKind):
        violations.extend(_column_mapping_violations(columns, kind_value))
    if violations:
        raise InvalidArgument(violations)
    kind = parsed["kind"]
    instrument = parsed["instrument"]
    assert isinstance(kind, DataKind)
    assert isinstance(instrument, InstrumentSpec)
    return ImportRequest(
        source_path=request.source_path,
        instrument=instrument,
        kind=kind,
        file_format=_FORMATS[request.format],
        display_name=request.display_name,
        columns=tuple(sorted((role, column.strip()) for role, column in columns.items())),
    )


def _column_mapping_violations(columns: Mapping[str, str], kind: DataKind) -> list[FieldViolation]:
    roles = (*REQUIRED[kind], *OPTIONAL[kind])
    found: list[FieldViolation] = []
    for role in sorted(columns):
        column = columns[role].strip()
        if role not in roles:
            found.append(
                FieldViolation(
                    f"column_mapping[{role}]",
                    f"is not a role of {kind.value} (one of {', '.join(roles)})",
                )
            )
        elif column == "" or len(column) > 200:
            found.append(
                FieldViolation(f"column_mapping[{role}]", "must name a column (1-200 characters)")
            )
    positions = [c.strip().isdigit() for c in columns.values()]
    if any(positions) and not all(positions):
        found.append(
            FieldViolation(
                "column_mapping", "must be all column names or all 1-based positions, not both"
            )
        )
    if len({c.strip().lower() for c in columns.values()}) < len(columns):
        found.append(FieldViolation("column_mapping", "gives one column two roles"))
    return found


def dataset_to_proto(dataset: Dataset) -> backtest_pb2.Dataset:
    """Return the proto form of a dataset."""
    message = backtest_pb2.Dataset(
        name=f"datasets/{dataset.id}",
        display_name=dataset.display_name,
        instrument=instrument_to_proto(dataset.instrument),
        kind=kind_to_proto(dataset.kind),
        source_path=dataset.source_path,
        content_hash=dataset.content_hash,
        row_count=dataset.row_count,
        start_time=nanos_to_timestamp(dataset.start_ns),
        end_time=nanos_to_timestamp(dataset.end_ns),
        size_bytes=dataset.size_bytes,
    )
    message.create_time.FromDatetime(dataset.create_time)
    return message


def import_update_to_proto(update: ImportUpdate) -> backtest_pb2.ImportDatasetResponse:
    """Return one message of an import's stream."""
    if update.dataset is not None:
        return backtest_pb2.ImportDatasetResponse(
            dataset=dataset_to_proto(update.dataset), already_imported=update.already_imported
        )
    return backtest_pb2.ImportDatasetResponse(
        progress=backtest_pb2.ImportProgress(
            rows_read=update.rows_read,
            bytes_read=update.bytes_read,
            total_bytes=update.total_bytes,
            percent=round(update.percent, 2),
        )
    )


def parameter_value_to_proto(value: Scalar) -> backtest_pb2.ParameterValue:
    """Return a typed parameter value."""
    if isinstance(value, bool):
        return backtest_pb2.ParameterValue(bool_value=value)
    if isinstance(value, int):
        return backtest_pb2.ParameterValue(int_value=value)
    if isinstance(value, float):
        return backtest_pb2.ParameterValue(double_value=value)
    return backtest_pb2.ParameterValue(string_value=value)


def _number_to_proto(number: float, kind: ParameterType) -> backtest_pb2.ParameterValue:
    if kind is ParameterType.INT:
        return backtest_pb2.ParameterValue(int_value=int(number))
    return backtest_pb2.ParameterValue(double_value=float(number))


def parameter_spec_to_proto(spec: ParameterSpec) -> backtest_pb2.ParameterSpec:
    """Return the proto form of a parameter's spec."""
    message = backtest_pb2.ParameterSpec(
        name=spec.name,
        description=spec.description,
        type=_PARAMETER_TYPES[spec.type],
        default_value=parameter_value_to_proto(spec.default),
        choices=list(spec.choices),
    )
    if spec.minimum is not None:
        message.min_value.CopyFrom(_number_to_proto(spec.minimum, spec.type))
    if spec.maximum is not None:
        message.max_value.CopyFrom(_number_to_proto(spec.maximum, spec.type))
    return message


def strategy_to_proto(definition: StrategyDefinition) -> backtest_pb2.Strategy:
    """Return the proto form of a strategy."""
    return backtest_pb2.Strategy(
        name=f"strategies/{definition.id}",
        display_name=definition.display_name,
        description=definition.description,
        parameters=[parameter_spec_to_proto(p) for p in definition.parameters],
        data_kinds=[kind_to_proto(kind) for kind in definition.data_kinds],
    )


def parameters_from_proto(
    values: Mapping[str, backtest_pb2.ParameterValue], *, field: str = "spec.parameters"
) -> dict[str, Scalar]:
    """Return parameter values as Python scalars; a value with no kind set is refused."""
    result: dict[str, Scalar] = {}
    violations: list[FieldViolation] = []
    for name in sorted(values):
        value = values[name]
        which = value.WhichOneof("kind")
        if which is None:
            violations.append(FieldViolation(f"{field}[{name}]", "has no value set"))
            continue
        result[name] = getattr(value, which)
    if violations:
        raise InvalidArgument(violations)
    return result
