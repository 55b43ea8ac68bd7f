"""One two-way mapping between a proto enum and a domain value, with errors that name the value."""

from __future__ import annotations

from collections.abc import Mapping

from google.protobuf.descriptor import EnumDescriptor

from tapedeck_common.errors import FieldViolation, InvalidArgument


class EnumMapping[P: int, D]:
    """Maps a proto enum's values to domain values and back.

    `unspecified` is what the zero value means when a field may be left unset (a default);
    without it the zero value is refused as "is required".
    """

    def __init__(
        self,
        descriptor: EnumDescriptor,
        values: Mapping[P, D],
        *,
        unspecified: D | None = None,
    ) -> None:
        self._descriptor = descriptor
        self._from_proto: dict[int, D] = {int(number): domain for number, domain in values.items()}
        self._to_proto = {domain: number for number, domain in values.items()}
        self._unspecified = unspecified
        prefix = _common_prefix([descriptor.values_by_number[n].name for n in values])
        self._names = ", ".join(descriptor.values_by_number[n].name for n in values)
        self._short: dict[int, str] = {
            n: descriptor.values_by_number[n].name.removeprefix(prefix) for n in values
        }

    def from_proto(self, number: int, *, field: str) -> D:
        """Return the domain value of a proto number, refusing unknown and (unless defaulted) zero."""
        found = self._from_proto.get(number)
        if found is not None:
            return found
        if number == 0:
            if self._unspecified is not None:
                return self._unspecified
            raise InvalidArgument([FieldViolation(field, f"is required: one of {self._names}")])
        raise InvalidArgument([FieldViolation(field, f"{number} is not one of {self._names}")])

    def to_proto(self, value: D) -> P:
        """Return the proto number of a domain value."""
        return self._to_proto[value]

    def short_name(self, number: int) -> str:
        """Return a value's name without the enum's prefix (`DATA_KIND_TRADES` -> `TRADES`)."""
        return self._short[number]


def _common_prefix(names: list[str]) -> str:
    if len(names) < 2:
        return names[0].rsplit("_", 1)[0] + "_" if names and "_" in names[0] else ""
    first, last = min(names), max(names)
    size = 0
    while size < min(len(first), len(last)) and first[size] == last[size]:
        size += 1
    return first[: first.rfind("_", 0, size) + 1] if "_" in first[:size] else ""
