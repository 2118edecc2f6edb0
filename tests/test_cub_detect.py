"""``evaluate_cub_detection``: C and beta chosen by grouped K-fold CV on the training split."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from skcorr.datasets import load_cub, make_affine_category, uncrop_keypoints
from skcorr.evaluation import _cub, evaluate_cub_detection
from skcorr.keypoints import SlidingKeypointDetector
from skcorr.metrics import pck_score


def _write_cub(root, classes, *, train=4, test=2, random_state=0):
    """A CUB_200_2011 folder of warped cats: ``train`` + ``test`` images per class."""
    n = classes * (train + test)
    cats = make_affine_category(n, height=72, random_state=random_state)
    (root / "images").mkdir(parents=True)
    (root / "parts").mkdir()
    rows = {name: [] for name in ("images.txt", "image_class_labels.txt",
                                  "bounding_boxes.txt", "train_test_split.txt",
                                  "parts/part_locs.txt")}
    for i, (image, points, (x, y, w, h)) in enumerate(
            zip(cats.images, cats.keypoints, cats.boxes, strict=True)):
        image_id, label = i + 1, i % classes + 1
        relative = f"{label:03d}.Cat_{label}/cat_{image_id}.png"
        (root / "images" / relative).parent.mkdir(exist_ok=True)
        Image.fromarray(image).save(root / "images" / relative)
        rows["images.txt"].append(f"{image_id} {relative}")
        rows["image_class_labels.txt"].append(f"{image_id} {label}")
        rows["bounding_boxes.txt"].append(f"{image_id} {x - 6} {y - 6} {w + 12} {h + 12}")
        rows["train_test_split.txt"].append(f"{image_id} {int(i < classes * train)}")
        rows["parts/part_locs.txt"] += [f"{image_id} {k + 1} {px} {py} 1"
                                        for k, (px, py) in enumerate(points)]
    rows["classes.txt"] = [f"{c} {c:03d}.Cat_{c}" for c in range(1, classes + 1)]
    rows["parts/parts.txt"] = [f"{k + 1} {name}" for k, name in enumerate(cats.keypoint_names)]
    for name, lines in rows.items():
        (root / name).write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def cats_cub(tmp_path_factory):
    """Three classes of four training and two test cats each."""
    return _write_cub(tmp_path_factory.mktemp("cats") / "CUB_200_2011", 3)


def test_c_and_beta_are_chosen_by_grouped_cv_over_the_whole_training_split(cats_cub,
                                                                          monkeypatch):
    data = load_cub(cats_cub)
    train = np.flatnonzero(data.split == "train")
    seen = {}  # the crops, their transforms, and what fit and predict were given

    def crops(*args, **kwargs):
        out = original_crops(*args, **kwargs)
        seen["crops"], seen["transforms"] = out[0], out[2]
        return out

    original_crops = _cub._crops
    monkeypatch.setattr(_cub, "_crops", crops)
    calls = []
    fit, predict = SlidingKeypointDetector.fit, SlidingKeypointDetector.predict

    def index(crop_list):
        where = {id(c): i for i, c in enumerate(seen["crops"])}
        return np.array([where[id(c)] for c in crop_list])

    def recording_fit(self, crop_list, keypoints):
        calls.append(("fit", type(self.features).__name__, self.C, None, index(crop_list),
                      None))
        return fit(self, crop_list, keypoints)

    def recording_predict(self, crop_list):
        out = predict(self, crop_list)
        calls.append(("predict", type(self.features).__name__, self.C, self.beta,
                      index(crop_list), out))
        return out

    monkeypatch.setattr(SlidingKeypointDetector, "fit", recording_fit)
    monkeypatch.setattr(SlidingKeypointDetector, "predict", recording_predict)
    Cs, betas = [0.01, 1.0], [0.0, 0.5]
    table = evaluate_cub_detection(cats_cub, box_size=64, sift_step=8, sift_bin_size=4,
                                   betas=betas, Cs=Cs, cv=3, mining_rounds=0,
                                   cache_size=200)

    assert [(row["prior"], row["beta"]) for row in table][::3] == [("no", 0.0)] * 2
    assert [row["prior"] for row in table] == ["no", "yes", "only"] * 2
    assert "3-fold cross-validation on the 12 training images, grouped by bird class " \
           "(3 classes)" in table.title
    for f, (name, scores) in enumerate(table.cv_scores.items()):
        assert table[3 * f]["features"] == name
        kind = "ConvColumnExtractor" if f == 0 else "DenseSIFT"
        mine = [c for c in calls if c[1] == kind]
        cv_fits = [c for c in mine if c[0] == "fit"][:-1]
        assert len(cv_fits) == len(Cs) * 3
        for C in Cs:
            held = [c for c in mine[:-4] if c[0] == "predict" and c[2] == C]
            assert sorted(c[3] for c in held) == sorted(betas * 3)
            # Every training image held out exactly once per (C, beta), never a test image.
            for beta in betas:
                at = np.concatenate([c[4] for c in held if c[3] == beta])
                assert sorted(at) == sorted(train)
            # Each fold fits the other classes' images and holds out whole classes.
            fits = [c[4] for c in cv_fits if c[2] == C]
            held_0 = [c[4] for c in held if c[3] == 0.0]
            for fitted, out in zip(fits, held_0, strict=True):
                assert sorted(np.r_[fitted, out]) == sorted(train)
                assert not set(data.labels[fitted]) & set(data.labels[out])
            # The cv score is PCK@0.1 of the held-out predictions, scored as the test.
            for beta in betas:
                predicted = np.full((len(data.images), 6, 2), np.nan)
                for c in held:
                    if c[3] == beta:
                        predicted[c[4]] = c[5]
                expected = pck_score(
                    data.keypoints[train],
                    uncrop_keypoints(predicted[train], seen["transforms"][train]),
                    alpha=0.1, bbox=data.boxes[train])
                assert scores[C, beta] == pytest.approx(expected)
        # The chosen setting is the best cv score (ties: smaller beta, then smaller C) ...
        rows = table[3 * f:3 * f + 3]
        best = max(scores, key=lambda key: (scores[key], -key[1], -key[0]))
        assert (rows[1]["C"], rows[1]["beta"]) == best
        assert rows[1]["cv PCK@0.1"] == scores[best] == max(scores.values())
        assert rows[0]["cv PCK@0.1"] == scores[best[0], 0.0]
        assert rows[2]["beta"] == 1.0 and rows[2]["cv PCK@0.1"] is None
        # ... and the refit uses it on the whole training split.
        final_fit = [c for c in mine if c[0] == "fit"][-1]
        assert final_fit[2] == best[0] and sorted(final_fit[4]) == sorted(train)
        assert [c[3] for c in mine[-3:]] == [0.0, best[1], 1.0]
        for c in mine[-3:]:
            assert sorted(c[4]) == sorted(np.flatnonzero(data.split == "test"))
        assert "C=0.01: 0: " in table.notes[f] and "; C=1: 0: " in table.notes[f]
    assert "| features | prior | C | beta | PCK@0.1 (%) | cv PCK@0.1 (%) |" in str(table)


def test_more_folds_than_classes_is_refused_before_any_crop(tmp_path, monkeypatch):
    root = _write_cub(tmp_path / "CUB_200_2011", 2, train=2, test=1)

    def no_crops(*args, **kwargs):
        raise AssertionError("cropped before the folds were checked")

    monkeypatch.setattr(_cub, "_crops", no_crops)
    with pytest.raises(ValueError, match=r"cv=3 folds need at least 3 bird classes in the "
                                         r"training split, which has 2; lower cv"):
        evaluate_cub_detection(root, cv=3)


def test_a_given_feature_cache_is_used_and_kept(cats_cub, tmp_path):
    cache = tmp_path / "features"
    table = evaluate_cub_detection(cats_cub, box_size=64, betas=[0.0], Cs=[0.1], cv=2,
                                   sift=False, mining_rounds=0, cache_size=200,
                                   memory=str(cache))
    assert [row["C"] for row in table] == [0.1] * 3
    assert any(cache.rglob("*.pkl"))
