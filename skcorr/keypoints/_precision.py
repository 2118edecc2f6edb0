"""How precisely does a keypoint classifier localise? (the precision study of Study 3)

For each true keypoint, the classifier of its type is evaluated at every one-pixel
offset of a ``window x window`` square around it, and the offset of the maximum
response is histogrammed. Feature columns sit on a grid of stride ``s`` (16 px for
``conv4``), so evaluating at nearby *points* of one image would return the same
column for all offsets within a cell. Instead the *image* is translated: for an offset
``(dx, dy)``, the image is shifted by an integer number of pixels so that the original
point ``keypoint + (dx, dy)`` lands exactly on the RF centre of the grid cell nearest
to the keypoint, and the classifier is evaluated at that centre. Every offset thus gets
a column centred on it. Shifted-in borders repeat the edge pixels.
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.utils import Bunch, check_random_state
from sklearn.utils.validation import check_is_fitted

from .._image import as_rgb, check_images
from .._validation import check_keypoints

__all__ = ["localization_histogram"]


def _extractor(classifier):
    """The feature transformer of a KeypointClassifier or of a Pipeline's first step."""
    if hasattr(classifier, "features_"):
        return classifier.features_
    steps = getattr(classifier, "steps", None)
    if steps:
        return steps[0][1]
    return None


def _grid_centre(extractor, image, point):
    """Integer pixel of the grid RF centre nearest to point, or the point itself.

    Features computed or interpolated at the exact point (keypoint SIFT, bilinear
    columns) do not snap to a grid: the point is returned.
    """
    if getattr(extractor, "snaps_to_grid", False):
        fmap = extractor.extract_dense([image])[0]
        cx = fmap.xs[np.argmin(np.abs(fmap.xs - point[0]))]
        cy = fmap.ys[np.argmin(np.abs(fmap.ys - point[1]))]
        return int(round(cx)), int(round(cy))
    return int(round(point[0])), int(round(point[1]))


def localization_histogram(classifier, images, keypoints, *, window=21, patch_radius=None,
                           max_keypoints=None, random_state=None):
    """Histogram of where a fitted keypoint classifier peaks around true keypoints.

    Parameters
    ----------
    classifier : fitted classifier
        A :class:`~skcorr.keypoints.KeypointClassifier`, or a fitted Pipeline
        (feature transformer, linear classifier) on keypoint samples, whose classes
        are keypoint type indices; ``decision_function`` must give one column per
        class.
    images : sequence of images, length n
    keypoints : array-like of shape (n, K, 2)
        True keypoints, NaN where absent. Type ``k`` is scored by the classifier's
        column for class ``k`` (types missing from ``classes_`` are skipped).
    window : int, default=21
        Odd side of the square of offsets (the paper: 21).
    patch_radius : int or None, default=None
        Work on a square patch of this half-side around each keypoint (plus the
        window) instead of the whole image: much faster; choose it at least half the
        layer's RF so that the column does not change.
    max_keypoints : int or None, default=None
        Use a random subset of this many keypoints (each costs ``window ** 2``
        feature computations, batched).
    random_state : int, RandomState or None
        For the subset.

    Returns
    -------
    result : Bunch
        ``histogram`` (window, window) int counts of the argmax offset, row = dy,
        column = dx (boundary maxima left out); ``offsets`` (window,) the offsets
        ``-r .. r``; ``n_keypoints`` (evaluated); ``n_boundary`` (maxima on the
        window's border, left out); ``mean_abs_offset`` (mean ``|dx|`` and ``|dy|``
        of the counted maxima).
    """
    check_is_fitted(classifier)
    if not isinstance(window, numbers.Integral) or window < 3 or window % 2 == 0:
        raise ValueError(f"window must be an odd integer >= 3, got {window!r}.")
    images = check_images(images)
    keypoints = check_keypoints(keypoints, n=len(images))
    classes = list(np.asarray(classifier.classes_).tolist())
    extractor = _extractor(classifier)
    r = window // 2
    pairs = [(i, k) for i, k in zip(*np.nonzero(~np.isnan(keypoints).any(axis=2)),
                                    strict=True) if k in classes]
    if not pairs:
        raise ValueError("No present keypoint of a class the classifier knows was given.")
    if max_keypoints is not None and max_keypoints < len(pairs):
        rng = check_random_state(random_state)
        pairs = [pairs[j] for j in np.sort(rng.choice(len(pairs), max_keypoints,
                                                      replace=False))]
    hist = np.zeros((window, window), dtype=np.int64)
    n_boundary = 0
    offsets = np.arange(-r, r + 1)
    for i, k in pairs:
        image = as_rgb(images[i], name=f"images[{i}]")
        point = keypoints[i, k].copy()
        if patch_radius is not None:
            half = int(patch_radius) + r
            x0 = max(int(round(point[0])) - half, 0)
            y0 = max(int(round(point[1])) - half, 0)
            image = image[y0:int(round(point[1])) + half + 1, x0:int(round(point[0])) + half + 1]
            point = point - (x0, y0)
        kx, ky = int(round(point[0])), int(round(point[1]))
        cx, cy = _grid_centre(extractor, image, point)
        height, width = image.shape[:2]
        pad = r + abs(kx - cx) + abs(ky - cy) + 1
        padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
        X = np.empty((window * window, 3), dtype=object)
        j = 0
        for dy in offsets:
            for dx in offsets:
                tx, ty = kx + dx - cx, ky + dy - cy  # shifted(p) = image(p + t)
                shifted = padded[pad + ty:pad + ty + height, pad + tx:pad + tx + width]
                X[j] = (np.ascontiguousarray(shifted), float(cx), float(cy))
                j += 1
        scores = np.asarray(classifier.decision_function(X))
        column = scores[:, classes.index(k)] if scores.ndim == 2 else scores
        best = int(np.argmax(column.reshape(window, window)))
        by, bx = divmod(best, window)
        if by in (0, window - 1) or bx in (0, window - 1):
            n_boundary += 1
            continue
        hist[by, bx] += 1
    counted = hist.sum()
    if counted:
        mean_abs = (float((hist.sum(axis=0) * np.abs(offsets)).sum() / counted),
                    float((hist.sum(axis=1) * np.abs(offsets)).sum() / counted))
    else:
        mean_abs = (float("nan"), float("nan"))
    return Bunch(histogram=hist, offsets=offsets, n_keypoints=len(pairs),
                 n_boundary=n_boundary, mean_abs_offset=mean_abs)

