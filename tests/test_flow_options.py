"""The flow's robust options: truncated smoothness, transport prices, sub-cell matches."""

import numpy as np
import pytest
from flow_reference import (
    dual_bp_reference,
    exhaustive_minimum,
    min_sum_bp_reference,
)

from skcorr.features import FeatureMap
from skcorr.flow import FlowAligner, align
from skcorr.flow._mrf._costs import absolute_offsets, data_cost, window_offsets
from skcorr.flow._mrf._refine import subcell_offsets
from skcorr.flow._mrf._solve import bp_energy, coarse_to_fine_bp, dual_layer_bp, min_sum_bp
from skcorr.flow._mrf._transport import target_prices


def random_problem(rng, shape, labels):
    return rng.uniform(0, 4, size=shape + labels)


def grid_map(columns, stride=16.0):
    rows, cols = columns.shape[:2]
    return FeatureMap(features=columns, xs=stride / 2 + stride * np.arange(cols),
                      ys=stride / 2 + stride * np.arange(rows), rf_size=2 * stride,
                      image_shape=(int(stride * rows), int(stride * cols)))


# --------------------------------------------------------------------------------------
# Truncated smoothness: the kernels against brute force and exhaustive search
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("truncation", [0.5, 1.0, 2.5])
@pytest.mark.parametrize("seed", range(3))
def test_truncated_messages_match_brute_force(truncation, seed):
    rng = np.random.default_rng(seed)
    shape, labels = (3, 4), (4, 5)
    costs = random_problem(rng, shape, labels)
    offsets = rng.integers(-3, 4, size=shape + (2,))
    result, messages = min_sum_bp(costs, 0.8, offsets, max_iter=4, tol=0, patience=0,
                                  truncation=truncation, return_messages=True)
    _, ref = min_sum_bp_reference(costs, 0.8, offsets, result.n_iter, truncation**2)
    np.testing.assert_allclose(messages, ref, rtol=0, atol=1e-9)
    plain = min_sum_bp(costs, 0.8, offsets, max_iter=4, tol=0, patience=0,
                       return_messages=True)[1]
    assert not np.allclose(messages, plain)  # the truncation took effect
    result, (mu, mv) = dual_layer_bp(costs, 0.8, offsets, max_iter=4, tol=0, patience=0,
                                     truncation=truncation, return_messages=True)
    ref_mu, ref_mv = dual_bp_reference(costs, 0.8, offsets, result.n_iter, truncation**2)
    np.testing.assert_allclose(mu, ref_mu, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(mv, ref_mv, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("solver", [min_sum_bp, dual_layer_bp])
def test_truncated_energies_against_exhaustive_search(solver):
    rng = np.random.default_rng(5)
    shape, labels, lam, truncation = (2, 3), (3, 3), 0.6, 1.0
    found = 0
    for _ in range(10):
        costs = random_problem(rng, shape, labels)
        offsets = absolute_offsets(shape)
        best, _ = exhaustive_minimum(costs, lam, offsets, truncation**2)
        result = solver(costs, lam, offsets, truncation=truncation)
        assert result.energy >= best - 1e-6
        data, smooth = bp_energy(costs, result.labels, lam, offsets, truncation=truncation)
        assert result.energy == pytest.approx(data + smooth, rel=1e-6)
        found += result.energy <= best + 1e-5
    assert found >= 7, f"optimum found on {found} of 10 problems"


def test_bp_energy_truncates_each_axis():
    costs = np.zeros((1, 2, 9, 9))
    labels = np.array([[[0, 0], [5, 1]]])  # one edge: dy = 5, dx = 1
    assert bp_energy(costs, labels, 2.0)[1] == pytest.approx(2.0 * (25 + 1))
    assert bp_energy(costs, labels, 2.0, truncation=2)[1] == pytest.approx(2.0 * (4 + 1))


def two_motions(rows=8, cols=10, n_features=12, seed=0):
    """Source columns 0-3 stay in place, columns 4-9 move 4 steps right in the target."""
    rng = np.random.default_rng(seed)
    target = rng.normal(size=(rows, cols + 4, n_features))
    target /= np.linalg.norm(target, axis=2, keepdims=True)
    moved_to = np.where(np.arange(cols) < 4, 0, 4) + np.arange(cols)
    true = np.stack(np.broadcast_arrays(np.arange(rows)[:, None], moved_to[None]), axis=-1)
    return grid_map(target[:, moved_to]), grid_map(target), true


@pytest.mark.parametrize("solver", ["dual", "2d"])
def test_truncation_lets_the_flow_break_where_the_motion_does(solver):
    source, target, true = two_motions()
    # A strong smoothness smears the quadratic flow across the break; the truncated one
    # pays a bounded price for it and keeps both motions exactly.
    plain = align(source, target, lam=1.0, solver=solver, levels=0)
    truncated = align(source, target, lam=1.0, truncation=1.0, solver=solver, levels=0)
    np.testing.assert_array_equal(truncated.target_index, true)
    assert (plain.target_index != true).any(axis=-1).sum() >= 4
    # deformation is the truncated smoothness: energy = data + lam * deformation
    w = truncated.displacement
    expected = sum(np.minimum(np.diff(w, axis=a) ** 2, 1.0).sum() for a in (0, 1))
    assert truncated.deformation == pytest.approx(expected)


def test_truncation_changes_nothing_when_above_every_difference():
    rng = np.random.default_rng(1)
    costs = random_problem(rng, (5, 6), (4, 4))
    offsets = window_offsets((5, 6), 1, rng.integers(-1, 2, size=(5, 6, 2)))
    plain = coarse_to_fine_bp(costs, 0.3, offsets, window=1)
    wide = coarse_to_fine_bp(costs, 0.3, offsets, window=1, truncation=1e6)
    np.testing.assert_array_equal(plain.labels, wide.labels)
    assert plain.energy == pytest.approx(wide.energy, rel=1e-9)


# --------------------------------------------------------------------------------------
# Transport prices
# --------------------------------------------------------------------------------------
def test_target_prices_balance_the_matches():
    rng = np.random.default_rng(2)
    costs = rng.uniform(0, 2, size=(4, 5, 3, 6))
    costs[..., 1, 2] -= 1.0  # a hub every source node prefers
    reg = 0.3
    prices = target_prices(costs, reg, tol=1e-9, max_iter=2000)
    assert prices.shape == (3, 6) and prices.min() == 0.0
    assert prices[1, 2] == prices.max()
    # With the prices, each source node's softmin over targets is its row of the
    # transport plan: every target node then receives the same mass.
    flat = (costs + prices).reshape(20, 18)
    plan = np.exp(-(flat - flat.min(1, keepdims=True)) / reg)
    plan /= plan.sum(1, keepdims=True)
    np.testing.assert_allclose(plan.sum(0), 20 / 18, rtol=1e-6)
    # a cost that is the same for every target of a source node changes no price
    shifted = costs + rng.uniform(0, 3, size=(4, 5, 1, 1))
    np.testing.assert_allclose(target_prices(shifted, reg, tol=1e-9, max_iter=2000), prices,
                               atol=1e-6)


@pytest.mark.parametrize("radius", [None, 20])
def test_transport_prices_enter_the_data_costs(radius):
    rng = np.random.default_rng(3)
    source = grid_map(rng.normal(size=(4, 5, 8)))
    target = grid_map(rng.normal(size=(5, 6, 8)))
    # lam 0: each node takes its cheapest label, so the flow shows the costs it used
    flow = align(source, target, lam=0, ot_reg=0.5, radius=radius)
    costs = data_cost(source.features, target.features)
    priced = costs + target_prices(costs, 0.5)
    best = priced.reshape(4, 5, -1).argmin(-1)
    np.testing.assert_array_equal(flow.target_index, np.stack(np.divmod(best, 6), axis=-1))
    assert (flow.target_index != align(source, target, lam=0).target_index).any()


# --------------------------------------------------------------------------------------
# Sub-cell matches
# --------------------------------------------------------------------------------------
def smooth_field(shift, rows=6, cols=12, frequency=0.3):
    """Columns that vary smoothly along x, sampled at x + shift (in grid steps)."""
    x = np.arange(cols) + shift
    k = frequency * np.arange(1, 4)
    columns = np.concatenate([np.cos(np.outer(x, k)), np.sin(np.outer(x, k))], axis=1)
    return grid_map(np.repeat(columns[None] / np.sqrt(3), rows, axis=0))


@pytest.mark.parametrize("shift", [-0.3, 0.2, 0.4])
def test_subcell_recovers_a_fractional_shift(shift):
    source, target = smooth_field(shift), smooth_field(0.0)
    flow = align(source, target, lam=0.05, subcell=True)
    inner = flow.subcell[:, 2:-2]  # away from the grid's ends
    np.testing.assert_allclose(inner[..., 0], 0.0, atol=1e-9)  # no change along y
    estimate = inner[..., 1] + flow.displacement[:, 2:-2, 1]
    np.testing.assert_allclose(estimate, shift, atol=0.03)
    # One sweep measures the smoothness to the neighbours' grid nodes, which pulls the
    # estimate towards the grid; the later sweeps undo most of that pull.
    costs = data_cost(source.features, target.features)
    labels = flow.target_index
    one = subcell_offsets(costs, labels, absolute_offsets(labels.shape[:2]), 0.05, np.inf,
                          sweeps=1)
    first = one[:, 2:-2, 1] + flow.displacement[:, 2:-2, 1]
    assert (np.abs(first - shift) > np.abs(estimate - shift) + 0.02).all()
    points = np.stack([source.xs[2:-2], np.full(8, source.ys[2])], axis=1)
    true = points + [16 * shift, 0.0]
    coarse = align(source, target, lam=0.05)
    assert coarse.subcell is None
    fine_error = np.abs(flow.transfer_points(points) - true).max()
    assert fine_error < 0.1 * 16 < np.abs(coarse.transfer_points(points) - true).max()


def test_subcell_is_clipped_and_keeps_labels_at_the_border():
    rng = np.random.default_rng(4)
    source = grid_map(rng.normal(size=(5, 6, 8)))
    target = grid_map(rng.normal(size=(5, 6, 8)))
    flow = align(source, target, lam=0.2, truncation=2, ot_reg=0.4, subcell=True)
    assert flow.subcell.shape == (5, 6, 2)
    assert np.abs(flow.subcell).max() <= 0.5
    on_edge = (flow.target_index == 0) | (flow.target_index == [[[4, 5]]])
    assert (flow.subcell[on_edge] == 0).all()
    matched = flow.matched_points()
    assert np.isfinite(matched).all()


# --------------------------------------------------------------------------------------
# Validation and estimators
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kwargs", "name"), [
    ({"lam": -1.0}, "lam"), ({"lam": np.nan}, "lam"), ({"lam": np.inf}, "lam"),
    ({"lam": True}, "lam"), ({"lam": "0.1"}, "lam"),
    ({"truncation": 0}, "truncation"), ({"truncation": -2.0}, "truncation"),
    ({"truncation": "3"}, "truncation"), ({"truncation": True}, "truncation"),
    ({"ot_reg": 0.0}, "ot_reg"), ({"ot_reg": np.inf}, "ot_reg"), ({"ot_reg": "0.2"}, "ot_reg"),
    ({"subcell": "yes"}, "subcell"), ({"levels": -1}, "levels"), ({"levels": 1.5}, "levels"),
    ({"levels": True}, "levels"), ({"radius": -1}, "radius"), ({"max_iter": 0}, "max_iter"),
    ({"tol": -1.0}, "tol"), ({"patience": -1}, "patience"), ({"solver": None}, "solver"),
])
def test_align_checks_each_setting(kwargs, name):
    """One place checks the flow's settings: align, with scikit-learn's validation."""
    grid = grid_map(np.ones((3, 3, 4)) / 2)
    with pytest.raises(ValueError, match=f"The '{name}' parameter of align must be"):
        align(grid, grid, **kwargs)


