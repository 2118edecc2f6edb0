"""Keypoint transfer over the pairs of a data set, scored by PCK.

For every pair (source, target) of a data set, a transfer method predicts where the
source keypoints lie in the target image; PCK compares the predictions with the
target's keypoints, with thresholds from the target's box. The table has one row per
class of the target image and a final ``"mean"`` row, the mean over classes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from joblib import delayed
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from .._geometry import rescale_points
from .._image import image_size
from .._parallel import chunks, parallel
from .._validation import check_alpha
from ..metrics import image_boxes, pck_score
from ._defaults import TUNED_LAM
from ._pairs import pair_samples
from ._table import ResultTable

__all__ = ["flow_features", "identity_transfer", "transfer_pck_table"]


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
    method,
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
    method : estimator or callable
        A fitted pair estimator, such as :class:`skcorr.flow.PairTransfer`, whose
        ``predict`` takes the pair samples of :func:`pair_samples`; or a function
        ``method(source_image, target_image, source_keypoints)`` returning the
        ``(K, 2)`` predicted target positions of the ``(K, 2)`` source keypoints, e.g.
        :func:`identity_transfer`.
    alphas : sequence of float, default=(0.05, 0.1, 0.15)
        PCK tolerances, as fractions of ``max(h, w)`` of the *target* box.
    average : {"types", "keypoints"}, default="types"
        How PCK averages within a class, see :func:`skcorr.metrics.pck_score`.
    n_jobs : int or None, default=None
        joblib workers over the pairs of a function ``method`` (``None``: one, unless a
        :func:`joblib.parallel_config` context, e.g. ``backend="dask"``, says
        otherwise; ``-1``: all cores). The table does not depend on it. An estimator
        uses its own ``n_jobs``.
    verbose : bool, default=False
        Show a progress bar over the pairs of a function ``method``.
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
        ``method`` returns the wrong shape.

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
    if isinstance(method, BaseEstimator):
        check_is_fitted(method)
        predictions = np.asarray(method.predict(pair_samples(dataset, pairs)[0]), dtype=float)
        if predictions.shape != (len(pairs), *dataset.keypoints.shape[1:]):
            raise ValueError(f"{type(method).__name__}.predict returned shape "
                             f"{predictions.shape}; expected one (K, 2) array per pair.")
    elif callable(method):
        predictions = _predict_pairs_parallel(dataset, pairs, method, n_jobs, verbose)
    else:
        raise TypeError(f"method must be a fitted pair estimator or a function (source_image, "
                        f"target_image, source_keypoints) -> (K, 2); got {method!r}.")
    return _pck_table(dataset, pairs, predictions, alphas=alphas, average=average,
                     reference=reference)


def _pck_table(dataset, pairs, predictions, *, alphas=(0.05, 0.1, 0.15), average="types",
              reference="bbox") -> ResultTable:
    """PCK per class of the targets of ``pairs``, given the predicted keypoints.

    Parameters
    ----------
    dataset : Bunch
        As in :func:`transfer_pck_table`.
    pairs : array-like of shape (n, 2)
        ``(source, target)`` image indices.
    predictions : ndarray of shape (n, K, 2)
        The predicted target keypoints of every pair.
    alphas, average, reference
        As in :func:`transfer_pck_table`.

    Returns
    -------
    table : ResultTable
        As :func:`transfer_pck_table` returns.
    """
    pairs = np.asarray(pairs, dtype=np.intp).reshape(-1, 2)
    alphas = [check_alpha(alpha) for alpha in alphas]
    keypoints, images = dataset.keypoints, dataset.images
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
    parts = chunks(pairs, n_jobs)
    results = parallel(n_jobs, prefer="threads", return_as="generator")(
        delayed(_predict_pairs)(predict_fn, [(images[s], images[t], keypoints[s])
                                             for s, t in chunk]) for chunk in parts)
    predictions = np.empty((len(pairs), *keypoints.shape[1:]))
    # A context manager, so that an interrupt closes the bar before the CLI's message.
    with tqdm(total=len(pairs), desc="pairs", disable=not verbose) as progress:
        p = 0
        for chunk, predicted in zip(parts, results, strict=True):
            for (s, t), value in zip(chunk, predicted, strict=True):
                if value.shape != keypoints.shape[1:]:
                    raise ValueError(
                        f"method returned shape {value.shape} for pair {p} ({s}, {t}); it "
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
