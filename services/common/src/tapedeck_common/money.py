"""Exact arithmetic on booked amounts: a result that would need rounding raises instead.

Python's default decimal context keeps 28 significant digits, while amounts are stored with up to
38 (NUMERIC(38,18)): `available + hold` or `exchange - stored` could silently round. Sums of two
amounts need 39 digits and products 76, well within this context's precision.
"""

from __future__ import annotations

from decimal import Context, Decimal, DivisionByZero, Inexact, InvalidOperation, Overflow

EXACT = Context(prec=100, traps=[Inexact, InvalidOperation, DivisionByZero, Overflow])


def add(a: Decimal, b: Decimal) -> Decimal:
    """Return a + b exactly."""
    return EXACT.add(a, b)


def subtract(a: Decimal, b: Decimal) -> Decimal:
    """Return a - b exactly."""
    return EXACT.subtract(a, b)


def multiply(a: Decimal, b: Decimal) -> Decimal:
    """Return a * b exactly."""
    return EXACT.multiply(a, b)
