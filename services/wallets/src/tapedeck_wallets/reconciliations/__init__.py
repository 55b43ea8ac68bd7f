"""Reconciliations: stored balances compared with the exchange's, as background jobs."""
