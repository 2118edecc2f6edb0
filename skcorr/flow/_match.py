"""Two images in, a flow out: :func:`match`, and :func:`match_files` behind ``skcorr match``."""

from __future__ import annotations

import csv
import json
import os
import secrets
import shutil
import time
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from .._image import as_rgb, image_size
from .._io import check_output_folder, unique_names
from ._align import Flow, align
from ._files import write_flo, write_flow
from ._presets import preset_settings

__all__ = ["match", "match_files", "read_pairs"]

#: The files ``skcorr match`` writes per pair.
PAIR_FILES = ("warped.png", "flow.flo", "flow.npy", "flow.png", "matches.png", "summary.json")


def match(source, target, *, preset: str = "best", features=None, memory=None,
          backward: bool = True, **settings) -> Flow:
    """Dense correspondence between two images: the flow from ``source`` to ``target``.

    Computes the dense features of both images, aligns the source's grid with the
    target's by :func:`~skcorr.flow.align` and, with ``backward``, the target's with the
    source's too, whose forward-backward consistency is the flow's ``confidence``.

    Parameters
    ----------
    source, target : ndarray of shape (H, W, 3) or path
        The two images (arrays or image files; see :ref:`concepts`).
    preset : {"best", "paper"}, default="best"
        The configuration (:data:`~skcorr.flow.PRESETS`): ``"best"`` is the one
        cross-validation on PF-WILLOW chose (stage5+stage6 hypercolumns of
        EfficientNet-Lite0 at 480 px, smoothness truncated at 3 steps, transport prices
        0.2, sub-cell matches, ``lam=0.05``); ``"paper"`` is Long et al. (2014)'s (conv5
        at 320 px, ``lam=0.1``).
    features : FeatureTransformer or None, default=None
        The dense features to use instead of the preset's (e.g. a
        :class:`~skcorr.ConvColumnExtractor` or :class:`~skcorr.DenseSIFT`, fitted or
        not); then ``backbone``, ``layer`` and ``image_size`` cannot be set.
    memory : None, str or joblib.Memory, default=None
        Cache of the preset's features, keyed by the images' pixels (see
        :class:`~skcorr.ConvColumnExtractor`); with ``features``, set its own ``memory``.
    backward : bool, default=True
        Also align the target with the source and set the flow's ``confidence``
        (twice the alignment time; the features are shared).
    **settings
        Replace the preset's settings: ``backbone``, ``layer``, ``image_size``, or any
        keyword argument of :func:`~skcorr.flow.align` (``lam``, ``truncation``,
        ``ot_reg``, ``subcell``, ``levels``, ``radius``, ``max_iter``, ...).

    Returns
    -------
    Flow
        The flow from the source to the target: :meth:`~skcorr.flow.Flow.pixel_flow`,
        :meth:`~skcorr.flow.Flow.warp_image`, :meth:`~skcorr.flow.Flow.transfer_points`,
        :meth:`~skcorr.flow.Flow.matches`, ``confidence``.

    Examples
    --------
    >>> import skcorr
    >>> from skcorr.datasets import load_sample_pairs
    >>> pairs = load_sample_pairs()
    >>> source, target = (pairs.images[i] for i in pairs.pairs[0])
    >>> flow = skcorr.match(source, target, image_size=160)
    >>> flow.pixel_flow().shape  # (dx, dy) at every source pixel
    (240, 240, 2)
    >>> source_points, target_points, scores = flow.matches(min_confidence=0.5)
    >>> bool(scores.min() >= 0.5)
    True
    >>> flow.warp_image(target).shape  # the target seen from the source
    (240, 240, 3)
    """
    if not isinstance(backward, bool | np.bool_):
        raise ValueError(f"backward must be True or False, got {backward!r}.")
    source = as_rgb(source, name="source")
    target = as_rgb(target, name="target")
    extractor, align_settings = _setup(preset, features, memory, settings)
    source_map, target_map = extractor.extract_dense([source, target])
    return _align_pair(source_map, target_map, align_settings, backward)[0]


def _setup(preset, features, memory, settings):
    """The fitted extractor and align()'s settings of a call."""
    feature_settings, align_settings = preset_settings(preset, **settings)
    if features is None:
        return _preset_extractor(feature_settings, memory), align_settings
    given = sorted(set(settings) & set(feature_settings))
    if given:
        raise ValueError(f"Setting(s) {given} set the preset's features, but features= "
                         "replaces them; set them on the extractor instead.")
    if memory is not None:
        raise ValueError("memory= caches the preset's features; with features=, pass memory to "
                         "the extractor itself (e.g. ConvColumnExtractor(memory=...)).")
    if not hasattr(features, "extract_dense"):
        raise TypeError(f"features must be a skcorr feature transformer (ConvColumnExtractor, "
                        f"DenseSIFT), got {type(features).__name__}.")
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(features)
    except Exception:  # NotFittedError: fit a copy, leaving the caller's object as it was
        from sklearn.base import clone

        features = clone(features).fit()
    return features, align_settings


