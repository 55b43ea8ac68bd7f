"""Amounts as the service writes them: plain decimal text, without exponent or trailing zeros."""

from __future__ import annotations

from decimal import Decimal


def decimal_text(value: Decimal) -> str:
    """Return a decimal as a plain string without exponent or trailing zeros ("1.5", "100")."""
    if value == 0:
        return "0"
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def plain_decimal_text(text: str) -> str:
    """Return a plain decimal string (no exponent) as `decimal_text` writes it: "1.50" -> "1.5"."""
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-", "-0") else text
