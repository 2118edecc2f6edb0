"""Input checks shared across skcorr: keypoints, boxes, points in images, crops, alpha;
and the ``memory`` a parent estimator hands its sub-estimators.

Every function returns the validated input (as a float64 array where it is one) or
raises a ``ValueError`` that names the argument, the problem and the fix, as
scikit-learn's :mod:`sklearn.utils.validation` does for its inputs.

Keypoint arrays have shape ``(n_images, n_keypoint_types, 2)`` and hold ``(x, y)``
pixel coordinates (see :mod:`skcorr._image`), NaN where absent; boxes have shape
``(n_images, 4)`` and hold ``(x, y, width, height)``.
"""

from __future__ import annotations

import numbers
import os
import warnings

import numpy as np
from sklearn.utils._param_validation import Interval

from ._image import check_images, image_size, outside_image

__all__ = [
    "MAX_N_JOBS",
    "N_JOBS_CONSTRAINT",
    "check_alpha",
    "check_boxes",
    "check_crops_keypoints",
    "check_image_keypoints",
    "check_keypoints",
    "check_n_jobs",
    "check_points_inside",
    "pass_memory",
]

def check_keypoints(keypoints, *, name: str = "keypoints", n: int | None = None) -> np.ndarray:
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
    _check_rows(array, name, n, "pass one row of keypoints per image")
    return array


def _check_rows(array: np.ndarray, name: str, n: int | None, fix: str) -> None:
    if n is not None and array.shape[0] != n:
        raise ValueError(
            f"{name} has {array.shape[0]} rows but there are {n} images; {fix}."
        )


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


def check_points_inside(points: np.ndarray, shape, *, image: str = "image",
                        label: str = "Keypoint",
                        fix: str = "Drop it or clip it to the image.") -> None:
    """Reject points ``(n, 2)`` that lie outside an image of ``shape = (height, width)``.

    See :func:`skcorr._image.outside_image` for what "outside" means. The error names
    the first such point by ``label`` (``{j}`` in it is replaced by the point's index)
    and ``image``, and ends with ``fix``.
    """
    outside = outside_image(points, shape)
    if outside.any():
        j = int(np.flatnonzero(outside)[0])
        x, y = points[j]
        raise ValueError(
            f"{label.replace('{j}', str(j))} ({x:g}, {y:g}) lies outside {image} of size "
            f"{shape[1]}x{shape[0]} (width x height); keypoints are 0-based (x, y) pixel "
            f"coordinates of their image. {fix}"
        )


def check_image_keypoints(images, keypoints, *, name: str = "keypoints",
                          images_name: str = "images", fit: bool = False) -> np.ndarray:
    """The one keypoint rule of every estimator and helper that takes keypoints of images.

    ``keypoints`` must be ``(len(images), K, 2)`` numbers (see :func:`check_keypoints`)
    with every present point inside its image (see :func:`check_points_inside`); image
    files are measured from their headers only. With ``fit`` (keypoints to learn from)
    a keypoint type present in no image gets a warning, as nothing is learnt for it.
    Keypoints that are all NaN are rejected (nothing to learn from or to score).
    """
    keypoints = check_keypoints(keypoints, name=name, n=len(images))
    for i, image in enumerate(images):
        check_points_inside(keypoints[i], image_size(image), image=f"{images_name}[{i}]",
                            label=f"{name}[{i}, {{j}}] =",
                            fix="Map them into the image or set them to NaN.")
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


def check_crops_keypoints(crops, keypoints, *, name: str = "crops", fit: bool = False):
    """Validate crops (images) and their keypoints ``(n, K, 2)`` by the one keypoint rule.

    Returns the crops as a list and the keypoints as a float array (NaN = absent); see
    :func:`check_image_keypoints` (``fit``: keypoints to learn from).
    """
    crops = check_images(crops, name=name)
    keypoints = check_image_keypoints(crops, keypoints, images_name=name, fit=fit)
    return crops, keypoints


def check_boxes(boxes, *, name: str = "bbox", n: int | None = None) -> np.ndarray:
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
    _check_rows(array, name, n, "pass one box per image")
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


#: The most workers ``n_jobs`` may ask for (a dask cluster may have more than this machine
#: has cores; no skcorr loop has use for more).
MAX_N_JOBS = 1024


def _n_jobs_range() -> tuple[int, int]:
    return -(os.cpu_count() or 1), MAX_N_JOBS


def _n_jobs_ok(n_jobs) -> bool:
    low, high = _n_jobs_range()
    return (isinstance(n_jobs, numbers.Integral) and not isinstance(n_jobs, (bool, np.bool_))
            and n_jobs != 0 and low <= n_jobs <= high)


class _NJobs(Interval):
    """scikit-learn's constraint for ``n_jobs``: :func:`check_n_jobs`'s rule."""

    def __init__(self):
        super().__init__(numbers.Integral, *_n_jobs_range(), closed="both")

    def is_satisfied_by(self, val):
        return _n_jobs_ok(val)

    def __str__(self):
        low, high = _n_jobs_range()
        return (f"an int in [{low}, {high}] other than 0 (a number of workers; -1: one per "
                "core, -2: all but one)")


#: The scikit-learn parameter constraint of every ``n_jobs`` (see :func:`check_n_jobs`).
N_JOBS_CONSTRAINT = [_NJobs(), None]


def check_n_jobs(n_jobs, *, name: str = "n_jobs"):
    """Return ``n_jobs`` if it is a sane number of joblib workers, else raise a ValueError.

    ``None`` (joblib's default, one worker unless a ``joblib.parallel_config`` says
    otherwise), a positive count up to :data:`MAX_N_JOBS`, or ``-k`` for all cores but
    ``k - 1`` with ``k`` at most the number of cores. Booleans and 0 are refused.

    Parameters
    ----------
    n_jobs : int or None
        The value to check.
    name : str, default="n_jobs"
        How the error names it (e.g. ``"--n-jobs"``).

    Returns
    -------
    n_jobs : int or None
        The value, unchanged (a Python int).
    """
    if n_jobs is None:
        return None
    if not _n_jobs_ok(n_jobs):
        low, high = _n_jobs_range()
        raise ValueError(
            f"{name} must be a number of parallel workers from 1 to {high}, or -1 (one "
            f"per core) down to {low} (one worker), got {n_jobs!r}; use -1 for every core "
            "or None for one worker."
        )
    return int(n_jobs)


def check_alpha(alpha) -> float:
    """Return the PCK tolerance ``alpha`` as a float in ``(0, 1]``."""
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


def pass_memory(estimator, memory):
    """Give a (cloned) sub-estimator the parent's ``memory`` unless it has its own."""
    if memory is None:
        return estimator
    params = estimator.get_params(deep=False)
    if "memory" in params and params["memory"] is None:
        estimator.set_params(memory=memory)
    return estimator
