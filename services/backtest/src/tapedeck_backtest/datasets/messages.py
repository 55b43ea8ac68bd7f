"""Proto <-> domain for datasets and instruments; every refusal names its field."""

from __future__ import annotations

from tapedeck.backtest.v1 import backtest_pb2 as pb
from tapedeck_backtest.datasets.domain import (
    BarConvention,
    DataKind,
    Dataset,
    FileFormat,
    ImportRequest,
    ImportUpdate,
    check_column_mapping,
)
from tapedeck_backtest.datasets.files import ImportableFile
from tapedeck_backtest.datasets.instruments import (
    InstrumentKind,
    InstrumentSpec,
    validate_instrument,
)
from tapedeck_backtest.datasets.uploads import Upload
from tapedeck_common.enums import EnumMapping
from tapedeck_common.errors import FieldViolation, InvalidArgument
from tapedeck_common.validation import decimal_string, nanos_to_timestamp, resource_id

DATA_KINDS = EnumMapping(
    pb.DataKind.DESCRIPTOR,
    {
        pb.DATA_KIND_TRADES: DataKind.TRADES,
        pb.DATA_KIND_QUOTES: DataKind.QUOTES,
        pb.DATA_KIND_BARS: DataKind.BARS,
    },
)
INSTRUMENT_KINDS = EnumMapping(
    pb.InstrumentKind.DESCRIPTOR,
    {
        pb.INSTRUMENT_KIND_SPOT: InstrumentKind.SPOT,
        pb.INSTRUMENT_KIND_PERPETUAL: InstrumentKind.PERPETUAL,
        pb.INSTRUMENT_KIND_FX: InstrumentKind.FX,
    },
    unspecified=InstrumentKind.SPOT,
)
FILE_FORMATS = EnumMapping(
    pb.FileFormat.DESCRIPTOR,
    {pb.FILE_FORMAT_CSV: FileFormat.CSV, pb.FILE_FORMAT_PARQUET: FileFormat.PARQUET},
)
BAR_CONVENTIONS = EnumMapping(
    pb.BarConvention.DESCRIPTOR,
    {
        pb.BAR_CONVENTION_BAR_OPEN: BarConvention.OPEN,
        pb.BAR_CONVENTION_BAR_CLOSE: BarConvention.CLOSE,
    },
    unspecified=BarConvention.OPEN,
)
MAX_DISPLAY_NAME = 200
# Linux's NAME_MAX: a longer name cannot be a file (the whole path is held to limits.MAX_STRING_CHARS).
MAX_PATH_COMPONENT = 255


def dataset_id(name: str) -> str:
    """Return the id of a `datasets/{id}` name."""
    return resource_id(name, collection="datasets")


