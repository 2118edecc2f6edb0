"""What the crop-based estimators share: input checks and their PCK score."""

from __future__ import annotations

from .._image import check_images, image_size
from ..metrics import _check_image_keypoints, pck_score


def crop_shapes(crops) -> list[tuple[int, int]]:
    """(height, width) of each crop, reading only file headers."""
    return [image_size(crop) for crop in crops]


def check_crops_keypoints(crops, keypoints, *, name="crops", fit=False):
    """Validate crops and their keypoints (n, K, 2) by skcorr's one keypoint rule.

    Returns the crops as a list and the keypoints as a float array (NaN = absent); see
    :func:`skcorr.metrics._check_image_keypoints` (``fit``: keypoints to learn from).
    """
    crops = check_images(crops, name=name)
    keypoints = _check_image_keypoints(crops, keypoints, images_name=name, fit=fit)
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
