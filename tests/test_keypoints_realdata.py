"""Keypoint classification and detection on the CUB-200-2011 subset (SKCORR_DATA)."""

import numpy as np
import pytest

from skcorr.datasets import crop_to_boxes, load_cub
from skcorr.features import keypoint_samples
from skcorr.features._sift import DenseSIFT
from skcorr.keypoints import KeypointClassifier, SlidingKeypointDetector

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def cub(cub_dir):
    return load_cub(cub_dir)


def test_cub_sift_classifier_beats_chance(cub):
    # 40 train / 20 test images, SIFT radius 16 on 128-px boxes: well above 1/15.
    train = np.flatnonzero(cub.split == "train")[:40]
    test = np.flatnonzero(cub.split == "test")[:20]
    crops, kp, _ = crop_to_boxes(cub.images, cub.keypoints, cub.boxes, size=128)
    inside = ((kp >= -0.5) & (kp <= 127.5)).all(axis=2)
    kp = np.where(inside[..., None], kp, np.nan)
    X, y, g = keypoint_samples([crops[i] for i in train], kp[train])
    Xt, yt, _ = keypoint_samples([crops[i] for i in test], kp[test])
    clf = KeypointClassifier(features=DenseSIFT(radius=16), Cs=[0.1, 1.0], cv=3,
                             random_state=0).fit(X, y, groups=g)
    assert clf.score(Xt, yt) > 0.3


def test_cub_sift_detector_beats_the_box_centre(cub):
    train = np.flatnonzero(cub.split == "train")[:40]
    test = np.flatnonzero(cub.split == "test")[:20]
    crops, kp, _ = crop_to_boxes(cub.images, cub.keypoints, cub.boxes, size=96)
    inside = ((kp >= -0.5) & (kp <= 95.5)).all(axis=2)
    kp = np.where(inside[..., None], kp, np.nan)
    det = SlidingKeypointDetector(features=DenseSIFT(mode="dense", step=4, bin_size=4),
                                  box_size=96, C=0.1, cache_size=500, mining_rounds=1,
                                  random_state=0)
    det.fit([crops[i] for i in train], kp[train])
    test_crops = [crops[i] for i in test]
    score = det.score(test_crops, kp[test])
    centre = np.where(np.isnan(kp[test]), np.nan, 47.5)
    from skcorr.metrics import pck_score

    baseline = pck_score(kp[test], centre, bbox=[(0, 0, 96, 96)] * len(test))
    assert score > baseline


# --- the studies as protocols: one table each, printed in one style -----------------------

def _cub_subset(cub_dir, folder, n_train, n_test, n_classes=None):
    """The CUB folder with the first training and test images listed (links, no copies):
    ``n_train`` of each of the first ``n_classes`` classes, or the first ``n_train``."""
    folder.mkdir()
    for item in cub_dir.iterdir():
        if item.name != "images.txt":
            (folder / item.name).symlink_to(item)
    split = dict(line.split() for line in (cub_dir / "train_test_split.txt").read_text()
                 .splitlines() if line.strip())
    lines = [line for line in (cub_dir / "images.txt").read_text().splitlines() if line]
    train = [line for line in lines if split[line.split()[0]] == "1"]
    if n_classes is None:
        train = train[:n_train]
    else:
        classes = sorted({line.split()[1].split("/")[0] for line in train})[:n_classes]
        train = [line for c in classes
                 for line in [t for t in train if t.split()[1].startswith(c + "/")][:n_train]]
    test = [line for line in lines if split[line.split()[0]] == "0"][:n_test]
    (folder / "images.txt").write_text("\n".join(train + test) + "\n")
    return folder


@pytest.fixture(scope="module")
def small_cub(cub_dir, tmp_path_factory):
    """The CUB folder with 20 training and 10 test images listed (links, no copies)."""
    return _cub_subset(cub_dir, tmp_path_factory.mktemp("cub") / "CUB_200_2011", 20, 10)


@pytest.fixture(scope="module")
def two_class_cub(cub_dir, tmp_path_factory):
    """The CUB folder with 10 training images of each of two classes and 10 test images."""
    return _cub_subset(cub_dir, tmp_path_factory.mktemp("cub2") / "CUB_200_2011", 10, 10,
                       n_classes=2)


def test_cub_classification_protocol_is_one_table(small_cub):
    from skcorr.evaluation import evaluate_cub_classification

    table = evaluate_cub_classification(small_cub, layers=["stage3"], sift_radii=[12],
                                        Cs=[0.1, 1.0], cv=2, image_size=128)
    assert table.columns() == ["features", "layer", "radius", "C", "test accuracy",
                               "cv accuracy C=0.1", "cv accuracy C=1"]
    assert [(row["features"], row["layer"], row["radius"]) for row in table] == [
        ("sift", None, 12.0), ("efficientnet_lite0", "stage3", None)]
    for row in table:
        assert 1 / 15 < row["test accuracy"] <= 1  # well above chance
        assert row["C"] in (0.1, 1.0)
        assert max(row["cv accuracy C=0.1"], row["cv accuracy C=1"]) == pytest.approx(
            row[f"cv accuracy C={row['C']:g}"])
    data = load_cub(small_cub)
    visible = (~np.isnan(data.keypoints).any(axis=2)).sum(axis=1)
    assert (f"{visible[data.split == 'train'].sum()} training and "
            f"{visible[data.split == 'test'].sum()} test keypoints") in table.title
    printed = str(table).splitlines()
    assert printed[2].startswith("| features | layer | radius | C | test accuracy (%) |")
    assert printed[4].startswith(f"| sift | - | 12 | {table[0]['C']:g} | "
                                 f"{100 * table[0]['test accuracy']:.1f} |")
    assert printed[-1].startswith("Seconds per feature")


@pytest.mark.slow
def test_cub_detection_protocol_is_one_table(two_class_cub, small_cub):
    from skcorr.evaluation import evaluate_cub_detection

    table = evaluate_cub_detection(two_class_cub, box_size=64, sift_step=4, sift_bin_size=4,
                                   betas=[0.5], Cs=[0.1], cv=2, mining_rounds=0,
                                   cache_size=200)
    assert [(row["prior"], row["beta"]) for row in table][:2] in (
        [("no", 0.0), ("yes", 0.0)], [("no", 0.0), ("yes", 0.5)])
    assert [row["prior"] for row in table] == ["no", "yes", "only"] * 2
    assert table[2]["beta"] == 1.0 and table[2]["cv PCK@0.1"] is None
    assert [row["C"] for row in table] == [0.1] * 6
    parts = [c for c in table.columns() if c.startswith("PCK@0.1 ")]
    assert len(parts) == 15
    for row in table:
        assert row["PCK@0.1"] == pytest.approx(np.nanmean([row[c] for c in parts]))
    # The chosen beta is the best by cross-validation on the training split.
    for row in table[1::3]:
        assert row["cv PCK@0.1"] >= table[table.index(row) - 1]["cv PCK@0.1"]
    assert len(table.notes) == 2 and "cv PCK@0.1 (%) by C and beta C=0.1: 0:" in table.notes[0]
    assert "2-fold cross-validation on the 20 training images, grouped by bird class " \
           "(2 classes)" in table.title
    assert "| features | prior | C | beta | PCK@0.1 (%) | cv PCK@0.1 (%) |" in str(table)
    # small_cub's 20 training images are of one class: no grouped fold is possible.
    with pytest.raises(ValueError, match="cv=2 folds need at least 2 bird classes in the "
                                         "training split, which has 1"):
        evaluate_cub_detection(small_cub, cv=2)
