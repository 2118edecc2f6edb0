"""Dual-layer BP (the default flow solver): messages, energies, stopping, validation."""

import numpy as np
import pytest
from flow_reference import (
    dual_bp_reference,
    exhaustive_minimum,
    random_problem,
    synthetic_flow_pair,
)

from skcorr.features import FeatureMap
from skcorr.flow import align
from skcorr.flow._mrf._costs import (
    absolute_offsets,
    coarsen_costs,
    data_cost,
    data_cost_window,
    shift_label_grid,
    window_offsets,
)
from skcorr.flow._mrf._solve import bp_energy, coarse_to_fine_bp, dual_layer_bp, min_sum_bp


def offsets_of(kind, shape, labels, rng):
    if kind == "absolute":
        return absolute_offsets(shape)
    if kind == "window":
        return window_offsets(shape, labels[0] // 2, rng.integers(-2, 3, size=shape + (2,)))
    return rng.integers(-3, 4, size=shape + (2,))


@pytest.mark.parametrize("kind", ["absolute", "window", "random"])
@pytest.mark.parametrize("seed", [0, 1])
def test_messages_match_brute_force_dual_layer_bp(kind, seed):
    rng = np.random.default_rng(seed)
    shape, labels = (4, 5), (3, 4)
    costs = random_problem(rng, shape, labels, inf_fraction=0.2)
    offsets = offsets_of(kind, shape, labels, rng)
    result, (mu, mv) = dual_layer_bp(costs, 0.7, offsets, max_iter=4, tol=0, patience=0,
                                     return_messages=True)
    ref_mu, ref_mv = dual_bp_reference(costs, 0.7, offsets, result.n_iter)
    assert result.n_iter == 4
    np.testing.assert_allclose(mu, ref_mu, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(mv, ref_mv, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("kind", ["absolute", "window", "random"])
def test_energy_against_exhaustive_search_on_tiny_grids(kind):
    """Loopy BP on the dual-layer graph is not exact; it must find the optimum on most
    tiny problems, stay close on the rest, and never lose to nearest-label matching."""
    rng = np.random.default_rng(3)
    shape, labels, lam = (2, 3), (2, 3), 0.3
    found, excess = 0, []
    for _ in range(12):
        costs = random_problem(rng, shape, labels, inf_fraction=0.0)
        offsets = offsets_of(kind, shape, labels, rng)
        best, _ = exhaustive_minimum(costs, lam, offsets)
        result = dual_layer_bp(costs, lam, offsets)
        nearest = np.stack(np.divmod(costs.reshape(shape + (-1,)).argmin(-1), labels[1]), -1)
        assert result.energy >= best - 1e-9
        assert result.energy <= sum(bp_energy(costs, nearest, lam, offsets)) + 1e-9
        assert result.energy == pytest.approx(sum(bp_energy(costs, result.labels, lam, offsets)))
        found += result.energy <= best + 1e-6
        excess.append(result.energy / best - 1)
    assert found >= 9, f"optimum found on {found} of 12 problems"
    assert max(excess) < 0.1


def test_dual_and_2d_bp_agree_on_a_chain():
    # on a chain with one label axis the dual-layer graph is a tree: both are exact
    rng = np.random.default_rng(5)
    costs = rng.uniform(0, 4, size=(1, 7, 1, 6))
    best, labels = exhaustive_minimum(costs, 0.5, np.zeros((1, 7, 2), np.int64))
    for solve in (dual_layer_bp, min_sum_bp):
        result = solve(costs, 0.5)
        assert result.energy == pytest.approx(best)
        np.testing.assert_array_equal(result.labels, labels)


@pytest.mark.parametrize("levels", [0, 1, 2])
@pytest.mark.parametrize("labels", ["all", "window"])
def test_recovers_a_smooth_flow(levels, labels):
    fs, ft, flow = synthetic_flow_pair((12, 14), amplitude=2.0, noise=0.3, seed=4)
    if labels == "all":
        costs, offsets = data_cost(fs, ft), absolute_offsets((12, 14))
    else:
        costs, offsets = data_cost_window(fs, ft, 3), window_offsets((12, 14), 3)
    result = coarse_to_fine_bp(costs, 2.0, offsets, levels=levels, solver="dual")
    assert (result.displacements == flow).all(-1).mean() >= 0.95
    flat_2d = min_sum_bp(costs, 2.0, offsets)
    assert result.energy <= flat_2d.energy * 1.01


def test_coarse_to_fine_solvers_reach_similar_energies():
    rng = np.random.default_rng(2)
    for seed in range(3):
        fs, ft, _ = synthetic_flow_pair((10, 10), amplitude=3.0, noise=1.0, seed=seed)
        costs = data_cost(fs, ft) + rng.uniform(0, 1, (10, 10, 10, 10)).astype(np.float32)
        offsets = absolute_offsets((10, 10))
        dual = coarse_to_fine_bp(costs, 1.0, offsets, solver="dual")
        bp2d = coarse_to_fine_bp(costs, 1.0, offsets, solver="2d")
        assert dual.energy == pytest.approx(bp2d.energy, rel=0.02)


def test_zero_lam_is_nearest_label_matching():
    rng = np.random.default_rng(6)
    costs = random_problem(rng, (5, 4), (3, 5), inf_fraction=0.3)
    result = dual_layer_bp(costs, 0.0, absolute_offsets((5, 4)))
    nearest = np.stack(np.divmod(costs.reshape(5, 4, -1).argmin(-1), 5), -1)
    np.testing.assert_array_equal(result.labels, nearest)


def _feature_map(features, stride=8.0):
    rows, cols = features.shape[:2]
    return FeatureMap(features=features, xs=stride / 2 + stride * np.arange(cols),
                      ys=stride / 2 + stride * np.arange(rows), rf_size=2 * stride,
                      image_shape=(int(stride * rows), int(stride * cols)))


@pytest.mark.parametrize("radius", [None, 3])
def test_align_solvers(radius):
    fs, ft, flow = synthetic_flow_pair((10, 12), amplitude=2.0, noise=0.3, seed=8)
    source, target = _feature_map(fs), _feature_map(ft)
    dual = align(source, target, lam=2.0, radius=radius)
    bp2d = align(source, target, lam=2.0, radius=radius, solver="2d")
    assert (dual.displacement == flow).all(-1).mean() >= 0.95
    assert dual.energy <= bp2d.energy * 1.01
    assert 1 <= dual.n_iter <= 50
    nearest = align(source, target, lam=0.0, radius=radius)
    free = data_cost(fs, ft).reshape(10, 12, -1).argmin(-1)
    if radius is None:
        np.testing.assert_array_equal(nearest.target_index, np.stack(np.divmod(free, 12), -1))
    assert nearest.data_energy <= dual.data_energy + 1e-4


def test_early_stopping_is_reported():
    fs, ft, _ = synthetic_flow_pair((8, 8), amplitude=1.0, noise=0.1, seed=1)
    costs = data_cost(fs, ft)
    quick = dual_layer_bp(costs, 1.0, absolute_offsets((8, 8)), max_iter=100, patience=2)
    converged = dual_layer_bp(costs, 1.0, absolute_offsets((8, 8)), max_iter=100, tol=0,
                              patience=0)  # stops when no message changes at all
    one = dual_layer_bp(costs, 1.0, absolute_offsets((8, 8)), max_iter=1)
    assert one.n_iter == 1
    assert quick.n_iter < converged.n_iter < 100
    assert quick.energy == pytest.approx(converged.energy, rel=1e-6)
    assert converged.energy <= one.energy


def test_coarsen_and_shift_kernels_match_numpy():
    rng = np.random.default_rng(9)
    costs = random_problem(rng, (5, 3), (4, 6), inf_fraction=0.3).astype(np.float32)
    offsets = rng.integers(-2, 3, size=(5, 3, 2))
    coarse = coarsen_costs(costs, offsets, 1)
    expected = np.zeros((3, 2, 4, 6), np.float32)
    for i in range(5):
        for j in range(3):
            s = offsets[i - i % 2, j - j % 2] - offsets[i, j]
            for a in range(4):
                for b in range(6):
                    y, x = a + s[0], b + s[1]
                    if not (0 <= y < 4 and 0 <= x < 6):
                        expected[i // 2, j // 2, a, b] = np.inf
                        continue
                    near = costs[i, j, max(y - 1, 0):y + 2, max(x - 1, 0):x + 2].min()
                    expected[i // 2, j // 2, a, b] += near
    np.testing.assert_allclose(coarse, expected, rtol=1e-6)
    shifted = shift_label_grid(costs, offsets, (3, 7))
    for (i, j, a, b), value in np.ndenumerate(shifted):
        y, x = a + offsets[i, j, 0], b + offsets[i, j, 1]
        assert value == (costs[i, j, y, x] if 0 <= y < 4 and 0 <= x < 6 else np.inf)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"costs": np.zeros((0, 3, 2, 2))}, "non-empty"),
    ({"costs": np.full((2, 2, 2, 2), np.nan)}, "NaN"),
    ({"costs": np.full((2, 2, 2, 2), np.inf)}, "no allowed label"),
])
def test_dual_layer_bp_validation(kwargs, message):
    args = {"costs": np.zeros((2, 2, 2, 2)), "lam": 1.0} | kwargs
    with pytest.raises(ValueError, match=message):
        dual_layer_bp(**args)


def test_bad_solver_and_features_are_rejected():
    fs, ft, _ = synthetic_flow_pair((4, 4), seed=0)
    source, target = _feature_map(fs), _feature_map(ft)
    with pytest.raises(ValueError, match="'solver' parameter of align must be a str among"):
        align(source, target, solver="fast")
    with pytest.raises(ValueError, match="'levels' parameter of align must be an int"):
        align(source, target, levels=-1)
    bad = fs.copy()
    bad[1, 2, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        align(_feature_map(bad), target)
    with pytest.raises(ValueError, match="'lam' parameter of align must be a float"):
        align(source, target, lam=-0.1)


def test_a_node_is_outvoted_by_its_neighbours():
    costs = np.ones((3, 3, 2, 2), np.float32)
    costs[..., 1, 0] = 0.0              # every node prefers label (1, 0) ...
    costs[1, 1, 1, 0] = 3.0             # ... but the centre one, which is outvoted
    assert dual_layer_bp(costs, lam=1.0).labels[1, 1].tolist() == [1, 0]
