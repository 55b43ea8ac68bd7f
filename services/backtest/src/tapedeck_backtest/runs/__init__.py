"""Backtest runs and parameter sweeps: the queue, the worker processes, the engine, the results."""
