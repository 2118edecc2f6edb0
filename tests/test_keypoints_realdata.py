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
