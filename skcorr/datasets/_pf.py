"""Proposal Flow benchmarks: PF-WILLOW and PF-PASCAL (Ham et al., CVPR 2016).

Both come as MATLAB files whose coordinates are 1-based pixel indices: the loaders
subtract 1 once, here, so that the returned keypoints and boxes follow skcorr's 0-based
pixel-centre convention (see :mod:`skcorr._image`).
"""

from __future__ import annotations

import csv
import io
from itertools import permutations
from pathlib import Path

import numpy as np
import scipy.io

from .._geometry import keypoint_boxes
from ._base import (
    VOC_CLASSES,
    check_dir,
    class_keypoint_names,
    dataset_bunch,
    malformed,
    read_lines,
    require,
)
from ._matfile import check_mat5

__all__ = ["load_pf_willow", "load_pf_pascal"]

_WILLOW_DESCR = """\
PF-WILLOW (Ham et al., "Proposal Flow", CVPR 2016): 100 images in 10 sub-classes
(car, duck, motorbike, winebottle under several viewpoints/backgrounds), 10 keypoints
per image, all visible, the same 10 semantic points within a sub-class (keypoint type
i of one sub-class is unrelated to type i of another). Standard protocol: all 900
ordered pairs within a sub-class; transfer source keypoints to the target; PCK with
threshold alpha * max(h, w) of the target's keypoint bounding box, alpha in
{0.05, 0.1, 0.15}. PF-WILLOW has no object boxes: ``boxes`` holds the bounding box of
each image's keypoints (width = max x - min x, height = max y - min y). Coordinates of
the .mat files are 1-based (MATLAB) and are returned 0-based (minus 1).
"""

_PASCAL_DESCR = """\
PF-PASCAL (Ham et al., "Proposal Flow: Semantic Correspondences from Object
Proposals", TPAMI 2018): images of the 20 PASCAL VOC classes with class-specific
keypoints (NaN where absent) and object boxes, and pair lists (trn/val/test) in the
CSV files of Rocco et al. / Min et al. Keypoint type names are "class/i" (the i-th
keypoint of that class). Coordinates of the .mat files are 1-based (MATLAB) and are
returned 0-based; a box [x1, y1, x2, y2] becomes (x1 - 1, y1 - 1, x2 - x1, y2 - y1).
"""

_WILLOW_HINT = (
    "Pass the folder that holds the sub-class folders (car(G), duck(S), ...) of "
    "PF-dataset.zip, or get it with skcorr.datasets.fetch_pf_willow()."
)
_PASCAL_HINT = (
    "Pass the folder of PF-dataset-PASCAL.zip (holding JPEGImages/ and Annotations/) "
    "or its parent, from https://www.di.ens.fr/willow/research/proposalflow/."
)

#: Names of the pair lists of PF-PASCAL's public releases, by split.
_PASCAL_PAIR_FILES = {
    "trn": ("trn_pairs.csv", "train_pairs.csv", "trn_pairs_pf_pascal.csv",
            "train_pairs_pf_pascal.csv"),
    "val": ("val_pairs.csv", "val_pairs_pf_pascal.csv"),
    "test": ("test_pairs.csv", "test_pairs_pf_pascal.csv"),
}  # fmt: skip


def _read_mat_array(path: Path, key: str, rows: int | None, cols: int | None) -> np.ndarray:
    """Read the numeric array ``key`` of a .mat file, checking its shape."""
    try:
        data = path.read_bytes()
        check_mat5(data)  # scipy's reader can crash the process on a damaged file
        contents = scipy.io.loadmat(io.BytesIO(data))
    except OSError:
        raise
    except Exception as exc:  # scipy's reader raises many types for damaged files
        raise malformed(
            path, f"cannot be read as a MATLAB file ({type(exc).__name__}: {exc})"
        ) from None
    if key not in contents:
        found = sorted(k for k in contents if not k.startswith("__"))
        raise malformed(path, f"it has no variable {key!r} (found {found})")
    value = contents[key]
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "biuf":
        raise malformed(path, f"variable {key!r} is not a real numeric array")
    array = value.astype(np.float64)
    if np.isinf(array).any():
        raise malformed(path, f"variable {key!r} holds infinite values")
    if array.ndim != 2 or (rows is not None and array.shape[0] != rows) or (
        cols is not None and array.shape[1] != cols
    ):
        expected = f"({rows or 'any'}, {cols or 'any'})"
        raise malformed(path, f"variable {key!r} has shape {array.shape}, expected {expected}")
    return array


