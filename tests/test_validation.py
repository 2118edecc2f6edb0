"""skcorr._validation: the one home of the keypoint, box, crop and alpha checks."""

import numpy as np
import pytest

from skcorr._validation import (
    check_alpha,
    check_boxes,
    check_crops_keypoints,
    check_image_keypoints,
    check_keypoints,
    check_points_inside,
)


def test_check_keypoints_names_the_problem():
    with pytest.raises(ValueError, match="it is ragged: image 0 has 2 keypoints but image 1 has 1"):
        check_keypoints([[[0, 0], [1, 1]], [[0, 0]]])
    with pytest.raises(ValueError, match=r"y has shape \(2, 2\); expected"):
        check_keypoints(np.zeros((2, 2)), name="y")
    with pytest.raises(ValueError, match="infinite values"):
        check_keypoints([[[np.inf, 0.0]]])
    with pytest.raises(ValueError, match="has 1 rows but there are 2 images; pass one row"):
        check_keypoints([[[0.0, 0.0]]], n=2)
    out = check_keypoints([[[1, 2], [np.nan, np.nan]]])
    assert out.dtype == np.float64 and out.shape == (1, 2, 2)


def test_check_image_keypoints_checks_each_image_by_its_own_size():
    images = [np.zeros((10, 20, 3), np.uint8), np.zeros((30, 5, 3), np.uint8)]
    ok = np.array([[[19.0, 9.0]], [[4.0, 29.0]]])
    np.testing.assert_array_equal(check_image_keypoints(images, ok), ok)
    bad = np.array([[[19.0, 9.0]], [[19.0, 9.0]]])  # inside image 0, outside image 1
    with pytest.raises(ValueError, match=r"y\[1, 0\] = \(19, 9\) lies outside X\[1\] of size "
                                         r"5x30 .*set them to NaN"):
        check_image_keypoints(images, bad, name="y", images_name="X")
    with pytest.raises(ValueError, match="are all NaN"):
        check_image_keypoints(images, np.full((2, 1, 2), np.nan))


def test_check_image_keypoints_warns_about_unlearnable_types_in_fit():
    images = [np.zeros((10, 10, 3), np.uint8)]
    keypoints = np.array([[[1.0, 1.0], [np.nan, np.nan]]])
    with pytest.warns(UserWarning, match=r"type\(s\) \[1\] have no present keypoint"):
        check_image_keypoints(images, keypoints, fit=True)
    check_image_keypoints(images, keypoints)  # no warning outside fit (errors under pytest)


def test_check_points_inside_default_message_is_for_samples():
    check_points_inside(np.array([[0.0, 0.0], [9.4, 4.4]]), (5, 10))
    with pytest.raises(ValueError, match=r"^Keypoint \(10, 0\) lies outside images\[3\] of size "
                                         r"10x5 .*Drop it or clip it to the image\.$"):
        check_points_inside(np.array([[0.0, 0.0], [10.0, 0.0]]), (5, 10), image="images[3]")


def test_check_crops_keypoints_returns_a_list_and_floats():
    crops = (np.zeros((8, 8, 3), np.uint8) for _ in range(2))
    crops, keypoints = check_crops_keypoints(crops, [[[1, 1]], [[2, 2]]])
    assert isinstance(crops, list) and len(crops) == 2 and keypoints.dtype == np.float64
    with pytest.raises(ValueError, match=r"keypoints\[0, 0\].*outside crops\[0\]"):
        check_crops_keypoints(crops, [[[9, 1]], [[2, 2]]])


def test_check_boxes():
    np.testing.assert_array_equal(check_boxes([[0, 0, 2, 3]]), [[0.0, 0.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match=r"boxes has shape \(4,\)"):
        check_boxes([0, 0, 2, 3], name="boxes")
    with pytest.raises(ValueError, match="bbox row 1 contains NaN"):
        check_boxes([[0, 0, 2, 3], [0, np.nan, 1, 1]])
    with pytest.raises(ValueError, match=r"row 0 has zero or negative size \(width=0"):
        check_boxes([[0, 0, 0, 3]])
    with pytest.raises(ValueError, match="has 1 rows but there are 3 images; pass one box"):
        check_boxes([[0, 0, 1, 1]], n=3)


@pytest.mark.parametrize("alpha", [0, 1.5, True, "0.1", np.nan])
def test_check_alpha_rejects(alpha):
    with pytest.raises(ValueError, match=r"alpha must be a number in \(0, 1\]"):
        check_alpha(alpha)


def test_check_alpha_accepts():
    assert check_alpha(np.float32(0.5)) == 0.5 and isinstance(check_alpha(1), float)
