"""Pairwise alignment, warping, point transfer and the FlowAligner estimator."""

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV

from skcorr import ConvColumnExtractor
from skcorr._geometry import node_grid
from skcorr.datasets import make_warped_pairs
from skcorr.features import FeatureMap
from skcorr.flow import Flow, FlowAligner, align, consistency
from skcorr.metrics import pck_score, pck_scorer


def _feature_map(features, stride=8.0, offset=4.0):
    rows, cols = features.shape[:2]
    return FeatureMap(features=features, xs=offset + stride * np.arange(cols),
                      ys=offset + stride * np.arange(rows), rf_size=2 * stride,
                      image_shape=(int(stride * rows), int(stride * cols)))


@pytest.fixture(scope="module")
def shifted_maps():
    """Random unit features; the source is the target shifted by (2, 3) cells."""
    rng = np.random.default_rng(0)
    target = rng.normal(size=(14, 16, 8))
    target /= np.linalg.norm(target, axis=2, keepdims=True)
    source = target[2:12, 3:13]
    return _feature_map(source, offset=4.0 + 0), _feature_map(target)


@pytest.mark.parametrize("radius", [None, 4])
def test_flow_recovers_a_known_shift(shifted_maps, radius):
    source, target = shifted_maps
    flow = align(source, target, lam=0.01, radius=radius)
    assert (flow.displacement == [2, 3]).all()
    assert flow.deformation == 0 and flow.data_energy == pytest.approx(0, abs=1e-4)
    # a source point maps to the same content 3 cells right and 2 down
    np.testing.assert_allclose(flow.transfer_points([[20.0, 12.0]]), [[44.0, 28.0]])
    np.testing.assert_allclose(flow.transfer_points([[44.0, 28.0]], "backward"), [[20.0, 12.0]])


def test_smoothness_overrules_a_few_corrupted_columns(shifted_maps):
    source, target = shifted_maps
    noisy = source.features.copy()
    noisy[4, 4] = -noisy[4, 4]  # this column now matches nothing
    corrupted = _feature_map(noisy)
    free = align(corrupted, target, lam=0.0)
    smooth = align(corrupted, target, lam=1.0)  # leaving costs >= 4 * lam per step
    assert (free.displacement[4, 4] != [2, 3]).any()
    assert (smooth.displacement == [2, 3]).all()
    assert smooth.energy <= align(corrupted, target, lam=1.0, max_iter=1).energy + 1e-9


def test_warp_image_brings_the_target_into_the_source_frame():
    rng = np.random.default_rng(1)
    target_image = rng.integers(0, 256, (112, 128, 3), dtype=np.uint8)
    rows, cols = 14, 16
    features = rng.normal(size=(rows, cols, 8))
    target = _feature_map(features)
    source = FeatureMap(features=features[1:13, 2:14], xs=4.0 + 8 * np.arange(12),
                        ys=4.0 + 8 * np.arange(12), rf_size=16, image_shape=(96, 96))
    flow = align(source, target, lam=0.01)
    warped = flow.warp_image(target_image)
    assert warped.shape == (96, 96, 3)
    # source pixel (x, y) shows target pixel (x + 16, y + 8)
    np.testing.assert_array_equal(warped, target_image[8:104, 16:112])
    with pytest.raises(ValueError, match="flow was computed for a 128x112 target"):
        flow.warp_image(target_image[:50])


def test_points_between_and_outside_grid_centres_are_interpolated(shifted_maps):
    source, target = shifted_maps
    flow = align(source, target, lam=0.01)
    points = np.array([[0.0, 0.0], [23.5, 9.25], [79.0, 79.0], [np.nan, np.nan]])
    out = flow.transfer_points(points)
    np.testing.assert_allclose(out[:3], points[:3] + [24.0, 16.0])
    assert np.isnan(out[3]).all()


def test_align_rejects_bad_input(shifted_maps):
    source, target = shifted_maps
    with pytest.raises(ValueError, match="'lam' parameter of align must be"):
        align(source, target, lam=-1)
    with pytest.raises(ValueError, match="channels"):
        align(source, _feature_map(np.ones((4, 4, 3))))
    with pytest.raises(ValueError, match="at least 2x2"):
        align(_feature_map(np.ones((1, 4, 8))), target)
    with pytest.raises(TypeError, match="FeatureMap"):
        align(np.ones((4, 4, 8)), target)


@pytest.fixture(scope="module")
def warped_pairs():
    return make_warped_pairs(3, image_size=160, random_state=0)


@pytest.fixture(scope="module")
def conv_features():
    return ConvColumnExtractor(layer="stage3")