def instrument_from_proto(message: pb.Instrument, *, field: str = "instrument") -> InstrumentSpec:
    """Return a validated instrument spec; fees default to 0 when empty."""
    violations: list[FieldViolation] = []
    kind = InstrumentKind.SPOT
    try:
        kind = INSTRUMENT_KINDS.from_proto(message.kind, field=f"{field}.kind")
    except InvalidArgument as error:
        violations.extend(error.violations)
    fees = {}
    for name in ("maker_fee", "taker_fee"):
        try:
            fee = decimal_string(
                getattr(message, name) or "0", field=f"{field}.{name}", allow_negative=True
            )
        except InvalidArgument as error:
            violations.extend(error.violations)
            continue
        assert fee is not None
        fees[name] = fee
    try:
        spec = validate_instrument(
            instrument_id=message.instrument_id,
            kind=kind,
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


def instrument_to_proto(spec: InstrumentSpec) -> pb.Instrument:
    """Return the proto form of an instrument spec."""
    return pb.Instrument(
        instrument_id=spec.instrument_id,
        kind=INSTRUMENT_KINDS.to_proto(spec.kind),
        base_currency=spec.base_currency,
        quote_currency=spec.quote_currency,
        price_precision=spec.price_precision,
        size_precision=spec.size_precision,
        maker_fee=str(spec.maker_fee),
        taker_fee=str(spec.taker_fee),
    )


def import_request(request: pb.ImportDatasetRequest) -> ImportRequest:
    """Return a validated import request (the path is checked against the root later)."""
    violations: list[FieldViolation] = []
    if request.source_path.strip() == "":
        violations.append(FieldViolation("source_path", "is required (a path under the data root)"))
    elif any(len(part.encode()) > MAX_PATH_COMPONENT for part in request.source_path.split("/")):
        violations.append(
            FieldViolation("source_path", f"has a name longer than {MAX_PATH_COMPONENT} bytes")
        )
    file_format: FileFormat | None = None
    if request.format != pb.FILE_FORMAT_UNSPECIFIED:  # unset: from the file name's extension
        try:
            file_format = FILE_FORMATS.from_proto(request.format, field="format")
        except InvalidArgument as error:
            violations.extend(error.violations)
    if len(request.display_name) > MAX_DISPLAY_NAME:
        violations.append(
            FieldViolation("display_name", f"must be at most {MAX_DISPLAY_NAME} characters")
        )
    kind: DataKind | None = None
    try:
        kind = DATA_KINDS.from_proto(request.kind, field="kind")
    except InvalidArgument as error:
        violations.extend(error.violations)
    instrument: InstrumentSpec | None = None
    if not request.HasField("instrument"):
        violations.append(FieldViolation("instrument", "is required"))
    else:
        try:
            instrument = instrument_from_proto(request.instrument)
        except InvalidArgument as error:
            violations.extend(error.violations)
    bar_convention = BarConvention.OPEN
    try:
        bar_convention = BAR_CONVENTIONS.from_proto(request.bar_convention, field="bar_convention")
    except InvalidArgument as error:
        violations.extend(error.violations)
    columns = dict(request.column_mapping)
    if kind is not None:
        try:
            check_column_mapping(columns, kind)
        except InvalidArgument as error:
            violations.extend(error.violations)
    if violations:
        raise InvalidArgument(violations)
    assert kind is not None
    assert instrument is not None
    return ImportRequest(
        source_path=request.source_path,
        instrument=instrument,
        kind=kind,
        file_format=file_format,
        display_name=request.display_name,
        columns=tuple(sorted((role, column.strip()) for role, column in columns.items())),
        bar_convention=bar_convention,
    )


def dataset_to_proto(dataset: Dataset) -> pb.Dataset:
    """Return the proto form of a dataset."""
    message = pb.Dataset(
        name=f"datasets/{dataset.id}",
        display_name=dataset.display_name,
        instrument=instrument_to_proto(dataset.instrument),
        kind=DATA_KINDS.to_proto(dataset.kind),
        source_path=dataset.source_path,
        content_hash=dataset.content_hash,
        row_count=dataset.row_count,
        start_time=nanos_to_timestamp(dataset.start_ns),
        end_time=nanos_to_timestamp(dataset.end_ns),
        size_bytes=dataset.size_bytes,
    )
    if dataset.bar_convention is not None:
        message.bar_convention = BAR_CONVENTIONS.to_proto(dataset.bar_convention)
    message.create_time.FromDatetime(dataset.create_time)
    return message


def import_update_to_proto(update: ImportUpdate) -> pb.ImportDatasetResponse:
    """Return one message of an import's stream."""
    if update.dataset is not None:
        return pb.ImportDatasetResponse(
            dataset=dataset_to_proto(update.dataset), already_imported=update.already_imported
        )
    return pb.ImportDatasetResponse(
        progress=pb.ImportProgress(
            rows_read=update.rows_read,
            bytes_read=update.bytes_read,
            total_bytes=update.total_bytes,
            percent=round(update.percent, 2),
        )
    )


def importable_file_to_proto(file: ImportableFile) -> pb.ImportableFile:
    """Return the proto form of an importable file."""
    message = pb.ImportableFile(
        path=file.path,
        size_bytes=file.size_bytes,
        modify_time=nanos_to_timestamp(file.modify_ns),
        format=FILE_FORMATS.to_proto(file.file_format),
    )
    if file.guessed_kind is not None:
        message.guessed_kind = DATA_KINDS.to_proto(file.guessed_kind)
    return message


def upload_id(name: str) -> str:
    """Return the id of an `uploads/{id}` name."""
    return resource_id(name, collection="uploads")


def upload_to_proto(upload: Upload) -> pb.Upload:
    """Return the proto form of an upload."""
    return pb.Upload(
        name=f"uploads/{upload.id}",
        file_name=upload.file_name,
        total_bytes=upload.total_bytes,
        next_offset=upload.next_offset,
        complete=upload.complete,
        source_path=upload.source_path if upload.complete else "",
    )
