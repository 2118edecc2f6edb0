"""Your own keypoint annotations: one CSV (or JSON) file in, one CSV file out.

The CSV format, read by :func:`read_annotations` and written by
:func:`write_keypoints_csv`, is a header row ``image,keypoint,x,y`` and one row per
visible keypoint::

    image,keypoint,x,y
    birds/a.jpg,beak,120.5,88
    birds/a.jpg,tail,30,140.25
    birds/b.jpg,beak,97,61

``image`` is the image file, relative to the CSV file's folder (or absolute);
``keypoint`` is the keypoint's name; ``x`` and ``y`` are 0-based pixel coordinates
(``x`` the column, ``y`` the row, integers at pixel centres) in the image *as displayed*,
its EXIF orientation applied (see :mod:`skcorr._image`). A keypoint absent from an
image has no row. Other columns are ignored.

The JSON format maps each image file to its visible keypoints::

    {"images": {"birds/a.jpg": {"beak": [120.5, 88], "tail": [30, 140.25]},
                "birds/b.jpg": {"beak": [97, 61]}}}

or lists one record per visible keypoint, with the fields of the CSV format (other
fields are ignored)::

    [{"image": "birds/a.jpg", "keypoint": "beak", "x": 120.5, "y": 88},
     {"image": "birds/a.jpg", "keypoint": "tail", "x": 30, "y": 140.25},
     {"image": "birds/b.jpg", "keypoint": "beak", "x": 97, "y": 61}]
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch

from .._image import image_size, outside_image
from .._io import write_text
from .._validation import check_keypoints

__all__ = ["read_annotations", "write_keypoints_csv"]

#: The columns of the CSV format, in order.
CSV_COLUMNS = ("image", "keypoint", "x", "y")


def read_annotations(path) -> Bunch:
    """Read a keypoint annotation file (CSV or JSON) of your own images.

    Parameters
    ----------
    path : str or path-like
        A ``.csv`` file with the header row ``image,keypoint,x,y`` and one row per
        visible keypoint, or a ``.json`` file, either ``{"images": {"a.jpg": {"beak":
        [x, y], ...}, ...}}`` or a list of records with the CSV's fields, ``[{"image":
        "a.jpg", "keypoint": "beak", "x": 10.5, "y": 20}, ...]`` (see
        :mod:`skcorr.datasets._annotations` and the user guide's "Your own images").
        Image paths are relative to the file's folder; coordinates are 0-based ``(x,
        y)`` pixels of the image as displayed (EXIF orientation applied).

    Returns
    -------
    data : sklearn.utils.Bunch
        ``images``: absolute paths (str) of the annotated images, in the order the file
        first names them; ``keypoint_names``: the keypoint names, in order of first
        appearance; ``keypoints``: float64 array ``(n_images, n_keypoints, 2)`` of
        ``(x, y)``, NaN where a keypoint is absent from an image.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is malformed: a missing column, an empty field, a coordinate that is
        not a finite number, a repeated ``(image, keypoint)``, an image file that does
        not exist or cannot be read, or a point outside its image. The message names the
        file and the line (CSV), the image (JSON object) or the record, counted from 0
        (JSON list).

    Examples
    --------
    >>> import numpy as np
    >>> from pathlib import Path
    >>> from tempfile import mkdtemp
    >>> from PIL import Image
    >>> from skcorr.datasets import read_annotations
    >>> folder = Path(mkdtemp())
    >>> Image.new("RGB", (40, 30)).save(folder / "a.png")
    >>> _ = (folder / "points.csv").write_text("image,keypoint,x,y\\na.png,beak,10,5\\n")
    >>> data = read_annotations(folder / "points.csv")
    >>> data.keypoint_names, data.keypoints.tolist()
    (['beak'], [[[10.0, 5.0]]])
    """
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"path must be the path of an annotation file (str or os.PathLike), "
                        f"got {type(path).__name__}.")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"Annotation path {str(path)!r} is a folder; pass the path of a .csv "
                         "or .json annotation file.")
    if not path.is_file():
        raise FileNotFoundError(f"Annotation file {str(path)!r} does not exist; check the "
                                "path.")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise ValueError(f"Annotation file {str(path)!r} must end in .csv or .json (its format "
                         f"is chosen by the extension), got {path.suffix or 'no extension'!r}.")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"Annotation file {str(path)!r} is not UTF-8 text ({exc.reason}); "
                         "save it as UTF-8.") from None
    records = _csv_records(path, text) if suffix == ".csv" else _json_records(path, text)
    return _collect(path, records)


def _csv_records(path: Path, text: str) -> list[tuple[str, str, str, object, object]]:
    """``(where, image, keypoint, x, y)`` per row of a CSV file, ``where`` naming the line."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        raise ValueError(f"Annotation file {str(path)!r} is empty; its first row must be the "
                         f"header {','.join(CSV_COLUMNS)}.")
    columns = [name.strip().lower() for name in header]
    missing = [name for name in CSV_COLUMNS if name not in columns]
    if missing:
        raise ValueError(
            f"Annotation file {str(path)!r} lacks the column(s) {missing}; its header row "
            f"must name {', '.join(CSV_COLUMNS)} (it names {[h.strip() for h in header]})."
        )
    where = {name: columns.index(name) for name in CSV_COLUMNS}
    records = []
    for row in reader:
        line = reader.line_num
        if not any(field.strip() for field in row):
            continue  # blank lines
        if len(row) < len(columns):
            raise ValueError(f"Annotation file {str(path)!r}, line {line}: {len(row)} fields "
                             f"for the {len(columns)} columns of the header.")
        fields = [row[where[name]].strip() for name in CSV_COLUMNS]
        records.append((f"line {line}", *fields))
    return records


