"""Tests of the flow MRF kernels: distance transforms, min-sum BP, data costs."""

import itertools

import numpy as np
import pytest
from flow_reference import min_sum_bp_reference, synthetic_flow_pair
from hypothesis import given, settings
from hypothesis import strategies as st

from skcorr.flow._mrf._bp2d import distance_transform_1d, distance_transform_2d
from skcorr.flow._mrf._costs import (
    absolute_offsets,
    data_cost,
    data_cost_window,
    shift_label_grid,
    window_offsets,
)
from skcorr.flow._mrf._solve import bp_energy, coarse_to_fine_bp, min_sum_bp

WEIGHTS = st.sampled_from([0.0, 1e-3, 0.25, 1.0, 3.7, 50.0])
COST = st.one_of(st.floats(-50, 50), st.just(np.inf))


def brute_force_dt(f, weight, shift):
    """d[p] = min_q f[q] + weight ||p + shift - q||^2 over all grid points, any dimension."""
    f = np.asarray(f, dtype=float)
    grid = np.indices(f.shape).reshape(f.ndim, -1).T
    sq = ((grid[:, None, :] + np.asarray(shift) - grid[None, :, :]) ** 2).sum(-1)
    return (f.ravel()[None, :] + weight * sq).min(axis=1).reshape(f.shape)


def random_problem(rng, shape, labels, inf_fraction=0.2):
    """Random data costs with some forbidden labels (each node keeps a finite one)."""
    costs = rng.uniform(0, 5, size=shape + labels)
    costs[rng.random(costs.shape) < inf_fraction] = np.inf
    costs[..., 0, 0] = rng.uniform(0, 5, size=shape)
    return costs


def energy_by_loops(costs, labels, lam, offsets):
    """The MRF energy written out edge by edge."""
    H, W = costs.shape[:2]
    data = sum(costs[i, j, labels[i, j, 0], labels[i, j, 1]] for i in range(H) for j in range(W))
    w = labels + offsets
    smooth = 0.0
    for i, j in itertools.product(range(H), range(W)):
        for di, dj in ((1, 0), (0, 1)):
            if i + di < H and j + dj < W:
                smooth += lam * float(((w[i, j] - w[i + di, j + dj]) ** 2).sum())
    return data, smooth


# --------------------------------------------------------------------------------------
# Distance transforms
# --------------------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(f=st.lists(COST, min_size=1, max_size=25), weight=WEIGHTS,
       shift=st.integers(-30, 30))
def test_distance_transform_1d_matches_brute_force(f, weight, shift):
    np.testing.assert_allclose(distance_transform_1d(f, weight, shift),
                               brute_force_dt(f, weight, (shift,)), rtol=1e-12, atol=1e-9)


@settings(max_examples=100, deadline=None)
@given(shape=st.tuples(st.integers(1, 9), st.integers(1, 9)), weight=WEIGHTS,
       shift=st.tuples(st.integers(-12, 12), st.integers(-12, 12)),
       inf_fraction=st.sampled_from([0.0, 0.5, 1.0]), seed=st.integers(0, 2**16))
def test_distance_transform_2d_matches_brute_force(shape, weight, shift, inf_fraction, seed):
    rng = np.random.default_rng(seed)
    f = rng.uniform(-10, 10, size=shape)
    f[rng.random(shape) < inf_fraction] = np.inf
    np.testing.assert_allclose(distance_transform_2d(f, weight, shift),
                               brute_force_dt(f, weight, shift), rtol=1e-12, atol=1e-9)


def test_distance_transform_special_cases():
    f = np.array([3.0, np.inf, -1.0, 2.0])
    np.testing.assert_array_equal(distance_transform_1d(f, 0.0, shift=7), np.full(4, -1.0))
    np.testing.assert_array_equal(distance_transform_1d(np.full(3, np.inf)), np.full(3, np.inf))
    out = np.empty(4)
    assert distance_transform_1d(f, out=out) is out
    np.testing.assert_array_equal(out, [3.0, 0.0, -1.0, 0.0])


