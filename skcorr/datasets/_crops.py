"""Cropping images to object boxes, and mapping keypoints between the two frames.

A box ``(x, y, w, h)`` starts at pixel ``(x, y)`` and spans ``w x h`` pixels. A crop
starting at pixel ``x0`` and scaled by ``s`` maps a coordinate by
``x_crop = (x - x0 + 0.5) * s - 0.5``: the pixel-centre convention of
:mod:`skcorr._image` holds in both frames (the left edge of pixel ``x0``, at
``x0 - 0.5``, goes to ``-0.5``), as it does in :func:`skimage.transform.resize`.
"""

from __future__ import annotations

import numbers

import numpy as np

from .._geometry import rescale_points
from .._image import as_rgb, check_images
from .._validation import check_boxes, check_keypoints

__all__ = ["crop_to_boxes", "uncrop_keypoints"]


def _check_transforms(transforms) -> np.ndarray:
    transforms = np.asarray(transforms, dtype=np.float64)
    if transforms.ndim != 2 or transforms.shape[1] != 4:
        raise ValueError(
            f"transforms has shape {transforms.shape}; expected (n, 4) rows of "
            "(x0, y0, scale_x, scale_y) as returned by crop_to_boxes."
        )
    if not np.isfinite(transforms).all() or (transforms[:, 2:] <= 0).any():
        raise ValueError("transforms must be finite with positive scales.")
    return transforms


def _apply(keypoints: np.ndarray, transforms: np.ndarray, inverse: bool) -> np.ndarray:
    offset, scale = transforms[:, None, :2], transforms[:, None, 2:]
    if inverse:
        return rescale_points(keypoints, scale, inverse=True) + offset
    return rescale_points(keypoints - offset, scale)


def crop_to_boxes(images, keypoints, boxes, *, size=None, padding=0.0):
    """Crop each image to its box, optionally resized, with keypoints in crop coordinates.

    Parameters
    ----------
    images : list of images
        Arrays or paths (read when cropped), see :func:`skcorr._image.as_rgb`.
    keypoints : array-like of shape (n, K, 2)
        ``(x, y)`` in image coordinates, NaN where absent.
    boxes : array-like of shape (n, 4)
        ``(x, y, width, height)`` of each image's object.
    size : int, default=None
        Resize every crop to ``size x size`` pixels (bilinear, anti-aliased; the two
        axes may scale differently). ``None`` keeps the crops at their size.
    padding : float, default=0.0
        Extra margin on every side, as a fraction of the box width (left and right)
        and height (top and bottom). Crops are clipped to the image.

    Returns
    -------
    crops : list of ndarray
        ``(H, W, 3)`` uint8 crops.
    crop_keypoints : ndarray of shape (n, K, 2)
        The keypoints in crop coordinates (they may fall outside a crop).
    transforms : ndarray of shape (n, 4)
        ``(x0, y0, scale_x, scale_y)`` per crop: its first pixel in the image and its
        scale; :func:`uncrop_keypoints` maps crop coordinates back with it.

    Raises
    ------
    ValueError
        If the counts of images, keypoints and boxes differ, a box is empty, NaN or
        infinite or lies outside its image, or ``size`` / ``padding`` is invalid.

    Examples
    --------
    >>> import numpy as np
    >>> from skcorr.datasets import crop_to_boxes, uncrop_keypoints
    >>> image = np.zeros((100, 200, 3), dtype=np.uint8)
    >>> points = np.array([[[60.0, 40.0]]])
    >>> crops, inside, transforms = crop_to_boxes([image], points, [[50, 20, 100, 50]], size=25)
    >>> crops[0].shape, inside.tolist()
    ((25, 25, 3), [[[2.125, 9.75]]])
    >>> uncrop_keypoints(inside, transforms).tolist()
    [[[60.0, 40.0]]]
    """
    from skimage.transform import resize

    images = check_images(images)
    keypoints = check_keypoints(keypoints, n=len(images))
    boxes = check_boxes(boxes, name="boxes", n=len(images))
    if size is not None and (
        not isinstance(size, numbers.Integral) or isinstance(size, bool) or size < 1
    ):
        raise ValueError(f"size must be None or a positive integer, got {size!r}.")
    if not isinstance(padding, numbers.Real) or not 0 <= padding < np.inf:
        raise ValueError(f"padding must be a finite number >= 0, got {padding!r}.")

    crops, transforms = [], np.empty((len(images), 4))
    for i, (image, (x, y, w, h)) in enumerate(zip(images, boxes, strict=True)):
        image = as_rgb(image, name=f"images[{i}]")
        height, width = image.shape[:2]
        x0, x1 = (int(np.clip(v, 0, width)) for v in
                  (np.floor(x - padding * w), np.ceil(x + w + padding * w)))  # fmt: skip
        y0, y1 = (int(np.clip(v, 0, height)) for v in
                  (np.floor(y - padding * h), np.ceil(y + h + padding * h)))  # fmt: skip
        if x1 <= x0 or y1 <= y0:
            raise ValueError(
                f"boxes[{i}] = {boxes[i].tolist()} lies outside its {width}x{height} image; "
                "check that the box is (x, y, width, height) in that image's pixels."
            )
        crop = image[y0:y1, x0:x1]
        scale = (1.0, 1.0)
        if size is not None:
            scale = (size / (x1 - x0), size / (y1 - y0))
            resized = resize(crop, (size, size), order=1, preserve_range=True,
                             anti_aliasing=min(scale) < 1)  # fmt: skip
            crop = np.clip(np.round(resized), 0, 255).astype(np.uint8)
        crops.append(np.ascontiguousarray(crop))
        transforms[i] = (x0, y0, *scale)
    return crops, _apply(keypoints, transforms, inverse=False), transforms


def uncrop_keypoints(keypoints, transforms):
    """Map keypoints from crop coordinates back to image coordinates.

    Parameters
    ----------
    keypoints : array-like of shape (n, K, 2)
        ``(x, y)`` in the crops (e.g. predictions on crops), NaN where absent.
    transforms : array-like of shape (n, 4)
        ``(x0, y0, scale_x, scale_y)`` per crop, as returned by :func:`crop_to_boxes`.

    Returns
    -------
    keypoints : ndarray of shape (n, K, 2)
        ``x = (x_crop + 0.5) / scale_x - 0.5 + x0``, and the same for ``y``.

    Examples
    --------
    >>> from skcorr.datasets import uncrop_keypoints
    >>> uncrop_keypoints([[[0.0, 0.0]]], [[10, 20, 2.0, 0.5]]).tolist()
    [[[9.75, 20.5]]]
    """
    transforms = _check_transforms(transforms)
    keypoints = check_keypoints(keypoints, n=len(transforms))
    return _apply(keypoints, transforms, inverse=True)
