"""Keypoints from annotated image files to new image files: :func:`transfer_files`,
behind ``skcorr transfer``."""

from __future__ import annotations

import numbers
import os
import secrets
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch

from .._image import image_size
from .._io import atomic_path, check_output_folder, unique_names
from ..datasets import read_annotations, write_keypoints_csv
from ._presets import FEATURE_SETTINGS, preset_settings
from ._settings import FLOW_CONSTRAINTS

__all__ = ["transfer_files"]

#: The table of predictions :func:`transfer_files` writes in its output folder.
KEYPOINTS_FILE = "keypoints.csv"


def transfer_files(annotations, images, output, *, preset: str = "best", n_neighbors: int = 5,
                   n_top: int = 3, pictures: bool = False, overwrite: bool = False,
                   memory=None, n_jobs=None, verbose: bool = False, features=None,
                   retrieval=None, **settings) -> Bunch:
    """Transfer keypoints from annotated images to new images, from files to files.

    Fits a :class:`~skcorr.flow.FlowAligner` on the images of ``annotations`` and
    predicts the keypoints of ``images``: each new image is aligned with its
    ``n_neighbors`` most similar annotated images (retrieved by global features), and
    each keypoint is the median of its transfers from the ``n_top`` neighbours whose
    flows deform least (Long et al. 2014). One annotated image is enough: then every
    keypoint comes from it. Writes into ``output``:

    * ``keypoints.csv``: the predicted keypoints in the annotation CSV format
      (``image,keypoint,x,y``, see :func:`skcorr.datasets.read_annotations`); a keypoint
      that no used neighbour has gets no row;
    * with ``pictures``, ``<image name>.png`` per new image: the image with its
      predicted keypoints drawn and labelled.

    Every file is written whole or not at all, and nothing is written unless all
    predictions succeeded.

    Parameters
    ----------
    annotations : str or path-like
        The annotation file (CSV or JSON) of the annotated images, read by
        :func:`~skcorr.datasets.read_annotations`.
    images : sequence of str or path-like
        The new images: image files, or folders whose image files (by extension, sorted
        by name) are all taken; other files in a folder are skipped with a warning that
        lists them.
    output : str or path-like
        The folder of the results, created if missing; one that already holds files is
        refused unless ``overwrite``.
    preset : {"best", "paper"}, default="best"
        The features and flow settings (see :data:`~skcorr.flow.PRESETS`).
    n_neighbors : int, default=5
        Annotated images aligned with each new image; at most the number of annotated
        images (fewer are used when there are fewer).
    n_top : int, default=3
        Best-aligned neighbours whose transfers are combined; at most ``n_neighbors``.
    pictures : bool, default=False
        Also write a picture per new image.
    overwrite : bool, default=False
        Write into an output folder that holds files, replacing the files of the same
        names (other files are left alone).
    memory : None, str or joblib.Memory, default=None
        Cache of the features and alignments (see :class:`~skcorr.flow.FlowAligner`).
    n_jobs : int or None, default=None
        Alignments run at once (joblib).
    verbose : bool, default=False
        A progress bar over the alignments.
    features : transformer or None, default=None
        Dense features to use instead of the preset's (e.g. a
        :class:`~skcorr.ConvColumnExtractor`); then ``backbone``, ``layer`` and
        ``image_size`` cannot be set.
    retrieval : transformer or None, default=None
        Global features for retrieving neighbours (default: FlowAligner's).
    **settings
        Replace the preset's settings: ``backbone``, ``layer``, ``image_size``, ``lam``,
        ``truncation``, ``ot_reg``, ``subcell``, ``levels``, ``radius``, ``max_iter``.

    Returns
    -------
    result : sklearn.utils.Bunch
        ``images`` (the new images' paths, str, in order), ``keypoint_names``,
        ``keypoints`` ``(n_images, K, 2)`` (NaN where not predicted) and ``files`` (the
        paths written, ``keypoints.csv`` first).

    Examples
    --------
    >>> from pathlib import Path
    >>> from tempfile import mkdtemp
    >>> from PIL import Image
    >>> from skcorr.datasets import make_affine_category, write_keypoints_csv
    >>> from skcorr.flow import transfer_files
    >>> folder = Path(mkdtemp())
    >>> cats = make_affine_category(3, height=64, random_state=0)
    >>> for i, image in enumerate(cats.images):
    ...     Image.fromarray(image).save(folder / f"cat{i}.png")
    >>> _ = write_keypoints_csv(folder / "annotations.csv", [folder / "cat0.png"],
    ...                         cats.keypoint_names, cats.keypoints[:1])
    >>> result = transfer_files(folder / "annotations.csv",
    ...                         [folder / "cat1.png", folder / "cat2.png"], folder / "out",
    ...                         image_size=96)
    >>> result.keypoints.shape, result.files[0].name
    ((2, 6, 2), 'keypoints.csv')
    """
    from . import FlowAligner

    if not isinstance(annotations, str | os.PathLike):
        raise TypeError(f"annotations must be the path of an annotation file (CSV or JSON), "
                        f"got {type(annotations).__name__}.")
    for name, value in (("pictures", pictures), ("overwrite", overwrite),
                        ("verbose", verbose)):
        if not isinstance(value, bool | np.bool_):
            raise ValueError(f"{name} must be True or False, got {value!r}.")
    n_neighbors = _check_count(n_neighbors, "n_neighbors")
    n_top = _check_count(n_top, "n_top")
    feature_settings, align_settings = preset_settings(preset, **settings)
    unused = sorted(set(align_settings) - set(FLOW_CONSTRAINTS))
    if unused:
        raise ValueError(f"Setting(s) {unused} are not used in keypoint transfer; its flow "
                         f"settings are {', '.join(FLOW_CONSTRAINTS)}.")
    given = sorted(set(settings) & set(FEATURE_SETTINGS))
    if features is not None and given:
        raise ValueError(f"Setting(s) {given} set the preset's features, but features= "
                         "replaces them; set them on the extractor instead.")
    output = _check_output(output, overwrite)
    targets = _image_files(images)
    data = read_annotations(annotations)
    if not data.keypoint_names:
        raise ValueError(f"Annotation file {os.fspath(annotations)!r} holds no keypoint; "
                         "annotate at least one keypoint of one image.")
    for path in targets:
        image_size(path)  # a clear error for a file that is not an image, before any work

    if features is None:
        from ..features import ConvColumnExtractor

        features = ConvColumnExtractor(mode="dense", **feature_settings)
    n_neighbors = min(n_neighbors, len(data.images))
    aligner = FlowAligner(features=features, retrieval=retrieval, n_neighbors=n_neighbors,
                          n_top=min(n_top, n_neighbors), n_jobs=n_jobs, verbose=verbose,
                          memory=memory, **align_settings)
    predicted = aligner.fit(data.images, data.keypoints).predict(targets)
    names = [str(path) for path in targets]
    return Bunch(images=names, keypoint_names=data.keypoint_names, keypoints=predicted,
                 files=_write_outputs(output, names, data.keypoint_names, predicted,
                                      pictures))


