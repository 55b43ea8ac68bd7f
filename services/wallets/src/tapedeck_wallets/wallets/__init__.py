"""Wallets and their stored balances."""
