"""The batched check's comparison in Python floats (:func:`matderiv.verify._few_row_maxima`)
gives the very floats of its NumPy form (:func:`matderiv.verify._row_maxima` of the central
differences), NaN and infinities included."""
from __future__ import annotations

import numpy as np

from matderiv import verify

_SPECIAL = [np.nan, np.inf, -np.inf, -0.0, 0.0, 1e308, -1e308, 1e-320]


def _same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(x == y or (x != x and y != y) for x, y in zip(a, b))


def test_python_rows_are_the_numpy_rows():
    rng = np.random.default_rng(0)
    with np.errstate(all="ignore"):
        for _ in range(3000):
            draws, r, c = (int(v) for v in rng.integers(1, 4, size=3))
            points = rng.standard_normal((draws * 5, r, c)) * 10.0 ** int(rng.integers(-8, 9))
            pred = rng.standard_normal((draws, r * c))
            if rng.random() < 0.3:
                index = tuple(int(rng.integers(0, s)) for s in points.shape)
                points[index] = _SPECIAL[int(rng.integers(0, len(_SPECIAL)))]
            if rng.random() < 0.2:
                pred[int(rng.integers(0, draws)), int(rng.integers(0, r * c))] = \
                    _SPECIAL[int(rng.integers(0, len(_SPECIAL)))]
            h = float(rng.choice([1e-3, 1e-3 / 4]))
            f0, fd = verify._value_and_difference(points, draws, h)
            reference = verify._row_maxima(pred - fd, fd, f0)
            rows = points.swapaxes(-1, -2).reshape(draws, 5, -1).tolist()
            mine = verify._few_row_maxima(pred.tolist(), rows, h)
            assert all(_same(a, b) for a, b in zip(reference, mine))


def test_max_abs_keeps_nan_wherever_it_stands():
    nan = float("nan")
    for values in ([nan, 1.0], [1.0, nan], [2.0, nan, 3.0], [nan]):
        assert verify._max_abs(values) != verify._max_abs(values)
    assert verify._max_abs([-3.0, 2.0, float("-inf")]) == float("inf")
    assert verify._max_abs([-0.0]) == 0.0
