"""SIFT Flow's energy (``align(..., energy="sift-flow")``): truncated L1 data and smoothness
and the small-displacement term, checked against brute force on small problems."""

import itertools

import numpy as np
import pytest
from flow_reference import (
    exhaustive_minimum,
    l1_transform_reference,
    min_sum_bp_reference,
    random_problem,
    sift_flow_energy,
    subcell_reference,
)
from scipy.spatial.distance import cdist

from skcorr.features import FeatureMap
from skcorr.flow import PairTransfer, align, check_flow_settings
from skcorr.flow._mrf._bp2d import distance_transform_1d, distance_transform_2d
from skcorr.flow._mrf._costs import (
    absolute_offsets,
    add_displacement_costs,
    data_cost,
    data_cost_window,
    shift_label_grid,
    truncate_costs,
    window_offsets,
)
from skcorr.flow._mrf._refine import subcell_offsets
from skcorr.flow._mrf._solve import (
    bp_energy,
    coarse_to_fine_bp,
    dual_layer_bp,
    min_sum_bp,
)
from skcorr.flow._settings import flow_settings


def feature_map(columns):
    rows, cols = columns.shape[:2]
    return FeatureMap(features=columns, xs=8.0 + 16 * np.arange(cols),
                      ys=8.0 + 16 * np.arange(rows), rf_size=32.0,
                      image_shape=(16 * rows, 16 * cols))


# --------------------------------------------------------------------------------------
# The L1 distance transform
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(6))
def test_l1_distance_transform_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 12))
    f = rng.uniform(-3, 3, size=n)
    f[rng.random(n) < 0.3] = np.inf
    weight = [0.0, 0.25, 1.0, 3.0, 0.7, 10.0][seed]
    for shift in (-15, -2, 0, 1, 4, 20):  # evaluation positions far off the label row too
        got = distance_transform_1d(f, weight, shift, distance="absolute")
        np.testing.assert_allclose(got, l1_transform_reference(f, weight, shift), rtol=1e-12)


def test_l1_distance_transform_2d_is_separable_l1():
    rng = np.random.default_rng(3)
    f = rng.uniform(0, 5, size=(4, 6))
    f[1, 2] = np.inf
    got = distance_transform_2d(f, 0.6, (1, -2), distance="absolute")
    a, b = np.indices(f.shape)
    expected = np.array([[np.min(f + 0.6 * (np.abs(y + 1 - a) + np.abs(x - 2 - b)))
                          for x in range(6)] for y in range(4)])
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    with pytest.raises(ValueError, match="distance must be 'squared' or 'absolute'"):
        distance_transform_1d(f[0], distance="l1")


