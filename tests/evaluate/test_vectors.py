"""unit_rows: rows of length one, directions kept, zero rows left at zero (no NaN)."""

import numpy as np

from astroembed.evaluate.vectors import unit_rows


def test_rows_have_unit_length_and_keep_their_direction():
    X = np.array([[3.0, 4.0], [0.0, -2.0], [1e-3, 1e-3]])
    expected = np.array([[0.6, 0.8], [0.0, -1.0], [2 ** -0.5, 2 ** -0.5]])
    assert np.allclose(unit_rows(X), expected)


def test_zero_row_stays_zero():
    out = unit_rows(np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]))
    assert np.isfinite(out).all() and np.array_equal(out[0], [0.0, 0.0, 0.0])
