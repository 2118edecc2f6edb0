"""SPair-71k (Min et al., 2019), in the layout of its public release.

``PairAnnotation/<split>/<id>-<source>-<target>:<category>.json`` describes one pair:
``src_imname``/``trg_imname`` (files of ``JPEGImages/<category>/``), ``category``,
``kps_ids`` (the ids, within the category, of the keypoints visible in both images),
``src_kps``/``trg_kps`` (their ``[x, y]``, in the order of ``kps_ids``) and
``src_bndbox``/``trg_bndbox`` (``[x1, y1, x2, y2]``). The release is made for Python
tools and its coordinates are used as given (0-based); a box becomes
``(x1, y1, x2 - x1, y2 - y1)``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ._base import check_dir, class_keypoint_names, dataset_bunch, malformed, require

__all__ = ["load_spair71k"]

_DESCR = """\
SPair-71k (Min, Lee, Ponce, Cho, "SPair-71k: A Large-scale Benchmark for Semantic
Correspondence", 2019): 70,958 image pairs of 18 categories split into trn / val /
test, with keypoints visible in both images of a pair and object boxes. One row per
image referenced by the loaded pairs; its keypoints gather those of all its pairs
(types never seen in a loaded pair stay NaN and types of no loaded pair are not
listed). Keypoint type names are "category/id". Coordinates are used as given.
"""

_HINT = (
    "Pass the SPair-71k folder (holding JPEGImages/, ImageAnnotation/ and "
    "PairAnnotation/) of SPair-71k.tar.gz from https://cvlab.postech.ac.kr/research/SPair-71k/."
)
_KEYS = ("src_imname", "trg_imname", "category", "kps_ids", "src_kps", "trg_kps",
         "src_bndbox", "trg_bndbox")  # fmt: skip


_MAX_KEYPOINT_ID = 1000  # SPair-71k numbers at most 30 keypoints per category


def _read_pair(path: Path) -> dict:
    """One pair file, checked: keys present, keypoints ``(k, 2)`` matching ``kps_ids``."""
    try:
        pair = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise malformed(path, f"it is not UTF-8 text ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise malformed(path, f"invalid JSON at line {exc.lineno} ({exc.msg})") from None
    if not isinstance(pair, dict):
        raise malformed(path, "it does not hold a JSON object")
    missing = [key for key in _KEYS if key not in pair]
    if missing:
        raise malformed(path, f"keys {missing} are missing")
    for key in ("src_imname", "trg_imname", "category"):
        if not isinstance(pair[key], str) or not pair[key] or "/" in pair[key]:
            raise malformed(path, f"{key} is {pair[key]!r}, not a file or folder name")
    try:
        if not isinstance(pair["kps_ids"], list):
            raise ValueError("kps_ids is not a list")
        pair["kps_ids"] = [int(i) for i in pair["kps_ids"]]
        if any(not 0 <= i < _MAX_KEYPOINT_ID for i in pair["kps_ids"]):
            raise ValueError(f"kps_ids outside 0..{_MAX_KEYPOINT_ID - 1}")
        for end in ("src", "trg"):
            kps = np.asarray(pair[f"{end}_kps"], dtype=np.float64).reshape(-1, 2)
            if len(kps) != len(pair["kps_ids"]):
                raise ValueError(f"{len(kps)} {end}_kps for {len(pair['kps_ids'])} kps_ids")
            box = np.asarray(pair[f"{end}_bndbox"], dtype=np.float64)
            if box.shape != (4,):
                raise ValueError(f"{end}_bndbox is not [x1, y1, x2, y2]")
            if not (np.isfinite(kps).all() and np.isfinite(box).all()):
                raise ValueError("a coordinate is not finite")
            if not (box[2] > box[0] and box[3] > box[1]):
                raise ValueError(f"{end}_bndbox {box.tolist()} is empty (x2 <= x1 or y2 <= y1)")
            x1, y1, x2, y2 = box
            pair[f"{end}_kps"] = kps
            pair[f"{end}_bndbox"] = np.array([x1, y1, x2 - x1, y2 - y1])
    except (TypeError, ValueError, OverflowError) as exc:
        raise malformed(path, f"bad keypoints or box ({exc})") from None
    return pair


def load_spair71k(path, *, split="test"):
    """Load the image pairs of one split of SPair-71k.

    Parameters
    ----------
    path : str or os.PathLike
        The ``SPair-71k`` folder (``JPEGImages/<category>/*.jpg``,
        ``PairAnnotation/{trn,val,test}/*.json``), or its parent.
    split : {"trn", "val", "test"}, default="test"
        The pair annotations to read.

    Returns
    -------
    data : sklearn.utils.Bunch
        ``images`` (paths of the images used by the pairs), ``keypoints``
        ``(n, K, 2)`` over the ``"category/id"`` types of ``keypoint_names``, ``boxes``
        ``(n, 4)``, ``labels`` indexing ``class_names`` (the category folders of
        ``JPEGImages``), ``pairs`` ``(m, 2)`` (source, target), ``pair_files`` (the
        annotation file of each pair) and ``DESCR``.

    Raises
    ------
    FileNotFoundError
        If a folder, pair file or image is missing.
    ValueError
        If a pair file is malformed, or two pair files disagree on an image's keypoint.
    """
    root = check_dir(path, "SPair-71k", _HINT)
    if (root / "SPair-71k").is_dir():
        root = root / "SPair-71k"
    if split not in ("trn", "val", "test"):
        raise ValueError(f"split must be 'trn', 'val' or 'test', got {split!r}.")
    image_root = require(root / "JPEGImages", "SPair-71k", _HINT)
    files = sorted(require(root / "PairAnnotation" / split, "SPair-71k", _HINT).glob("*.json"))
    if not files:
        raise FileNotFoundError(
            f"SPair-71k: no *.json pair file in {root / 'PairAnnotation' / split}."
        )
    class_names = sorted(d.name for d in image_root.iterdir() if d.is_dir())

    pairs_read = [(file, _read_pair(file)) for file in files]
    n_types = {}
    for file, pair in pairs_read:
        if pair["category"] not in class_names:
            raise malformed(file, f"category {pair['category']!r} has no folder in {image_root}")
        n_seen = max(pair["kps_ids"], default=-1) + 1
        n_types[pair["category"]] = max(n_types.get(pair["category"], 0), n_seen)
    used = [c for c in class_names if c in n_types]
    offset = dict(zip(used, np.cumsum([0] + [n_types[c] for c in used][:-1]).tolist(), strict=True))

    index: dict[tuple[str, str], int] = {}
    images, labels, boxes, rows, pairs, sources = [], [], [], [], [], []
    n_keypoints = sum(n_types.values())
    for file, pair in pairs_read:
        category = pair["category"]
        columns = [offset[category] + i for i in pair["kps_ids"]]
        ends = []
        for end in ("src", "trg"):
            key = (category, pair[f"{end}_imname"])
            if key not in index:
                image = require(image_root / category / key[1], "SPair-71k", _HINT)
                index[key] = len(images)
                images.append(str(image))
                labels.append(class_names.index(category))
                boxes.append(pair[f"{end}_bndbox"])
                rows.append(np.full((n_keypoints, 2), np.nan))
                sources.append(file)
            i = index[key]
            known = ~np.isnan(rows[i][columns, 0])
            if not np.allclose(rows[i][columns][known], pair[f"{end}_kps"][known]):
                raise malformed(file, f"its keypoints of {key[1]} differ from those in "
                                      f"{sources[i]}")
            rows[i][columns] = pair[f"{end}_kps"]
            ends.append(i)
        pairs.append(ends)
    return dataset_bunch(
        images=images,
        keypoints=np.stack(rows),
        keypoint_names=class_keypoint_names(used, [n_types[c] for c in used]),
        boxes=np.array(boxes),
        descr=_DESCR,
        labels=np.array(labels, dtype=np.intp),
        class_names=class_names,
        pairs=pairs,
        pair_files=[str(file) for file, _ in pairs_read],
    )
