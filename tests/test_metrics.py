"""PCK, its scorer, and the keypoint-transfer evaluation built on it."""

import numpy as np
import pytest
import sklearn
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.base import BaseEstimator
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.utils import Bunch

from skcorr.evaluation import (
    ResultTable,
    evaluate_identity_pf_willow,
    identity_transfer,
    transfer_pck_table,
)
from skcorr.metrics import pck_score, pck_scorer

NAN = np.nan


# --------------------------------------------------------------------------- by hand
def test_hand_computed_with_box():
    # box 100 x 40 -> threshold 0.1 * 100 = 10 px
    y_true = np.array([[[10.0, 10.0], [50.0, 20.0], [90.0, 30.0]]])
    y_pred = np.array([[[16.0, 18.0], [50.0, 31.0], [90.0, 30.0]]])  # 10 (on the edge), 11, 0
    box = [[0, 0, 100, 40]]
    assert pck_score(y_true, y_pred, bbox=box) == pytest.approx(2 / 3)
    assert pck_score(y_true, y_pred, bbox=box, alpha=0.11) == 1.0
    assert pck_score(y_true, y_pred, bbox=box, alpha=0.05) == pytest.approx(1 / 3)
    np.testing.assert_array_equal(pck_score(y_true, y_pred, bbox=box, average=None), [1, 0, 1])


def test_threshold_from_true_keypoints_box_when_no_bbox():
    # keypoints span 80 x 20 -> threshold 0.1 * 80 = 8 px
    y_true = np.array([[[10.0, 10.0], [90.0, 30.0]]])
    y_pred = np.array([[[10.0, 18.0], [90.0, 39.0]]])  # 8 (correct), 9 (wrong)
    assert pck_score(y_true, y_pred) == 0.5
    assert pck_score(y_true, y_pred, alpha=0.1125) == 1.0


def test_types_and_keypoints_averages_differ():
    # type 0 present in 3 images, all correct; type 1 present in 1 image, wrong
    y_true = np.array([
        [[0.0, 0.0], [100.0, 100.0]],
        [[0.0, 0.0], [NAN, NAN]],
        [[0.0, 0.0], [NAN, NAN]],
    ])
    y_pred = y_true.copy()
    y_pred[0, 1] = [150.0, 100.0]
    box = np.tile([0.0, 0.0, 100.0, 100.0], (3, 1))
    assert pck_score(y_true, y_pred, bbox=box, average="types") == 0.5
    assert pck_score(y_true, y_pred, bbox=box, average="keypoints") == 0.75


def test_absent_truth_left_out_and_missing_prediction_wrong():
    y_true = np.array([[[0.0, 0.0], [NAN, NAN], [10.0, 10.0], [20.0, 20.0]]])
    y_pred = np.array([[[0.0, 0.0], [0.0, 0.0], [NAN, NAN], [20.0, 20.0]]])
    box = [[0, 0, 50, 50]]
    # present: 0 (right), 2 (NaN prediction: wrong), 3 (right); type 1 left out
    assert pck_score(y_true, y_pred, bbox=box) == pytest.approx(2 / 3)
    assert pck_score(y_true, y_pred, bbox=box, average="keypoints") == pytest.approx(2 / 3)
    per_type = pck_score(y_true, y_pred, bbox=box, average=None)
    np.testing.assert_array_equal(per_type, [1.0, NAN, 0.0, 1.0])


def test_infinite_prediction_is_wrong():
    y_true = np.array([[[0.0, 0.0], [10.0, 10.0]]])
    y_pred = np.array([[[np.inf, 0.0], [10.0, 10.0]]])
    assert pck_score(y_true, y_pred) == 0.5


def test_image_without_present_keypoint_is_skipped():
    y_true = np.array([[[0.0, 0.0], [10.0, 0.0]], [[NAN, NAN], [NAN, NAN]]])
    y_pred = np.zeros_like(y_true)
    assert pck_score(y_true, y_pred) == 0.5


# ---------------------------------------------------------- guards against known mistakes
def test_guard_invisible_keypoints_are_not_counted():
    """Adding invisible keypoints with absurd predictions must not change PCK."""
    y_true = np.array([[[0.0, 0.0], [40.0, 30.0]]])
    y_pred = np.array([[[1.0, 1.0], [45.0, 30.0]]])
    base = pck_score(y_true, y_pred, bbox=[[0, 0, 40, 30]])
    with_invisible = pck_score(
        np.concatenate([y_true, [[[NAN, NAN]]]], axis=1),
        np.concatenate([y_pred, [[[1e6, 1e6]]]], axis=1),
        bbox=[[0, 0, 40, 30]],
    )
    assert base == with_invisible == 0.5