def _json_records(path: Path, text: str) -> list[tuple[str, str, str, object, object]]:
    """``(where, image, keypoint, x, y)`` per keypoint of a JSON file."""

    def refuse_repeats(pairs):
        keys = [key for key, _ in pairs]
        repeated = sorted({key for key in keys if keys.count(key) > 1})
        if repeated:
            raise ValueError(f"Annotation file {str(path)!r} names {repeated} twice in one "
                             "object; give each image and each keypoint once.")
        return dict(pairs)

    try:
        document = json.loads(text, object_pairs_hook=refuse_repeats)
    except json.JSONDecodeError as exc:
        raise ValueError(f"Annotation file {str(path)!r} is not valid JSON ({exc}).") from None
    if isinstance(document, list):
        return _json_list_records(path, document)
    images = document.get("images") if isinstance(document, dict) else None
    if not isinstance(images, dict):
        raise ValueError(
            f"Annotation file {str(path)!r} must hold an object with the key \"images\" "
            'mapping each image file to its keypoints, {"images": {"a.jpg": {"beak": '
            '[x, y], ...}, ...}}, or a list of records [{"image": "a.jpg", "keypoint": '
            '"beak", "x": 10.5, "y": 20}, ...].'
        )
    records = []
    for image, points in images.items():
        if not isinstance(points, dict):
            raise ValueError(f"Annotation file {str(path)!r}, image {image!r}: its value must "
                             'map keypoint names to [x, y], e.g. {"beak": [120.5, 88]}.')
        for name, point in points.items():
            where = f"image {image!r}, keypoint {name!r}"
            if not isinstance(point, list | tuple) or len(point) != 2:
                raise ValueError(f"Annotation file {str(path)!r}, {where}: expected [x, y], "
                                 f"got {point!r}.")
            records.append((where, image, name, *point))
        if not points:  # an annotated image with no visible keypoint still counts
            records.append((f"image {image!r}", image, None, None, None))
    return records


