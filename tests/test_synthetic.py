"""Synthetic warped pairs: exact ground truth, right mapping direction, determinism."""

import numpy as np
import pytest
from scipy.ndimage import map_coordinates

from skcorr.datasets import load_sample_pairs, make_warped_pairs


def _coordinate_image(size):
    """Red = column, green = row: a pixel's colour tells where it came from."""
    rows, cols = np.mgrid[0:size, 0:size]
    return np.dstack([cols, rows, np.full_like(rows, 128)]).astype(np.uint8)


def _sample(image, points, channel):
    return map_coordinates(image[..., channel].astype(float), [points[:, 1], points[:, 0]], order=1)


def test_ground_truth_points_to_the_source_pixel_the_target_shows():
    size = 200
    data = make_warped_pairs(3, image_size=size, n_keypoints=25, images=[_coordinate_image(size)],
                             deformation=0.05, random_state=0)  # fmt: skip
    for source_index, target_index in data.pairs:
        source, target = data.images[source_index], data.images[target_index]
        source_points, target_points = data.keypoints[source_index], data.keypoints[target_index]
        # the target's colour at a target keypoint is the coordinate it was sampled from
        seen = np.column_stack([_sample(target, target_points, c) for c in (0, 1)])
        np.testing.assert_allclose(seen, source_points, atol=1.0)
        # the source shows its own coordinates at the source keypoints
        here = np.column_stack([_sample(source, source_points, c) for c in (0, 1)])
        np.testing.assert_allclose(here, source_points, atol=1e-9)
        # the warp is not trivial, so the check above could not pass by accident
        assert np.median(np.linalg.norm(source_points - target_points, axis=1)) > 4.0


def test_photographs_agree_at_corresponding_points():
    data = load_sample_pairs()
    errors, shuffled = [], []
    for s, t in data.pairs:
        source, target = data.images[s].astype(float), data.images[t]
        for c in range(3):
            at_source = _sample(source, data.keypoints[s], c)
            errors.append(np.abs(_sample(target, data.keypoints[t], c) - at_source))
            shuffled.append(np.abs(_sample(target, data.keypoints[t][::-1], c) - at_source))
    assert np.median(np.concatenate(errors)) < 6.0
    assert np.median(np.concatenate(shuffled)) > 3 * np.median(np.concatenate(errors))


def test_sample_pairs_fields():
    data = load_sample_pairs()
    assert len(data.images) == 8 and data.pairs.tolist() == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert all(image.shape == (240, 240, 3) and image.dtype == np.uint8 for image in data.images)
    assert data.keypoints.shape == (8, 10, 2) and len(data.keypoint_names) == 10
    assert ((data.keypoints >= 0) & (data.keypoints <= 239)).all()
    np.testing.assert_array_equal(data.boxes, np.tile([0, 0, 240, 240], (8, 1)))
    assert data.class_names == ["chelsea", "astronaut", "coffee", "rocket"]
    assert data.labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert not np.array_equal(data.images[0], data.images[1])


def test_deterministic_under_random_state():
    a = make_warped_pairs(5, image_size=48, n_keypoints=4, random_state=3)
    b = make_warped_pairs(5, image_size=48, n_keypoints=4, random_state=3)
    c = make_warped_pairs(5, image_size=48, n_keypoints=4, random_state=4)
    np.testing.assert_array_equal(a.keypoints, b.keypoints)
    assert all(np.array_equal(x, y) for x, y in zip(a.images, b.images, strict=True))
    assert not np.array_equal(a.keypoints, c.keypoints)
    assert a.class_names[a.labels[8]] == "chelsea"  # the fifth pair cycles back


def test_user_images_are_cropped_and_resized():
    wide = np.zeros((60, 100, 3), np.uint8)
    wide[:, 20:80] = 255  # the centre square is white, the sides black
    data = make_warped_pairs(1, image_size=32, images=[wide], deformation=0.0, random_state=0)
    assert data.images[0].shape == (32, 32, 3) and data.images[0].min() == 255
    assert data.class_names == ["image0"]


@pytest.mark.parametrize("kwargs, message", [
    ({"n_pairs": 0}, "n_pairs must be an integer >= 1"),
    ({"image_size": 8}, "image_size must be an integer >= 16"),
    ({"n_keypoints": 2.5}, "n_keypoints must be an integer >= 1"),
    ({"deformation": 0.5}, r"deformation must be a number in \[0, 0.1\]"),
    ({"images": np.zeros((9, 9, 3))}, "single array"),
])  # fmt: skip
def test_bad_parameters(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make_warped_pairs(**kwargs)


def test_affine_category_parts_follow_the_warps():
    from scipy.ndimage import map_coordinates

    from skcorr.datasets import make_affine_category

    cats = make_affine_category(6, height=120, random_state=3)
    again = make_affine_category(6, height=120, random_state=3)
    np.testing.assert_array_equal(cats.keypoints, again.keypoints)
    assert cats.keypoints.shape == (6, 6, 2) and cats.keypoint_names[2] == "nose"
    assert cats.boxes.shape == (6, 4) and (cats.boxes[:, 2:] > 0).all()

    def colours(image, points):  # bilinear samples at (x, y) points, per channel
        return np.stack([map_coordinates(image[..., c].astype(float),
                                         [points[:, 1], points[:, 0]], order=1)
                         for c in range(3)], axis=1)

    # The same part shows the same colour in every image; random points do not.
    rng = np.random.default_rng(0)
    at_parts = np.stack([colours(im, kp) for im, kp in
                         zip(cats.images, cats.keypoints, strict=True)])
    at_random = np.stack([colours(im, rng.uniform(20, 100, (6, 2))) for im in cats.images])
    assert np.abs(at_parts - at_parts[0]).mean() < 0.3 * np.abs(at_random - at_random[0]).mean()