def test_a_truncation_beyond_every_displacement_is_the_plain_quadratic():
    source, target, _ = two_motions()
    plain = align(source, target, lam=1.0)
    for huge in (1e12, 1e200):  # squaring 1e200 overflowed
        flow = align(source, target, lam=1.0, truncation=huge)
        np.testing.assert_array_equal(flow.target_index, plain.target_index)
        assert flow.deformation == plain.deformation


def test_flow_aligner_passes_the_options_to_align():
    source, target, true = two_motions()
    aligner = FlowAligner(lam=1.0, truncation=1.0, ot_reg=0.5, subcell=True)
    assert {"truncation": 1.0, "ot_reg": 0.5, "subcell": True}.items() <= \
        aligner.get_params().items()
    flow = aligner.align(source, target)
    expected = align(source, target, lam=1.0, truncation=1.0, ot_reg=0.5, subcell=True)
    np.testing.assert_array_equal(flow.target_index, expected.target_index)
    np.testing.assert_array_equal(flow.subcell, expected.subcell)
    with pytest.raises(ValueError, match="truncation"):
        FlowAligner(truncation=0).align(source, target)


def test_the_price_of_a_hub_rises():
    costs = np.array([[0.0, 1.0], [0.0, 0.5]]).reshape(1, 2, 1, 2)  # both prefer node 0
    prices = target_prices(costs, reg=0.5)
    assert prices[0, 0] > prices[0, 1]