def test_guard_threshold_comes_from_target_box_not_source_or_image():
    """Keypoint transfer: the threshold is alpha * max side of the *target* box.

    Source image and box are 10x larger than the target's, and the target image is far
    larger than its box; only the target-box threshold (0.1 * 50 = 5 px) gives 1/2.
    """
    source_points = np.array([[100.0, 100.0], [400.0, 300.0]])
    target_points = np.array([[10.0, 10.0], [60.0, 30.0]])
    data = Bunch(
        images=[np.zeros((1000, 1000, 3), np.uint8), np.zeros((800, 800, 3), np.uint8)],
        keypoints=np.stack([source_points, target_points]),
        boxes=np.array([[0.0, 0.0, 500.0, 500.0], [10.0, 10.0, 50.0, 20.0]]),
        pairs=np.array([[0, 1]]),
    )

    def shifted_truth(source_image, target_image, source_keypoints):
        return target_points + [[4.0, 0.0], [7.0, 0.0]]  # 4 px: right, 7 px: wrong

    table = transfer_pck_table(data, shifted_truth, alphas=[0.1])
    assert table[0]["PCK@0.1"] == 0.5
    assert table[-1] == {"class": "mean", "pairs": 1, "PCK@0.1": 0.5}


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("alpha", [0, -0.1, 1.5, np.nan, "0.1", None, True])
def test_alpha_outside_unit_interval(alpha):
    y = np.zeros((1, 2, 2))
    y[0, 1] = 1
    with pytest.raises(ValueError, match=r"alpha must be a number in \(0, 1\]"):
        pck_score(y, y, alpha=alpha)


def test_alpha_one_is_allowed():
    y = np.array([[[0.0, 0.0], [10.0, 0.0]]])
    assert pck_score(y, y + [10.0, 0.0], alpha=1.0) == 1.0


def test_shapes_must_match():
    with pytest.raises(ValueError, match=r"y_true has shape \(2, 3, 2\) but y_pred has shape"):
        pck_score(np.zeros((2, 3, 2)), np.zeros((2, 4, 2)))


def test_keypoints_must_be_three_dimensional():
    with pytest.raises(ValueError, match=r"expected \(n_images, n_keypoints, 2\)"):
        pck_score(np.zeros((3, 2)), np.zeros((3, 2)))


def test_infinite_truth_rejected():
    with pytest.raises(ValueError, match="infinite"):
        pck_score(np.full((1, 2, 2), np.inf), np.zeros((1, 2, 2)))


@pytest.mark.parametrize(
    "box, message",
    [
        ([[0, 0, 0, 10]], "zero or negative size"),
        ([[0, 0, 10, -1]], "zero or negative size"),
        ([[0, 0, np.nan, 10]], "NaN or infinite"),
        ([[np.inf, 0, 10, 10]], "NaN or infinite"),
        ([[0, 0, 10, 10], [0, 0, 10, 10]], "2 rows but there are 1 images"),
        ([0, 0, 10, 10], r"expected \(n_images, 4\)"),
    ],
)
def test_bad_boxes(box, message):
    y = np.array([[[0.0, 0.0], [1.0, 1.0]]])
    with pytest.raises(ValueError, match=message):
        pck_score(y, y, bbox=box)


def test_degenerate_keypoint_box_without_bbox():
    y = np.array([[[5.0, 5.0], [NAN, NAN]]])
    with pytest.raises(ValueError, match="pass bbox"):
        pck_score(y, y)
    assert pck_score(y, y, bbox=[[0, 0, 10, 10]]) == 1.0


def test_no_present_keypoint():
    with pytest.raises(ValueError, match="no present keypoint"):
        pck_score(np.full((2, 3, 2), NAN), np.zeros((2, 3, 2)))


def test_unknown_average():
    y = np.array([[[0.0, 0.0], [1.0, 1.0]]])
    with pytest.raises(ValueError, match="average must be one of"):
        pck_score(y, y, average="macro")
    with pytest.raises(ValueError, match="average must be 'types' or 'keypoints'"):
        pck_scorer(average=None)
    with pytest.raises(ValueError, match="alpha"):
        pck_scorer(alpha=2)


# ------------------------------------------------------------------------ properties
def _problems():
    sizes = st.tuples(st.integers(1, 4), st.integers(1, 5))
    return sizes.flatmap(lambda nk: _problem(*nk))


def _problem(n_images, n_types):
    """Coordinates on a 1/4-pixel grid, so that the transforms below are exact."""
    coords = st.integers(-400, 400).map(lambda v: v / 4)
    shape = (n_images, n_types, 2)
    return st.tuples(
        arrays(np.float64, shape, elements=coords),
        arrays(np.float64, shape, elements=coords),
        arrays(np.bool_, (n_images, n_types)),
        arrays(np.float64, (n_images, 2), elements=st.integers(4, 400).map(float)),
    )