def load_pf_willow(path):
    """Load PF-WILLOW: 100 images, 10 keypoints each, and its 900 standard pairs.

    Parameters
    ----------
    path : str or os.PathLike
        The folder that holds the ten sub-class folders of ``PF-dataset.zip``
        (``car(G)/Cars_006a.png`` with ``car(G)/Cars_006a.mat``, ...), as returned by
        :func:`fetch_pf_willow`.

    Returns
    -------
    data : sklearn.utils.Bunch
        ``images`` (list of n paths), ``keypoints`` ``(n, 10, 2)`` (0-based: the
        ``pts_coord`` values of the .mat files minus 1), ``keypoint_names``
        (``"0"`` ... ``"9"``: the i-th point of the image's sub-class), ``boxes``
        ``(n, 4)`` (the keypoints' own bounding box, as PF-WILLOW has no object boxes),
        ``classes`` (sub-class name per image), ``labels`` and ``class_names`` (the same
        as indices), ``pairs`` ``(m, 2)``: every ordered pair (source, target) of
        distinct images of a sub-class (900 for the full data set), and ``DESCR``.

    Raises
    ------
    FileNotFoundError
        If the folder, its images or an image's .mat file is missing.
    ValueError
        If a .mat file has no 2 x K ``pts_coord`` or images disagree on K.

    Examples
    --------
    >>> from skcorr.datasets import fetch_pf_willow, load_pf_willow
    >>> data = load_pf_willow(fetch_pf_willow())  # doctest: +SKIP
    >>> data.keypoints.shape, data.pairs.shape  # doctest: +SKIP
    ((100, 10, 2), (900, 2))
    """
    root = check_dir(path, "PF-WILLOW", _WILLOW_HINT)
    subclasses = sorted(
        d for d in root.iterdir()
        if d.is_dir() and not d.name.startswith((".", "_")) and any(d.glob("*.png"))
    )  # fmt: skip
    if not subclasses:
        raise FileNotFoundError(
            f"PF-WILLOW folder {str(root)!r} has no sub-class folder with .png images "
            f"(expected e.g. 'car(G)/Cars_006a.png'). {_WILLOW_HINT}"
        )
    images, points, labels, pairs = [], [], [], []
    for label, folder in enumerate(subclasses):
        first = len(images)
        for png in sorted(folder.glob("*.png")):
            mat = require(png.with_suffix(".mat"), "PF-WILLOW", _WILLOW_HINT)
            coords = _read_mat_array(mat, "pts_coord", 2, None)
            if points and coords.shape[1] != points[0].shape[0]:
                raise malformed(
                    mat, f"it has {coords.shape[1]} points where the other files have "
                    f"{points[0].shape[0]}"
                )
            images.append(str(png))
            points.append(coords.T - 1.0)  # rows x, y; MATLAB 1-based -> 0-based
            labels.append(label)
        pairs.extend(permutations(range(first, len(images)), 2))
    keypoints = np.stack(points)
    class_names = [d.name for d in subclasses]
    return dataset_bunch(
        images=images,
        keypoints=keypoints,
        keypoint_names=[str(i) for i in range(keypoints.shape[1])],
        boxes=keypoint_boxes(keypoints),
        descr=_WILLOW_DESCR,
        classes=[class_names[i] for i in labels],
        labels=np.asarray(labels, dtype=np.intp),
        class_names=class_names,
        pairs=pairs,
    )


def _pascal_root(path) -> Path:
    root = check_dir(path, "PF-PASCAL", _PASCAL_HINT)
    if (root / "PF-dataset-PASCAL").is_dir():
        root = root / "PF-dataset-PASCAL"
    require(root / "Annotations", "PF-PASCAL", _PASCAL_HINT)
    require(root / "JPEGImages", "PF-PASCAL", _PASCAL_HINT)
    return root


def _find_pair_file(split: str, folders: list[Path]) -> Path:
    if split not in _PASCAL_PAIR_FILES:
        raise ValueError(
            f"split must be one of {sorted(_PASCAL_PAIR_FILES)} or None, got {split!r}."
        )
    for folder in folders:
        for name in _PASCAL_PAIR_FILES[split]:
            if (folder / name).is_file():
                return folder / name
    raise FileNotFoundError(
        f"PF-PASCAL: no pair list for split {split!r}: none of "
        f"{list(_PASCAL_PAIR_FILES[split])} in {[str(f) for f in folders]}. Download it "
        "(e.g. https://www.di.ens.fr/willow/research/cnngeometric/other_resources/"
        f"{split}_pairs_pf_pascal.csv) next to JPEGImages/, or pass split=None."
    )


