"""Walk-forward rules without a database: fold windows, efficiency, the stitched curve."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tapedeck_backtest.runs.walkforward import (
    WalkForwardSpec,
    fold_windows,
    stitch,
)
from tapedeck_common.errors import InvalidArgument

HOUR = 3_600 * 10**9


@pytest.mark.parametrize("anchored", [False, True])
def test_out_of_sample_windows_follow_each_other_and_in_sample_never_reaches_them(anchored):
    spec = WalkForwardSpec(
        folds=4, anchored=anchored, in_sample_ns=10 * HOUR, out_of_sample_ns=3 * HOUR
    )
    folds = fold_windows(spec, 100, 100 + 30 * HOUR)
    assert [f.index for f in folds] == [0, 1, 2, 3]
    for before, after in itertools.pairwise(folds):
        assert before.out_end_ns == after.out_start_ns  # no gap, no overlap
    for fold in folds:
        assert fold.in_end_ns == fold.out_start_ns  # half-open: in sample ends where out starts
        assert fold.out_end_ns - fold.out_start_ns == 3 * HOUR
        assert fold.in_start_ns == (100 if anchored else fold.out_start_ns - 10 * HOUR)
    assert folds[0].out_start_ns == 100 + 10 * HOUR
    assert folds[-1].out_end_ns == 100 + 22 * HOUR


def test_folds_that_do_not_fit_are_refused_with_the_days_needed():
    spec = WalkForwardSpec(
        folds=5, anchored=False, in_sample_ns=24 * HOUR, out_of_sample_ns=24 * HOUR
    )
    with pytest.raises(InvalidArgument) as error:
        fold_windows(spec, 0, 96 * HOUR)
    assert error.value.violations[0].field == "walk_forward"
    assert "needs 6.00 days" in error.value.violations[0].description


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (WalkForwardSpec(0, False, HOUR, HOUR), "walk_forward.folds"),
        (WalkForwardSpec(51, False, HOUR, HOUR), "walk_forward.folds"),
        (WalkForwardSpec(2, False, 0, HOUR), "walk_forward.in_sample_duration"),
        (WalkForwardSpec(2, False, HOUR, -1), "walk_forward.out_of_sample_duration"),
    ],
)
def test_bad_specs_name_their_field(spec, field):
    with pytest.raises(InvalidArgument) as error:
        fold_windows(spec, 0, 1000 * HOUR)
    assert error.value.violations[0].field == field


def test_the_stitched_curve_compounds_each_fold_from_where_the_last_ended():
    times, values = stitch(
        [
            (np.array([1, 2]), np.array([100.0, 110.0])),
            (np.array([3, 4]), np.array([1000.0, 900.0])),  # -10 % from 110
            (np.array([], dtype=np.int64), np.array([])),
            (np.array([5]), np.array([50.0])),
        ]
    )
    assert times.tolist() == [1, 2, 3, 4, 5]
    assert values == pytest.approx([100.0, 110.0, 110.0, 99.0, 99.0])
