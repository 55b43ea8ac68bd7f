"""Tapedeck for NautilusTrader nodes.

- `tapedeck_nautilus.bridge.TapedeckBridge`: an Actor that forwards the node's fills, denials,
  rejections, position events and account states to Tapedeck's live service, through a small
  durable queue on local disk, never blocking the trading loop.
- `tapedeck_nautilus.gate.TapedeckGate`: an execution algorithm that puts Tapedeck's pre-trade
  gate (`CheckOrder`) in the order path; a refusal becomes NautilusTrader's own `OrderDenied`.
"""
