"""Time-to-accuracy (paper definition) on hand-made curves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from memcomp.report.tta import smooth, time_to_accuracy, tta_per_cell

T = [10.0 * (i + 1) for i in range(12)]


def test_smooth_is_trailing_moving_average() -> None:
    s = smooth([3.0, 6.0, 9.0, 0.0], window=3)
    np.testing.assert_allclose(s, [3.0, 4.5, 6.0, 5.0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(smooth([1.0, 2.0], window=1), [1.0, 2.0])
    with pytest.raises(ValueError):
        smooth([1.0], window=0)


def test_reached_and_held() -> None:
    acc = [10, 10, 10, 50, 50, 50, 50, 50, 50, 50, 50, 50]
    # smoothed: 10, 10, 10, 23.3, 36.7, 50, ... -> first >= 45 at index 5, then held.
    assert time_to_accuracy(T, acc, target=45.0) == pytest.approx(T[5])
    # raw curve (window 1) reaches at index 3.
    assert time_to_accuracy(T, acc, target=45.0, window=1) == pytest.approx(T[3])


def test_not_reached() -> None:
    acc = [10.0 + i for i in range(12)]
    assert time_to_accuracy(T, acc, target=30.0) is None
    assert time_to_accuracy([], [], target=1.0) is None


def test_dip_after_reaching_resets_the_clock() -> None:
    # window 1 so the dip is not smoothed away: reached at 2, dips at 5 (within the next 5 evals),
    # reached again at 6 and holds until the end.
    acc = [0, 0, 60, 60, 60, 40, 60, 60, 60, 60, 60, 60]
    assert time_to_accuracy(T, acc, target=50.0, window=1) == pytest.approx(T[6])
    # with patience 2 the dip is 3 evaluations later and does not matter.
    assert time_to_accuracy(T, acc, target=50.0, window=1, patience=2) == pytest.approx(T[2])


def test_fewer_than_patience_remaining_must_all_hold() -> None:
    acc = [0, 0, 0, 0, 0, 0, 0, 0, 0, 60, 60, 60]
    # index 9 has only 2 evaluations after it, both >= target: reached at the end.
    assert time_to_accuracy(T, acc, target=50.0, window=1) == pytest.approx(T[9])
    acc_drop = [0, 0, 0, 0, 0, 0, 0, 0, 0, 60, 60, 40]
    assert time_to_accuracy(T, acc_drop, target=50.0, window=1) is None


def test_smoothing_changes_the_answer() -> None:
    # One spike above target: raw curve "reaches" only with patience 0; smoothed it never does.
    acc = [0, 0, 0, 0, 90, 0, 0, 0, 0, 0, 0, 0]
    assert time_to_accuracy(T, acc, target=50.0, window=1, patience=0) == pytest.approx(T[4])
    assert time_to_accuracy(T, acc, target=50.0, window=3, patience=0) is None
    # Noisy curve around the target: raw dips below it, the window-3 average holds it.
    noisy = [0, 0, 0, 58, 46, 58, 46, 58, 46, 58, 46, 46]
    assert time_to_accuracy(T, noisy, target=49.5, window=1) is None
    assert time_to_accuracy(T, noisy, target=49.5, window=3) == pytest.approx(T[5])


def test_nan_counts_as_below_target() -> None:
    acc = [60.0] * 12
    acc[4] = float("nan")
    assert time_to_accuracy(T, acc, target=50.0, window=1) == pytest.approx(T[5])


def test_per_cell_uses_best_of_any_method_in_the_group() -> None:
    it = list(range(12))
    curves = pd.concat(
        [
            pd.DataFrame({"cell_id": "a", "iteration": it, "train_seconds": T, "val_acc": 80.0}),
            pd.DataFrame({"cell_id": "b", "iteration": it, "train_seconds": T, "val_acc": 70.0}),
            pd.DataFrame({"cell_id": "c", "iteration": it, "train_seconds": T, "val_acc": 70.0}),
        ]
    )
    groups = pd.Series({"a": "g1", "b": "g1", "c": "g2"})
    per = tta_per_cell(curves, groups).set_index("cell_id")
    assert per.loc["a", "acc_max"] == 80.0 and per.loc["b", "acc_max"] == 80.0
    assert per.loc["c", "acc_max"] == 70.0
    assert per.loc["b", "target"] == pytest.approx(72.0)
    assert not per.loc["b", "reached"] and np.isnan(per.loc["b", "tta_seconds"])
    assert per.loc["a", "tta_seconds"] == pytest.approx(T[0])
    assert per.loc["c", "reached"]
