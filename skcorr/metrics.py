"""PCK: the percentage of correct keypoints, and a scikit-learn scorer for it.

A predicted keypoint is correct when its distance to the true keypoint is at most
``alpha * max(h, w)``, where ``(h, w)`` is the size of the object's box in the image the
keypoints belong to (for keypoint transfer: the *target* image). Keypoints absent from
the truth (NaN) are left out; a missing (NaN) prediction of a present keypoint is wrong.

Keypoint arrays have shape ``(n_images, n_keypoint_types, 2)`` and hold ``(x, y)``
pixel coordinates, 0-based, NaN where absent; boxes have shape ``(n_images, 4)`` and
hold ``(x, y, width, height)``.

Two references are in use for the threshold, and numbers under one are not comparable
with numbers under the other:

* **the keypoint box** (``bbox=None``, or ``dataset.boxes`` of PF-WILLOW, which has no
  object boxes): ``max(h, w)`` of the bounding box of the target's *present*
  keypoints. This is PF-WILLOW's protocol and the one of HPF's corrected evaluation.
* **the image** (``bbox=image_boxes(images)``): ``max(H, W)`` of the whole target
  image, a looser threshold used by some papers on PF-PASCAL and SPair.

The pitfall: some published PF-WILLOW evaluations computed the keypoint box over
keypoint arrays *padded* to a fixed length (with zeros or -1 for absent points), so the
padding entered ``min``/``max`` and enlarged the box, loosening the threshold and
inflating PCK. Here absent keypoints are NaN and never enter the box.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
from sklearn.metrics import make_scorer

from ._image import image_size

__all__ = ["image_boxes", "pck_score", "pck_scorer"]

_AVERAGES = ("types", "keypoints", None)


def _check_keypoints(keypoints, *, name: str = "keypoints", n: int | None = None) -> np.ndarray:
    """Return ``keypoints`` as a float64 array of shape ``(n, K, 2)``, NaN allowed.

    Infinite values are rejected; ``n``, when given, is the number of images the
    keypoints must match.
    """
    try:
        array = np.asarray(keypoints, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{name} must be a numeric array of shape (n_images, n_keypoints, 2); "
            f"{_ragged(keypoints) or f'it cannot be converted ({exc})'}."
        ) from exc
    if array.ndim != 3 or array.shape[2] != 2:
        raise ValueError(
            f"{name} has shape {array.shape}; expected (n_images, n_keypoints, 2) with "
            "(x, y) in the last axis. For one image, use keypoints[None]."
        )
    if np.isinf(array).any():
        raise ValueError(
            f"{name} contains infinite values; mark absent keypoints with NaN instead."
        )
    if n is not None and array.shape[0] != n:
        raise ValueError(
            f"{name} has {array.shape[0]} rows but there are {n} images; pass one row of "
            "keypoints per image."
        )
    return array


def _ragged(keypoints) -> str:
    """Where a nested list of keypoints is ragged, in words; "" if it is not."""
    try:
        counts = [len(row) for row in keypoints]
    except TypeError:
        return ""
    if len(set(counts)) > 1:
        i = next(i for i, c in enumerate(counts) if c != counts[0])
        return (f"it is ragged: image 0 has {counts[0]} keypoints but image {i} has "
                f"{counts[i]}; give every image all K keypoint types, NaN where absent")
    return ""


def _check_image_keypoints(images, keypoints, *, name: str = "keypoints",
                           images_name: str = "images", fit: bool = False) -> np.ndarray:
    """The one keypoint rule of every estimator and helper that takes keypoints of images.

    ``keypoints`` must be ``(len(images), K, 2)`` numbers (see :func:`_check_keypoints`)
    with every present point inside its image (see :func:`skcorr._image.outside_image`);
    image files are measured from their headers only. With ``fit`` (keypoints to learn
    from) a keypoint type present in no image gets a warning, as nothing is learnt for
    it. Keypoints that are all NaN are rejected (nothing to learn from or to score).
    """
    from ._image import image_size, outside_image

    keypoints = _check_keypoints(keypoints, name=name, n=len(images))
    for i, image in enumerate(images):
        shape = image_size(image)
        outside = outside_image(keypoints[i], shape)
        if outside.any():
            k = int(np.flatnonzero(outside)[0])
            x, y = keypoints[i, k]
            raise ValueError(
                f"{name}[{i}, {k}] = ({x:g}, {y:g}) lies outside {images_name}[{i}] of size "
                f"{shape[1]}x{shape[0]} (width x height); keypoints are 0-based (x, y) pixel "
                "coordinates of their image. Map them into the image or set them to NaN."
            )
    present = ~np.isnan(keypoints).any(axis=2)
    if not present.any():
        raise ValueError(
            f"{name} are all NaN: no keypoint is present, so there is nothing to learn "
            "from or score. Mark only absent keypoints with NaN."
        )
    absent = np.flatnonzero(~present.any(axis=0)).tolist()
    if fit and absent:
        warnings.warn(
            f"Keypoint type(s) {absent} have no present keypoint in the training data, so "
            "nothing is learnt about them (detectors, priors and aligners predict NaN "
            "there). Add images where they are visible.",
            UserWarning, stacklevel=3,
        )
    return keypoints


def _check_boxes(boxes, *, name: str = "bbox", n: int | None = None) -> np.ndarray:
    """Return ``boxes`` as a float64 array ``(n, 4)`` of finite ``(x, y, w, h)``, w, h > 0."""
    try:
        array = np.asarray(boxes, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{name} must be a numeric array of shape (n_images, 4); it cannot be "
            f"converted ({exc})."
        ) from exc
    if array.ndim != 2 or array.shape[1] != 4:
        raise ValueError(
            f"{name} has shape {array.shape}; expected (n_images, 4) rows of "
            "(x, y, width, height)."
        )
    if n is not None and array.shape[0] != n:
        raise ValueError(
            f"{name} has {array.shape[0]} rows but there are {n} images; pass one box per "
            "image."
        )
    bad = ~np.isfinite(array).all(axis=1)
    if bad.any():
        raise ValueError(
            f"{name} row {int(np.flatnonzero(bad)[0])} contains NaN or infinite values; "
            "every box needs finite (x, y, width, height)."
        )
    empty = (array[:, 2] <= 0) | (array[:, 3] <= 0)
    if empty.any():
        i = int(np.flatnonzero(empty)[0])
        raise ValueError(
            f"{name} row {i} has zero or negative size (width={array[i, 2]:g}, "
            f"height={array[i, 3]:g}); boxes need width > 0 and height > 0."
        )
    return array


def _keypoint_boxes(keypoints: np.ndarray) -> np.ndarray:
    """Bounding boxes ``(x, y, w, h)`` of the present keypoints of each image.

    ``w = max(x) - min(x)`` and ``h = max(y) - min(y)`` over the keypoints that are not
    NaN; rows without any present keypoint are NaN.
    """
    present = ~np.isnan(keypoints).any(axis=2)
    boxes = np.full((keypoints.shape[0], 4), np.nan)
    for i, (points, mask) in enumerate(zip(keypoints, present, strict=True)):
        if mask.any():
            low = points[mask].min(axis=0)
            boxes[i] = (*low, *(points[mask].max(axis=0) - low))
    return boxes


def image_boxes(images) -> np.ndarray:
    """Whole-image boxes ``(0, 0, W, H)``, for PCK relative to the image size.

    Parameters
    ----------
    images : sequence of ndarray or path
        Images as ``(H, W, 3)`` arrays or file paths (only their sizes are read).

    Returns
    -------
    boxes : ndarray of shape (n_images, 4)
        ``(0, 0, width, height)`` per image, to pass as ``bbox`` to :func:`pck_score`.

    Examples
    --------
    >>> import numpy as np
    >>> from skcorr.metrics import image_boxes
    >>> image_boxes([np.zeros((30, 40, 3), np.uint8)]).tolist()
    [[0.0, 0.0, 40.0, 30.0]]
    """
    boxes = np.zeros((len(images), 4))
    for i, image in enumerate(images):
        boxes[i, 3], boxes[i, 2] = image_size(image)
    return boxes


def _check_alpha(alpha) -> float:
    if (
        not isinstance(alpha, numbers.Real)
        or isinstance(alpha, bool)
        or not 0 < alpha <= 1
    ):
        raise ValueError(
            f"alpha must be a number in (0, 1], got {alpha!r}; the paper uses 0.1, 0.05 "
            "and 0.025."
        )
    return float(alpha)


def pck_score(y_true, y_pred, *, alpha=0.1, bbox=None, average="types"):
    """Percentage of correct keypoints (PCK).

    A predicted keypoint is correct when its Euclidean distance to the true keypoint is
    at most ``alpha * max(h, w)`` of the box of its image. Keypoints that are NaN in
    ``y_true`` (absent or not visible) are left out; a NaN prediction of a present
    keypoint counts as wrong.

    Parameters
    ----------
    y_true : array-like of shape (n_images, n_keypoint_types, 2)
        True ``(x, y)`` positions, NaN where absent.
    y_pred : array-like of shape (n_images, n_keypoint_types, 2)
        Predicted positions, in the same images as ``y_true``.
    alpha : float in (0, 1], default=0.1
        Tolerance as a fraction of the larger side of the box.
    bbox : array-like of shape (n_images, 4), default=None
        Object boxes ``(x, y, width, height)`` of the images of ``y_true`` (for keypoint
        transfer: the target images). ``None`` uses the bounding box of each image's
        own true keypoints, which needs two distinct present keypoints per image.
    average : {"types", "keypoints"} or None, default="types"
        ``"types"``: the accuracy of each keypoint type, then the mean over the types
        that have a present keypoint (the paper's protocol). ``"keypoints"``: the
        accuracy over all present keypoints. ``None``: the per-type accuracies, NaN
        for types without a present keypoint.

    Returns
    -------
    score : float or ndarray of shape (n_keypoint_types,)
        PCK in ``[0, 1]``.

    Raises
    ------
    ValueError
        If the shapes differ or are not ``(n, K, 2)``, ``alpha`` lies outside
        ``(0, 1]``, a box is empty, NaN or infinite, or no keypoint is present.

    Examples
    --------
    >>> import numpy as np
    >>> from skcorr.metrics import pck_score
    >>> y_true = np.array([[[0.0, 0.0], [100.0, 50.0], [np.nan, np.nan]]])
    >>> y_pred = np.array([[[5.0, 5.0], [100.0, 80.0], [10.0, 10.0]]])
    >>> pck_score(y_true, y_pred, alpha=0.1)  # threshold 0.1 * 100 = 10 pixels
    0.5
    >>> pck_score(y_true, y_pred, alpha=0.1, average=None)
    array([ 1.,  0., nan])
    """
    y_true = _check_keypoints(y_true, name="y_true")
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_pred.shape != y_true.shape:
        raise ValueError(
            f"y_true has shape {y_true.shape} but y_pred has shape {y_pred.shape}; pass "
            "one predicted (x, y) for every true keypoint (NaN where none is predicted)."
        )
    alpha = _check_alpha(alpha)
    if average not in _AVERAGES:
        raise ValueError(f"average must be one of {_AVERAGES}, got {average!r}.")

    present = ~np.isnan(y_true).any(axis=2)
    if not present.any():
        raise ValueError("y_true has no present keypoint (all NaN); PCK is undefined.")
    if bbox is None:
        boxes = _keypoint_boxes(y_true)
        sizes = boxes[:, 2:].max(axis=1)
        degenerate = present.any(axis=1) & ~(sizes > 0)
        if degenerate.any():
            raise ValueError(
                f"image {int(np.flatnonzero(degenerate)[0])} has fewer than two distinct "
                "present keypoints, so their bounding box has zero size; pass bbox with "
                "the object boxes."
            )
    else:
        sizes = _check_boxes(bbox, name="bbox", n=y_true.shape[0])[:, 2:].max(axis=1)

    distance = np.linalg.norm(y_pred - y_true, axis=2)
    with np.errstate(invalid="ignore"):
        correct = (distance <= alpha * sizes[:, None]) & present
    if average == "keypoints":
        return float(correct.sum() / present.sum())
    counts = present.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_type = np.where(counts > 0, correct.sum(axis=0) / counts, np.nan)
    if average is None:
        return per_type
    return float(np.nanmean(per_type))


def pck_scorer(alpha=0.1, average="types"):
    """A scorer computing :func:`pck_score` of an estimator's ``predict(X)`` against ``y``.

    Use it as ``scoring=`` in :class:`~sklearn.model_selection.GridSearchCV`,
    :func:`~sklearn.model_selection.cross_val_score` and friends, with ``y`` the true
    keypoints of shape ``(n_samples, n_keypoint_types, 2)``. Without boxes, thresholds
    come from the bounding box of each sample's true keypoints. To score against
    object boxes, enable metadata routing, request ``bbox`` and pass it to ``fit``;
    scikit-learn then splits it with the samples::

        import sklearn
        sklearn.set_config(enable_metadata_routing=True)
        scoring = pck_scorer(alpha=0.1).set_score_request(bbox=True)
        GridSearchCV(estimator, grid, scoring=scoring).fit(X, y, bbox=boxes)

    (the estimator's ``fit`` must then state whether it wants ``bbox`` too, with
    ``set_fit_request``).

    Parameters
    ----------
    alpha : float in (0, 1], default=0.1
        Tolerance as a fraction of the larger side of the box.
    average : {"types", "keypoints"}, default="types"
        How to average, see :func:`pck_score`.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y, bbox=None)``; greater is better.

    Examples
    --------
    >>> from skcorr.metrics import pck_scorer
    >>> scorer = pck_scorer(alpha=0.05)
    """
    _check_alpha(alpha)
    if average not in ("types", "keypoints"):
        raise ValueError(
            f"average must be 'types' or 'keypoints' for a scorer, got {average!r}."
        )
    return make_scorer(pck_score, alpha=alpha, average=average)
