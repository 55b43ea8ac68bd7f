"""Playback of finished runs: candles, portfolio state, equity curve and fills from result files."""
