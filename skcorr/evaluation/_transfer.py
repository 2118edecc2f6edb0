"""Keypoint transfer over the pairs of a data set, scored by PCK.

For every pair (source, target) of a data set, a transfer method predicts where the
source keypoints lie in the target image; PCK compares the predictions with the
target's keypoints, with thresholds from the target's box. The table has one row per
class of the target image and a final ``"mean"`` row, the mean over classes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np
from joblib import Parallel, delayed, effective_n_jobs
from sklearn.base import BaseEstimator, clone
from tqdm.auto import tqdm

from .._geometry import rescale_points
from .._image import image_digest, image_size
from .._validation import check_alpha, flow_settings
from ..metrics import image_boxes, pck_score
from ._defaults import TUNED_LAM
from ._table import ResultTable

__all__ = [
    "FlowTransfer",
    "flow_features",
    "identity_transfer",
    "transfer_pck_table",
]


def identity_transfer(source_image, target_image, source_keypoints) -> np.ndarray:
    """Place each source keypoint at the same relative position in the target image.

    Positions are relative to the image width and height, with the pixel-centre
    convention: ``x_t = (x_s + 0.5) * W_t / W_s - 0.5`` (and the same for ``y``). This
    is the trivial baseline that any correspondence method should beat.

    Parameters
    ----------
    source_image, target_image : ndarray or path
        The images (only their sizes are read).
    source_keypoints : ndarray of shape (K, 2)
        ``(x, y)`` in the source image.

    Returns
    -------
    keypoints : ndarray of shape (K, 2)
        The predicted ``(x, y)`` in the target image.

    Examples
    --------
    >>> import numpy as np
    >>> from skcorr.evaluation import identity_transfer
    >>> source, target = np.zeros((10, 20, 3), np.uint8), np.zeros((20, 40, 3), np.uint8)
    >>> identity_transfer(source, target, np.array([[-0.5, 9.5]])).tolist()
    [[-0.5, 19.5]]
    """
    (source_h, source_w), (target_h, target_w) = image_size(source_image), image_size(target_image)
    scale = np.array([target_w / source_w, target_h / source_h])
    return rescale_points(source_keypoints, scale)


def transfer_pck_table(
    dataset,
    predict_fn: Callable,
    *,
    alphas: Sequence[float] = (0.05, 0.1, 0.15),
    average: str = "types",
    n_jobs: int | None = None,
    verbose: bool = False,
    reference: str = "bbox",
) -> ResultTable:
    """PCK of a keypoint transfer method over the pairs of a data set, per class.

    Parameters
    ----------
    dataset : Bunch
        A data set with ``images``, ``keypoints``, ``boxes`` and ``pairs`` (as returned
        by :func:`skcorr.datasets.load_pf_willow` and the other pair loaders), and
        optionally ``labels`` and ``class_names``.
    predict_fn : callable
        ``predict_fn(source_image, target_image, source_keypoints)`` returning the
        ``(K, 2)`` predicted target positions of the ``(K, 2)`` source keypoints, e.g.
        :func:`identity_transfer`.
    alphas : sequence of float, default=(0.05, 0.1, 0.15)
        PCK tolerances, as fractions of ``max(h, w)`` of the *target* box.
    average : {"types", "keypoints"}, default="types"
        How PCK averages within a class, see :func:`skcorr.metrics.pck_score`.
    n_jobs : int or None, default=None
        joblib workers over the pairs (``None``: one, unless a
        :func:`joblib.parallel_config` context, e.g. ``backend="dask"``, says
        otherwise; ``-1``: all cores). The table does not depend on it. Pairs are
        sent in chunks; a ``predict_fn`` with ``precompute(images)`` (as
        :class:`FlowTransfer`) gets it called once with all the images first, and
        one with ``for_images(images)`` sends each chunk only what its images need.
    verbose : bool, default=False
        Show a progress bar over the pairs.
    reference : {"bbox", "image"}, default="bbox"
        What ``alpha`` is a fraction of: ``max(h, w)`` of the target's box
        (``dataset.boxes``; for PF-WILLOW the keypoints' own box) or of the target
        image. See :mod:`skcorr.metrics` for why the two must not be mixed up.

    Returns
    -------
    table : ResultTable
        One row per class of the target images (``"class"``, ``"pairs"``, and
        ``"PCK@<alpha>"`` per alpha), then a ``"mean"`` row: the mean over classes.

    Raises
    ------
    ValueError
        If the data set has no pairs, an alpha is outside ``(0, 1]``, or
        ``predict_fn`` returns the wrong shape.

    Examples
    --------
    >>> from skcorr.datasets import load_sample_pairs
    >>> from skcorr.evaluation import identity_transfer, transfer_pck_table
    >>> table = transfer_pck_table(load_sample_pairs(), identity_transfer, alphas=[0.1])
    >>> table[-1]["class"], table[-1]["pairs"]
    ('mean', 4)
    """
    alphas = [check_alpha(alpha) for alpha in alphas]
    if not alphas:
        raise ValueError("alphas is empty; pass at least one tolerance, e.g. (0.1,).")
    if reference not in ("bbox", "image"):
        raise ValueError(f"reference must be 'bbox' or 'image', got {reference!r}.")
    pairs = np.asarray(dataset.get("pairs", []), dtype=np.intp).reshape(-1, 2)
    if len(pairs) == 0:
        raise ValueError("the data set defines no pairs (its 'pairs' field is missing or empty).")
    keypoints, images = dataset.keypoints, dataset.images
    predictions = _predict_pairs_parallel(dataset, pairs, predict_fn, n_jobs, verbose)

    targets = pairs[:, 1]
    labels = np.asarray(dataset.get("labels", np.zeros(len(images), dtype=np.intp)))[targets]
    class_names = dataset.get("class_names", ["all"])
    boxes = dataset.boxes if reference == "bbox" else image_boxes(images)
    table = ResultTable()
    for label in np.unique(labels):
        mask = labels == label
        row = {"class": class_names[label], "pairs": int(mask.sum())}
        for alpha in alphas:
            row[f"PCK@{alpha:g}"] = pck_score(
                keypoints[targets[mask]], predictions[mask], alpha=alpha,
                bbox=boxes[targets[mask]], average=average,
            )  # fmt: skip
        table.append(row)
    mean = {"class": "mean", "pairs": len(pairs)}
    for column in table.columns()[2:]:
        mean[column] = float(np.mean([row[column] for row in table]))
    table.append(mean)
    return table


def _predict_pairs_parallel(dataset, pairs, predict_fn, n_jobs, verbose) -> np.ndarray:
    """Predictions (n_pairs, K, 2) of ``predict_fn`` over the pairs, in chunks via joblib."""
    keypoints, images = dataset.keypoints, dataset.images
    n_workers = effective_n_jobs(n_jobs)
    if hasattr(predict_fn, "precompute"):
        predict_fn.precompute([images[i] for i in np.unique(pairs)])
    # Several chunks per worker balance the load; one pair per chunk when sequential.
    size = 1 if n_workers == 1 else max(1, -(-len(pairs) // (8 * n_workers)))
    chunks = [pairs[start:start + size] for start in range(0, len(pairs), size)]

    def task(chunk):
        fn = predict_fn
        if n_workers > 1 and hasattr(predict_fn, "for_images"):
            fn = predict_fn.for_images([images[i] for i in np.unique(chunk)])
        return delayed(_predict_pairs)(fn, [(images[s], images[t], keypoints[s])
                                            for s, t in chunk])

    results = Parallel(n_jobs=n_jobs, prefer="threads", return_as="generator")(
        task(chunk) for chunk in chunks)
    predictions = np.empty((len(pairs), *keypoints.shape[1:]))
    # A context manager, so that an interrupt closes the bar before the CLI's message.
    with tqdm(total=len(pairs), desc="pairs", disable=not verbose) as progress:
        p = 0
        for chunk, predicted in zip(chunks, results, strict=True):
            for (s, t), value in zip(chunk, predicted, strict=True):
                if value.shape != keypoints.shape[1:]:
                    raise ValueError(
                        f"predict_fn returned shape {value.shape} for pair {p} ({s}, {t}); it "
                        f"must return the {keypoints.shape[1:]} positions of the source "
                        "keypoints."
                    )
                predictions[p] = value
                p += 1
            progress.update(len(chunk))
    return predictions


def _predict_pairs(predict_fn, triples) -> list[np.ndarray]:
    return [np.asarray(predict_fn(source, target, points), dtype=np.float64)
            for source, target, points in triples]


class FlowTransfer(BaseEstimator):
    """A ``predict_fn`` for :func:`transfer_pck_table` that aligns pairs with the flow MRF.

    Each image's dense features are computed once, on first use (or all at once by
    :meth:`precompute`, which batches them); each pair is aligned with
    :func:`skcorr.flow.align` and the source keypoints are transferred forward. The
    ``features`` given are never fitted in place: a clone is, into ``features_``.

    Parameters
    ----------
    features : transformer
        Dense features (ConvColumnExtractor or DenseSIFT), fitted or not.
    lam : float, default=0.1
    radius : int or None, default=None
    levels : int, default=2
    max_iter : int, default=50
    truncation : float or None, default=None
    ot_reg : float or None, default=None
    subcell : bool, default=False
        As in :func:`skcorr.flow.align`.

    Attributes
    ----------
    features_ : transformer
        The fitted clone of ``features`` (``None`` in a copy from :meth:`for_images`).
    maps_ : dict
        The feature maps computed so far, keyed by image path or content digest.

    Examples
    --------
    >>> from skcorr import ConvColumnExtractor
    >>> from skcorr.datasets import load_sample_pairs
    >>> from skcorr.evaluation import FlowTransfer, transfer_pck_table
    >>> transfer = FlowTransfer(ConvColumnExtractor(layer="conv5", mode="dense"), lam=0.1)
    >>> table = transfer_pck_table(load_sample_pairs(), transfer, alphas=[0.1])
    >>> [row["class"] for row in table]
    ['chelsea', 'astronaut', 'coffee', 'rocket', 'mean']
    """

    def __init__(self, features, *, lam=0.1, radius=None, levels=2, max_iter=50,
                 truncation=None, ot_reg=None, subcell=False):
        self.features = features
        self.lam = lam
        self.radius = radius
        self.levels = levels
        self.max_iter = max_iter
        self.truncation = truncation
        self.ot_reg = ot_reg
        self.subcell = subcell

    @property
    def settings(self) -> dict:
        """The keyword arguments of :func:`skcorr.flow.align` (every parameter but features)."""
        return flow_settings(self)

    def fit(self, X=None, y=None) -> FlowTransfer:
        """Fit a clone of ``features`` into ``features_`` and forget the maps.

        Parameters
        ----------
        X, y : ignored
            Present for API consistency.

        Returns
        -------
        self : FlowTransfer
            The fitted transfer.
        """
        self.features_ = clone(self.features).fit()
        self.maps_ = {}
        return self

    def precompute(self, images) -> FlowTransfer:
        """Compute the feature maps of ``images`` in batches, skipping those already done.

        Parameters
        ----------
        images : sequence of ndarray or path
            The images, as ``(H, W, 3)`` uint8 arrays or file paths.

        Returns
        -------
        self : FlowTransfer
            The transfer, fitted if it was not, with the maps in ``maps_``.
        """
        if not hasattr(self, "maps_"):
            self.fit()
        todo = list({_image_key(im): im for im in images
                     if _image_key(im) not in self.maps_}.values())
        if todo:
            if self.features_ is None:
                raise ValueError("This FlowTransfer copy (from for_images) holds no map of "
                                 "these images; make the copy with every image it will see.")
            for image, fmap in zip(todo, self.features_.extract_dense(todo), strict=True):
                self.maps_[_image_key(image)] = fmap
        return self

    def for_images(self, images) -> FlowTransfer:
        """A light copy holding only the feature maps of ``images`` (and no network).

        What :func:`transfer_pck_table` sends to a worker process or machine; also a
        way to try other flow settings on the same maps
        (``transfer.for_images(images).set_params(lam=0)``).

        Parameters
        ----------
        images : sequence of ndarray or path
            The images the copy will be asked about.

        Returns
        -------
        FlowTransfer
            A copy that aligns pairs of these images only.
        """
        self.precompute(images)
        copy = FlowTransfer(None, **self.settings)
        copy.features_ = None
        copy.maps_ = {_image_key(im): self.maps_[_image_key(im)] for im in images}
        return copy

    def align(self, source_image, target_image):
        """The flow from ``source_image`` to ``target_image``.

        Parameters
        ----------
        source_image, target_image : ndarray or path
            The pair.

        Returns
        -------
        flow : Flow
            As returned by :func:`skcorr.flow.align` with :attr:`settings`.
        """
        from ..flow import align

        maps = self.precompute([source_image, target_image]).maps_
        return align(maps[_image_key(source_image)], maps[_image_key(target_image)],
                     **self.settings)

    def __call__(self, source_image, target_image, source_keypoints) -> np.ndarray:
        return self.align(source_image, target_image).transfer_points(source_keypoints)


def _image_key(image):
    """An image named by its path or by its content (never its id): copies sent to other
    processes, and equal arrays, find the same feature maps."""
    if isinstance(image, (str, os.PathLike)):
        return "path:" + os.path.abspath(os.fspath(image))
    return image_digest(image)


def flow_features(kind: str = "conv", *, backbone="efficientnet_lite0", layer="conv5",
                  image_size=None):
    """The dense features of the protocols' flows (the demo's, the command line's).

    Parameters
    ----------
    kind : {"conv", "sift"}, default="conv"
        Columns of a convnet layer, or dense SIFT on a grid of step 16 px with bins of
        10 px (descriptor radius 20 px), the stride of the default convnet's conv5 role.
    backbone : str, default="efficientnet_lite0"
        The network of ``kind="conv"``.
    layer : str or list of str, default="conv5"
        Its layer (a list: hypercolumns).
    image_size : int or None, default=None
        Longer image side the features are computed at; ``None``: as given.

    Returns
    -------
    features : ConvColumnExtractor or DenseSIFT
        Unfitted; the flow calls their ``extract_dense``.

    Examples
    --------
    >>> from skcorr.evaluation import flow_features
    >>> flow_features("sift").get_params()["step"]
    16
    """
    from ..features import ConvColumnExtractor, DenseSIFT

    if kind == "conv":
        return ConvColumnExtractor(backbone=backbone, layer=layer, image_size=image_size)
    if kind == "sift":
        return DenseSIFT(mode="dense", step=16, bin_size=10, image_size=image_size)
    raise ValueError(f"kind must be 'conv' or 'sift', got {kind!r}.")


def _flow_setup(features, backbone, layer, lam, image_size=None):
    """(kind, transformer, lam) of a protocol's flow: ``features`` a kind or a transformer,
    ``lam=None`` the weight tuned on PF-WILLOW for that kind."""
    if isinstance(features, str):
        kind, features = features, flow_features(features, backbone=backbone, layer=layer,
                                                 image_size=image_size)
    else:
        kind = "conv" if "backbone" in features.get_params() else "sift"
    return kind, features, TUNED_LAM[kind] if lam is None else lam


def _describe_features(features) -> str:
    """A short description of dense features, e.g. ``"efficientnet_lite0: conv5"``."""
    params = features.get_params()
    if "backbone" in params:
        layer = params["layer"]
        return f"{params['backbone']}: {'+'.join(layer) if isinstance(layer, list) else layer}"
    return f"dense SIFT (step {params['step']}, bins of {params['bin_size']})"