def _assemble(true, pred, hidden, sizes):
    true = true.copy()
    true[hidden] = np.nan
    true[:, 0] = np.where(np.isnan(true[:, 0]), 0.0, true[:, 0])  # one present per image
    boxes = np.column_stack([np.zeros_like(sizes), sizes])
    return true, pred, boxes


@settings(max_examples=60, deadline=None)
@given(
    problem=_problems(),
    alpha=st.sampled_from([0.025, 0.05, 0.1, 0.2, 0.5, 1.0]),
    shift=st.tuples(st.integers(-500, 500), st.integers(-500, 500)),
    scale=st.sampled_from([0.25, 0.5, 2.0, 8.0]),
)
def test_invariant_to_common_translation_and_scale(problem, alpha, shift, scale):
    true, pred, boxes = _assemble(*problem)
    for average in ("types", "keypoints"):
        base = pck_score(true, pred, alpha=alpha, bbox=boxes, average=average)
        moved = pck_score(
            (true + shift) * scale, (pred + shift) * scale, alpha=alpha,
            bbox=(boxes + [*shift, 0, 0]) * scale, average=average,
        )
        assert moved == base
        assert 0.0 <= base <= 1.0


@settings(max_examples=60, deadline=None)
@given(problem=_problems())
def test_monotone_in_alpha_and_within_unit_interval(problem):
    true, pred, boxes = _assemble(*problem)
    for bbox in (boxes, None):
        if bbox is None:
            keypoint_boxes_ok = all(
                np.ptp(t[~np.isnan(t).any(axis=1)], axis=0).max() > 0 for t in true
            )
            if not keypoint_boxes_ok:
                continue
        scores = [pck_score(true, pred, alpha=a, bbox=bbox) for a in (0.01, 0.05, 0.1, 0.3, 1.0)]
        assert all(0.0 <= s <= 1.0 for s in scores)
        assert scores == sorted(scores)
    assert pck_score(true, true, bbox=boxes) == 1.0


# ---------------------------------------------------------------------------- scorer
class MeanKeypoints(BaseEstimator):
    """Predicts the mean training keypoints plus a constant shift, whatever X is."""

    def __init__(self, shift=0.0):
        self.shift = shift

    def fit(self, X, y):
        self.mean_ = np.nanmean(np.asarray(y, dtype=float), axis=0)
        return self

    def predict(self, X):
        return np.repeat(self.mean_[None] + self.shift, len(X), axis=0)


@pytest.fixture
def keypoint_problem(rng):
    template = np.array([[0.0, 0.0], [100.0, 0.0], [50.0, 80.0]])
    y = template + rng.normal(0, 1.0, size=(30, 3, 2))
    X = np.arange(30, dtype=float)[:, None]
    return X, y


def test_scorer_in_grid_search_with_three_dimensional_targets(keypoint_problem):
    X, y = keypoint_problem
    search = GridSearchCV(
        MeanKeypoints(), {"shift": [0.0, 6.0, 30.0]}, scoring=pck_scorer(alpha=0.05), cv=3
    ).fit(X, y)
    assert search.best_params_ == {"shift": 0.0}
    assert search.best_score_ == 1.0
    scores = search.cv_results_["mean_test_score"]
    assert scores[2] == 0.0 and scores[0] > scores[1]


def test_scorer_in_cross_val_score(keypoint_problem):
    X, y = keypoint_problem
    scores = cross_val_score(MeanKeypoints(shift=6.0), X, y, scoring=pck_scorer(alpha=0.1), cv=3)
    expected = [
        pck_score(y[test], np.repeat(y[train].mean(0)[None] + 6.0, len(test), axis=0), alpha=0.1)
        for train, test in KFold(3).split(X)
    ]
    np.testing.assert_allclose(scores, expected)


def test_scorer_receives_bbox_through_metadata_routing(keypoint_problem):
    X, y = keypoint_problem
    huge = np.tile([0.0, 0.0, 1000.0, 1000.0], (len(X), 1))
    tiny = np.tile([0.0, 0.0, 1.0, 1.0], (len(X), 1))
    estimator = MeanKeypoints(shift=30.0)
    with sklearn.config_context(enable_metadata_routing=True):
        scoring = pck_scorer(alpha=0.1).set_score_request(bbox=True)
        with_huge = cross_val_score(estimator, X, y, scoring=scoring, cv=3, params={"bbox": huge})
        with_tiny = cross_val_score(
            MeanKeypoints(shift=5.0), X, y, scoring=scoring, cv=3, params={"bbox": tiny}
        )
        search = GridSearchCV(MeanKeypoints(), {"shift": [0.0, 30.0]}, scoring=scoring, cv=3)
        search.fit(X, y, bbox=huge)
    np.testing.assert_array_equal(with_huge, 1.0)  # 30 px < 0.1 * 1000
    np.testing.assert_array_equal(with_tiny, 0.0)  # ~7 px > 0.1 * 1
    np.testing.assert_array_equal(search.cv_results_["mean_test_score"], [1.0, 1.0])