def test_flow_aligner_transfers_keypoints_of_warped_pairs(warped_pairs, conv_features):
    sources = [warped_pairs.images[s] for s, _ in warped_pairs.pairs]
    targets = [warped_pairs.images[t] for _, t in warped_pairs.pairs]
    truth = warped_pairs.keypoints[warped_pairs.pairs[:, 1]]
    identity = warped_pairs.keypoints[warped_pairs.pairs[:, 0]]
    aligner = FlowAligner(features=conv_features, lam=0.01, n_neighbors=1, n_top=1)
    pck = []
    for i in range(len(sources)):  # each target aligned with its own source only
        aligner.fit([sources[i]], identity[[i]])
        pck.append(pck_score(truth[[i]], aligner.predict([targets[i]]), alpha=0.1))
    baseline = pck_score(truth, identity, alpha=0.1)
    assert np.mean(pck) >= 0.8 and np.mean(pck) > baseline


def test_flow_aligner_in_grid_search(warped_pairs, conv_features):
    images, keypoints = warped_pairs.images, warped_pairs.keypoints
    search = GridSearchCV(
        FlowAligner(features=conv_features, n_neighbors=2, n_top=1),
        {"lam": [0.0, 0.01]}, scoring=pck_scorer(alpha=0.1), cv=3,
    ).fit(images, keypoints)
    assert set(search.cv_results_["param_lam"]) == {0.0, 0.01}
    assert 0.0 <= search.best_score_ <= 1.0
    assert search.predict(images[:1]).shape == (1, keypoints.shape[1], 2)


def test_neighbours_are_retrieved_by_global_similarity(warped_pairs, conv_features):
    images, keypoints = warped_pairs.images, warped_pairs.keypoints
    aligner = FlowAligner(features=conv_features, n_neighbors=2, n_top=1)
    aligner.fit(images, keypoints)
    first = aligner.neighbors(images)[:, 0]
    np.testing.assert_array_equal(first, np.arange(len(images)))  # itself first


@pytest.mark.parametrize(
    ("params", "n_images", "match"),
    [
        ({"n_top": 3, "n_neighbors": 2}, 4, "n_top=3 is larger than n_neighbors=2"),
        ({"n_neighbors": 5, "n_top": 1}, 4, "n_neighbors=5 but only 4 training images"),
        ({"lam": -0.1}, 4, "lam"),
    ],
)
def test_flow_aligner_rejects_bad_settings(params, n_images, match, warped_pairs):
    images = warped_pairs.images[:n_images]
    with pytest.raises(ValueError, match=match):
        FlowAligner(**params).fit(images, warped_pairs.keypoints[:n_images])


def test_flow_aligner_checks_keypoints_and_fitting(warped_pairs):
    images = warped_pairs.images[:2]
    with pytest.raises(ValueError, match="1 rows but there are 2 images"):
        FlowAligner(n_neighbors=1, n_top=1).fit(images, warped_pairs.keypoints[:1])
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        FlowAligner().predict(images)


@pytest.mark.parametrize("levels", [0, 2])
def test_zero_lam_is_plain_nearest_column_matching(levels):
    rng = np.random.default_rng(5)
    source = _feature_map(rng.normal(size=(6, 7, 4)))
    target = _feature_map(rng.normal(size=(8, 9, 4)))
    flow = align(source, target, lam=0.0, levels=levels)
    costs = ((source.features[:, :, None, None] - target.features[None, None]) ** 2).sum(-1)
    best = costs.reshape(6, 7, -1).argmin(axis=2)
    np.testing.assert_array_equal(flow.target_index[..., 0] * 9 + flow.target_index[..., 1],
                                  best)


# -- per-pixel fields, confidence, sparse matches, repr --------------------------------------
def _grid_flow(target_index, stride=16.0, offset=8.0, image_shape=(64, 80)):
    """A Flow from a grid onto a grid like it, with the given matches."""
    rows, cols = target_index.shape[:2]
    xs, ys = offset + stride * np.arange(cols), offset + stride * np.arange(rows)
    return Flow(target_index=np.asarray(target_index), source_xs=xs, source_ys=ys,
                target_xs=xs, target_ys=ys, source_shape=image_shape,
                target_shape=image_shape, data_energy=0.0, deformation=0.0, lam=0.1,
                n_iter=1)


@pytest.mark.parametrize("subcell", [False, True])
def test_pixel_flow_agrees_with_transfer_points(subcell):
    rng = np.random.default_rng(3)
    # different strides and images wider than the grids: the border rule and the ratio
    source = FeatureMap(features=rng.normal(size=(7, 9, 6)), xs=5.0 + 8 * np.arange(9),
                        ys=6.0 + 8 * np.arange(7), rf_size=16, image_shape=(61, 79))
    target = FeatureMap(features=rng.normal(size=(6, 8, 6)), xs=7.0 + 12 * np.arange(8),
                        ys=5.5 + 12 * np.arange(6), rf_size=24, image_shape=(77, 101))
    flow = align(source, target, lam=0.05, subcell=subcell)
    assert (flow.subcell is not None) == subcell
    if subcell:
        assert np.abs(flow.subcell).max() > 0.01  # sub-cell moves really enter
    field = flow.pixel_flow()
    assert field.shape == (61, 79, 2) and field.dtype == np.float32
    ys, xs = np.mgrid[0:61, 0:79]
    pixels = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(float)
    pick = np.concatenate([rng.choice(len(pixels), 300, replace=False),
                           [0, 78, 60 * 79, len(pixels) - 1]])  # the corners too
    expected = flow.transfer_points(pixels[pick]) - pixels[pick]
    np.testing.assert_allclose(field.reshape(-1, 2)[pick], expected, rtol=1e-6, atol=1e-4)


