"""The live service's client for publishers: an outbox sender to LiveService/AppendEvents.

It knows only the contract (`tapedeck.live.v1`) and the shared runtime, so the services that
publish live events (backtest, wallets) share it without importing the live service.
"""