def _preset_extractor(feature_settings: dict, memory):
    layer = feature_settings["layer"]
    key = tuple(layer) if isinstance(layer, list | tuple) else layer
    if memory is None or isinstance(memory, str | os.PathLike):
        return _fitted_extractor(feature_settings["backbone"], key,
                                 feature_settings["image_size"],
                                 None if memory is None else os.fspath(memory))
    return _fitted_extractor.__wrapped__(feature_settings["backbone"], key,
                                         feature_settings["image_size"], memory)


@lru_cache(maxsize=2)
def _fitted_extractor(backbone, layer, image_size, memory):
    """A fitted dense extractor, kept for the next call (loading weights takes time)."""
    from ..features import ConvColumnExtractor

    layer = list(layer) if isinstance(layer, tuple) else layer
    return ConvColumnExtractor(backbone=backbone, layer=layer, image_size=image_size,
                               mode="dense", memory=memory).fit()


def _align_pair(source_map, target_map, settings: dict, backward: bool):
    """The flow of a pair (with its confidence when ``backward``) and the seconds it took."""
    start = time.perf_counter()
    flow = align(source_map, target_map, **settings)
    if backward:
        flow = flow.with_backward(align(target_map, source_map, **settings))
    return flow, time.perf_counter() - start


# -- many pairs, from files to files (``skcorr match``) ----------------------------------------
def read_pairs(path) -> list[tuple[Path, Path]]:
    """The pairs of a CSV file with ``source`` and ``target`` columns.

    Parameters
    ----------
    path : str or path-like
        A CSV file with a header row naming (at least) the columns ``source`` and
        ``target``: one image pair per row. Relative paths are relative to the CSV file's
        folder.

    Returns
    -------
    pairs : list of (Path, Path)
        ``(source, target)`` per row, in order.

    Raises
    ------
    ValueError
        When a column is missing, a row is empty, or an image file does not exist (the
        message names the row).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Pairs file {str(path)!r} does not exist; check the path.")
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = [name.strip() for name in reader.fieldnames or []]
        missing = [name for name in ("source", "target") if name not in columns]
        if missing:
            raise ValueError(
                f"Pairs file {str(path)!r} lacks the column(s) {missing}; its header row must "
                f"name 'source' and 'target' (it names {columns})."
            )
        reader.fieldnames = columns
        rows = list(reader)
    if not rows:
        raise ValueError(f"Pairs file {str(path)!r} lists no pairs; add source,target rows.")
    pairs = []
    for number, row in enumerate(rows, start=2):  # line 1 is the header
        pair = []
        for column in ("source", "target"):
            value = (row.get(column) or "").strip()
            if not value:
                raise ValueError(f"Pairs file {str(path)!r}, line {number}: the {column} is "
                                 "empty.")
            image = path.parent / value
            if not image.is_file():
                raise ValueError(f"Pairs file {str(path)!r}, line {number}: {column} image "
                                 f"{str(image)!r} does not exist.")
            pair.append(image)
        pairs.append(tuple(pair))
    return pairs


def match_files(pairs, output, *, preset: str = "best", overwrite: bool = False,
                memory=None, n_jobs=None, verbose: bool = False, **settings) -> list[Path]:
    """Match image files pair by pair and write each pair's results into a folder.

    Each pair ``(source, target)`` gets the folder ``output/<source stem>_to_<target
    stem>`` (``_2``, ``_3``, ... appended where names repeat) holding:

    * ``warped.png``: the target warped onto the source (:meth:`Flow.warp_image`);
    * ``flow.flo`` and ``flow.npy``: the per-pixel flow (:meth:`Flow.pixel_flow`), as
      Middlebury ``.flo`` and as an ``(H, W, 2)`` float32 array;
    * ``flow.png``: its colour-wheel picture (:func:`skcorr.visualize.flow_to_color`);
    * ``matches.png``: 120 of the grid's matches, coloured by their confidence
      (:func:`skcorr.visualize.plot_matches`);
    * ``summary.json``: the images, the settings, the grid, the flow's energies
      (``energy``, ``data_energy``, ``deformation``), its mean confidence, the fraction of
      nodes whose match maps back within one grid step (``consistent_fraction``) and the
      seconds the two alignments took.

    A pair's folder is written whole or not at all (into a hidden temporary folder
    beside it, renamed when complete).

    Parameters
    ----------
    pairs : sequence of (path, path)
        The ``(source, target)`` image files.
    output : str or path-like
        The folder of the results, created if missing; one that already holds files is
        refused unless ``overwrite``.
    preset : {"best", "paper"}, default="best"
        The configuration (see :func:`match`).
    overwrite : bool, default=False
        Write into an output folder that holds files, replacing the pair folders of the
        same names (other files are left alone).
    memory : None, str or joblib.Memory, default=None
        Cache of the features (see :func:`match`).
    n_jobs : int or None, default=None
        Pairs aligned at once (joblib threads; on a dask cluster inside
        ``joblib.parallel_config(backend="dask")``, as ``skcorr match --scheduler`` runs).
    verbose : bool, default=False
        Progress bars on stderr: over the images (features), then over the pairs.
    **settings
        Replace the preset's settings (see :func:`match`).

    Returns
    -------
    folders : list of Path
        The folder of each pair, in order.
    """
    from joblib import delayed
    from tqdm.auto import tqdm

    from .._parallel import parallel

    pairs = _check_pairs(pairs)
    output = check_output_folder(output, overwrite, fix="overwrite=True (--overwrite)")
    feature_settings = preset_settings(preset, **settings)[0]  # bad names fail first
    images = list(dict.fromkeys(path for pair in pairs for path in pair))
    for path in images:
        image_size(path)  # a clear error for a file that is not an image, before any work
    extractor, align_settings = _setup(preset, None, memory, settings)
    names = _folder_names(pairs)
    created = not output.exists()
    output.mkdir(parents=True, exist_ok=True)
    written = []
    try:
        maps = {}
        batch = max(1, int(getattr(extractor, "batch_size", 1) or 1))
        with tqdm(total=len(images), desc="features", unit="image", disable=not verbose) as bar:
            for start in range(0, len(images), batch):
                chunk = images[start:start + batch]
                maps.update(zip(chunk, extractor.extract_dense(chunk), strict=True))
                bar.update(len(chunk))
        tasks = (delayed(_align_pair)(maps[s], maps[t], align_settings, True) for s, t in pairs)
        results = parallel(n_jobs, prefer="threads", return_as="generator")(tasks)
        record = {"preset": preset, **feature_settings, **align_settings}
        for (source, target), name, (flow, seconds) in zip(
                pairs, names, tqdm(results, total=len(pairs), desc="pairs", unit="pair",
                                   disable=not verbose), strict=True):
            folder = output / name
            _write_pair(folder, source, target, flow, seconds, record)
            written.append(folder)
    except BaseException:
        if created and not any(output.iterdir()):
            output.rmdir()
        raise
    return written


def _check_pairs(pairs) -> list[tuple[Path, Path]]:
    if isinstance(pairs, str | os.PathLike) or not isinstance(pairs, Sequence):
        raise TypeError("pairs must be a list of (source, target) image paths; read a CSV "
                        "file of pairs with read_pairs(path).")
    if not pairs:
        raise ValueError("pairs is empty; pass at least one (source, target) pair.")
    checked = []
    for i, pair in enumerate(pairs):
        if (isinstance(pair, str | os.PathLike) or len(pair) != 2
                or not all(isinstance(p, str | os.PathLike) for p in pair)):
            raise ValueError(f"pairs[{i}] must be a (source, target) pair of image paths, got "
                             f"{pair!r}.")
        checked.append((Path(pair[0]), Path(pair[1])))
    return checked


def _folder_names(pairs) -> list[str]:
    """``<source stem>_to_<target stem>`` per pair, with ``_2``, ``_3``... where they repeat."""
    return unique_names(f"{source.stem}_to_{target.stem}" for source, target in pairs)


def _write_pair(folder: Path, source, target, flow: Flow, seconds: float, settings) -> None:
    """Write a pair's files into a temporary folder, then rename it onto ``folder``."""
    from PIL import Image

    from ..visualize import flow_to_color, plot_matches

    token = secrets.token_hex(4)
    tmp = folder.with_name(f".{folder.name}.{token}.tmp")
    tmp.mkdir()
    try:
        target_image = as_rgb(target, name=f"target {str(target)!r}")
        Image.fromarray(flow.warp_image(target_image)).save(tmp / "warped.png")
        field = flow.pixel_flow()
        write_flo(tmp / "flow.flo", field)
        write_flow(tmp / "flow.npy", field)
        Image.fromarray(flow_to_color(field)).save(tmp / "flow.png")
        plot_matches(as_rgb(source, name=f"source {str(source)!r}"), target_image,
                     *flow.matches(), max_lines=120, path=tmp / "matches.png")
        confidence = np.asarray(flow.confidence)
        summary = {
            "source": os.fspath(source), "target": os.fspath(target),
            "settings": {k: v for k, v in settings.items()},
            "grid": list(flow.target_index.shape[:2]),
            "source_shape": list(flow.source_shape), "target_shape": list(flow.target_shape),
            "energy": flow.energy, "data_energy": flow.data_energy,
            "deformation": flow.deformation, "lam": flow.lam, "n_iter": flow.n_iter,
            "mean_confidence": float(confidence.mean()),
            "consistent_fraction": float((confidence >= np.exp(-0.5)).mean()),
            "seconds": round(seconds, 3),
        }
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n",
                                          encoding="utf-8")
        if folder.exists():  # --overwrite: swap the old folder out, then remove it
            old = folder.with_name(f".{folder.name}.{token}.old")
            os.replace(folder, old)
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
