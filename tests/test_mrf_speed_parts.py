"""The MRF's compiled parts against numpy references: data costs, transport prices,
label prices and sub-cell refinement (correctness only; nothing here is timed)."""

import numpy as np
import pytest

from skcorr.flow._mrf._costs import data_cost, data_cost_window, window_offsets


def brute_force_costs(fs, ft):
    fs, ft = np.asarray(fs, np.float64), np.asarray(ft, np.float64)
    return ((fs[:, :, None, None, :] - ft[None, None]) ** 2).sum(-1)


def unit_columns(rng, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


# --------------------------------------------------------------------------------------
# Data costs: one matrix product
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("unit", [True, False])
def test_data_cost_at_real_sizes_matches_brute_force(unit):
    rng = np.random.default_rng(0)
    if unit:  # a PF-WILLOW-like problem: 304 channels of unit columns
        fs, ft = unit_columns(rng, (9, 11, 304)), unit_columns(rng, (10, 12, 304))
    else:
        fs = 7 * rng.standard_normal((9, 11, 304)) + 3
        ft = 7 * rng.standard_normal((10, 12, 304)) + 3
    ft[2, 3] = fs[4, 5]  # identical columns, and nearly identical ones
    ft[5, 6] = fs[1, 2] + 1e-3 * rng.standard_normal(304)
    costs = data_cost(fs, ft)
    expected = brute_force_costs(fs.astype(np.float32), ft.astype(np.float32))
    assert costs.dtype == np.float32 and costs.shape == (9, 11, 10, 12)
    np.testing.assert_allclose(costs, expected, rtol=2e-5, atol=0)
    assert costs[4, 5, 2, 3] == 0.0
    assert costs.min() >= 0


def test_data_cost_of_a_grid_with_itself_is_zero_on_the_diagonal():
    rng = np.random.default_rng(1)
    fs = unit_columns(rng, (6, 7, 300))
    costs = data_cost(fs, fs).reshape(42, 42)
    assert (np.diag(costs) == 0).all()
    assert (costs[~np.eye(42, dtype=bool)] > 0.5).all()


@pytest.mark.parametrize("centers", [None, (2, -3), "random", "scaled"])
def test_data_cost_window_at_real_sizes_matches_brute_force(centers):
    rng = np.random.default_rng(2)
    fs, ft = unit_columns(rng, (8, 10, 304)), unit_columns(rng, (11, 9, 304))
    ft[3, 4] = fs[3, 5]
    radius = 3
    if centers == "random":
        centers = rng.integers(-4, 5, size=(8, 10, 2))
    elif centers == "scaled":  # as align centres its windows: one row shift per source row
        centers = np.zeros((8, 10, 2), np.int64)
        rows = np.arange(8)[:, None]
        centers[..., 0] = np.rint(rows * 10 / 7).astype(int) - rows
    costs = data_cost_window(fs, ft, radius, centers)
    full = brute_force_costs(fs, ft)
    offsets = window_offsets((8, 10), radius, centers)
    rows, cols = np.indices((8, 10))
    y = (rows + offsets[..., 0])[..., None, None] + np.arange(7)[:, None]
    x = (cols + offsets[..., 1])[..., None, None] + np.arange(7)
    inside = (y >= 0) & (y < 11) & (x >= 0) & (x < 9)
    expected = np.where(inside, full[rows[..., None, None], cols[..., None, None],
                                     np.clip(y, 0, 10), np.clip(x, 0, 8)], np.inf)
    assert costs.shape == (8, 10, 7, 7) and costs.dtype == np.float32
    assert inside.any() and not inside.all()
    np.testing.assert_array_equal(np.isinf(costs), ~inside)
    np.testing.assert_allclose(costs[inside], expected[inside], rtol=2e-5, atol=0)
