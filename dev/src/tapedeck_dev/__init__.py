"""Tapedeck's development tools: synthetic market data, demo seeding, a Coinbase emulator.

Shared by the launcher's demo (as the `tapedeck-emulator` and `tapedeck-demo` processes), the
tests and the benchmarks; no service imports it and no service image installs it.
"""
