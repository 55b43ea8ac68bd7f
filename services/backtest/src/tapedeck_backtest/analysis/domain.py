"""Sweep analysis, the pure rules: period returns, the Deflated Sharpe Ratio, the Probability of
Backtest Overfitting by CSCV, and the neighbourhood score of a grid point.

Sharpe ratios here are per period (not annualised), as both papers define them: the mean of the
period returns over their standard deviation (ddof=1); a series with no variation has Sharpe 0.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

from tapedeck_backtest.runs.domain import RunState
from tapedeck_backtest.runs.sweeps import Axis, Sweep, SweepMetric, SweepPoint, SweepState
from tapedeck_backtest.strategies.registry import Scalar
from tapedeck_common.errors import FieldViolation, InvalidArgument

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

EULER_GAMMA = 0.5772156649015329
_NORMAL = NormalDist()

NANOS_PER_MINUTE = 60 * 1_000_000_000
# The return periods tried, longest first: the longest that leaves enough rows is used.
PERIODS_NS = {
    "DAY": 1440 * NANOS_PER_MINUTE,
    "HOUR": 60 * NANOS_PER_MINUTE,
    "MINUTE": NANOS_PER_MINUTE,
}


@dataclass(frozen=True)
class DeflatedSharpe:
    """The DSR of the best of `trials` Sharpe ratios (all per period)."""

    sharpe_ratio: float
    trials: int
    sharpe_variance: float
    expected_max_sharpe: float
    skewness: float
    kurtosis: float
    observations: int
    probability: float


@dataclass(frozen=True)
class Overfitting:
    """PBO by CSCV: the share of the splits where the in-sample best is below the out-of-sample
    median, with the logits it was counted from."""

    probability: float
    splits: int
    combinations: int
    logits: FloatArray


def period_returns(
    times: IntArray, values: FloatArray, period_ns: int
) -> tuple[IntArray, FloatArray]:
    """Return (period starts, simple returns) from an equity curve: the last value in each
    period (UTC-aligned), then each period's change over the previous one."""
    if times.size == 0:
        return np.empty(0, np.int64), np.empty(0, np.float64)
    buckets = times // period_ns
    last = np.flatnonzero(np.append(buckets[1:] != buckets[:-1], True))
    closes = values[last]
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = closes[1:] / closes[:-1] - 1.0
    returns[~np.isfinite(returns)] = 0.0
    return buckets[last][1:] * period_ns, returns


