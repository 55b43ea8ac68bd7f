"""Reading balances from exchanges: credentials, the Coinbase client, the pool and the cache."""
