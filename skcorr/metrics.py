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

import numpy as np
from sklearn.metrics import make_scorer

from ._geometry import keypoint_boxes
from ._image import image_size
from ._validation import check_alpha, check_boxes, check_keypoints

__all__ = ["image_boxes", "pck_score", "pck_scorer"]

_AVERAGES = ("types", "keypoints", None)


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
    y_true = check_keypoints(y_true, name="y_true")
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_pred.shape != y_true.shape:
        raise ValueError(
            f"y_true has shape {y_true.shape} but y_pred has shape {y_pred.shape}; pass "
            "one predicted (x, y) for every true keypoint (NaN where none is predicted)."
        )
    alpha = check_alpha(alpha)
    if average not in _AVERAGES:
        raise ValueError(f"average must be one of {_AVERAGES}, got {average!r}.")

    present = ~np.isnan(y_true).any(axis=2)
    if not present.any():
        raise ValueError("y_true has no present keypoint (all NaN); PCK is undefined.")
    if bbox is None:
        boxes = keypoint_boxes(y_true)
        sizes = boxes[:, 2:].max(axis=1)
        degenerate = present.any(axis=1) & ~(sizes > 0)
        if degenerate.any():
            raise ValueError(
                f"image {int(np.flatnonzero(degenerate)[0])} has fewer than two distinct "
                "present keypoints, so their bounding box has zero size; pass bbox with "
                "the object boxes."
            )
    else:
        sizes = check_boxes(bbox, name="bbox", n=y_true.shape[0])[:, 2:].max(axis=1)

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
    check_alpha(alpha)
    if average not in ("types", "keypoints"):
        raise ValueError(
            f"average must be 'types' or 'keypoints' for a scorer, got {average!r}."
        )
    return make_scorer(pck_score, alpha=alpha, average=average)
