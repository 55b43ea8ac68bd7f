"""Sweep analysis rules without a database: the papers' worked example for the Deflated Sharpe
Ratio, PBO by CSCV against its definition and hand-computed cases, neighbourhood scores."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from tapedeck_backtest.analysis.domain import (
    deflated_sharpe,
    expected_max_sharpe,
    moments,
    neighbourhood_scores,
    overfitting,
    period_returns,
    probabilistic_sharpe,
)

DAY_NS = 86_400 * 10**9


def test_the_deflated_sharpe_ratio_papers_numerical_example():
    # Bailey and Lopez de Prado (2014), section "A numerical example": an annualised SR of 2.5
    # over 5 years of daily returns (T = 1250, 250 days a year), skewness -3, kurtosis 10, the
    # best of N = 100 trials whose annualised Sharpe ratios have variance 1/2. The paper finds
    # E[max SR] = 0.1132 (daily) and DSR = 0.9004.
    variance = 0.5 / 250
    benchmark = expected_max_sharpe(100, variance)
    assert round(benchmark, 4) == 0.1132
    dsr = probabilistic_sharpe(
        2.5 / math.sqrt(250), benchmark, observations=1250, skewness=-3, kurtosis=10
    )
    assert round(dsr, 4) == 0.9004


def test_one_trial_is_not_deflated():
    assert expected_max_sharpe(1, 0.3) == 0.0


def test_deflated_sharpe_of_a_matrix_uses_the_best_column_and_the_trials_variance():
    rng = np.random.default_rng(3)
    returns = rng.normal(0.0, 0.01, size=(500, 20))
    returns[:, 7] += 0.002  # a real edge
    best, dsr = deflated_sharpe(returns)
    ratios = returns.mean(axis=0) / returns.std(axis=0, ddof=1)
    assert best == int(np.argmax(ratios)) == 7
    assert dsr.trials == 20
    assert dsr.sharpe_variance == pytest.approx(np.var(ratios, ddof=1))
    centred = returns[:, 7] - returns[:, 7].mean()
    skew = np.mean(centred**3) / np.mean(centred**2) ** 1.5
    assert dsr.skewness == pytest.approx(skew)
    assert dsr.kurtosis == pytest.approx(np.mean(centred**4) / np.mean(centred**2) ** 2)
    assert dsr.probability == pytest.approx(
        probabilistic_sharpe(
            ratios[7],
            expected_max_sharpe(20, np.var(ratios, ddof=1)),
            observations=500,
            skewness=skew,
            kurtosis=dsr.kurtosis,
        )
    )
    assert 0.5 < dsr.probability <= 1.0


def test_moments_of_a_flat_series_are_the_normal_ones():
    assert moments(np.zeros(10)) == (0.0, 3.0)


def _pbo_by_definition(returns: np.ndarray, splits: int) -> float:
    """CSCV written out literally (Bailey, Borwein, Lopez de Prado and Zhu 2015, section 2.2)."""
    rows, trials = returns.shape
    size = rows // splits
    blocks = np.split(returns[rows - size * splits :], splits)
    logits = []
    for train in itertools.combinations(range(splits), splits // 2):
        test = [b for b in range(splits) if b not in train]
        in_sample = np.concatenate([blocks[b] for b in train])
        out_sample = np.concatenate([blocks[b] for b in test])
        sr_in = in_sample.mean(axis=0) / in_sample.std(axis=0, ddof=1)
        sr_out = out_sample.mean(axis=0) / out_sample.std(axis=0, ddof=1)
        best = int(np.argmax(sr_in))
        rank = 1 + sum(1 for value in sr_out if value < sr_out[best])
        w = rank / (trials + 1)
        logits.append(math.log(w / (1 - w)))
    return sum(1 for value in logits if value <= 0) / len(logits)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_pbo_equals_cscv_written_out(seed):
    rng = np.random.default_rng(seed)
    returns = rng.normal(0.0002, 0.01, size=(203, 9))
    result = overfitting(returns, 8)
    assert result.combinations == math.comb(8, 4)
    assert result.probability == pytest.approx(_pbo_by_definition(returns, 8), abs=1e-12)


def test_pbo_hand_computed_two_strategies_that_swap_places():
    # Two blocks of two rows. A is best in block 1 (SR 1.414 vs 0.707), B in block 2 (2.121 vs
    # 0.707): whichever block trains, its winner is last out of sample: w = 1/3, logit < 0.
    a = [0.01, 0.03, 0.00, 0.01]
    b = [0.00, 0.02, 0.02, 0.04]
    result = overfitting(np.array([a, b]).T, 2)
    assert result.combinations == 2
    assert result.probability == 1.0
    assert result.logits == pytest.approx([math.log(0.5)] * 2)


def test_pbo_hand_computed_a_dominant_strategy():
    a = [0.01, 0.03, 0.02, 0.03]  # SR 1.414 and 3.536: best in both blocks
    b = [0.00, 0.02, 0.00, 0.01]
    result = overfitting(np.array([a, b]).T, 2)
    assert result.probability == 0.0
    assert result.logits == pytest.approx([math.log(2)] * 2)


def test_pbo_of_pure_noise_averages_one_half_and_of_real_skill_is_near_zero():
    # With no skill the in-sample best is a random draw out of sample: over many samples PBO
    # averages 1/2 (one sample alone varies widely, the splits share its rows).
    noise = [np.random.default_rng(seed).normal(0.0, 0.01, size=(320, 20)) for seed in range(40)]
    assert 0.4 < np.mean([overfitting(sample, 8).probability for sample in noise]) < 0.65
    skilled = noise[0].copy()
    skilled[:, 5] += 0.004
    assert overfitting(skilled, 8).probability < 0.05


def test_flat_strategies_score_zero_not_nan():
    returns = np.zeros((40, 3))
    returns[:, 1] = np.random.default_rng(5).normal(0.001, 0.01, 40)
    result = overfitting(returns, 4)
    assert np.isfinite(result.logits).all()


def test_period_returns_take_the_last_value_of_each_utc_day():
    times = np.array([1, 2, DAY_NS + 5, DAY_NS + 9, 3 * DAY_NS], dtype=np.int64)
    values = np.array([100.0, 110.0, 99.0, 121.0, 133.1])
    starts, returns = period_returns(times, values, DAY_NS)
    assert starts.tolist() == [DAY_NS, 3 * DAY_NS]
    assert returns == pytest.approx([0.1, 0.1])


def test_a_plateau_outscores_an_isolated_spike():
    # 3 x 3 grid: a spike of 10 in a corner among zeros, a plateau of 6s in the opposite corner.
    grid = {(0, 0): 10.0, (2, 2): 6.0, (1, 2): 6.0, (2, 1): 6.0, (1, 1): 6.0}
    positions = [(x, y) for x in range(3) for y in range(3)]
    values = [grid.get(p, 0.0) for p in positions]
    scores = dict(zip(positions, neighbourhood_scores(positions, values), strict=True))
    assert scores[(0, 0)] == pytest.approx((10 + 0 + 0 + 6) / 4)
    assert scores[(2, 2)] == pytest.approx(6.0)
    assert scores[(2, 2)] > scores[(0, 0)]


def test_neighbourhood_skips_points_without_a_value():
    positions = [(0,), (1,), (2,)]
    assert neighbourhood_scores(positions, [1.0, math.nan, 3.0]) == [1.0, 2.0, 3.0]
