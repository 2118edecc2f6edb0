"""Honest accuracy: settings chosen by grouped cross-validation, both PCK references."""

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, LeaveOneGroupOut
from sklearn.utils import estimator_checks as checks

from skcorr import ConvColumnExtractor, DenseSIFT
from skcorr.datasets import load_pf_willow, load_sample_pairs, make_affine_category
from skcorr.evaluation import (
    cross_validated_transfer,
    identity_transfer,
    pair_categories,
    pair_samples,
    transfer_pck_table,
)
from skcorr.flow import PairTransfer, align
from skcorr.metrics import image_boxes, pck_score, pck_scorer

SIFT = DenseSIFT(mode="dense", radius=8, step=8, bin_size=4)


@pytest.fixture(scope="module")
def four_categories():
    """Eight warped cats in five sub-classes of four categories; pairs within sub-classes."""
    data = make_affine_category(10, height=64, random_state=0)
    data.class_names = ["cat(A)", "cat(B)", "dog", "owl", "fox(x)"]
    data.labels = np.repeat(np.arange(5), 2)
    data.pairs = np.array([(i, i ^ 1) for i in range(10)])
    return data


class _Recording(PairTransfer):
    """A PairTransfer that remembers the categories it was fitted on and predicts."""

    category_of: dict = {}
    log: list = []

    def fit(self, X, y=None):
        self.fitted_on_ = {self.category_of[id(target)] for target in X[:, 1]}
        return super().fit(X, y)

    def predict(self, X):
        for target in X[:, 1]:
            self.log.append((frozenset(self.fitted_on_), self.category_of[id(target)]))
        return super().predict(X)


def test_grouped_cv_never_has_a_category_on_both_sides(four_categories):
    data = four_categories
    groups = pair_categories(data)
    assert sorted(set(groups)) == ["cat", "dog", "fox", "owl"]
    _Recording.category_of = {id(data.images[t]): g
                              for (_, t), g in zip(data.pairs, groups, strict=True)}
    _Recording.log = []
    table, folds = cross_validated_transfer(
        data, _Recording(SIFT), {"lam": [0.01, 1.0]}, alphas=[0.1])
    assert [fold["held-out"] for fold in folds] == ["cat", "dog", "fox", "owl"]
    assert folds[0]["classes"] == "cat(A), cat(B)"
    # Every prediction (inner validation, outer test, the final table) was made by an
    # estimator fitted on other categories only.
    assert _Recording.log
    for fitted_on, predicted in _Recording.log:
        assert predicted not in fitted_on
    # Inner searches fit on two categories, refits on three: never on all four.
    assert {len(fitted_on) for fitted_on, _ in _Recording.log} == {2, 3}
    assert [row["class"] for row in table] == data.class_names + ["mean"]
    # The settings that predicted each row, in their own columns.
    assert table.columns() == ["class", "pairs", "held-out", "lam", "PCK@0.1", "cv PCK@0.1"]
    assert [row["held-out"] for row in table] == ["cat", "cat", "dog", "owl", "fox", None]
    assert table[-1]["lam"] is None and table[-1]["cv PCK@0.1"] is None
    for fold in folds:
        for row in table[:-1]:
            if row["held-out"] == fold["held-out"]:
                assert fold["chosen"] == f"lam={row['lam']:g}"
                assert row["cv PCK@0.1"] == fold["cv PCK"]
    for fold in folds:
        assert fold["chosen"] in ("lam=0.01", "lam=1")
        rows = [row["PCK@0.1"] for row in table if row["class"] in fold["classes"]]
        assert fold["PCK@0.1"] == pytest.approx(np.mean(rows))


def test_real_pf_willow_categories_split_cleanly(pf_willow_dir):
    data = load_pf_willow(pf_willow_dir)
    groups = pair_categories(data)
    assert sorted(set(groups)) == ["car", "duck", "motorbike", "winebottle"]
    subclass = np.array(data.class_names)[data.labels[data.pairs[:, 1]]]
    for train, test in LeaveOneGroupOut().split(data.pairs, groups=groups):
        assert not set(groups[train]) & set(groups[test])
        assert not set(subclass[train]) & set(subclass[test])
        # a pair never crosses categories: both images come from the held-out one
        held = data.pairs[test]
        assert set(data.labels[held[:, 0]]) == set(data.labels[held[:, 1]])


def test_pair_transfer_aligns_pairs_and_its_cache_extracts_each_image_once(
        monkeypatch, tmp_path):
    pairs = load_sample_pairs()
    X, y = pair_samples(pairs)
    batches, flows = [], []
    original_batch = DenseSIFT._dense_batch

    def counting_batch(self, images):
        batches.append(len(images))
        return original_batch(self, images)

    monkeypatch.setattr(DenseSIFT, "_dense_batch", counting_batch)
    estimator = PairTransfer(SIFT, lam=0.2, memory=tmp_path).fit(X)
    predicted = estimator.predict(X)
    assert sum(batches) == len({id(image) for image in X[:, :2].ravel()})
    features = SIFT.fit()
    for (source, target, keypoints), mine in zip(X, predicted, strict=True):
        flow = align(*features.extract_dense([source, target]), lam=0.2, truncation=3.0,
                     ot_reg=0.2, subcell=True)  # the estimator's defaults
        np.testing.assert_allclose(mine, flow.transfer_points(keypoints))
    assert estimator.score(X, y) == pck_score(y, predicted, alpha=0.1)

    # Copies of the images have the same content: found in the cache, as are the
    # alignments; another lam aligns again but extracts nothing.
    import skcorr.flow._estimators as estimators

    original_align = estimators._align_unchecked
    monkeypatch.setattr(estimators, "_align_unchecked", lambda *a, **k: flows.append(1) or
                        original_align(*a, **k))
    copies = X.copy()
    copies[:, 1] = [image.copy() for image in X[:, 1]]
    batches.clear()
    again = PairTransfer(SIFT, lam=0.2, memory=tmp_path).fit(copies)
    np.testing.assert_array_equal(again.predict(copies), predicted)
    assert batches == [] and flows == []
    other = again.set_params(lam=0.0).predict(copies)
    assert batches == [] and len(flows) == len(X)
    assert not np.array_equal(other, predicted)


