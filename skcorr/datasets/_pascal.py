"""PASCAL VOC 2011 keypoint annotations (Bourdev et al.), one XML file per object.

Each file ``<image>_<k>.xml`` describes object ``k`` of VOC image ``<image>.jpg``::

    <annotation>
      <category>aeroplane</category>
      <visible_bounds height="105.00" width="271.00" xmin="104.00" ymin="78.00"/>
      <keypoints>
        <keypoint name="NoseTip" visible="1" x="213.70" y="157.28" z="0.00"/>
        ...

Coordinates are those of the VOC annotations, 1-based (``xmin="1.00"`` is the first
column): keypoints and the box corner are returned minus 1, width and height as given.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from ._base import VOC_CLASSES, check_dir, dataset_bunch, malformed

__all__ = ["load_pascal_keypoints"]

_DESCR = """\
PASCAL VOC 2011 keypoint annotations (Bourdev, Maji, Brox, Malik, "Detecting people
using mutually consistent poselet activations", ECCV 2010; poselet annotations of the
20 VOC classes), as used by Long et al. (NIPS 2014) for keypoint classification. One
row per annotated object: ``keypoints`` over the union of the keypoint names of the
loaded classes (NaN where a name does not belong to the object's class, or the
keypoint is not visible), ``boxes`` from ``<visible_bounds>``, ``labels`` indexing
``class_names`` (the 20 VOC classes). Coordinates are returned 0-based (the files'
1-based VOC coordinates minus 1).
"""

_HINT = (
    "Pass the folder of the keypoint annotation XML files (e.g. annotations/<class>/"
    "2007_000032_1.xml)."
)
_OBJECT_SUFFIX = re.compile(r"_\d+$")


def _attribute(element, name: str, path: Path) -> float:
    value = element.get(name)
    try:
        number = float(value)
        if not np.isfinite(number):
            raise ValueError
        return number
    except (TypeError, ValueError):
        raise malformed(
            path, f"<{element.tag}> has no numeric attribute {name}= (found {value!r})"
        ) from None


def _parse(path: Path) -> tuple[str, tuple, list[tuple[str, float, float]]]:
    """Category, box (x, y, w, h) and keypoints (name, x, y; NaN if not visible) of a file."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        line = exc.position[0]
        raise malformed(path, f"invalid XML at line {line} ({exc})") from None
    except (LookupError, ValueError) as exc:  # e.g. an unknown declared encoding
        raise malformed(path, f"invalid XML ({exc})") from None
    category = (root.findtext("category") or "").strip()
    if category not in VOC_CLASSES:
        raise malformed(
            path, f"<category> is {category!r}, not one of the 20 VOC classes"
        )
    bounds = root.find("visible_bounds")
    if bounds is None:
        raise malformed(path, "it has no <visible_bounds> element")
    box = (
        _attribute(bounds, "xmin", path) - 1.0,
        _attribute(bounds, "ymin", path) - 1.0,
        _attribute(bounds, "width", path),
        _attribute(bounds, "height", path),
    )
    keypoints = []
    for keypoint in root.iter("keypoint"):
        name = keypoint.get("name")
        visible = (keypoint.get("visible") or "").strip()
        if not name or visible not in ("0", "1"):
            raise malformed(
                path, f"a <keypoint> has name={name!r} visible={keypoint.get('visible')!r}; "
                "each needs a name and visible='0' or '1'"
            )
        if visible == "1":
            x, y = (_attribute(keypoint, axis, path) - 1.0 for axis in "xy")
        else:
            x = y = np.nan
        keypoints.append((name, x, y))
    return category, box, keypoints


def load_pascal_keypoints(annotation_dir, image_dir=None, *, classes=None):
    """Load the PASCAL VOC 2011 keypoint annotations: one row per annotated object.

    Parameters
    ----------
    annotation_dir : str or os.PathLike
        Folder searched recursively for the ``*.xml`` files (one per object, named
        ``<image>_<k>.xml``; usually ``<class>/`` sub-folders).
    image_dir : str or os.PathLike, default=None
        The VOC ``JPEGImages`` folder. The image of ``2007_000032_1.xml`` is
        ``image_dir/2007_000032.jpg``. ``None``: ``images`` holds the bare file names
        (``"2007_000032.jpg"``) to be joined with a folder later.
    classes : list of str, default=None
        Keep only objects of these VOC classes; ``None`` keeps all 20.

    Returns
    -------
    data : sklearn.utils.Bunch
        ``images`` (one per object: objects of one image share it), ``keypoints``
        ``(n, K, 2)`` over ``keypoint_names``, the union of the names found in the
        loaded classes (NaN elsewhere and where not visible), ``boxes`` ``(n, 4)``
        (``<visible_bounds>``), ``labels`` (indices into ``class_names``, the 20 VOC
        classes), ``annotation_files`` and ``DESCR``.

    Raises
    ------
    FileNotFoundError
        If a folder is missing, no XML file is found, or (with ``image_dir``) an image.
    ValueError
        If an XML file is malformed (the message names it), or a class is unknown.

    Examples
    --------
    >>> from skcorr.datasets import load_pascal_keypoints
    >>> data = load_pascal_keypoints("annotations", "VOC2011/JPEGImages")  # doctest: +SKIP
    >>> data.keypoint_names[:3]  # doctest: +SKIP
    ['Top_Rudder', 'Bot_Rudder', 'L_Stabilizer']
    """
    folder = check_dir(annotation_dir, "PASCAL keypoint annotation", _HINT)
    if classes is not None:
        classes = [classes] if isinstance(classes, str) else list(classes)
        unknown = [c for c in classes if c not in VOC_CLASSES]
        if unknown:
            raise ValueError(f"unknown VOC classes {unknown}; choose among {list(VOC_CLASSES)}.")
    files = sorted(folder.rglob("*.xml"))
    if not files:
        raise FileNotFoundError(f"no *.xml annotation file under {str(folder)!r}. {_HINT}")

    objects = [(path, *_parse(path)) for path in files]
    if classes is not None:
        objects = [obj for obj in objects if obj[1] in classes]
        if not objects:
            raise ValueError(f"no object of classes {classes} under {str(folder)!r}.")
    objects.sort(key=lambda obj: (VOC_CLASSES.index(obj[1]), obj[0].name))

    names: dict[str, int] = {}
    for _, _, _, points in objects:
        for name, _, _ in points:
            names.setdefault(name, len(names))
    keypoints = np.full((len(objects), len(names), 2), np.nan)
    for i, (_, _, _, points) in enumerate(objects):
        for name, x, y in points:
            keypoints[i, names[name]] = (x, y)

    images = [_OBJECT_SUFFIX.sub("", path.stem) + ".jpg" for path, *_ in objects]
    if image_dir is not None:
        image_root = check_dir(image_dir, "VOC image", "Pass the VOC2011 JPEGImages folder.")
        images = [str(image_root / name) for name in images]
        missing = [p for p in images if not Path(p).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} annotated image(s) are missing from {str(image_root)!r}, "
                f"e.g. {missing[0]!r}; pass the JPEGImages folder of VOC 2011."
            )
    return dataset_bunch(
        images=images,
        keypoints=keypoints,
        keypoint_names=list(names),
        boxes=np.array([obj[2] for obj in objects], dtype=np.float64),
        descr=_DESCR,
        labels=np.array([VOC_CLASSES.index(obj[1]) for obj in objects], dtype=np.intp),
        class_names=list(VOC_CLASSES),
        annotation_files=[str(obj[0]) for obj in objects],
        sources=[str(obj[0]) for obj in objects],
    )