def _json_list_records(path: Path, document: list) -> list[tuple[str, str, str, object,
                                                                 object]]:
    """``(where, image, keypoint, x, y)`` per record of a JSON list, ``where`` its index."""
    records = []
    for i, record in enumerate(document):
        example = '{"image": "a.jpg", "keypoint": "beak", "x": 10.5, "y": 20}'
        if not isinstance(record, dict):
            raise ValueError(f"Annotation file {str(path)!r}, record {i}: expected an object "
                             f"with the fields {', '.join(CSV_COLUMNS)}, e.g. {example}, got "
                             f"{record!r}.")
        missing = [name for name in CSV_COLUMNS if name not in record]
        if missing:
            raise ValueError(f"Annotation file {str(path)!r}, record {i}: lacks the field(s) "
                             f"{missing}; every record names {', '.join(CSV_COLUMNS)}, e.g. "
                             f"{example}.")
        if record["keypoint"] is None:  # None marks an image without keypoints, below
            raise ValueError(f"Annotation file {str(path)!r}, record {i}: the keypoint name "
                             "is empty.")
        records.append((f"record {i}", record["image"], record["keypoint"], record["x"],
                        record["y"]))
    return records


def _number(value, axis: str, file: Path, where: str) -> float:
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise ValueError(f"Annotation file {str(file)!r}, {where}: {axis} = {value!r} is not a "
                         "finite number; give pixel coordinates, and leave absent keypoints "
                         "out of the file.")
    return number


def _collect(path: Path, records) -> Bunch:
    """Check the records and gather them into the Bunch of :func:`read_annotations`."""
    if not records:
        raise ValueError(f"Annotation file {str(path)!r} annotates no image; add one row per "
                         "visible keypoint.")
    folder = path.parent
    images: dict[str, tuple[int, int]] = {}  # absolute path -> (height, width)
    names: dict[str, None] = {}
    points: dict[tuple[str, str], tuple[float, float]] = {}
    lines: dict[tuple[str, str], str] = {}
    for where, image, name, x, y in records:
        if not isinstance(image, str) or not image:
            raise ValueError(f"Annotation file {str(path)!r}, {where}: the image is empty.")
        file = os.path.abspath(folder / image)
        if file not in images:
            if not os.path.isfile(file):
                raise ValueError(f"Annotation file {str(path)!r}, {where}: image file "
                                 f"{file!r} does not exist (image paths are relative to the "
                                 "annotation file's folder).")
            try:
                images[file] = image_size(file)
            except (OSError, ValueError) as exc:
                raise ValueError(f"Annotation file {str(path)!r}, {where}: {exc}") from None
        if name is None:
            continue
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"Annotation file {str(path)!r}, {where}: the keypoint name is "
                             "empty.")
        key = (file, name)
        if key in points:
            raise ValueError(f"Annotation file {str(path)!r}, {where}: keypoint {name!r} of "
                             f"image {image!r} is given again (first at {lines[key]}); give "
                             "each keypoint of an image once.")
        point = np.array([_number(x, "x", path, where), _number(y, "y", path, where)])
        if outside_image(point, images[file]):
            height, width = images[file]
            raise ValueError(
                f"Annotation file {str(path)!r}, {where}: keypoint {name!r} at ({point[0]:g}, "
                f"{point[1]:g}) lies outside image {image!r} of size {width}x{height} (width "
                "x height); coordinates are 0-based (x, y) pixels of the image as displayed "
                "(EXIF orientation applied)."
            )
        names.setdefault(name, None)
        points[key] = tuple(point)
        lines[key] = where
    order = list(images)
    index = {name: k for k, name in enumerate(names)}
    keypoints = np.full((len(order), len(index), 2), np.nan)
    row = {file: i for i, file in enumerate(order)}
    for (file, name), point in points.items():
        keypoints[row[file], index[name]] = point
    return Bunch(images=order, keypoint_names=list(names), keypoints=keypoints)


