"""Sweep analysis: the metric over the grid, neighbourhood scores and the odds of overfitting."""
