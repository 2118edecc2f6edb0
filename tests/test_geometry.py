"""skcorr._geometry: the pixel-centre rescale, resizing, node grids and grid sampling."""

import numpy as np
import pytest

from skcorr._geometry import (
    grid_coordinate,
    keypoint_boxes,
    longer_side_scale,
    node_grid,
    rescale_points,
    resize,
    resize_longer_side,
    sample_grid,
)
from skcorr.features import FeatureMap


def test_rescale_keeps_the_outer_edge_and_inverts():
    points = np.array([[-0.5, -0.5], [0.0, 3.0], [7.25, np.nan]])
    scaled = rescale_points(points, (2.0, 0.25))
    np.testing.assert_array_equal(scaled[0], [-0.5, -0.5])  # the image's corner stays
    np.testing.assert_allclose(scaled[1], [0.5, 0.375])
    assert np.isnan(scaled[2, 1])
    np.testing.assert_allclose(rescale_points(scaled, (2.0, 0.25), inverse=True), points)


@pytest.mark.parametrize(("shape", "size", "expected"), [
    ((30, 40), 80, (60, 80)), ((50, 20), 25, (25, 10)), ((3, 200), 16, (1, 16))])
def test_resize_longer_side_shapes_and_scales(shape, size, expected):
    image = np.zeros((*shape, 3), np.uint8)
    resized, (sx, sy) = resize_longer_side(image, size)
    assert resized.shape == (*expected, 3) and resized.dtype == np.uint8
    assert (sx, sy) == (expected[1] / shape[1], expected[0] / shape[0])
    assert longer_side_scale(shape, size) == size / max(shape)
    kept, scales = resize_longer_side(image, None)
    assert kept is image and scales == (1.0, 1.0) and longer_side_scale(shape, None) == 1.0


@pytest.mark.parametrize(("size", "pixels"), [(96, 0.002), (40, 0.1)])  # up, down
def test_rescaled_points_land_on_the_same_content(size, pixels):
    # A linear ramp survives bilinear resizing away from the border (exactly when
    # enlarging, to a small fraction of a pixel when shrinking with Pillow's discrete
    # anti-aliasing filter), so the value at a pixel of the resized image is the ramp at
    # that pixel's position mapped back; a half-pixel slip would be 0.5 pixels off.
    ys, xs = np.mgrid[0:48, 0:64].astype(np.float32)
    ramp = 0.01 * xs + 0.003 * ys
    resized, scales = resize_longer_side(ramp, size)
    assert resized.dtype == np.float32
    rows, cols = resized.shape
    v, u = np.mgrid[3:rows - 3, 3:cols - 3]
    x, y = rescale_points(np.stack([u, v], -1), scales, inverse=True).transpose(2, 0, 1)
    np.testing.assert_allclose(resized[3:rows - 3, 3:cols - 3], 0.01 * x + 0.003 * y,
                               atol=0.01 * pixels)


def test_resize_to_exact_shape_keeps_dtype():
    image = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    out = resize(image, (7, 11))
    assert out.shape == (7, 11, 3) and out.dtype == np.uint8


def test_node_grid_holds_row_and_column():
    grid = node_grid((3, 4))
    assert grid.shape == (3, 4, 2)
    assert grid[2, 1].tolist() == [2, 1] and grid[0, 3].tolist() == [0, 3]


def test_sample_grid_is_exact_on_a_plane_and_clamps_outside():
    xs, ys = 4.0 + 8.0 * np.arange(5), 2.0 + 6.0 * np.arange(4)
    gx, gy = np.meshgrid(xs, ys)
    plane = np.stack([3.0 * gx - gy, gx + 2.0 * gy], -1)  # (rows, cols, 2)
    points = np.array([[5.0, 3.0], [20.5, 9.75], [36.0, 20.0]])
    expected = np.stack([3 * points[:, 0] - points[:, 1], points[:, 0] + 2 * points[:, 1]], 1)
    np.testing.assert_allclose(sample_grid(plane, xs, ys, points, "bilinear"), expected)
    # Outside the outermost centres: the border value.
    np.testing.assert_array_equal(sample_grid(plane, xs, ys, [[-50.0, 100.0]], "bilinear"),
                                  plane[-1:, 0])
    # Nearest: the value of the nearest centre, per axis.
    np.testing.assert_array_equal(sample_grid(plane, xs, ys, [[13.0, 9.0]]), plane[[1], [1]])
    # A 2-D grid of scalars works the same.
    np.testing.assert_allclose(sample_grid(plane[..., 0], xs, ys, points, "bilinear"),
                               expected[:, 0])
    with pytest.raises(ValueError, match="interpolation must be 'nearest' or 'bilinear'"):
        sample_grid(plane, xs, ys, points, "cubic")


def test_grid_coordinate_and_nearest_cells_agree_with_sampling():
    rng = np.random.default_rng(1)
    fmap = FeatureMap(features=rng.normal(size=(4, 6, 3)), xs=7.5 + 16 * np.arange(6),
                      ys=7.5 + 16 * np.arange(4), rf_size=32.0, image_shape=(64, 96))
    points = rng.uniform(-10, 110, size=(50, 2))
    rows, cols = fmap.nearest_cells(points)
    assert rows.min() >= 0 and rows.max() <= 3 and cols.min() >= 0 and cols.max() <= 5
    np.testing.assert_array_equal(fmap.features[rows, cols], fmap.sample(points))
    assert grid_coordinate(np.array([5.0]), np.array([1.0, 9.0])).tolist() == [0.0, 0.0]


def test_keypoint_boxes_ignore_absent_points():
    keypoints = np.array([[[1.0, 2.0], [np.nan, np.nan], [4.0, 7.0]],
                          [[np.nan, np.nan]] * 3])
    boxes = keypoint_boxes(keypoints)
    np.testing.assert_array_equal(boxes[0], [1.0, 2.0, 3.0, 5.0])
    assert np.isnan(boxes[1]).all()
