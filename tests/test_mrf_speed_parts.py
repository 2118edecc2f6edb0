"""The MRF's compiled parts against numpy references: data costs, transport prices,
label prices and sub-cell refinement (correctness only; nothing here is timed)."""

import numpy as np
import pytest
from flow_reference import label_prices_reference, subcell_reference, target_prices_reference

from skcorr.flow._mrf._costs import (
    absolute_offsets,
    add_label_prices,
    data_cost,
    data_cost_window,
    window_offsets,
)
from skcorr.flow._mrf._refine import subcell_offsets
from skcorr.flow._mrf._solve import _trunc2, coarse_to_fine_bp
from skcorr.flow._mrf._transport import target_prices


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


# --------------------------------------------------------------------------------------
# Transport prices: stabilised Sinkhorn
# --------------------------------------------------------------------------------------
def column_imbalance(costs, prices, reg):
    """Largest relative error of the target nodes' masses in the plan of the prices."""
    n = costs.shape[0] * costs.shape[1]
    flat = (np.asarray(costs, np.float64) + prices).reshape(n, -1)
    plan = np.exp(-(flat - flat.min(1, keepdims=True)) / reg)
    plan /= plan.sum(1, keepdims=True)
    return np.abs(plan.sum(0) * flat.shape[1] / n - 1).max()


def unit_costs(seed, shape=(20, 30)):
    rng = np.random.default_rng(seed)
    return data_cost(unit_columns(rng, shape + (304,)), unit_columns(rng, shape + (304,)))


def test_prices_at_a_small_reg_are_finite_and_balance_the_columns():
    costs = unit_costs(3)  # a PF-WILLOW-sized problem: 600 nodes and labels
    costs[..., 5, 7] += 1.0  # a target node every source node dislikes
    reg = 1e-3
    old = target_prices_reference(costs, reg)
    assert column_imbalance(costs, old, reg) > 0.5  # plain scalings underflowed there
    prices = target_prices(costs, reg)
    assert np.isfinite(prices).all() and prices.min() == 0
    assert column_imbalance(costs, prices, reg) < 1e-2
    assert prices[5, 7] == 0  # the disliked node is the cheapest
    np.testing.assert_allclose(prices, target_prices(costs, reg), rtol=0, atol=0)


@pytest.mark.parametrize("reg", [0.05, 0.2, 0.5])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_prices_equal_the_plain_scalings_where_they_are_finite(reg, dtype):
    costs = unit_costs(4, (12, 15)).astype(dtype)
    costs[..., 3, 4] -= 0.3  # a hub
    prices = target_prices(costs, reg, tol=1e-9, max_iter=5000)
    expected = target_prices_reference(costs, reg, tol=1e-9, max_iter=5000)
    assert np.isfinite(expected).all()
    np.testing.assert_allclose(prices, expected, rtol=0, atol=1e-6)
    assert prices[3, 4] == prices.max()
    assert column_imbalance(costs, prices, reg) < 1e-6
    # at the flow's tolerance both stop within reg * tol of the solution
    np.testing.assert_allclose(target_prices(costs, reg), target_prices_reference(costs, reg),
                               rtol=0, atol=20 * reg * 1e-4)


def test_prices_of_large_costs_do_not_overflow():
    rng = np.random.default_rng(5)
    costs = rng.uniform(0, 4000, size=(6, 7, 5, 8))  # unnormalised columns
    prices = target_prices(costs, 0.5, max_iter=20000)
    assert np.isfinite(prices).all()
    assert column_imbalance(costs, prices, 0.5) < 1e-3


@pytest.mark.parametrize(("costs", "reg", "message"), [
    (np.ones((2, 2, 2)), 0.5, r"\(rows, cols, t_rows, t_cols\)"),
    (np.ones((2, 0, 2, 2)), 0.5, "non-empty"),
    (np.where(np.eye(2, dtype=bool), np.nan, 1.0)[None, None], 0.5, "NaN or inf"),
    (np.full((1, 1, 2, 2), np.inf), 0.5, "NaN or inf"),
    (np.ones((1, 1, 2, 2)), 0.0, "reg must be"),
    (np.ones((1, 1, 2, 2)), np.nan, "reg must be"),
])
def test_prices_reject_bad_input(costs, reg, message):
    with pytest.raises(ValueError, match=message):
        target_prices(costs, reg)


# --------------------------------------------------------------------------------------
# Label prices and sub-cell refinement: compiled, against today's numpy
# --------------------------------------------------------------------------------------
def random_flow_problem(rng, window, dtype=np.float32):
    """Costs, offsets and a BP labelling: every target position, or a window of radius 2."""
    fs, ft = rng.standard_normal((7, 9, 6)), rng.standard_normal((8, 6, 6))
    if window:
        centers = rng.integers(-2, 3, size=(7, 9, 2))
        costs, offsets = data_cost_window(fs, ft, 2, centers), window_offsets((7, 9), 2, centers)
        costs[rng.random(costs.shape) < 0.1] = np.inf  # some labels not allowed
        dead = ~np.isfinite(costs).any(axis=(2, 3))  # windows off the target grid
        costs[dead, 2, 2] = rng.uniform(0, 4, size=dead.sum())
    else:
        costs, offsets = data_cost(fs, ft), absolute_offsets((7, 9))
    return costs.astype(dtype), offsets


@pytest.mark.parametrize("window", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_label_prices_match_numpy(window, dtype):
    rng = np.random.default_rng(6)
    costs, offsets = random_flow_problem(rng, window, dtype)
    prices = rng.uniform(0, 1, size=(8, 6))
    priced = add_label_prices(costs, prices, offsets)
    expected = (costs + label_prices_reference(prices, offsets, costs.shape)).astype(dtype)
    assert priced.dtype == dtype
    np.testing.assert_array_equal(priced, expected)
    assert (priced[np.isfinite(costs)] > costs[np.isfinite(costs)]).any()


@pytest.mark.parametrize("window", [False, True])
@pytest.mark.parametrize("truncation", [None, 1.0, 3.0])
@pytest.mark.parametrize("seed", range(3))
def test_subcell_matches_numpy(window, truncation, seed):
    rng = np.random.default_rng(seed)
    costs, offsets = random_flow_problem(rng, window)
    trunc2 = _trunc2(truncation)
    for lam, labels in ((0.3, coarse_to_fine_bp(costs, 0.3, offsets, truncation=truncation)
                         .labels),  # a solved labelling, and labels at the grid's border
                        (1.5, np.stack([rng.integers(0, costs.shape[2], (7, 9)),
                                        rng.integers(0, costs.shape[3], (7, 9))], -1))):
        at_label = (np.arange(7)[:, None], np.arange(9), labels[..., 0], labels[..., 1])
        costs[at_label] = np.where(np.isfinite(costs[at_label]), costs[at_label], 1.0)
        for sweeps in (1, 3):
            refined = subcell_offsets(costs, labels, offsets, lam, trunc2, sweeps)
            expected = subcell_reference(costs, labels, offsets, lam, trunc2, sweeps)
            np.testing.assert_array_equal(refined, expected)
            assert (refined != 0).any() and np.abs(refined).max() <= 0.5
