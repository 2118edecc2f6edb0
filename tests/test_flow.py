"""Pairwise alignment, warping, point transfer and the FlowAligner estimator."""

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV

from skcorr import ConvColumnExtractor
from skcorr.datasets import make_warped_pairs
from skcorr.features import FeatureMap
from skcorr.flow import FlowAligner, align
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