def sharpe(returns: FloatArray, axis: int = 0) -> FloatArray:
    """Per-period Sharpe ratios along `axis` (0 where a series does not vary)."""
    mean = returns.mean(axis=axis)
    std = returns.std(axis=axis, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(std > 0, mean / np.where(std > 0, std, 1.0), 0.0)
    return np.asarray(ratio, dtype=np.float64)


def expected_max_sharpe(trials: int, variance: float) -> float:
    """E[max SR] of `trials` independent Sharpe ratios with true SR 0 and this variance.

    Bailey and Lopez de Prado (2014), "The Deflated Sharpe Ratio", eq. (2) (the False Strategy
    theorem): sqrt(V) * ((1 - gamma) * Z^-1[1 - 1/N] + gamma * Z^-1[1 - 1/(N e)]).
    """
    if trials < 2 or variance <= 0:
        return 0.0
    spread = (1 - EULER_GAMMA) * _NORMAL.inv_cdf(1 - 1 / trials)
    spread += EULER_GAMMA * _NORMAL.inv_cdf(1 - 1 / (trials * math.e))
    return math.sqrt(variance) * spread


def probabilistic_sharpe(
    sharpe_ratio: float, benchmark: float, *, observations: int, skewness: float, kurtosis: float
) -> float:
    """PSR: the probability that the true SR exceeds `benchmark` (Bailey and Lopez de Prado 2012;
    DSR paper eq. (3)): Z[(SR - SR*) sqrt(T - 1) / sqrt(1 - g3 SR + (g4 - 1) / 4 SR^2)], with g4
    the (non-excess) kurtosis."""
    if observations < 2:
        return math.nan
    variance = 1 - skewness * sharpe_ratio + (kurtosis - 1) / 4 * sharpe_ratio**2
    if variance <= 0:
        return math.nan
    z = (sharpe_ratio - benchmark) * math.sqrt(observations - 1) / math.sqrt(variance)
    return _NORMAL.cdf(z)


def moments(returns: FloatArray) -> tuple[float, float]:
    """Return (skewness, non-excess kurtosis) of a return series (population moments; 0, 3 for
    a series with no variation)."""
    centred = returns - returns.mean()
    variance = float(np.mean(centred**2))
    if variance <= 0:
        return 0.0, 3.0
    return float(np.mean(centred**3) / variance**1.5), float(np.mean(centred**4) / variance**2)


def deflated_sharpe(returns: FloatArray) -> tuple[int, DeflatedSharpe]:
    """The DSR of the best column of a T x N matrix of period returns, deflated for N trials.

    DSR = PSR(SR0) with SR0 = E[max SR] over N trials of the sample variance of their Sharpe
    ratios (Bailey and Lopez de Prado 2014, eq. (2)-(3)). Returns the best column and the DSR.
    """
    ratios = sharpe(returns)
    best = int(np.argmax(ratios))
    trials = int(ratios.size)
    variance = float(np.var(ratios, ddof=1)) if trials > 1 else 0.0
    benchmark = expected_max_sharpe(trials, variance)
    skewness, kurtosis = moments(returns[:, best])
    observations = int(returns.shape[0])
    probability = probabilistic_sharpe(
        float(ratios[best]),
        benchmark,
        observations=observations,
        skewness=skewness,
        kurtosis=kurtosis,
    )
    return best, DeflatedSharpe(
        sharpe_ratio=float(ratios[best]),
        trials=trials,
        sharpe_variance=variance,
        expected_max_sharpe=benchmark,
        skewness=skewness,
        kurtosis=kurtosis,
        observations=observations,
        probability=probability,
    )


def overfitting(returns: FloatArray, splits: int) -> Overfitting:
    """PBO of a T x N matrix of period returns by combinatorially symmetric cross-validation.

    Bailey, Borwein, Lopez de Prado and Zhu (2015), "The Probability of Backtest Overfitting",
    section 2.2: cut the rows into `splits` (S, even) blocks of equal length (the first T mod S
    rows are left out); for each of the C(S, S/2) choices of S/2 blocks as the training set J,
    the rest J' as the test set: n* = the column with the best Sharpe on J; w = its rank among
    the columns' Sharpe on J' (1 = worst) over N + 1; logit = ln(w / (1 - w)). PBO is the share of
    logits <= 0 (the in-sample best at or below the out-of-sample median).

    The Sharpe ratio of a union of blocks comes from per-block sums and sums of squares, so a
    choice costs O(S N), not O(T N).
    """
    rows, trials = returns.shape
    size = rows // splits
    blocks = returns[rows - size * splits :].reshape(splits, size, trials)
    sums = blocks.sum(axis=1)
    squares = (blocks**2).sum(axis=1)
    choices = np.array(list(itertools.combinations(range(splits), splits // 2)), dtype=np.int64)
    train = np.zeros((choices.shape[0], splits), dtype=np.float64)
    np.put_along_axis(train, choices, 1.0, axis=1)
    count = size * (splits // 2)
    in_sample = _sharpe_from_sums(train @ sums, train @ squares, count)
    out_sample = _sharpe_from_sums((1 - train) @ sums, (1 - train) @ squares, count)
    best = np.argmax(in_sample, axis=1)
    chosen = out_sample[np.arange(best.size), best]
    rank = (out_sample < chosen[:, None]).sum(axis=1) + 1
    relative = rank / (trials + 1)
    logits = np.log(relative / (1 - relative))
    return Overfitting(
        probability=float(np.mean(logits <= 0)),
        splits=splits,
        combinations=int(choices.shape[0]),
        logits=logits,
    )


def _sharpe_from_sums(sums: FloatArray, squares: FloatArray, count: int) -> FloatArray:
    mean = sums / count
    variance = (squares - sums * mean) / (count - 1)
    # Below this share of the mean square the variance is rounding: the series does not vary.
    varies = variance > 1e-12 * squares / count
    std = np.sqrt(np.where(varies, variance, 1.0))
    return np.asarray(np.where(varies, mean / std, 0.0), dtype=np.float64)


def neighbourhood_scores(positions: list[tuple[int, ...]], values: list[float]) -> list[float]:
    """For each grid point (its index on every axis), the mean metric over the points within one
    step on every axis, itself included, counting only points with a value (NaN otherwise).

    A stable plateau keeps its score; an isolated spike is pulled down by its neighbours.
    """
    known = {
        position: value
        for position, value in zip(positions, values, strict=True)
        if not math.isnan(value)
    }
    scores = []
    for position in positions:
        around = [
            known[neighbour]
            for step in itertools.product((-1, 0, 1), repeat=len(position))
            if (neighbour := tuple(a + b for a, b in zip(position, step, strict=True))) in known
        ]
        scores.append(sum(around) / len(around) if around else math.nan)
    return scores


DEFAULT_SPLITS = 16
MAX_SPLITS = 20  # C(20, 10) = 184,756 choices


@dataclass(frozen=True)
class AnalysisQuery:
    """What AnalyzeSweep asks: the sweep, the metric (None: the sweep's), the heatmap's axes
    (empty: the sweep's first two) and the CSCV split count."""

    sweep_id: str
    metric: SweepMetric | None
    x_parameter: str
    y_parameter: str
    splits: int


@dataclass(frozen=True)
class ScoredPoint:
    """A grid point with its metric (NaN unless SUCCEEDED), neighbourhood score and ranks by each
    (1 = best; 0 when it has no value)."""

    position: int
    run_id: str
    parameters: dict[str, Scalar]
    value: float
    neighbourhood: float
    rank: int
    neighbourhood_rank: int


@dataclass(frozen=True)
class HeatmapCell:
    """One cell: the best point at these two values (best over any other axes)."""

    x_index: int
    y_index: int
    point: ScoredPoint


@dataclass(frozen=True)
class Heatmap:
    """The metric over two axes (one when the sweep has one axis)."""

    x_axis: Axis
    y_axis: Axis | None
    cells: tuple[HeatmapCell, ...]


@dataclass(frozen=True)
class Odds:
    """The overfitting figures of a finished sweep, from its runs' period returns; `reason` says
    why a figure is missing."""

    period: str
    observations: int
    best_run_id: str
    deflated: DeflatedSharpe | None
    overfitting: Overfitting | None
    reason: str


@dataclass(frozen=True)
class SweepAnalysis:
    """Everything AnalyzeSweep answers."""

    metric: SweepMetric
    points: tuple[ScoredPoint, ...]
    heatmap: Heatmap
    odds: Odds


def sampled_axes(sweep: Sweep) -> tuple[Axis, ...]:
    """Return the axes with their values: a range (a search's) becomes the values its trials
    took, in order, so neighbours are the nearest values sampled."""
    return tuple(
        axis
        if axis.range is None
        else Axis(axis.name, tuple(sorted({p.parameters[axis.name] for p in sweep.points})))
        for axis in sweep.axes
    )


def grid_index(point: SweepPoint, axes: tuple[Axis, ...]) -> tuple[int, ...]:
    """Return a point's index on every axis."""
    return tuple(axis.values.index(point.parameters[axis.name]) for axis in axes)


def score_points(sweep: Sweep, metric: SweepMetric) -> tuple[ScoredPoint, ...]:
    """Score every point by the metric and by its neighbourhood, and rank by both."""
    axes = sampled_axes(sweep)
    values = []
    for point in sweep.points:
        stats = point.run.stats
        ok = point.run.state is RunState.SUCCEEDED and stats is not None
        values.append(stats.metric(metric.value) if ok and stats is not None else math.nan)
    scores = neighbourhood_scores([grid_index(p, axes) for p in sweep.points], values)
    ranks = _ranks(values, lower_is_better=metric.lower_is_better)
    smooth = _ranks(scores, lower_is_better=metric.lower_is_better)
    return tuple(
        ScoredPoint(p.position, p.run.id, p.parameters, value, score, rank, smooth_rank)
        for p, value, score, rank, smooth_rank in zip(
            sweep.points, values, scores, ranks, smooth, strict=True
        )
    )


def _ranks(values: list[float], *, lower_is_better: bool) -> list[int]:
    order = sorted(
        (i for i, v in enumerate(values) if not math.isnan(v)),
        key=lambda i: (values[i] if lower_is_better else -values[i], i),
    )
    ranks = [0] * len(values)
    for rank, index in enumerate(order, start=1):
        ranks[index] = rank
    return ranks


def check_heatmap_axes(axes: tuple[Axis, ...], x: str, y: str) -> tuple[int, int | None]:
    """Return the indices of the heatmap's axes: the named ones, or the sweep's first two."""
    names = [axis.name for axis in axes]
    violations = [
        FieldViolation(field, f"{name!r} is not an axis of this sweep (axes: {', '.join(names)})")
        for field, name in (("x_parameter", x), ("y_parameter", y))
        if name and name not in names
    ]
    if x and x == y:
        violations.append(FieldViolation("y_parameter", "must differ from x_parameter"))
    if violations:
        raise InvalidArgument(violations)
    chosen = [names.index(name) for name in (x, y) if name]
    chosen += [i for i in range(len(names)) if i not in chosen][: 2 - len(chosen)]
    return chosen[0], (chosen[1] if len(chosen) > 1 else None)


def heatmap(
    sweep: Sweep, points: tuple[ScoredPoint, ...], metric: SweepMetric, x: int, y: int | None
) -> Heatmap:
    """Cut the grid to two axes, keeping at each cell the point with the best metric."""
    axes = sampled_axes(sweep)
    best: dict[tuple[int, int], ScoredPoint] = {}
    for point, scored in zip(sweep.points, points, strict=True):
        index = grid_index(point, axes)
        key = (index[x], 0 if y is None else index[y])
        held = best.get(key)
        if held is None or _better(scored.value, held.value, metric.lower_is_better):
            best[key] = scored
    cells = tuple(HeatmapCell(xi, yi, point) for (xi, yi), point in sorted(best.items()))
    return Heatmap(axes[x], None if y is None else axes[y], cells)


def _better(value: float, held: float, lower_is_better: bool) -> bool:
    if math.isnan(value):
        return False
    if math.isnan(held):
        return True
    return value < held if lower_is_better else value > held


def returns_matrix(
    curves: list[tuple[IntArray, FloatArray]], *, min_rows: int
) -> tuple[str, FloatArray] | None:
    """Align the runs' period returns on the periods they all have, at the longest period (day,
    hour, minute) that gives at least `min_rows` rows; None when none does."""
    for name, period_ns in PERIODS_NS.items():
        series = [period_returns(times, values, period_ns) for times, values in curves]
        common = series[0][0]
        for starts, _ in series[1:]:
            common = np.intersect1d(common, starts, assume_unique=True)
        if common.size >= min_rows:
            columns = [returns[np.isin(starts, common)] for starts, returns in series]
            return name, np.column_stack(columns)
    return None


def odds(
    sweep: Sweep, run_ids: list[str], curves: list[tuple[IntArray, FloatArray]], splits: int
) -> Odds:
    """The DSR of the best run and the PBO of the sweep, from the SUCCEEDED runs' equity curves."""
    if sweep.state is SweepState.RUNNING:
        return Odds("", 0, "", None, None, "the sweep is still running")
    if not curves:
        return Odds("", 0, "", None, None, "no run of the sweep succeeded")
    aligned = returns_matrix(curves, min_rows=2 * splits)
    if aligned is None:
        return Odds(
            "", 0, "", None, None, f"the runs are too short: fewer than {2 * splits} minute returns"
        )
    period, matrix = aligned
    best, deflated = deflated_sharpe(matrix)
    if len(curves) < 2:
        return Odds(period, matrix.shape[0], run_ids[best], deflated, None, "PBO needs two runs")
    pbo = overfitting(matrix, splits)
    return Odds(period, matrix.shape[0], run_ids[best], deflated, pbo, "")