def load_pf_pascal(path, *, split="test"):
    """Load PF-PASCAL: images, class-specific keypoints, boxes and a pair list.

    Parameters
    ----------
    path : str or os.PathLike
        The ``PF-dataset-PASCAL`` folder (holding ``JPEGImages/`` and
        ``Annotations/<class>/<image>.mat`` with ``kps`` (K x 2, NaN rows for absent
        keypoints) and ``bbox`` ([x1 y1 x2 y2])), or its parent.
    split : {"trn", "val", "test"} or None, default="test"
        Which pair list to read: a CSV with columns ``source_image``, ``target_image``
        and ``class`` (1-based index into the VOC classes), as in ``test_pairs.csv`` or
        ``test_pairs_pf_pascal.csv``, looked for in the folder and its parent. ``None``
        reads no pairs.

    Returns
    -------
    data : sklearn.utils.Bunch
        ``images``, ``keypoints`` ``(n, K, 2)`` over the ``"class/i"`` keypoint types of
        all classes (NaN outside the image's class), ``keypoint_names``, ``boxes``,
        ``labels``, ``class_names`` (the 20 VOC classes), ``pairs`` ``(m, 2)`` (empty
        with ``split=None``) and ``DESCR``. One entry per annotation file, so an image
        annotated for two classes appears twice.

    Raises
    ------
    FileNotFoundError
        If a folder, image, annotation or the pair list is missing.
    ValueError
        If an annotation file or a row of the pair list is malformed.
    """
    root = _pascal_root(path)
    entries, index = [], {}
    for label, name in enumerate(VOC_CLASSES):
        for mat in sorted((root / "Annotations" / name).glob("*.mat")):
            kps = _read_mat_array(mat, "kps", None, 2)
            bbox = _read_mat_array(mat, "bbox", 1, 4)[0]
            image = require(root / "JPEGImages" / f"{mat.stem}.jpg", "PF-PASCAL", _PASCAL_HINT)
            index[(label, mat.stem)] = len(entries)
            entries.append((str(image), label, kps - 1.0, bbox - 1.0))
    if not entries:
        raise FileNotFoundError(
            f"PF-PASCAL: no annotation file in {str(root / 'Annotations')!r} (expected "
            f"Annotations/<class>/<image>.mat, class one of {list(VOC_CLASSES)})."
        )

    n_per_class = [max((len(e[2]) for e in entries if e[1] == c), default=0)
                   for c in range(len(VOC_CLASSES))]  # fmt: skip
    offsets = np.concatenate([[0], np.cumsum(n_per_class)])
    keypoints = np.full((len(entries), offsets[-1], 2), np.nan)
    boxes = np.empty((len(entries), 4))
    for i, (_, label, kps, (x1, y1, x2, y2)) in enumerate(entries):
        keypoints[i, offsets[label]:offsets[label] + len(kps)] = kps
        boxes[i] = (x1, y1, x2 - x1, y2 - y1)

    pairs = []
    if split is not None:
        csv_path = _find_pair_file(split, [root, root.parent])
        pairs = _read_pascal_pairs(csv_path, index)
    return dataset_bunch(
        images=[e[0] for e in entries],
        keypoints=keypoints,
        keypoint_names=class_keypoint_names(VOC_CLASSES, n_per_class),
        boxes=boxes,
        descr=_PASCAL_DESCR,
        labels=np.array([e[1] for e in entries], dtype=np.intp),
        class_names=list(VOC_CLASSES),
        pairs=pairs,
    )


def _read_pascal_pairs(csv_path: Path, index: dict) -> list[tuple[int, int]]:
    """Pairs of a PF-PASCAL pair list, as indices into the loaded annotation files."""
    required = ("source_image", "target_image", "class")
    try:
        reader = csv.DictReader(read_lines(csv_path), restkey="_extra")
        header = reader.fieldnames or []
        rows = list(reader)
    except csv.Error as exc:
        raise malformed(csv_path, f"it is not a CSV table ({exc})") from None
    missing = [c for c in required if c not in header]
    if missing:
        raise malformed(csv_path, f"its header {header} lacks the columns {missing}")
    pairs = []
    for line, row in enumerate(rows, start=2):
        try:
            if not all(row.get(c) for c in required):
                raise ValueError("a value is missing")
            label = int(row["class"]) - 1
            if not 0 <= label < len(VOC_CLASSES):
                raise ValueError(f"class {row['class']} is not in 1..{len(VOC_CLASSES)}")
            ends = [Path(row[c]).stem for c in required[:2]]
        except ValueError as exc:
            raise ValueError(
                f"{csv_path}, line {line}: malformed row ({exc}); fix or remove it."
            ) from None
        for stem in ends:
            if (label, stem) not in index:
                raise FileNotFoundError(
                    f"{csv_path}, line {line}: no annotation "
                    f"Annotations/{VOC_CLASSES[label]}/{stem}.mat for this pair; the "
                    "folder is incomplete."
                )
        pairs.append(tuple(index[(label, stem)] for stem in ends))
    return pairs
