"""Instrument definitions: validated specs, stored as JSON, built into NautilusTrader instruments."""

from __future__ import annotations

import enum
import json
import re
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from nautilus_trader.model.enums import CurrencyType
from nautilus_trader.model.identifiers import InstrumentId, Symbol
from nautilus_trader.model.instruments import CryptoPerpetual, CurrencyPair, Instrument
from nautilus_trader.model.objects import Currency, Price, Quantity

from tapedeck_common.errors import FieldViolation, InvalidArgument

MAX_PRECISION = 16  # the high-precision build's fixed scale
MAX_FEE = Decimal("0.1")
# The contract's Instrument carries no margins: perpetuals get 5% initial (20x) and 2.5%
# maintenance margin; spot and FX pairs get 0, as NautilusTrader's own test instruments do.
PERPETUAL_MARGIN_INIT = Decimal("0.05")
PERPETUAL_MARGIN_MAINT = Decimal("0.025")
_INSTRUMENT_ID = re.compile(r"[A-Za-z0-9/_\-]{1,64}\.[A-Za-z0-9_\-]{1,32}")
_CURRENCY = re.compile(r"[A-Z0-9]{2,16}")


class InstrumentKind(enum.Enum):
    """The kind of contract; values are stored in JSON."""

    SPOT = "spot"
    PERPETUAL = "perpetual"
    FX = "fx"


@dataclass(frozen=True)
class InstrumentSpec:
    """The definition of a traded instrument, independent of NautilusTrader's objects."""

    instrument_id: str
    kind: InstrumentKind
    base_currency: str
    quote_currency: str
    price_precision: int
    size_precision: int
    maker_fee: Decimal
    taker_fee: Decimal

    def to_json(self) -> str:
        """Return a canonical JSON form (stable key order, decimals as strings)."""
        body: dict[str, Any] = asdict(self)
        body["kind"] = self.kind.value
        body["maker_fee"] = str(self.maker_fee)
        body["taker_fee"] = str(self.taker_fee)
        return json.dumps(body, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> InstrumentSpec:
        """Parse the form written by to_json."""
        body = json.loads(text)
        return cls(
            instrument_id=body["instrument_id"],
            kind=InstrumentKind(body["kind"]),
            base_currency=body["base_currency"],
            quote_currency=body["quote_currency"],
            price_precision=int(body["price_precision"]),
            size_precision=int(body["size_precision"]),
            maker_fee=Decimal(body["maker_fee"]),
            taker_fee=Decimal(body["taker_fee"]),
        )


def validate_instrument(
    *,
    instrument_id: str,
    kind: InstrumentKind,
    base_currency: str,
    quote_currency: str,
    price_precision: int,
    size_precision: int,
    maker_fee: Decimal,
    taker_fee: Decimal,
    field: str = "instrument",
) -> InstrumentSpec:
    """Return a spec, or raise InvalidArgument naming every wrong field."""
    violations: list[FieldViolation] = []
    if not _INSTRUMENT_ID.fullmatch(instrument_id):
        violations.append(
            FieldViolation(
                f"{field}.instrument_id",
                f"must look like SYMBOL.VENUE (e.g. BTCUSDT.BINANCE), got {instrument_id!r}",
            )
        )
    for name, code in (("base_currency", base_currency), ("quote_currency", quote_currency)):
        if not _CURRENCY.fullmatch(code):
            violations.append(
                FieldViolation(f"{field}.{name}", "must be 2-16 upper-case letters or digits")
            )
    if base_currency == quote_currency and _CURRENCY.fullmatch(base_currency):
        violations.append(FieldViolation(f"{field}.quote_currency", "must differ from the base"))
    for name, precision in (
        ("price_precision", price_precision),
        ("size_precision", size_precision),
    ):
        if not 0 <= precision <= MAX_PRECISION:
            violations.append(FieldViolation(f"{field}.{name}", f"must be 0..{MAX_PRECISION}"))
    for name, fee in (("maker_fee", maker_fee), ("taker_fee", taker_fee)):
        if abs(fee) > MAX_FEE:
            violations.append(
                FieldViolation(f"{field}.{name}", f"must be between -{MAX_FEE} and {MAX_FEE}")
            )
    if violations:
        raise InvalidArgument(violations)
    return InstrumentSpec(
        instrument_id=instrument_id,
        kind=kind,
        base_currency=base_currency,
        quote_currency=quote_currency,
        price_precision=price_precision,
        size_precision=size_precision,
        maker_fee=maker_fee,
        taker_fee=taker_fee,
    )


def to_nautilus(spec: InstrumentSpec) -> Instrument:
    """Build the NautilusTrader instrument: CurrencyPair for spot and FX, CryptoPerpetual for perps."""
    instrument_id = InstrumentId.from_str(spec.instrument_id)
    base = _currency(spec.base_currency, fx=spec.kind is InstrumentKind.FX)
    quote = _currency(spec.quote_currency, fx=spec.kind is InstrumentKind.FX)
    price_increment = Price.from_str(_increment(spec.price_precision))
    size_increment = Quantity.from_str(_increment(spec.size_precision))
    if spec.kind is InstrumentKind.PERPETUAL:
        return CryptoPerpetual(
            instrument_id=instrument_id,
            raw_symbol=Symbol(instrument_id.symbol.value),
            base_currency=base,
            quote_currency=quote,
            settlement_currency=quote,
            is_inverse=False,
            price_precision=spec.price_precision,
            size_precision=spec.size_precision,
            price_increment=price_increment,
            size_increment=size_increment,
            ts_event=0,
            ts_init=0,
            margin_init=PERPETUAL_MARGIN_INIT,
            margin_maint=PERPETUAL_MARGIN_MAINT,
            maker_fee=spec.maker_fee,
            taker_fee=spec.taker_fee,
        )
    return CurrencyPair(
        instrument_id=instrument_id,
        raw_symbol=Symbol(instrument_id.symbol.value),
        base_currency=base,
        quote_currency=quote,
        price_precision=spec.price_precision,
        size_precision=spec.size_precision,
        price_increment=price_increment,
        size_increment=size_increment,
        ts_event=0,
        ts_init=0,
        margin_init=Decimal(0),
        margin_maint=Decimal(0),
        maker_fee=spec.maker_fee,
        taker_fee=spec.taker_fee,
    )


def _increment(precision: int) -> str:
    return format(Decimal(1).scaleb(-precision), "f")


def _currency(code: str, *, fx: bool) -> Currency:
    known = Currency.from_str(code, strict=True)
    if known is not None:
        return known
    # Unknown codes are registered so the engine can book balances in them.
    currency = Currency(
        code, 2 if fx else 8, 0, code, CurrencyType.FIAT if fx else CurrencyType.CRYPTO
    )
    Currency.register(currency, overwrite=False)
    return currency