def write_keypoints_csv(path, images, keypoint_names, keypoints, *, overwrite=False) -> Path:
    """Write keypoints of images as the CSV annotation format (whole or not at all).

    One row ``image,keypoint,x,y`` per present keypoint (rows with NaN are left out),
    images in the given order, keypoints in the order of ``keypoint_names``; the file
    reads back with :func:`read_annotations`. Coordinates are written to 1/1000 pixel.

    Parameters
    ----------
    path : str or path-like
        The CSV file to write; its folder must exist.
    images : sequence of str or path-like
        The image files, one per row of ``keypoints``. Images inside the CSV file's
        folder are written relative to it, others as absolute paths.
    keypoint_names : sequence of str
        ``K`` distinct, non-empty names.
    keypoints : array-like of shape (n_images, K, 2)
        ``(x, y)`` pixels, NaN where absent.
    overwrite : bool, default=False
        Replace an existing file at ``path``.

    Returns
    -------
    path : Path
        The file written.

    Examples
    --------
    >>> import numpy as np
    >>> from pathlib import Path
    >>> from tempfile import mkdtemp
    >>> from skcorr.datasets import write_keypoints_csv
    >>> out = Path(mkdtemp()) / "keypoints.csv"
    >>> _ = write_keypoints_csv(out, ["/data/a.jpg"], ["beak", "tail"],
    ...                         np.array([[[10.5, 4.0], [np.nan, np.nan]]]))
    >>> print(out.read_text().strip())
    image,keypoint,x,y
    /data/a.jpg,beak,10.5,4
    """
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"path must be a file path (str or os.PathLike), got "
                        f"{type(path).__name__}.")
    path = Path(path)
    if not isinstance(overwrite, bool | np.bool_):
        raise ValueError(f"overwrite must be True or False, got {overwrite!r}.")
    if isinstance(images, str | os.PathLike) or not isinstance(images, Sequence):
        raise TypeError("images must be a list of image paths, one per row of keypoints.")
    for i, image in enumerate(images):
        if not isinstance(image, str | os.PathLike):
            raise TypeError(f"images[{i}] must be an image path (str or os.PathLike), got "
                            f"{type(image).__name__}; only files can be named in a CSV.")
    if isinstance(keypoint_names, str) or not isinstance(keypoint_names, Sequence):
        raise TypeError("keypoint_names must be a list of str, one per keypoint type.")
    names = list(keypoint_names)
    if any(not isinstance(name, str) or not name.strip() for name in names):
        raise ValueError(f"keypoint_names must be non-empty str, got {names!r}.")
    if len(set(names)) != len(names):
        raise ValueError(f"keypoint_names must be distinct, got {names!r}.")
    keypoints = check_keypoints(keypoints, name="keypoints", n=len(images))
    if keypoints.shape[1] != len(names):
        raise ValueError(f"keypoints has {keypoints.shape[1]} keypoint types but "
                         f"keypoint_names has {len(names)}; give one name per type.")
    if path.is_dir():
        raise ValueError(f"path {str(path)!r} is a folder; name the CSV file to write.")
    if path.exists() and not overwrite:
        raise ValueError(f"File {str(path)!r} already exists; pass overwrite=True to replace "
                         "it, or choose another path.")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"Folder {str(path.parent)!r} does not exist; create it "
                                "first.")
    folder = Path(os.path.abspath(path.parent))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for image, points in zip(images, keypoints, strict=True):
        file = Path(os.path.abspath(image))
        shown = file.relative_to(folder).as_posix() if file.is_relative_to(folder) else str(file)
        for name, (x, y) in zip(names, points, strict=True):
            if not (np.isnan(x) or np.isnan(y)):
                writer.writerow([shown, name, _format(x), _format(y)])
    write_text(path, buffer.getvalue(), newline="")
    return path


def _format(value: float) -> str:
    text = f"{float(value):.3f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text