@pytest.mark.parametrize(("call", "message"), [
    (lambda: distance_transform_1d([1.0, np.nan]), "NaN"),
    (lambda: distance_transform_1d([1.0, -np.inf]), "-inf"),
    (lambda: distance_transform_1d([1.0], weight=-1), "weight"),
    (lambda: distance_transform_1d([[1.0]]), "1-D"),
    (lambda: distance_transform_2d(np.ones((2, 2)), out=np.empty((2, 3))), "out"),
])
def test_distance_transform_validation(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --------------------------------------------------------------------------------------
# Min-sum BP against the brute-force reference and exact minima
# --------------------------------------------------------------------------------------
def offsets_of(kind, shape, labels, rng):
    if kind == "absolute":
        return absolute_offsets(shape)
    if kind == "window":
        return window_offsets(shape, labels[0] // 2)
    return rng.integers(-4, 5, size=shape + (2,))


@pytest.mark.parametrize("kind", ["absolute", "window", "random"])
@pytest.mark.parametrize("seed", range(4))
def test_bp_messages_match_brute_force(kind, seed):
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(1, 5, size=2))
    labels = tuple(rng.integers(2, 5, size=2))
    costs = random_problem(rng, shape, labels)
    offsets = offsets_of(kind, shape, labels, rng)
    lam = [0.0, 0.3, 2.0, 0.05][seed]
    result, messages = min_sum_bp(costs, lam, offsets, max_iter=5, tol=0, patience=0,
                                  return_messages=True)
    ref_labels, ref_messages = min_sum_bp_reference(costs, lam, offsets, result.n_iter)
    np.testing.assert_allclose(messages, ref_messages, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(result.labels, ref_labels)


@pytest.mark.parametrize("kind", ["absolute", "window", "random"])
@pytest.mark.parametrize("shape", [(1, 4), (4, 1)])
@pytest.mark.parametrize("seed", range(3))
def test_bp_is_exact_on_a_chain(kind, shape, seed):
    rng = np.random.default_rng(seed)
    labels = (3, 3)
    costs = rng.uniform(0, 4, size=shape + labels)
    offsets = offsets_of(kind, shape, labels, rng)
    lam = 0.7
    result = min_sum_bp(costs, lam, offsets)
    # Every labelling of the 4 nodes: 9**4 of them.
    flat = np.array(list(itertools.product(range(9), repeat=4)))
    all_labels = np.stack(np.divmod(flat, 3), axis=-1).reshape((-1,) + shape + (2,))
    w = all_labels + offsets
    axis = 1 if shape[0] > 1 else 2
    smooth = lam * (np.diff(w, axis=axis) ** 2).sum(axis=(1, 2, 3))
    i, j = np.indices(shape)
    data = costs[i, j, all_labels[..., 0], all_labels[..., 1]].sum(axis=(1, 2))
    energies = data + smooth
    assert result.energy == pytest.approx(energies.min(), rel=1e-12)
    np.testing.assert_array_equal(result.labels, all_labels[energies.argmin()])


@pytest.mark.parametrize("kind", ["absolute", "window", "random"])
def test_reported_energy_equals_recomputed(kind):
    rng = np.random.default_rng(7)
    shape, labels = (5, 6), (4, 3)
    costs = random_problem(rng, shape, labels)
    offsets = offsets_of(kind, shape, labels, rng)
    for result in (min_sum_bp(costs, 0.4, offsets),
                   coarse_to_fine_bp(costs, 0.4, offsets, window=1)):
        data, smooth = energy_by_loops(costs, result.labels, 0.4, offsets)
        assert result.data_energy == pytest.approx(data, rel=1e-12)
        assert result.smoothness_energy == pytest.approx(smooth, rel=1e-12)
        assert bp_energy(costs, result.labels, 0.4, offsets) == pytest.approx((data, smooth))
        np.testing.assert_array_equal(result.displacements, result.labels + offsets)
        assert result.labels.dtype == np.int64 and result.labels.shape == shape + (2,)


def test_bp_without_smoothness_takes_each_nodes_best_label():
    rng = np.random.default_rng(3)
    costs = random_problem(rng, (3, 4), (3, 5)).astype(np.float32)
    result, messages = min_sum_bp(costs, 0.0, return_messages=True)
    best = costs.reshape(3, 4, -1).argmin(-1)
    np.testing.assert_array_equal(result.labels, np.stack(np.divmod(best, 5), axis=-1))
    np.testing.assert_array_equal(messages, 0.0)
    assert result.smoothness_energy == 0.0


def test_stopping_rules():
    rng = np.random.default_rng(5)
    costs = random_problem(rng, (6, 6), (4, 4))
    assert min_sum_bp(costs, 0.0).n_iter == 1  # all messages stay 0: converged at once
    assert min_sum_bp(costs, 0.5, max_iter=2, tol=0, patience=0).n_iter == 2
    # The first iteration always changes the labelling, so patience p needs p + 1 at least.
    patient = min_sum_bp(costs, 0.5, tol=0, patience=2)
    assert 3 <= patient.n_iter <= 100


# --------------------------------------------------------------------------------------
# Flow recovery on synthetic feature grids
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def synthetic():
    """A 12x12 pair noisy enough that the data term alone gets about 60% within 1 label."""
    return synthetic_flow_pair((12, 12), n_features=16, amplitude=2.0, noise=1.2, seed=2)


def recovered(displacements, flow):
    return (np.abs(displacements - flow).max(axis=-1) <= 1).mean()


@pytest.mark.parametrize("solver", [min_sum_bp, coarse_to_fine_bp])
def test_flow_recovered_with_every_target_position(synthetic, solver):
    fs, ft, flow = synthetic
    costs = data_cost(fs, ft)
    offsets = absolute_offsets(fs.shape[:2])
    best_data = np.stack(np.unravel_index(costs.reshape(12, 12, -1).argmin(-1), (12, 12)), -1)
    assert recovered(best_data + offsets, flow) < 0.8  # the smoothness term is needed
    result = solver(costs, 1.0, offsets)
    assert recovered(result.displacements, flow) >= 0.95
    # The labels are the target positions.
    np.testing.assert_array_equal(result.labels, result.displacements + np.indices((12, 12))
                                  .transpose(1, 2, 0))


@pytest.mark.parametrize("solver", [min_sum_bp, coarse_to_fine_bp])
def test_flow_recovered_in_a_window(synthetic, solver):
    fs, ft, flow = synthetic
    radius = 3
    costs = data_cost_window(fs, ft, radius)
    result = solver(costs, 1.0, window_offsets(fs.shape[:2], radius))
    assert recovered(result.displacements, flow) >= 0.95


@pytest.mark.parametrize("levels", [1, 2])
def test_coarse_to_fine_nearly_equals_flat_bp(levels):
    fs, ft, flow = synthetic_flow_pair((16, 16), n_features=16, amplitude=2.5, noise=1.0,
                                       seed=4)
    costs = data_cost(fs, ft)
    offsets = absolute_offsets((16, 16))
    flat = min_sum_bp(costs, 2.0, offsets)
    c2f = coarse_to_fine_bp(costs, 2.0, offsets, levels=levels, window=2)
    assert (c2f.labels == flat.labels).all(-1).mean() >= 0.95
    assert c2f.energy <= 1.02 * flat.energy
    flat_again = coarse_to_fine_bp(costs, 2.0, offsets, levels=0)
    np.testing.assert_array_equal(flat_again.labels, flat.labels)
    assert flat_again.energy == flat.energy


def test_coarse_to_fine_keeps_nodes_without_window_labels_feasible():
    # Node (0, 0) may only take label (0, 0), far from where its block's coarse flow goes.
    costs = np.full((4, 4, 9, 9), 10.0)
    costs[:, :, 8, 8] = 0.0
    costs[0, 0] = np.inf
    costs[0, 0, 0, 0] = 0.0
    result = coarse_to_fine_bp(costs, 0.01, window=1)
    assert np.isfinite(result.energy)
    np.testing.assert_array_equal(result.labels[0, 0], [0, 0])


# --------------------------------------------------------------------------------------
# Data costs
# --------------------------------------------------------------------------------------
def test_data_cost_matches_brute_force(rng):
    fs = rng.standard_normal((3, 4, 5))
    ft = rng.standard_normal((6, 2, 5))
    costs = data_cost(fs, ft)
    expected = ((fs[:, :, None, None, :] - ft[None, None]) ** 2).sum(-1)
    assert costs.dtype == np.float32 and costs.shape == (3, 4, 6, 2)
    np.testing.assert_allclose(costs, expected, rtol=1e-5, atol=1e-5)
    assert (data_cost(fs, fs)[np.arange(3)[:, None], np.arange(4), np.arange(3)[:, None],
                                np.arange(4)] >= 0).all()


@pytest.mark.parametrize("centers", [None, (1, -2), "random"])
def test_data_cost_window_matches_brute_force(rng, centers):
    fs = rng.standard_normal((5, 4, 3)).astype(np.float32)
    ft = rng.standard_normal((6, 5, 3)).astype(np.float32)
    if centers == "random":
        centers = rng.integers(-3, 4, size=(5, 4, 2))
    radius = 2
    costs = data_cost_window(fs, ft, radius, centers)
    full = data_cost(fs, ft)
    offsets = window_offsets((5, 4), radius, centers)
    assert costs.shape == (5, 4, 5, 5) and costs.dtype == np.float32
    for i, j, a, b in itertools.product(range(5), range(4), range(5), range(5)):
        y, x = np.array([i, j]) + offsets[i, j] + (a, b)
        inside = 0 <= y < 6 and 0 <= x < 5
        # the same distances as data_cost's (up to float32 rounding: other products)
        assert costs[i, j, a, b] == (pytest.approx(full[i, j, y, x], rel=1e-5) if inside
                                     else np.inf)


def test_shift_label_grid():
    costs = np.arange(2 * 1 * 3 * 3, dtype=float).reshape(2, 1, 3, 3)
    out = shift_label_grid(costs, [[[1, -1]], [[0, 0]]], (2, 2))
    np.testing.assert_array_equal(out[0, 0], [[np.inf, 3.0], [np.inf, 6.0]])
    np.testing.assert_array_equal(out[1, 0], costs[1, 0, :2, :2])


# --------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------
def _costs():
    return np.ones((2, 3, 2, 2))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"costs": np.ones((2, 3, 4))}, r"\(H, W, Ly, Lx\)"),
    ({"costs": np.where(np.eye(2, dtype=bool), np.nan, 1.0)[None, None]}, "NaN"),
    ({"costs": -np.full((1, 1, 2, 2), np.inf)}, "-inf"),
    ({"costs": np.full((2, 2, 2, 2), np.inf)}, r"node \(0, 0\) has no allowed label"),
    ({"offsets": np.zeros((3, 2, 2), int)}, "offsets"),
    ({"offsets": np.full((2, 3, 2), 0.5)}, "integers"),
])
def test_min_sum_bp_validation(kwargs, message):
    args = {"costs": _costs(), "lam": 1.0} | kwargs
    with pytest.raises(ValueError, match=message):
        min_sum_bp(**args)


@pytest.mark.parametrize(("call", "message"), [
    (lambda: data_cost(np.ones((2, 2, 3)), np.ones((2, 2, 4))), "same number of features"),
    (lambda: data_cost(np.ones((2, 3)), np.ones((2, 2, 3))), "fs must be"),
    (lambda: data_cost(np.ones((2, 2, 3)), np.full((2, 2, 3), np.nan)), "finite"),
    (lambda: data_cost_window(np.ones((2, 2, 3)), np.ones((2, 2, 3)), -1), "radius"),
    (lambda: data_cost_window(np.ones((2, 2, 3)), np.ones((2, 2, 3)), 1, np.ones((3, 2))),
     "centers"),
    (lambda: bp_energy(_costs(), np.full((2, 3, 2), 2), 1.0), "label grid"),
])
def test_other_validation(call, message):
    with pytest.raises(ValueError, match=message):
        call()
