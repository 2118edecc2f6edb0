"""Caltech-UCSD Birds-200-2011 (Wah et al. 2011), in the layout of its original release.

Coordinates. ``bounding_boxes.txt`` gives the 0-based top-left pixel and the size of
each box, and ``parts/part_locs.txt`` gives "the pixel location of the center of the
part" in the same image frame, measured from the top-left pixel as 0 (the annotation
tool recorded click positions in image pixels; nothing in the release says 1-based,
and in the 323 images of classes 001-006 we checked, no visible part lies at
x >= width or y >= height, which a 1-based frame would allow). Both are therefore used
as they are: 0-based, integers at pixel centres. A one-pixel ambiguity would be below
1% of the PCK@0.1 threshold of every box.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ._base import check_dir, dataset_bunch, malformed, read_table, require

__all__ = ["load_cub"]

_CUB_DESCR = """\
CUB-200-2011 (Wah et al., Caltech-UCSD Birds-200-2011, 2011): 11,788 images of 200
bird species, one box and 15 part locations per image (NaN when the part is not
visible), and the official train/test split. ``labels`` index ``class_names``
(``labels = class_id - 1``); ``image_ids`` are the ids of images.txt. Part and box
coordinates are used as given (0-based pixels, see skcorr.datasets._cub).
"""

_CUB_HINT = (
    "Pass the CUB_200_2011 folder of CUB_200_2011.tgz (holding images.txt, images/ and "
    "parts/), or get it with skcorr.datasets.fetch_cub()."
)

_FILES = (
    "images.txt", "image_class_labels.txt", "classes.txt", "bounding_boxes.txt",
    "train_test_split.txt", "parts/parts.txt", "parts/part_locs.txt",
)  # fmt: skip


def _select_classes(classes, class_names: list[str]) -> set[int]:
    """CUB class ids (1-based) of ``classes``: ids, full names or names without number."""
    if isinstance(classes, (str, int, np.integer)):
        classes = [classes]
    if not isinstance(classes, Sequence) and not isinstance(classes, np.ndarray):
        raise TypeError("classes must be a list of class ids (1..200) or names.")
    by_name = {}
    for class_id, name in enumerate(class_names, start=1):
        by_name[name] = class_id
        by_name[name.split(".", 1)[-1]] = class_id
    selected = set()
    for c in classes:
        if isinstance(c, (int, np.integer)) and not isinstance(c, bool):
            if not 1 <= c <= len(class_names):
                raise ValueError(f"class id {c} is not in 1..{len(class_names)}.")
            selected.add(int(c))
        elif isinstance(c, str) and c in by_name:
            selected.add(by_name[c])
        else:
            raise ValueError(
                f"unknown CUB class {c!r}; pass ids 1..{len(class_names)} or names such as "
                f"{class_names[0]!r} or {class_names[0].split('.', 1)[-1]!r}."
            )
    return selected


def load_cub(path, classes=None):
    """Load CUB-200-2011: images, 15 part locations, boxes, labels and split.

    Parameters
    ----------
    path : str or os.PathLike
        The ``CUB_200_2011`` folder of the original release (``images.txt``,
        ``image_class_labels.txt``, ``classes.txt``, ``bounding_boxes.txt``,
        ``train_test_split.txt``, ``parts/parts.txt``, ``parts/part_locs.txt`` and
        ``images/``), or its parent. The tables may list a subset of the images (rows
        of other files for images absent from ``images.txt`` are ignored).
    classes : list of int or str, default=None
        Keep only these classes: ids ``1..200``, or names as in ``classes.txt``
        (``"001.Black_footed_Albatross"``, or without the number). ``None`` keeps all.

    Returns
    -------
    data : sklearn.utils.Bunch
        ``images`` (paths), ``keypoints`` ``(n, 15, 2)`` (NaN when not visible),
        ``keypoint_names`` (the 15 part names), ``boxes`` ``(n, 4)``, ``labels``
        (``class_id - 1``), ``class_names`` (all 200), ``split`` (array of ``"train"``
        / ``"test"``), ``image_ids`` (the ids of ``images.txt``) and ``DESCR``, in the
        order of ``images.txt``.

    Raises
    ------
    FileNotFoundError
        If one of the files above, or a listed image, is missing.
    ValueError
        If a row is malformed (the message names file and line), or an image lacks a
        label, box, split or part row.

    Examples
    --------
    >>> from skcorr.datasets import fetch_cub, load_cub
    >>> birds = load_cub(fetch_cub(), classes=[1, 2])  # doctest: +SKIP
    >>> birds.keypoints.shape[1:]  # doctest: +SKIP
    (15, 2)
    """
    root = check_dir(path, "CUB-200-2011", _CUB_HINT)
    if not (root / "images.txt").exists() and (root / "CUB_200_2011").is_dir():
        root = root / "CUB_200_2011"
    for name in _FILES:
        require(root / name, "CUB-200-2011", _CUB_HINT)

    image_rows = read_table(root / "images.txt", (int, str), rest=True)
    class_names = _names(root / "classes.txt")
    part_names = _names(root / "parts/parts.txt")
    labels = _by_image(root / "image_class_labels.txt", (int, int))
    boxes = _by_image(root / "bounding_boxes.txt", (int, float, float, float, float))
    is_training = _by_image(root / "train_test_split.txt", (int, _flag))

    ids = [image_id for image_id, _ in image_rows]
    for table, name in ((labels, "image_class_labels.txt"), (boxes, "bounding_boxes.txt"),
                        (is_training, "train_test_split.txt")):  # fmt: skip
        absent = [i for i in ids if i not in table]
        if absent:
            raise ValueError(
                f"{root / name} has no row for image id {absent[0]} (listed in images.txt)"
                f" and {len(absent) - 1} other(s); the file is incomplete."
            )
    unknown = [i for i in ids if not 1 <= labels[i][0] <= len(class_names)]
    if unknown:
        raise malformed(
            root / "image_class_labels.txt",
            f"image {unknown[0]} has class id {labels[unknown[0]][0]}, not in classes.txt",
        )
    if not ids:
        raise ValueError(f"{root / 'images.txt'} lists no image.")
    if classes is not None:
        selected = _select_classes(classes, class_names)
        image_rows = [row for row in image_rows if labels[row[0]][0] in selected]
        ids = [image_id for image_id, _ in image_rows]
        if not ids:
            raise ValueError(
                f"no image of classes {sorted(selected)} is listed in {root / 'images.txt'}."
            )

    position = {image_id: i for i, image_id in enumerate(ids)}
    keypoints = np.full((len(ids), len(part_names), 2), np.nan)
    for image_id, part_id, x, y, visible in read_table(
        root / "parts/part_locs.txt", (int, int, float, float, _flag)
    ):
        if image_id in position and visible:
            if not 1 <= part_id <= len(part_names):
                raise ValueError(
                    f"{root / 'parts/part_locs.txt'}: part id {part_id} of image {image_id} "
                    f"is not in parts.txt (1..{len(part_names)})."
                )
            keypoints[position[image_id], part_id - 1] = (x, y)

    images = [root / "images" / relative for _, relative in image_rows]
    missing = [str(p) for p in images if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"CUB-200-2011: {len(missing)} image(s) listed in images.txt are missing, e.g. "
            f"{missing[0]!r}. Restore them, or remove their rows from images.txt."
        )
    return dataset_bunch(
        images=[str(p) for p in images],
        keypoints=keypoints,
        keypoint_names=part_names,
        boxes=np.array([boxes[i] for i in ids], dtype=np.float64).reshape(-1, 4),
        sources=root / "bounding_boxes.txt",
        descr=_CUB_DESCR,
        labels=np.array([labels[i][0] - 1 for i in ids], dtype=np.intp),
        class_names=class_names,
        split=np.array(["train" if is_training[i][0] else "test" for i in ids]),
        image_ids=np.array(ids, dtype=np.intp),
    )


def _flag(text: str) -> int:
    """A 0/1 field."""
    if text not in ("0", "1"):
        raise ValueError(f"expected 0 or 1, found {text!r}")
    return int(text)


def _names(path: Path) -> list[str]:
    """The names of an ``id name`` table whose ids are 1, 2, ... in order."""
    rows = read_table(path, (int, str), rest=True)
    if [row[0] for row in rows] != list(range(1, len(rows) + 1)):
        raise malformed(path, "its ids are not 1, 2, 3, ... in order")
    return [name for _, name in rows]


def _by_image(path: Path, types) -> dict[int, tuple]:
    """Rows of a per-image table keyed by image id (the first column)."""
    table = {}
    for row in read_table(path, types):
        table[row[0]] = row[1:]
    return table
