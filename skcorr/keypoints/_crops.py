"""What the crop-based estimators share: input checks and their PCK score."""

from __future__ import annotations

import numpy as np

from .._image import check_images, image_size, outside_image
from ..metrics import _check_keypoints, pck_score


def crop_shapes(crops) -> list[tuple[int, int]]:
    """(height, width) of each crop, reading only file headers."""
    return [image_size(crop) for crop in crops]


def check_crops_keypoints(crops, keypoints, *, name="crops"):
    """Validate crops and their keypoints (n, K, 2): counts match, points inside crops.

    Returns the crops as a list and the keypoints as a float array (NaN = absent).
    """
    crops = check_images(crops, name=name)
    keypoints = _check_keypoints(keypoints, n=len(crops))
    for i, shape in enumerate(crop_shapes(crops)):
        outside = outside_image(keypoints[i], shape)
        if outside.any():
            k = int(np.flatnonzero(outside)[0])
            x, y = keypoints[i, k]
            raise ValueError(
                f"keypoints[{i}, {k}] = ({x:g}, {y:g}) lies outside {name}[{i}] of size "
                f"{shape[1]}x{shape[0]} (width x height); keypoints are 0-based (x, y) "
                "pixels of the crop. Map them into the crop (crop_to_boxes does) or set "
                "them to NaN."
            )
    return crops, keypoints


class CropKeypointsMixin:
    """``score`` and tags of estimators that predict (n, K, 2) keypoints in box crops."""

    def score(self, crops, keypoints):
        """``PCK@0.1`` of :meth:`predict`, threshold 0.1 of the larger side of each crop."""
        crops, keypoints = check_crops_keypoints(crops, keypoints)
        boxes = [(0.0, 0.0, w, h) for h, w in crop_shapes(crops)]
        return pck_score(keypoints, self.predict(crops), alpha=0.1, bbox=boxes)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False  # images, not numbers
        tags.requires_fit = True
        return tags