def _check_count(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
    return int(value)


def _check_output(output, overwrite: bool) -> Path:
    if not isinstance(output, str | os.PathLike):
        raise TypeError(f"output must be a folder path, got {type(output).__name__}.")
    return check_output_folder(output, overwrite, fix="overwrite=True (--overwrite)")


def _image_suffixes() -> set[str]:
    from PIL import Image

    return {suffix.lower() for suffix in Image.registered_extensions()}


def _image_files(images) -> list[Path]:
    """The image files named by ``images``: files as given, folders' image files sorted."""
    if isinstance(images, str | os.PathLike) or not isinstance(images, Sequence):
        raise TypeError("images must be a list of image files or folders; wrap a single "
                        "path in a list.")
    if not images:
        raise ValueError("images is empty; name at least one image file or folder.")
    suffixes = _image_suffixes()
    files = []
    for i, item in enumerate(images):
        if not isinstance(item, str | os.PathLike):
            raise TypeError(f"images[{i}] must be an image file or a folder path, got "
                            f"{type(item).__name__}.")
        path = Path(item)
        if path.is_dir():
            entries = sorted(path.iterdir())
            found = [p for p in entries if p.is_file() and p.suffix.lower() in suffixes]
            stray = [p.name for p in entries if p not in found and not p.name.startswith(".")]
            if stray:
                warnings.warn(f"Folder {str(path)!r} holds {len(stray)} file(s) that are not "
                              f"images, skipped: {', '.join(stray)}.", UserWarning,
                              stacklevel=3)
            if not found:
                raise ValueError(f"Folder {str(path)!r} holds no image file (by extension: "
                                 ".jpg, .png, ...); name a folder of images.")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise ValueError(f"Image {str(path)!r} does not exist; name image files or "
                             "folders of them.")
    return list(dict.fromkeys(files))


def _picture_names(paths) -> list[str]:
    """``<stem>.png`` per image, with ``_2``, ``_3``... where stems repeat."""
    return unique_names((Path(path).stem for path in paths), ".png", taken={KEYPOINTS_FILE})


def _write_outputs(output: Path, images, keypoint_names, keypoints, pictures) -> list[Path]:
    """Write every file into a hidden folder in ``output``, then move them all in place."""
    created = not output.exists()
    output.mkdir(parents=True, exist_ok=True)
    tmp = output / f".transfer.{secrets.token_hex(4)}.tmp"
    tmp.mkdir()
    try:
        # written in tmp, the table names every image by its absolute path
        write_keypoints_csv(tmp / KEYPOINTS_FILE, images, keypoint_names, keypoints)
        names = [KEYPOINTS_FILE]
        if pictures:
            for image, name, points in zip(images, _picture_names(images), keypoints,
                                           strict=True):
                _plot_keypoints(image, points, keypoint_names, tmp / name)
                names.append(name)
        for name in names:
            os.replace(tmp / name, output / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if created and not any(output.iterdir()):
            output.rmdir()
        raise
    tmp.rmdir()
    return [output / name for name in names]


def _plot_keypoints(image, points, keypoint_names, path: Path) -> None:
    """The image with its keypoints drawn and labelled, saved as PNG (whole or not at all)."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    from .._image import read_image

    pixels = read_image(image)
    height, width = pixels.shape[:2]
    fig = Figure(figsize=(6.0, 6.0 * height / width + 0.4), layout="constrained")
    ax = fig.subplots()
    ax.imshow(pixels)
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)
    ax.axis("off")
    colours = colormaps["tab10"]
    for k, (name, (x, y)) in enumerate(zip(keypoint_names, points, strict=True)):
        if np.isnan(x) or np.isnan(y):
            continue
        colour = colours(k % 10)
        ax.scatter([x], [y], s=50, color=colour, edgecolors="white", linewidths=1.2)
        ax.annotate(name, (x, y), xytext=(5, 5), textcoords="offset points", fontsize=9,
                    color="white", bbox={"boxstyle": "round,pad=0.2", "fc": colour,
                                         "ec": "none", "alpha": 0.8})
    ax.set_title(f"{Path(image).name}: predicted keypoints", fontsize=10, wrap=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
