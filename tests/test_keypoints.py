"""Keypoint classification, sliding-window detectors and the nearest-neighbour prior.

Synthetic crops carry a distinctive pattern at each keypoint type (a disc, a cross, a
checkerboard) on a flat noisy background, so that a working detector or classifier
must find them and a broken one cannot.
"""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.svm import LinearSVC
from sklearn.utils._param_validation import InvalidParameterError

from skcorr import ConvColumnExtractor, DenseSIFT, keypoint_samples
from skcorr.keypoints import (
    GaussianNNPrior,
    KeypointClassifier,
    SlidingKeypointDetector,
    localization_histogram,
)
from skcorr.metrics import pck_scorer
from skcorr.visualize import plot_localization_histogram

K = 3


def _pattern(kind, size=17):
    yy, xx = np.mgrid[-(size // 2):size // 2 + 1, -(size // 2):size // 2 + 1]
    if kind == 0:
        return (np.hypot(xx, yy) <= size / 2.6).astype(float)
    if kind == 1:
        return ((np.abs(xx) <= 1) | (np.abs(yy) <= 1)).astype(float)
    return (((xx // 3) + (yy // 3)) % 2).astype(float)


def make_crops(n, size=96, seed=0, vary=True):
    """n crops of about size x size with the K patterns at random, separated places."""
    rng = np.random.default_rng(seed)
    crops, keypoints = [], np.full((n, K, 2), np.nan)
    for i in range(n):
        h = w = size
        if vary:
            h, w = size + rng.integers(-8, 9), size + rng.integers(-8, 9)
        image = rng.normal(0.45, 0.01, (h, w))
        placed = []
        for k in range(K):
            for _ in range(200):
                x, y = int(rng.integers(12, w - 12)), int(rng.integers(12, h - 12))
                if all(np.hypot(x - a, y - b) > 32 for a, b in placed):
                    break
            placed.append((x, y))
            p = _pattern(k)
            r = p.shape[0] // 2
            image[y - r:y + r + 1, x - r:x + r + 1] = 0.1 + 0.8 * p
            keypoints[i, k] = (x, y)
        crops.append((np.clip(image, 0, 1)[:, :, None].repeat(3, 2) * 255).astype(np.uint8))
    return crops, keypoints


def sift_dense():
    return DenseSIFT(mode="dense", step=4, bin_size=4)


def sift_global():
    return DenseSIFT(mode="global", step=4, bin_size=4)


@pytest.fixture(scope="module")
def train_data():
    return make_crops(24, seed=0)


@pytest.fixture(scope="module")
def test_data():
    return make_crops(10, seed=1)


@pytest.fixture(scope="module")
def fitted(train_data):
    crops, keypoints = train_data
    det = SlidingKeypointDetector(features=sift_dense(), box_size=96, C=1.0, cache_size=600,
                                  n_positives=4,
                                  prior=GaussianNNPrior(features=sift_global(), sigma=6.0),
                                  random_state=0)
    return det.fit(crops, keypoints)


# -- SlidingKeypointDetector -----------------------------------------------------------
def test_detector_finds_the_patterns(fitted, test_data):
    crops, keypoints = test_data
    predicted = fitted.predict(crops)
    assert predicted.shape == keypoints.shape
    # PCK@0.1 of the crop (about 9.6 px); the SIFT grid step is 4 px.
    assert fitted.score(crops, keypoints) >= 0.85
    # Predictions are RF centres mapped back into each crop's own pixels.
    assert np.all(predicted >= -0.5)
    for crop, points in zip(crops, predicted, strict=True):
        assert np.all(points[:, 0] <= crop.shape[1]) and np.all(points[:, 1] <= crop.shape[0])


def test_detector_sift_radii_resolve_from_bins(fitted):
    # DenseSIFT bin 4 px at box 96 = crop frame: positives within 2 bins, negatives 4 bins.
    assert fitted.positive_radius_ == pytest.approx(8.0)
    assert fitted.negative_radius_ == pytest.approx(16.0)
    assert fitted.n_mining_rounds_ >= 1
    assert np.all(fitted.n_negatives_ <= 600)
    assert np.all(fitted.platt_[:, 0] > 0)


def test_detector_conv_radii_and_explicit_values(train_data):
    crops, keypoints = train_data
    det = SlidingKeypointDetector(
        features=ConvColumnExtractor(weights=None, layer="stage3", mode="dense"),
        box_size=64, mining_rounds=0, cache_size=200, random_state=0,
    ).fit(crops[:6], keypoints[:6])
    assert det.positive_radius_ == np.inf  # the n_positives nearest cells
    assert det.negative_radius_ == pytest.approx(64 / 8)  # RF 67 + 2 * 8 > box: capped
    det.set_params(positive_radius=5.0, negative_radius=20.0).fit(crops[:6], keypoints[:6])
    assert (det.positive_radius_, det.negative_radius_) == (5.0, 20.0)
    maps = det.decision_maps(crops[:2])
    rows, cols = len(det.grid_ys_), len(det.grid_xs_)
    assert maps.detector.shape == (2, K, rows, cols)
    assert maps.xs.shape == (2, cols) and maps.ys.shape == (2, rows)


def test_decision_maps_agree_with_predict(fitted, test_data):
    crops, _ = test_data
    maps = fitted.decision_maps(crops[:3])
    predicted = fitted.predict(crops[:3])
    n, k, rows, cols = maps.combined.shape
    best = maps.combined.reshape(n, k, -1).argmax(axis=2)
    r, c = np.divmod(best, cols)
    np.testing.assert_allclose(predicted[..., 0], np.take_along_axis(maps.xs, c, 1))
    np.testing.assert_allclose(predicted[..., 1], np.take_along_axis(maps.ys, r, 1))
    assert maps.log_prior.shape == maps.detector.shape
    assert np.all(maps.log_prior <= 0)


def test_beta_zero_is_the_detector_alone(fitted, train_data, test_data):
    crops, keypoints = train_data
    alone = SlidingKeypointDetector(features=sift_dense(), box_size=96, C=1.0,
                                    n_positives=4, cache_size=600, random_state=0)
    alone.fit(crops, keypoints)
    np.testing.assert_array_equal(fitted.set_params(beta=0.0).predict(test_data[0]),
                                  alone.predict(test_data[0]))


def test_beta_one_is_the_prior_alone(fitted, train_data):
    crops, keypoints = train_data
    fitted.set_params(beta=1.0)
    try:
        # A copy of training crop 5: its nearest neighbour is itself, and the prior's
        # argmax is the grid cell nearest to its keypoints.
        predicted = fitted.predict([crops[5].copy()])[0]
    finally:
        fitted.set_params(beta=0.0)
    h, w = crops[5].shape[:2]
    xs = (fitted.grid_xs_ + 0.5) * w / 96 - 0.5
    ys = (fitted.grid_ys_ + 0.5) * h / 96 - 0.5
    for k in range(K):
        x, y = keypoints[5, k]
        assert predicted[k, 0] == pytest.approx(xs[np.argmin(np.abs(xs - x))])
        assert predicted[k, 1] == pytest.approx(ys[np.argmin(np.abs(ys - y))])


def test_prior_helps_when_the_detector_is_ambiguous():
    # Every crop carries the disc twice; only one copy is the keypoint, always in the
    # top-left quadrant. The detector cannot tell them apart; the prior can.
    rng = np.random.default_rng(3)
    crops, keypoints = [], np.full((16, 1, 2), np.nan)
    for i in range(16):
        image = rng.normal(0.45, 0.01, (96, 96))
        p = _pattern(0)
        for j, (x, y) in enumerate([(int(rng.integers(15, 35)), int(rng.integers(15, 35))),
                                    (int(rng.integers(60, 80)), int(rng.integers(60, 80)))]):
            image[y - 8:y + 9, x - 8:x + 9] = 0.1 + 0.8 * p
            if j == 0:
                keypoints[i, 0] = (x, y)
        crops.append((np.clip(image, 0, 1)[:, :, None].repeat(3, 2) * 255).astype(np.uint8))
    det = SlidingKeypointDetector(features=sift_dense(), box_size=96, C=1.0, cache_size=400,
                                  prior=GaussianNNPrior(features=sift_global(), sigma=10.0),
                                  random_state=0).fit(crops[:10], keypoints[:10])
    with_prior = det.set_params(beta=0.5).score(crops[10:], keypoints[10:])
    assert with_prior == 1.0
    assert with_prior >= det.set_params(beta=0.0).score(crops[10:], keypoints[10:])


def test_grid_search_over_beta(train_data):
    crops, keypoints = train_data
    det = SlidingKeypointDetector(features=sift_dense(), box_size=96, C=1.0, cache_size=300,
                                  mining_rounds=1,
                                  prior=GaussianNNPrior(features=sift_global(), sigma=6.0),
                                  random_state=0)
    search = GridSearchCV(det, {"beta": [0, 0.1, 0.5]}, scoring=pck_scorer(), cv=2)
    search.fit(crops[:12], keypoints[:12])
    assert search.best_params_["beta"] in (0, 0.1, 0.5)
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))


def test_type_without_positives_is_skipped_with_a_warning(train_data):
    crops, keypoints = train_data
    keypoints = keypoints[:6].copy()
    keypoints[:, 1] = np.nan
    det = SlidingKeypointDetector(features=sift_dense(), box_size=96, cache_size=200,
                                  mining_rounds=0, random_state=0)
    with pytest.warns(UserWarning, match=r"type\(s\) \[1\] have no present keypoint"):
        det.fit(crops[:6], keypoints)
    predicted = det.predict(crops[:2])
    assert np.isnan(predicted[:, 1]).all()
    assert np.isfinite(predicted[:, [0, 2]]).all()
    assert det.skipped_types_ == [1]


@pytest.mark.parametrize("params, match", [
    ({"beta": 1.5}, "beta"), ({"beta": -0.1}, "beta"), ({"box_size": 0}, "box_size"),
])
def test_detector_rejects_bad_parameters(train_data, params, match):
    crops, keypoints = train_data
    with pytest.raises(InvalidParameterError, match=match):
        SlidingKeypointDetector(features=sift_dense(), **params).fit(crops[:2], keypoints[:2])


def test_detector_input_errors(train_data):
    crops, keypoints = train_data
    det = SlidingKeypointDetector(features=sift_dense(), box_size=96)
    with pytest.raises(NotFittedError):
        det.predict(crops[:1])
    with pytest.raises(ValueError, match="rows but there are 3 images"):
        det.fit(crops[:3], keypoints[:2])
    bad = keypoints[:2].copy()
    bad[1, 2] = (500.0, 10.0)
    with pytest.raises(ValueError, match=r"keypoints\[1, 2\].*outside crops\[1\]"):
        det.fit(crops[:2], bad)
    with pytest.raises(ValueError, match="prior=None"):
        SlidingKeypointDetector(features=sift_dense(), beta=0.2).fit(crops[:2], keypoints[:2])
    with pytest.raises(ValueError, match="neighborhood must be odd"):
        SlidingKeypointDetector(features=sift_dense(), neighborhood=2).fit(
            crops[:2], keypoints[:2])


# -- GaussianNNPrior -------------------------------------------------------------------
def test_prior_transfers_the_nearest_crop(train_data):
    crops, keypoints = train_data
    prior = GaussianNNPrior(features=sift_global(), sigma=4.0).fit(crops, keypoints)
    np.testing.assert_allclose(prior.predict(crops[:4]), keypoints[:4])
    np.testing.assert_array_equal(prior.neighbors(crops[:4]), np.tile(np.arange(4)[:, None],
                                                                      (1, K)))
    xs = ys = np.arange(0.0, 100.0)
    log_prior = prior.log_density(crops[:1], xs, ys)
    assert log_prior.shape == (1, K, 100, 100)
    r, c = np.unravel_index(log_prior[0, 0].argmax(), (100, 100))
    assert (xs[c], ys[r]) == tuple(keypoints[0, 0])
    # one sigma away: log-density -1/2
    x, y = keypoints[0, 0]
    assert log_prior[0, 0, int(y), int(x + 4)] == pytest.approx(-0.5)


def test_prior_sigma_must_be_positive(train_data):
    crops, keypoints = train_data
    for sigma in (0.0, -3.0):
        with pytest.raises(InvalidParameterError, match="sigma"):
            GaussianNNPrior(features=sift_global(), sigma=sigma).fit(crops[:2], keypoints[:2])


def test_prior_uses_neighbours_that_have_the_type(train_data):
    crops, keypoints = train_data
    keypoints = keypoints[:4].copy()
    keypoints[0, 2] = np.nan
    prior = GaussianNNPrior(features=sift_global()).fit(crops[:4], keypoints)
    index = prior.neighbors([crops[0]])
    assert index[0, 0] == 0 and index[0, 2] != 0


# -- KeypointClassifier ---------------------------------------------------------------
@pytest.fixture(scope="module")
def samples():
    crops, keypoints = make_crops(20, seed=2, vary=False)
    return keypoint_samples(crops, keypoints)


def test_classifier_labels_keypoints(samples):
    X, y, groups = samples
    train, test = groups < 14, groups >= 14
    clf = KeypointClassifier(features=DenseSIFT(radius=8), Cs=[0.01, 1.0], cv=3,
                             random_state=0)
    clf.fit(X[train], y[train], groups=groups[train])
    assert clf.score(X[test], y[test]) >= 0.9
    assert clf.best_C_ in (0.01, 1.0)
    assert clf.cv_results_["C"].tolist() == [0.01, 1.0]
    assert clf.cv_results_["mean_test_score"].shape == (2,)
    assert clf.decision_function(X[test]).shape == (test.sum(), K)
    np.testing.assert_array_equal(clf.predict(X[test]),
                                  clf.decision_function(X[test]).argmax(axis=1))


def test_classifier_as_a_pipeline_and_without_groups(samples):
    X, y, groups = samples
    pipe = make_pipeline(DenseSIFT(radius=8), LinearSVC(C=1.0, max_iter=20000))
    assert pipe.fit(X[groups < 14], y[groups < 14]).score(X[groups >= 14],
                                                          y[groups >= 14]) >= 0.9
    clf = KeypointClassifier(features=DenseSIFT(radius=8), Cs=[1.0], cv=2, random_state=0)
    assert clf.fit(X, y).score(X, y) == 1.0


def test_classifier_input_errors(samples):
    X, y, groups = samples
    clf = KeypointClassifier(features=DenseSIFT(radius=8), Cs=[1.0], cv=2)
    with pytest.raises(ValueError, match="needs the keypoint labels y"):
        clf.fit(X)
    with pytest.raises(ValueError, match="labels"):
        clf.fit(X, y[:-1])
    with pytest.raises(NotFittedError):
        clf.predict(X)
    with pytest.raises(ValueError, match="need at least 5 images"):
        KeypointClassifier(features=DenseSIFT(radius=8), cv=5).fit(X[groups < 3], y[groups < 3],
                                                                  groups=groups[groups < 3])
    bad = X[:3].copy()
    bad[0, 1] = 1e4
    with pytest.raises(ValueError, match="outside"):
        clf.fit(bad, y[:3] * 0 + np.array([0, 1, 2]))


# -- precision study -------------------------------------------------------------------
def test_localization_histogram_sift_peaks_near_the_keypoint(samples):
    X, y, groups = samples
    clf = KeypointClassifier(features=DenseSIFT(radius=8), Cs=[1.0], cv=2, random_state=0)
    clf.fit(X, y)
    crops, keypoints = make_crops(3, seed=4, vary=False)
    result = localization_histogram(clf, crops, keypoints, window=9, patch_radius=16,
                                    max_keypoints=4, random_state=0)
    assert result.histogram.shape == (9, 9)
    assert result.n_keypoints == 4
    assert result.histogram.sum() + result.n_boundary == 4
    assert result.histogram.sum() >= 3
    assert max(result.mean_abs_offset) <= 2.0
    fig = plot_localization_histogram(result, title="SIFT")
    assert fig.axes[0].get_title() == "SIFT"
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_localization_histogram_shifts_images_for_grid_features():
    # A conv classifier on a stride-8 grid still gets one distinct column per offset.
    crops, keypoints = make_crops(8, seed=5, vary=False)
    X, y, _ = keypoint_samples(crops, keypoints)
    clf = KeypointClassifier(features=ConvColumnExtractor(weights=None, layer="stage3"),
                             Cs=[1.0], cv=2, random_state=0).fit(X, y)
    result = localization_histogram(clf, crops[:1], keypoints[:1], window=5, patch_radius=24,
                                    max_keypoints=1, random_state=0)
    assert result.histogram.sum() + result.n_boundary == 1
    with pytest.raises(ValueError, match="window must be an odd"):
        localization_histogram(clf, crops[:1], keypoints[:1], window=4)
