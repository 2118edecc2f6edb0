"""Helpers shared by the data set loaders: checked paths, annotation tables, the Bunch.

Every loader returns a :class:`sklearn.utils.Bunch` built by :func:`dataset_bunch`, so
that the fields mean the same thing everywhere:

``images``
    list of ``n`` image file paths (str), read lazily with
    :func:`skcorr._image.read_image`;
``keypoints``
    float64 array ``(n, K, 2)`` of ``(x, y)`` pixel coordinates, 0-based with integer
    values at pixel centres, NaN where a keypoint is absent or not visible;
``keypoint_names``
    list of ``K`` str;
``boxes``
    float64 array ``(n, 4)`` of ``(x, y, width, height)``;
``labels``, ``class_names``
    int array ``(n,)`` of indices into the list ``class_names``;
``pairs``
    int array ``(m, 2)`` of (source, target) image indices, where the data set defines
    pairs; ``split`` where it defines a split; ``DESCR``, a description.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch

from .._validation import check_boxes, check_keypoints

#: The 20 PASCAL VOC classes, in the order of the official devkit (PF-PASCAL's pair
#: files number them from 1 in this order).
VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip


def check_dir(path, dataset: str, hint: str) -> Path:
    """Return ``path`` as a Path to an existing folder, or raise naming the data set."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}.")
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"{dataset} folder {str(folder)!r} does not exist. {hint}")
    return folder


def require(path: Path, dataset: str, hint: str = "") -> Path:
    """Return ``path`` when it exists, else raise FileNotFoundError naming the file."""
    if not path.exists():
        raise FileNotFoundError(
            f"{dataset}: {str(path)!r} is missing; the folder is incomplete. {hint}".rstrip()
        )
    return path


def read_table(path: Path, types: Sequence[Callable], *, rest: bool = False) -> list[tuple]:
    """Read a whitespace-separated annotation table, one converted tuple per line.

    Each line must hold ``len(types)`` fields, converted by ``types``; with ``rest``, the
    last converter receives the remainder of the line (names may contain spaces).
    Blank lines are skipped. A malformed line raises ValueError naming file and line.
    """
    rows = []
    n = len(types)
    for number, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        fields = line.split(None, n - 1) if rest else line.split()
        try:
            if len(fields) != n:
                raise ValueError(f"expected {n} fields, found {len(fields)}")
            converted = zip(types, fields, strict=True)
            row = tuple(convert(field.strip()) for convert, field in converted)
            if any(isinstance(v, float) and not math.isfinite(v) for v in row):
                raise ValueError("a number is not finite")
            rows.append(row)
        except ValueError as exc:
            raise ValueError(
                f"{path}, line {number}: malformed row {line.strip()!r} ({exc}); fix or "
                "remove that line (the original file of the data set release is the "
                "reference)."
            ) from None
    return rows


def read_lines(path: Path) -> list[str]:
    """The lines of a UTF-8 text file; a file that is not UTF-8 text is malformed."""
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise malformed(path, f"it is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def malformed(path, message: str) -> ValueError:
    """An error for a malformed annotation file, naming it."""
    return ValueError(
        f"{path}: {message}; the annotation file is malformed, replace it with the one of "
        "the original data set release."
    )


def class_keypoint_names(class_names: Sequence[str], n_keypoints: Sequence[int]) -> list[str]:
    """``"class/i"`` names for data sets whose keypoints are numbered within each class."""
    return [f"{c}/{i}" for c, k in zip(class_names, n_keypoints, strict=True) for i in range(k)]


def dataset_bunch(*, images, keypoints, keypoint_names, boxes, descr: str, sources=None,
                  **fields) -> Bunch:
    """Validate the common fields and return the loader's Bunch.

    ``sources``: the annotation file of each image's box (a list), or of all boxes (a
    path), named when a box is malformed.
    """
    keypoints = check_keypoints(keypoints, n=len(images))
    if keypoints.shape[1] != len(keypoint_names):
        raise ValueError(
            f"{len(keypoint_names)} keypoint names for {keypoints.shape[1]} keypoint types."
        )
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim == 2 and boxes.shape[1] == 4 and len(boxes) == len(images):
        valid = np.isfinite(boxes).all(axis=1) & (boxes[:, 2] > 0) & (boxes[:, 3] > 0)
        if not valid.all():
            i = int(np.flatnonzero(~valid)[0])
            source = sources[i] if isinstance(sources, (list, tuple)) else sources
            raise ValueError(
                f"the box of {images[i]} is {boxes[i].tolist()} (x, y, width, height): "
                "not finite or of zero size; its annotation"
                f"{'' if source is None else f' in {source}'} is malformed, fix or remove it."
            )
    boxes = check_boxes(boxes, name="boxes", n=len(images))
    if "pairs" in fields:
        fields["pairs"] = np.asarray(fields["pairs"], dtype=np.intp).reshape(-1, 2)
    return Bunch(
        images=list(images),
        keypoints=keypoints,
        keypoint_names=list(keypoint_names),
        boxes=boxes,
        DESCR=descr,
        **fields,
    )
