"""A local Coinbase Advanced Trade emulator: the accounts endpoint, CDP JWT checks, injected faults."""

from tapedeck_dev.emulator.keys import CdpKey, generate_key
from tapedeck_dev.emulator.server import CoinbaseEmulator, Fault, FaultKind

__all__ = ["CdpKey", "CoinbaseEmulator", "Fault", "FaultKind", "generate_key"]