def test_refinement_moves_points_to_fine_nodes_near_the_flow():
    pairs = load_sample_pairs()
    X, _ = pair_samples(pairs)
    fine = DenseSIFT(mode="dense", radius=8, step=4, bin_size=4)
    coarse = PairTransfer(SIFT, lam=0.2).fit(X).predict(X)
    refined = PairTransfer(SIFT, lam=0.2, refine=fine, refine_radius=1).fit(X).predict(X)
    for (_, target, _), before, after in zip(X, coarse, refined, strict=True):
        fmap = fine.fit().extract_dense([target])[0]
        step = fmap.stride
        assert np.isin(after[:, 0], fmap.xs).all() and np.isin(after[:, 1], fmap.ys).all()
        assert np.all(np.abs(after - before) <= 1.5 * step + 1e-9)
    assert not np.allclose(coarse, refined)


def test_grid_search_tunes_pair_transfer_with_the_pck_scorer():
    pairs = load_sample_pairs()
    X, y = pair_samples(pairs)
    features = ConvColumnExtractor(layer="stage3", weights=None, image_size=96)
    search = GridSearchCV(PairTransfer(features), {"lam": [0.0, 0.1],
                                                   "features__layer": ["stage3", "stage4"]},
                          scoring=pck_scorer(alpha=0.1), cv=2).fit(X, y)
    assert set(search.best_params_) == {"lam", "features__layer"}
    assert search.best_estimator_.features_.layer == search.best_params_["features__layer"]


@pytest.mark.parametrize("bad", [np.zeros((3, 2)), np.empty((0, 3), dtype=object)])
def test_pair_transfer_rejects_what_is_not_pairs(bad):
    with pytest.raises(ValueError, match="pair_samples"):
        PairTransfer(SIFT).fit(bad)


def test_pair_transfer_follows_the_estimator_api():
    estimator = PairTransfer(SIFT)
    for check in (checks.check_estimator_cloneable, checks.check_get_params_invariance,
                  checks.check_set_params, checks.check_no_attributes_set_in_init,
                  checks.check_parameters_default_constructible):
        check("PairTransfer", estimator)


def test_image_reference_uses_the_whole_target_image():
    pairs = load_sample_pairs()
    box = transfer_pck_table(pairs, identity_transfer, alphas=[0.05, 0.1])
    image = transfer_pck_table(pairs, identity_transfer, alphas=[0.05, 0.1],
                               reference="image")
    targets = pairs.pairs[:, 1]
    predicted = np.stack([identity_transfer(pairs.images[s], pairs.images[t], pairs.keypoints[s])
                          for s, t in pairs.pairs])
    boxes = image_boxes([pairs.images[t] for t in targets])
    assert boxes[0].tolist() == [0, 0, pairs.images[targets[0]].shape[1],
                                 pairs.images[targets[0]].shape[0]]
    for row in image[:-1]:
        label = pairs.class_names.index(row["class"])
        mask = pairs.labels[targets] == label
        assert row["PCK@0.1"] == pck_score(pairs.keypoints[targets[mask]], predicted[mask],
                                           alpha=0.1, bbox=boxes[mask])
    # The image is never smaller than the keypoints' box: a looser threshold.
    assert all(i["PCK@0.1"] >= b["PCK@0.1"] for i, b in zip(image, box, strict=True))
    with pytest.raises(ValueError, match="reference"):
        transfer_pck_table(pairs, identity_transfer, reference="box")


def test_cli_asks_for_cv_when_given_several_candidates(tmp_path, capsys):
    from skcorr.cli import main

    argv = ["evaluate", "pf-willow", "--data", str(tmp_path), "--layer", "stage4",
            "stage4+stage5"]
    assert main(argv) == 2
    assert "--lam cv" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["evaluate", "pf-willow", "--lam", "often"])
    assert "'cv'" in capsys.readouterr().err


def test_cli_image_sizes_are_cv_candidates(tmp_path, capsys):
    from skcorr.cli import _build_parser, main

    argv = ["evaluate", "pf-willow", "--data", str(tmp_path), "--image-size", "320", "400"]
    assert main(argv) == 2
    assert "--image-size" in capsys.readouterr().err
    args = _build_parser().parse_args(argv + ["--lam", "cv"])
    assert args.image_sizes == [320, 400]
    assert _build_parser().parse_args(["evaluate", "pf-willow"]).image_sizes == [320]
    # The other protocols keep one size.
    assert _build_parser().parse_args(["evaluate", "cub-classify"]).image_size == 256


def test_cross_validation_chooses_the_input_size_per_fold(four_categories):
    # Each candidate size is its own feature configuration: extracted, aligned and
    # scored on its own, and the chosen size is reported per held-out category.
    table, folds = cross_validated_transfer(
        four_categories, PairTransfer(SIFT, lam=0.1),
        {"features__image_size": [48, 64]}, alphas=[0.1])
    assert len(folds) == 4
    assert all(fold["chosen"] in ("features__image_size=48", "features__image_size=64")
               for fold in folds)
    assert {row["features__image_size"] for row in table[:-1]} <= {48, 64}
    assert table[-1]["class"] == "mean"
    assert 0.0 <= table[-1]["PCK@0.1"] <= 1.0