def test_pixel_flow_of_a_known_shift(shifted_maps):
    source, target = shifted_maps
    field = align(source, target, lam=0.01).pixel_flow()
    assert field.shape == (*source.image_shape, 2)
    np.testing.assert_array_equal(field[..., 0], 24.0)  # 3 cells of 8 px right
    np.testing.assert_array_equal(field[..., 1], 16.0)  # 2 cells down


def test_consistency_measures_the_round_trip_in_grid_steps():
    identity = node_grid((4, 5))
    forward = identity.copy()
    forward[1, 1] = (3, 3)  # sent 2 rows down and 2 columns right of where it belongs
    distance, confidence = consistency(_grid_flow(forward), _grid_flow(identity))
    expected = np.zeros((4, 5))
    expected[1, 1] = np.hypot(2, 2)
    np.testing.assert_allclose(distance, expected, atol=1e-12)
    np.testing.assert_allclose(confidence, np.exp(-expected ** 2 / 2))
    _, wide = consistency(_grid_flow(forward), _grid_flow(identity), sigma=2.0)
    assert wide[1, 1] == pytest.approx(np.exp(-8 / 8))

    flow = _grid_flow(forward).with_backward(_grid_flow(identity))
    np.testing.assert_allclose(flow.confidence, confidence)
    # at the nodes the per-pixel confidence is the node's; between them it is interpolated
    pixels = flow.pixel_confidence()
    assert pixels.shape == (64, 80) and pixels.dtype == np.float32
    assert pixels[24, 24] == pytest.approx(np.exp(-4))  # node (1, 1) at (24, 24) px
    assert pixels[24, 32] == pytest.approx((np.exp(-4) + 1) / 2)
    assert pixels[0, 0] == 1.0 and pixels[56, 72] == 1.0

    src, dst, scores = flow.matches()
    assert src.shape == dst.shape == (20, 2) and scores.shape == (20,)
    np.testing.assert_array_equal(src[6], [24.0, 24.0])  # node (1, 1), row-major
    np.testing.assert_array_equal(dst[6], [56.0, 56.0])
    src, dst, scores = flow.matches(min_confidence=0.5)  # the cross-checked ones
    assert len(src) == 19 and not ((src == [24.0, 24.0]).all(axis=1)).any()
    np.testing.assert_array_equal(src, dst)
    assert (scores == 1.0).all()


def test_consistency_of_a_real_pair_of_shifted_grids(shifted_maps):
    source, target = shifted_maps
    forward = align(source, target, lam=0.01)
    # lam=0: the target nodes outside the source's crop match anything and must not pull
    backward = align(target, source, lam=0.0)
    distance, confidence = consistency(forward, backward)
    np.testing.assert_allclose(distance, 0.0, atol=1e-9)  # every match comes back home
    np.testing.assert_allclose(confidence, 1.0)


def test_flow_confidence_rejects_bad_input(shifted_maps):
    source, target = shifted_maps
    forward = align(source, target, lam=0.01)
    with pytest.raises(ValueError, match="backward must be the flow from forward's target"):
        consistency(forward, forward)
    with pytest.raises(TypeError, match="backward must be a Flow"):
        forward.with_backward(np.zeros(3))
    with pytest.raises(ValueError, match="sigma must be"):
        consistency(forward, align(target, source, lam=0.01), sigma=0)
    with pytest.raises(ValueError, match="has no confidence.*with_backward"):
        forward.pixel_confidence()
    with pytest.raises(ValueError, match="needs the flow's confidence"):
        forward.matches(min_confidence=0.5)
    with pytest.raises(ValueError, match="min_confidence must lie in"):
        forward.matches(min_confidence=2)
    _, _, scores = forward.matches()
    assert np.isnan(scores).all()


def test_flow_repr_is_short(shifted_maps):
    source, target = shifted_maps
    flow = align(source, target, lam=0.01, subcell=True)
    text = repr(flow)
    assert text.startswith("Flow(10x10 grid, source 80x80 px -> target 128x112 px, energy=")
    assert "lam=0.01, subcell)" in text and "confidence" not in text
    assert "\n" not in text and len(text) < 120
    flow = flow.with_backward(align(target, source, lam=0.01))
    assert repr(flow).endswith(", subcell, confidence)")