# ------------------------------------------------------------------------ evaluation
def test_identity_transfer_maps_pixel_edges_and_centres():
    source, target = np.zeros((100, 50, 3), np.uint8), np.zeros((50, 150, 3), np.uint8)
    points = np.array([[-0.5, -0.5], [49.5, 99.5], [24.5, 49.5]])  # edges and centre
    np.testing.assert_allclose(
        identity_transfer(source, target, points), [[-0.5, -0.5], [149.5, 49.5], [74.5, 24.5]]
    )


def test_transfer_table_rows_per_class_and_formats():
    rng = np.random.default_rng(1)
    keypoints = rng.uniform(0, 50, size=(4, 5, 2))
    images = [np.zeros((60, 60, 3), np.uint8)] * 4
    data = Bunch(images=images, keypoints=keypoints, boxes=np.tile([0.0, 0, 50, 50], (4, 1)),
                 pairs=np.array([[0, 1], [1, 0], [2, 3]]), labels=np.array([0, 0, 1, 1]),
                 class_names=["cat", "dog"])  # fmt: skip
    table = transfer_pck_table(data, identity_transfer, alphas=(0.05, 0.2))
    assert isinstance(table, ResultTable)
    assert [row["class"] for row in table] == ["cat", "dog", "mean"]
    assert [row["pairs"] for row in table] == [2, 1, 3]
    expected_cat = pck_score(keypoints[[1, 0]], keypoints[[0, 1]], alpha=0.2,
                             bbox=data.boxes[:2])  # fmt: skip
    assert table[0]["PCK@0.2"] == expected_cat
    assert table[2]["PCK@0.2"] == pytest.approx((table[0]["PCK@0.2"] + table[1]["PCK@0.2"]) / 2)
    markdown = table.to_markdown().splitlines()
    assert markdown[0] == "| class | pairs | PCK@0.05 (%) | PCK@0.2 (%) |"
    assert markdown[2].startswith(f"| cat | 2 | {100 * table[0]['PCK@0.05']:.1f} |")
    assert table.to_csv().splitlines()[0] == "class,pairs,PCK@0.05,PCK@0.2"


def test_transfer_table_bad_input():
    data = Bunch(images=[np.zeros((9, 9, 3), np.uint8)] * 2, keypoints=np.zeros((2, 3, 2)),
                 boxes=np.tile([0.0, 0, 9, 9], (2, 1)), pairs=np.array([[0, 1]]))  # fmt: skip
    with pytest.raises(ValueError, match="returned shape"):
        transfer_pck_table(data, lambda s, t, k: k[:2])
    with pytest.raises(ValueError, match="alpha"):
        transfer_pck_table(data, identity_transfer, alphas=[0.1, 0])
    with pytest.raises(ValueError, match="no pairs"):
        transfer_pck_table(Bunch(**{**data, "pairs": np.empty((0, 2))}), identity_transfer)


@pytest.mark.realdata
def test_identity_baseline_on_pf_willow(pf_willow_dir):
    from PIL import Image
    from scipy.io import loadmat

    table = evaluate_identity_pf_willow(pf_willow_dir)
    assert len(table) == 11 and table[-1]["class"] == "mean"
    assert all(row["pairs"] == 90 for row in table[:-1]) and table[-1]["pairs"] == 900
    for row in table:
        assert 0 <= row["PCK@0.05"] <= row["PCK@0.1"] <= row["PCK@0.15"] <= 1

    # independent computation straight from the files: PCK over all 900 pairs at 0.1
    # (all keypoints are visible, 90 pairs per sub-class: equal to the mean over classes)
    correct = total = 0
    for folder in sorted(p for p in pf_willow_dir.iterdir() if p.is_dir()):
        names = sorted(folder.glob("*.png"))
        points = {n: loadmat(n.with_suffix(".mat"))["pts_coord"].T for n in names}
        sizes = {}
        for n in names:
            with Image.open(n) as image:
                sizes[n] = image.size
        for s in names:
            for t in names:
                if s == t:
                    continue
                (ws, hs), (wt, ht) = sizes[s], sizes[t]
                predicted = (points[s] - 0.5) * [wt / ws, ht / hs] + 0.5  # 1-based frame
                threshold = 0.1 * np.ptp(points[t], axis=0).max()
                distance = np.linalg.norm(predicted - points[t], axis=1)
                correct += int((distance <= threshold).sum())
                total += len(distance)
    assert total == 9000
    assert table[-1]["PCK@0.1"] == pytest.approx(correct / total, abs=1e-12)
    assert 0.1 < table[-1]["PCK@0.1"] < 0.5  # a floor, far below published methods (~0.8)