# --------------------------------------------------------------------------------------
# BP's messages and solutions
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("truncation", [None, 1.5])
def test_2d_messages_are_the_l1_transform(seed, truncation):
    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in rng.integers(1, 5, size=2))
    labels = tuple(int(n) for n in rng.integers(2, 5, size=2))
    costs = random_problem(rng, shape, labels)
    offsets = rng.integers(-4, 5, size=shape + (2,))
    result, messages = min_sum_bp(costs, 0.5, offsets, max_iter=5, tol=0, patience=0,
                                  truncation=truncation, distance="absolute",
                                  return_messages=True)
    trunc = np.inf if truncation is None else truncation
    ref_labels, ref_messages = min_sum_bp_reference(costs, 0.5, offsets, result.n_iter,
                                                    trunc, power=1)
    np.testing.assert_allclose(messages, ref_messages, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(result.labels, ref_labels)


def chain_energies(costs, lam, offsets, trunc, shape):
    """Energy of every labelling of a 4-node chain with 3x3 labels (9**4 of them)."""
    flat = np.array(list(itertools.product(range(9), repeat=4)))
    labels = np.stack(np.divmod(flat, 3), axis=-1).reshape((-1,) + shape + (2,))
    w = labels + offsets
    axis = 1 if shape[0] > 1 else 2
    smooth = lam * np.minimum(np.abs(np.diff(w, axis=axis)), trunc).sum(axis=(1, 2, 3))
    i, j = np.indices(shape)
    data = costs[i, j, labels[..., 0], labels[..., 1]].sum(axis=(1, 2))
    return data + smooth, labels


@pytest.mark.parametrize("shape", [(1, 4), (4, 1)])
@pytest.mark.parametrize("truncation", [None, 1.0])
@pytest.mark.parametrize("seed", range(3))
def test_2d_bp_is_exact_on_a_chain(shape, truncation, seed):
    rng = np.random.default_rng(seed)
    costs = rng.uniform(0, 4, size=shape + (3, 3))
    offsets = rng.integers(-2, 3, size=shape + (2,))
    result = min_sum_bp(costs, 0.7, offsets, truncation=truncation, distance="absolute")
    energies, labels = chain_energies(costs, 0.7, offsets,
                                      np.inf if truncation is None else truncation, shape)
    assert result.energy == pytest.approx(energies.min(), rel=1e-12)
    np.testing.assert_array_equal(result.labels, labels[energies.argmin()])


@pytest.mark.parametrize("truncation", [None, 1.0])
@pytest.mark.parametrize("seed", range(3))
def test_dual_bp_is_exact_on_a_chain_of_separable_costs(truncation, seed):
    # D(ly, lx) = a(ly) + b(lx): the two layers are two independent chains (trees)
    rng = np.random.default_rng(seed)
    shape = (1, 4)
    costs = rng.uniform(0, 4, size=shape + (3, 1)) + rng.uniform(0, 4, size=shape + (1, 3))
    offsets = rng.integers(-2, 3, size=shape + (2,))
    result = dual_layer_bp(costs, 0.7, offsets, truncation=truncation, distance="absolute")
    energies, labels = chain_energies(costs, 0.7, offsets,
                                      np.inf if truncation is None else truncation, shape)
    assert result.energy == pytest.approx(energies.min(), rel=1e-6)
    np.testing.assert_array_equal(result.labels, labels[energies.argmin()])


@pytest.mark.parametrize("seed", range(5))
def test_bp_on_a_loopy_grid_is_near_the_exhaustive_minimum(seed):
    # 2x3 nodes with 3x3 labels: 9**6 labellings. Loopy BP is not exact there, but its
    # reported energy is the energy of its labels, never below the minimum, and on these
    # small problems it finds the minimum or comes close.
    rng = np.random.default_rng(seed)
    shape = (2, 3)
    costs = rng.uniform(0, 4, size=shape + (3, 3))
    offsets = window_offsets(shape, 1)
    lam, truncation = [0.3, 0.8, 1.5, 0.5, 2.0][seed], [None, 1.0, 2.0, None, 1.0][seed]
    trunc = np.inf if truncation is None else truncation
    best, best_labels = exhaustive_minimum(costs, lam, offsets, trunc, power=1)
    for solver in (dual_layer_bp, min_sum_bp):
        result = solver(costs, lam, offsets, truncation=truncation, distance="absolute")
        recomputed = sum(bp_energy(costs, result.labels, lam, offsets, truncation=truncation,
                                   distance="absolute"))
        assert result.energy == pytest.approx(recomputed, rel=1e-6)
        assert result.energy >= best - 1e-5
        assert result.energy <= best * 1.05 + 1e-6
    # the exhaustive minimum is itself a labelling of that energy
    assert sum(bp_energy(costs, best_labels, lam, offsets, truncation=truncation,
                         distance="absolute")) == pytest.approx(best)


@pytest.mark.parametrize("solver", ["dual", "2d"])
def test_coarse_to_fine_reports_the_l1_energy_of_its_labels(solver):
    rng = np.random.default_rng(11)
    shape, labels = (7, 6), (7, 6)
    costs = random_problem(rng, shape, labels, inf_fraction=0.1)
    offsets = absolute_offsets(shape)
    result = coarse_to_fine_bp(costs, 0.4, offsets, truncation=2.0, distance="absolute",
                               solver=solver, window=1)
    assert result.energy == pytest.approx(sum(bp_energy(
        costs, result.labels, 0.4, offsets, truncation=2.0, distance="absolute")), rel=1e-6)
    # not what the squared energy measures for the same labels
    assert result.smoothness_energy != pytest.approx(
        bp_energy(costs, result.labels, 0.4, offsets, truncation=2.0)[1])


# --------------------------------------------------------------------------------------
# The data costs
# --------------------------------------------------------------------------------------
def test_l1_data_costs_match_scipy():
    rng = np.random.default_rng(0)
    fs = rng.normal(size=(3, 4, 21)).astype(np.float32)
    ft = rng.normal(size=(5, 2, 21)).astype(np.float32)
    got = data_cost(fs, ft, metric="cityblock")
    expected = cdist(fs.reshape(-1, 21).astype(np.float64), ft.reshape(-1, 21), "cityblock")
    assert got.dtype == np.float32 and got.shape == (3, 4, 5, 2)
    np.testing.assert_allclose(got.reshape(12, 10), expected, rtol=1e-5)
    # identical columns cost exactly zero
    assert (np.diagonal(data_cost(fs, fs, "cityblock").reshape(12, 12)) == 0).all()


@pytest.mark.parametrize("centers", [None, "random"])
def test_l1_window_costs_are_the_window_of_the_full_costs(centers):
    rng = np.random.default_rng(1)
    fs = rng.normal(size=(4, 5, 9))
    ft = rng.normal(size=(4, 5, 9))
    shape = (4, 5)
    if centers == "random":
        centers = rng.integers(-2, 3, size=shape + (2,))
    radius = 2
    window = data_cost_window(fs, ft, radius, centers, metric="cityblock")
    offsets = window_offsets(shape, radius, centers)
    full = data_cost(fs, ft, metric="cityblock")
    from skcorr._geometry import node_grid

    expected = shift_label_grid(full, node_grid(shape) + offsets, (2 * radius + 1,) * 2)
    np.testing.assert_array_equal(np.isinf(window), np.isinf(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(window[finite], expected[finite], rtol=1e-6)


def test_truncation_and_displacement_costs():
    costs = np.array([[[[1.0, 5.0], [np.inf, 3.0]]]], dtype=np.float32)  # one node, 2x2
    truncated = truncate_costs(costs, 2.5)
    np.testing.assert_array_equal(truncated, [[[[1.0, 2.5], [np.inf, 2.5]]]])
    assert truncated.dtype == np.float32 and costs[0, 0, 0, 1] == 5.0  # a new array
    # label (a, b) is the displacement (a - 1, b); from the centre (0, 1): |a - 1| + |b - 1|
    priced = add_displacement_costs(costs, np.array([[[-1, 0]]]), 0.5, np.array([0, 1]))
    np.testing.assert_allclose(priced, [[[[2.0, 5.5], [np.inf, 3.0]]]])
    assert priced.dtype == np.float32
    with pytest.raises(ValueError, match="metric must be one of"):
        data_cost(np.ones((2, 2, 3)), np.ones((2, 2, 3)), metric="l1")


def test_subcell_with_the_l1_smoothness_matches_the_reference():
    rng = np.random.default_rng(5)
    shape, labels = (4, 5), (6, 7)
    costs = rng.uniform(0, 3, size=shape + labels)
    offsets = rng.integers(-2, 3, size=shape + (2,))
    chosen = np.stack([rng.integers(0, 6, size=shape), rng.integers(0, 7, size=shape)], -1)
    got = subcell_offsets(costs, chosen, offsets, 0.3, 2.0, 3, power=1)
    np.testing.assert_allclose(got, subcell_reference(costs, chosen, offsets, 0.3, 2.0, 3,
                                                      power=1), atol=1e-12)
    assert not np.allclose(got, subcell_offsets(costs, chosen, offsets, 0.3, 4.0, 3))


# --------------------------------------------------------------------------------------
# align(energy="sift-flow")
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("settings", [
    dict(lam=0.3),
    dict(lam=0.3, truncation=1.0, eta=0.05, data_truncation=4.0),
    dict(lam=0.2, eta=0.1, levels=0, solver="2d"),
    dict(lam=0.5, truncation=2.0, radius=2, levels=1),
])
def test_align_energy_is_sift_flows_energy_of_its_flow(settings):
    rng = np.random.default_rng(4)
    columns = rng.normal(size=(6, 7, 8))
    moved = np.roll(columns, 1, axis=1) + 0.2 * rng.normal(size=columns.shape)
    flow = align(feature_map(columns), feature_map(moved), energy="sift-flow", **settings)
    alpha = settings["lam"]
    d = alpha * settings.get("truncation", np.inf)
    data, smooth = sift_flow_energy(columns, moved, flow.target_index, alpha, d,
                                    settings.get("eta", 0.0),
                                    settings.get("data_truncation", np.inf))
    assert flow.data_energy == pytest.approx(data, rel=1e-5)
    assert flow.lam * flow.deformation == pytest.approx(smooth, rel=1e-9)
    assert flow.energy == pytest.approx(data + smooth, rel=1e-5)


def test_align_reaches_the_exhaustive_minimum_of_a_tiny_problem():
    # 2x3 grid, every target position a label: 6**6 labellings
    rng = np.random.default_rng(8)
    fs = rng.normal(size=(2, 3, 5))
    ft = fs[:, ::-1] + 0.3 * rng.normal(size=fs.shape)
    alpha, d, eta, t = 0.4, 0.8, 0.1, 3.0
    costs = np.minimum(cdist(fs.reshape(6, 5), ft.reshape(6, 5), "cityblock"), t)
    offsets = absolute_offsets((2, 3))
    costs = add_displacement_costs(costs.reshape(2, 3, 2, 3), offsets, eta)
    best, best_labels = exhaustive_minimum(costs, alpha, offsets, d / alpha, power=1)
    flow = align(feature_map(fs), feature_map(ft), lam=alpha, truncation=d / alpha, eta=eta,
                 data_truncation=t, energy="sift-flow", levels=0)
    reference = sum(sift_flow_energy(fs, ft, best_labels, alpha, d, eta, t))
    assert best == pytest.approx(reference, rel=1e-9)
    assert flow.energy == pytest.approx(best, rel=1e-5)
    np.testing.assert_array_equal(flow.target_index, best_labels)


@pytest.mark.parametrize("energy", ["sift-flow", "l2"])
def test_eta_pulls_matches_towards_no_displacement(energy):
    # the left half of the source is exactly the right half of the target three columns
    # on, and a noisy copy of the target's left half: without eta it moves by 3 columns
    rng = np.random.default_rng(2)
    base = rng.normal(size=(4, 3, 6))
    target = np.concatenate([base + 0.3 * rng.normal(size=base.shape), base], axis=1)
    source = np.concatenate([base, base], axis=1)
    settings = dict(lam=0.05, energy=energy)
    moved = align(feature_map(source), feature_map(target), **settings)
    assert (moved.displacement[:, :2, 1] == 3).all()
    still = align(feature_map(source), feature_map(target), eta=1.0, **settings)
    np.testing.assert_array_equal(still.displacement, 0)


def test_default_energy_is_unchanged_by_the_new_settings_at_their_defaults():
    rng = np.random.default_rng(6)
    a = feature_map(rng.normal(size=(5, 6, 8)))
    b = feature_map(rng.normal(size=(5, 6, 8)))
    one = align(a, b, lam=0.2, truncation=2.0, subcell=True)
    two = align(a, b, lam=0.2, truncation=2.0, subcell=True, energy="l2", eta=0.0,
                data_truncation=None)
    np.testing.assert_array_equal(one.target_index, two.target_index)
    np.testing.assert_array_equal(one.subcell, two.subcell)
    assert one.energy == two.energy
    three = align(a, b, lam=0.2, truncation=2.0, energy="sift-flow")
    assert three.energy != pytest.approx(one.energy)


@pytest.mark.parametrize("settings, message", [
    (dict(energy="l1"), "'energy' parameter of align must be a str among"),
    (dict(energy="sift-flow", eta=-0.1), "'eta' parameter of align must be a float"),
    (dict(eta=True), "'eta' parameter"),
    (dict(eta=float("nan")), "'eta' parameter"),
    (dict(data_truncation=0.0), "'data_truncation' parameter of align must be a float"),
    (dict(data_truncation=float("inf")), "'data_truncation' parameter"),
])
def test_bad_settings_are_refused(settings, message):
    grid = feature_map(np.ones((2, 2, 3)))
    with pytest.raises(ValueError, match=message):
        align(grid, grid, **settings)
    with pytest.raises(ValueError, match=message.replace("align", "x")):
        check_flow_settings("x", **settings)


def test_estimators_carry_the_energy_to_align():
    transfer = PairTransfer(energy="sift-flow", eta=0.02, data_truncation=5.0)
    settings = flow_settings(transfer)
    assert (settings["energy"], settings["eta"], settings["data_truncation"]) == (
        "sift-flow", 0.02, 5.0)
    assert flow_settings(PairTransfer())["energy"] == "l2"


# --------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------
def test_cli_pf_willow_passes_the_energy_and_its_candidates(tmp_path, monkeypatch, capsys):
    import inspect

    import skcorr.evaluation
    from skcorr.cli import main
    from skcorr.evaluation import ResultTable

    signature = inspect.signature(skcorr.evaluation.evaluate_pf_willow)
    calls = []

    def record(path, **options):
        signature.bind(path, **options)
        calls.append(options)
        return ResultTable([{"rows": 1}], title="recorded", name="recorded")

    monkeypatch.setattr(skcorr.evaluation, "evaluate_pf_willow", record)
    assert main(["evaluate", "pf-willow", "--data", str(tmp_path)]) == 0
    assert {k: calls[-1][k] for k in ("energy", "etas", "data_truncations")} == {
        "energy": "l2", "etas": [0.0], "data_truncations": [None]}
    assert main(["evaluate", "pf-willow", "--data", str(tmp_path), "--energy", "sift-flow",
                 "--lam", "cv", "--eta", "0", "0.05", "--data-truncation", "none", "6"]) == 0
    assert {k: calls[-1][k] for k in ("energy", "etas", "data_truncations", "lam")} == {
        "energy": "sift-flow", "etas": [0.0, 0.05], "data_truncations": [None, 6.0],
        "lam": "cv"}
    capsys.readouterr()


@pytest.mark.parametrize("argv, message", [
    (["--eta", "-1"], "argument --eta: must be a float in the range"),
    (["--eta", "nan"], "argument --eta: must be a float in the range"),
    (["--data-truncation", "0"], "argument --data-truncation: must be a float"),
    (["--energy", "l1"], "argument --energy: invalid choice"),
    (["--energy", "sift-flow"], "sift-flow has no tuned --lam"),
])
def test_cli_pf_willow_refuses_bad_energy_flags_at_parse_time(argv, message, tmp_path,
                                                              capsys):
    from skcorr.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "pf-willow", "--data", str(tmp_path / "missing"), *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_evaluate_pf_willow_needs_a_lam_for_sift_flow():
    from skcorr.evaluation import evaluate_pf_willow

    with pytest.raises(ValueError, match="energy='sift-flow' has no tuned lam"):
        evaluate_pf_willow("missing", energy="sift-flow")
    with pytest.raises(ValueError, match="--eta or --data-truncation values are candidates"):
        evaluate_pf_willow("missing", lam=0.5, etas=(0.0, 0.1))


def test_cli_match_passes_the_energy(tmp_path, monkeypatch):
    import skcorr.flow
    from skcorr.cli import main

    calls = []

    def record(pairs, output, **settings):
        calls.append(settings)
        return []

    monkeypatch.setattr(skcorr.flow, "match_files", record)
    for name in ("a.png", "b.png"):
        (tmp_path / name).write_bytes(b"")
    argv = ["match", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--output",
            str(tmp_path / "out")]
    assert main(argv) == 0
    assert not {"energy", "eta", "data_truncation"} & set(calls[-1])  # the preset's
    assert main([*argv, "--energy", "sift-flow", "--eta", "0.1", "--data-truncation",
                 "4", "--lam", "0.5"]) == 0
    assert {k: calls[-1][k] for k in ("energy", "eta", "data_truncation", "lam")} == {
        "energy": "sift-flow", "eta": 0.1, "data_truncation": 4.0, "lam": 0.5}


def test_presets_take_the_energy():
    from skcorr.flow import preset_settings

    _, flow = preset_settings("paper", energy="sift-flow", eta=0.1, data_truncation=3.0)
    assert (flow["energy"], flow["eta"], flow["data_truncation"]) == ("sift-flow", 0.1, 3.0)
