"""What the crop-based estimators share: input checks and their PCK score."""

from __future__ import annotations

from .._image import image_size
from .._validation import check_crops_keypoints
from ..metrics import pck_score

__all__ = ["CropKeypointsMixin", "check_crops_keypoints", "crop_shapes"]


def crop_shapes(crops) -> list[tuple[int, int]]:
    """(height, width) of each crop, reading only file headers."""
    return [image_size(crop) for crop in crops]


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
