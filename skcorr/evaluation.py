"""Evaluation protocols: keypoint transfer over the pairs of a data set, scored by PCK.

For every pair (source, target) of a data set, a transfer method predicts where the
source keypoints lie in the target image; PCK compares the predictions with the
target's keypoints, with thresholds from the target's box. The table has one row per
class of the target image and a final ``"mean"`` row, the mean over classes.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence

import joblib
import numpy as np
from joblib import Parallel, delayed, effective_n_jobs
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, LeaveOneGroupOut
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from ._image import image_size
from .features._base import _grid_coordinate
from .features._cache import image_digest
from .metrics import _check_alpha, image_boxes, pck_score, pck_scorer

__all__ = [
    "FlowTransfer",
    "PCKTable",
    "PairTransfer",
    "cross_validated_transfer",
    "evaluate_cub_transfer",
    "evaluate_identity_pf_willow",
    "identity_transfer",
    "pair_categories",
    "pair_samples",
    "transfer_pck_table",
]


class PCKTable(list):
    """A PCK table: a list of dict rows ``{"class", "pairs", "PCK@<alpha>", ...}``.

    PCK values are fractions in ``[0, 1]``; :meth:`to_markdown` prints them as
    percentages, :meth:`to_csv` as they are.

    Parameters
    ----------
    iterable : iterable of dict, optional
        The initial rows, all with the same keys in the same order.

    Examples
    --------
    >>> from skcorr.evaluation import PCKTable
    >>> table = PCKTable([{"class": "duck", "pairs": 2, "PCK@0.1": 0.625},
    ...                   {"class": "mean", "pairs": 2, "PCK@0.1": 0.625}])
    >>> print(table.to_markdown())
    | class | pairs | PCK@0.1 (%) |
    |---|---|---:|
    | duck | 2 | 62.5 |
    | mean | 2 | 62.5 |
    >>> print(table.to_csv(), end="")
    class,pairs,PCK@0.1
    duck,2,0.625
    mean,2,0.625
    """

    def columns(self) -> list[str]:
        """The column names, in order.

        Returns
        -------
        columns : list of str
            The keys of the first row, or an empty list for an empty table.
        """
        return list(self[0]) if self else []

    def to_markdown(self, digits: int = 1) -> str:
        """The table in Markdown, PCK in percent with ``digits`` decimals.

        Parameters
        ----------
        digits : int, default=1
            Decimals of the PCK percentages.

        Returns
        -------
        text : str
            A Markdown table, without a trailing newline; PCK columns are headed
            ``"PCK@<alpha> (%)"``.
        """
        columns = self.columns()

        def cell(key, value):
            return f"{100 * value:.{digits}f}" if key.startswith("PCK") else str(value)

        header = [c + " (%)" if c.startswith("PCK") else c for c in columns]
        lines = ["| " + " | ".join(header) + " |",
                 "|" + "|".join("---:" if c.startswith("PCK") else "---" for c in columns) + "|"]
        lines += ["| " + " | ".join(cell(c, row[c]) for c in columns) + " |" for row in self]
        return "\n".join(lines)

    def to_csv(self) -> str:
        """The table as CSV text, PCK as fractions.

        Returns
        -------
        text : str
            A header line and one line per row, each ending with ``"\\n"``.
        """
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.columns(), lineterminator="\n")
        writer.writeheader()
        writer.writerows(self)
        return buffer.getvalue()


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
    return (np.asarray(source_keypoints, dtype=np.float64) + 0.5) * scale - 0.5


def transfer_pck_table(
    dataset,
    predict_fn: Callable,
    *,
    alphas: Sequence[float] = (0.05, 0.1, 0.15),
    average: str = "types",
    n_jobs: int | None = None,
    verbose: bool = False,
    reference: str = "bbox",
) -> PCKTable:
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
    table : PCKTable
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
    alphas = [_check_alpha(alpha) for alpha in alphas]
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
    table = PCKTable()
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


def evaluate_identity_pf_willow(path, alphas=(0.05, 0.1, 0.15)) -> PCKTable:
    """The identity baseline on PF-WILLOW's 900 pairs: the floor any method must beat.

    Each source keypoint is placed at the same relative position in the target image
    (:func:`identity_transfer`); PCK uses ``alpha * max(h, w)`` of the target's keypoint
    bounding box, per sub-class, then the mean over sub-classes.

    Parameters
    ----------
    path : str or os.PathLike
        The PF-WILLOW folder, see :func:`skcorr.datasets.load_pf_willow`.
    alphas : sequence of float, default=(0.05, 0.1, 0.15)
        PCK tolerances.

    Returns
    -------
    table : PCKTable
        Ten sub-class rows and a ``"mean"`` row; see :func:`transfer_pck_table`.

    Examples
    --------
    With PF-WILLOW in ``$SKCORR_DATA/PF-WILLOW`` (or downloaded by
    :func:`~skcorr.datasets.fetch_pf_willow`):

    >>> import os
    >>> from skcorr.evaluation import evaluate_identity_pf_willow
    >>> path = os.path.join(os.environ["SKCORR_DATA"], "PF-WILLOW")  # doctest: +SKIP
    >>> print(evaluate_identity_pf_willow(path).to_markdown())  # doctest: +SKIP
    """
    from .datasets import load_pf_willow

    return transfer_pck_table(load_pf_willow(path), identity_transfer, alphas=alphas)


class FlowTransfer:
    """A ``predict_fn`` for :func:`transfer_pck_table` that aligns pairs with the flow MRF.

    Each image's dense features are computed once, on first use (or all at once by
    :meth:`precompute`, which batches them); each pair is aligned with
    :func:`skcorr.flow.align` and the source keypoints are transferred forward.

    Parameters
    ----------
    features : transformer
        A fitted or unfitted ConvColumnExtractor or DenseSIFT (fitted here if needed).
    lam : float, default=0.1
    radius : int or None, default=None
    levels : int, default=2
    max_iter : int, default=50
        As in :func:`skcorr.flow.align`.

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

    def __init__(self, features, *, lam=0.1, radius=None, levels=2, max_iter=50):
        try:
            check_is_fitted(features)
        except NotFittedError:
            features = features.fit()
        self.features = features
        self.settings = {"lam": lam, "radius": radius, "levels": levels, "max_iter": max_iter}
        self._maps: dict = {}

    @staticmethod
    def _key(image):
        # Arrays by content, so that copies sent to other processes find their maps.
        return os.fspath(image) if isinstance(image, (str, os.PathLike)) else image_digest(image)

    def precompute(self, images) -> FlowTransfer:
        """Compute the feature maps of ``images`` in batches.

        Images already computed are skipped; images are identified by path, or by
        content for arrays.

        Parameters
        ----------
        images : sequence of ndarray or path
            The images, as ``(H, W, 3)`` uint8 arrays or file paths.

        Returns
        -------
        self : FlowTransfer
            This object, with the feature maps cached.
        """
        todo = list({self._key(im): im for im in images
                     if self._key(im) not in self._maps}.values())
        if todo:
            for image, fmap in zip(todo, self.features.extract_dense(todo), strict=True):
                self._maps[self._key(image)] = fmap
        return self

    def for_images(self, images) -> FlowTransfer:
        """A light copy holding only the feature maps of ``images`` (and no network).

        What :func:`transfer_pck_table` sends to a worker process or machine.

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
        copy = FlowTransfer.__new__(FlowTransfer)
        copy.features, copy.settings = None, self.settings
        copy._maps = {self._key(im): self._maps[self._key(im)] for im in images}
        return copy

    def _map(self, image):
        if self._key(image) not in self._maps:
            if self.features is None:
                raise ValueError("This FlowTransfer copy (from for_images) holds no map of "
                                 "this image; make the copy with every image it will see.")
            self.precompute([image])
        return self._maps[self._key(image)]

    def __call__(self, source_image, target_image, source_keypoints) -> np.ndarray:
        from .flow import align

        flow = align(self._map(source_image), self._map(target_image), **self.settings)
        return flow.transfer_points(source_keypoints)


def evaluate_cub_transfer(path, features, *, lam=0.1, lam_grid=(0.02, 0.05, 0.1, 0.2),
                          n_neighbors=25, n_top=5, crop_size=160, padding=0.1, alpha=0.1,
                          radius=None, levels=2, n_jobs=None, verbose=False) -> PCKTable:
    """Keypoint transfer on CUB-200-2011: test birds from their training neighbours.

    The paper's protocol (Study 2) on the ground-truth boxes: every image is cropped to
    its box (with ``padding``) and resized to ``crop_size`` pixels square; a
    :class:`~skcorr.flow.FlowAligner` retrieves each test crop's ``n_neighbors``
    nearest training crops (fc7 role, cosine), aligns them, keeps the ``n_top`` with
    the smallest deformation energy and predicts the coordinate-wise median of their
    transferred keypoints. Predictions are mapped back to the original image and scored
    by PCK with ``alpha * max(w, h)`` of the ground-truth box.

    Parameters
    ----------
    path : str or path
        The ``CUB_200_2011`` folder, see :func:`skcorr.datasets.load_cub`.
    features : transformer
        Dense features for the flow (ConvColumnExtractor or DenseSIFT).
    lam : float or "cv", default=0.1
        Smoothness weight of the flow; ``"cv"`` chooses it from ``lam_grid`` by 3-fold
        cross-validation on the training split only (PCK@``alpha`` of each fold's crops
        predicted from the other folds' crops), then predicts the test split with it.
    lam_grid : sequence of float, default=(0.02, 0.05, 0.1, 0.2)
        Candidates of ``lam="cv"``.
    n_neighbors, n_top : int, default=25, 5
        Neighbours retrieved and transferred, as in :class:`~skcorr.flow.FlowAligner`.
    crop_size : int, default=160
        Side of the square the crops are resized to.
    padding : float, default=0.1
        Margin around the box, as a fraction of its width and height.
    alpha : float, default=0.1
        PCK tolerance.
    radius, levels : int or None, int
        Label set and coarse-to-fine levels of the flow.
    n_jobs : int or None
        joblib workers over the test crops (see :class:`~skcorr.flow.FlowAligner`).
    verbose : bool, default=False
        Progress bar.

    Returns
    -------
    PCKTable
        One row per part (``"part"``, ``"n"``, ``"PCK@<alpha>"``) and a ``"mean"`` row,
        the mean over parts; its attribute ``chosen_lam`` is the weight used.

    Examples
    --------
    With CUB-200-2011 in ``$SKCORR_DATA/CUB_200_2011`` (RESULTS.md gives the numbers and
    ``skcorr evaluate cub-transfer`` runs the same):

    >>> import os
    >>> from skcorr import ConvColumnExtractor
    >>> from skcorr.evaluation import evaluate_cub_transfer
    >>> path = os.path.join(os.environ["SKCORR_DATA"], "CUB_200_2011")  # doctest: +SKIP
    >>> table = evaluate_cub_transfer(path, ConvColumnExtractor(layer="conv5"),
    ...                               lam=0.1)  # doctest: +SKIP
    >>> print(table.to_markdown())  # doctest: +SKIP
    """
    from .datasets import crop_to_boxes, load_cub, uncrop_keypoints
    from .flow import FlowAligner

    cub = load_cub(path)
    crops, crop_keypoints, transforms = crop_to_boxes(
        cub.images, cub.keypoints, cub.boxes, size=crop_size, padding=padding)
    train = np.flatnonzero(cub.split == "train")
    test = np.flatnonzero(cub.split == "test")
    aligner = FlowAligner(features=features, lam=0.1 if lam == "cv" else lam,
                          n_neighbors=n_neighbors, n_top=n_top, radius=radius, levels=levels,
                          n_jobs=n_jobs, verbose=verbose)
    if isinstance(lam, str) and lam == "cv":  # chosen on the training split only
        search = GridSearchCV(aligner, {"lam": list(lam_grid)}, scoring=pck_scorer(alpha=alpha),
                              cv=3, refit=False, error_score="raise")
        search.fit([crops[i] for i in train], crop_keypoints[train])
        aligner.set_params(**search.best_params_)
    aligner.fit([crops[i] for i in train], crop_keypoints[train])
    predicted = uncrop_keypoints(aligner.predict([crops[i] for i in test]), transforms[test])
    per_part = pck_score(cub.keypoints[test], predicted, alpha=alpha, bbox=cub.boxes[test],
                         average=None)
    present = (~np.isnan(cub.keypoints[test]).any(axis=2)).sum(axis=0)
    column = f"PCK@{alpha:g}"
    table = PCKTable({"part": name, "n": int(n), column: float(value)}
                     for name, n, value in zip(cub.keypoint_names, present, per_part,
                                               strict=True))
    table.append({"part": "mean", "n": int(present.sum()), column: float(np.nanmean(per_part))})
    table.chosen_lam = float(aligner.lam)
    return table


# --- transfer between pairs as an estimator, and its cross-validation --------------------

def pair_samples(dataset, pairs=None):
    """The pairs of a data set as samples for :class:`PairTransfer`.

    Parameters
    ----------
    dataset : Bunch
        A pair data set (``images``, ``keypoints``, ``pairs``), e.g. from
        :func:`skcorr.datasets.load_pf_willow`.
    pairs : array-like of shape (n, 2), default=None
        ``(source, target)`` image indices; ``None`` takes ``dataset.pairs``.

    Returns
    -------
    X : ndarray of shape (n, 3), dtype object
        One row ``[source_image, target_image, source_keypoints]`` per pair, the
        keypoints a ``(K, 2)`` array.
    y : ndarray of shape (n, K, 2)
        The target's keypoints: what a transfer should predict.

    Examples
    --------
    >>> from skcorr.datasets import load_sample_pairs
    >>> from skcorr.evaluation import pair_samples
    >>> X, y = pair_samples(load_sample_pairs())
    >>> X.shape, y.shape[0]
    ((4, 3), 4)
    """
    pairs = np.asarray(dataset.pairs if pairs is None else pairs, dtype=np.intp).reshape(-1, 2)
    if len(pairs) == 0:
        raise ValueError("no pairs: the data set defines none and none were given.")
    X = np.empty((len(pairs), 3), dtype=object)
    for row, (s, t) in enumerate(pairs):  # one cell at a time: numpy must not broadcast
        X[row, 0], X[row, 1] = dataset.images[s], dataset.images[t]
        X[row, 2] = np.asarray(dataset.keypoints[s], dtype=np.float64)
    return X, np.asarray(dataset.keypoints, dtype=np.float64)[pairs[:, 1]]


def pair_categories(dataset, pairs=None) -> np.ndarray:
    """The object category of each pair's target, for grouped cross-validation.

    A category is the class name up to its first ``"("``: PF-WILLOW's ten sub-classes
    ``car(G)``, ``car(M)``, ... fall into the four categories car, duck, motorbike and
    winebottle. Grouping by category keeps every viewpoint of an object class on one
    side of a split.

    Parameters
    ----------
    dataset : Bunch
        A pair data set with ``labels`` and ``class_names``.
    pairs : array-like of shape (n, 2), default=None
        ``None`` takes ``dataset.pairs``.

    Returns
    -------
    groups : ndarray of shape (n,), dtype str
        The category of each pair.
    """
    pairs = np.asarray(dataset.pairs if pairs is None else pairs, dtype=np.intp).reshape(-1, 2)
    names = [name.split("(")[0].strip() for name in dataset.class_names]
    return np.array([names[label] for label in np.asarray(dataset.labels)[pairs[:, 1]]])


class _Cache:
    """Process-wide LRU caches of feature maps and transfers, keyed by content.

    Cross-validation clones the estimator for every candidate and fold; the cache lets
    each image be extracted once per feature configuration and each pair be aligned once
    per setting, whatever the number of folds.
    """

    def __init__(self, max_maps: int = 1000, max_transfers: int = 200_000):
        self.maps: OrderedDict = OrderedDict()
        self.transfers: OrderedDict = OrderedDict()
        self.limits = {"maps": max_maps, "transfers": max_transfers}

    def get(self, kind: str, key):
        store = getattr(self, kind)
        if key in store:
            store.move_to_end(key)
            return store[key]
        return None

    def put(self, kind: str, key, value) -> None:
        store = getattr(self, kind)
        store[key] = value
        while len(store) > self.limits[kind]:
            store.popitem(last=False)

    def clear(self) -> None:
        self.maps.clear()
        self.transfers.clear()


_CACHE = _Cache()


def _image_key(image):
    """A key that names an image by its path or its content (never its id)."""
    if isinstance(image, (str, os.PathLike)):
        return ("path", os.path.abspath(os.fspath(image)))
    array = np.ascontiguousarray(image)
    return ("array", array.shape, str(array.dtype),
            hashlib.blake2b(array.tobytes(), digest_size=16).hexdigest())


class PairTransfer(BaseEstimator):
    """Keypoint transfer between image pairs by the flow MRF, as an estimator.

    Each sample is a pair ``[source_image, target_image, source_keypoints]`` (built by
    :func:`pair_samples`); :meth:`predict` aligns the pair with :func:`skcorr.flow.align`
    and transfers the source keypoints into the target. The method is training-free:
    :meth:`fit` only prepares the features, so the estimator's role in
    :class:`~sklearn.model_selection.GridSearchCV` is to choose its settings (``lam``,
    ``features__layer``, ...) by the PCK of :func:`~skcorr.metrics.pck_scorer` on
    held-out pairs.

    Parameters
    ----------
    features : transformer, default=None
        Dense features for the flow (ConvColumnExtractor or DenseSIFT); cloned in fit.
        ``None``: ``ConvColumnExtractor(layer="conv5", image_size=320)``.
    lam : float, default=0.1
    radius : int or None, default=None
    levels : int, default=2
    max_iter : int, default=50
        As in :func:`skcorr.flow.align`.
    refine : transformer or None, default=None
        Finer dense features (e.g. hypercolumns with a stride-8 layer) for a
        coarse-to-fine last step: each transferred keypoint moves to the node of the
        target's fine grid, within ``refine_radius`` steps of the flow's prediction,
        whose column is closest to the source keypoint's. ``None``: no refinement.
    refine_radius : int, default=2
        Half-width of the refinement window, in fine-grid steps.
    cache : bool, default=True
        Keep feature maps (keyed by the features' parameters and the image's path or
        content) and transfers in a process-wide cache, so that cross-validation
        extracts each image once per feature configuration and aligns each pair once
        per setting. Use ``n_jobs=1`` in the search for the cache to be shared.

    Attributes
    ----------
    features_ : transformer
        The clone of ``features`` used (fitted on first use).
    refine_ : transformer or None
        The clone of ``refine`` used (fitted on first use).

    Examples
    --------
    >>> from sklearn.model_selection import GridSearchCV, LeaveOneGroupOut
    >>> from skcorr.datasets import load_sample_pairs
    >>> from skcorr.evaluation import PairTransfer, pair_samples
    >>> from skcorr.features import ConvColumnExtractor
    >>> from skcorr.metrics import pck_scorer
    >>> pairs = load_sample_pairs()
    >>> X, y = pair_samples(pairs)
    >>> features = ConvColumnExtractor(layer="stage3", weights=None, image_size=96)
    >>> search = GridSearchCV(PairTransfer(features), {"lam": [0.01, 0.1]},
    ...                       scoring=pck_scorer(alpha=0.1), cv=2).fit(X, y)
    >>> sorted(search.best_params_)
    ['lam']
    """

    def __init__(self, features=None, *, lam=0.1, radius=None, levels=2, max_iter=50,
                 refine=None, refine_radius=2, cache=True):
        self.features = features
        self.lam = lam
        self.radius = radius
        self.levels = levels
        self.max_iter = max_iter
        self.refine = refine
        self.refine_radius = refine_radius
        self.cache = cache

    def fit(self, X, y=None):
        """Check the pairs and prepare the features (nothing is learned).

        Parameters
        ----------
        X : array-like of shape (n_pairs, 3), dtype object
            Pair samples from :func:`pair_samples`.
        y : ignored
            Present for API consistency (GridSearchCV passes the target keypoints).

        Returns
        -------
        self : PairTransfer
            The estimator.
        """
        _check_pairs(X)
        if not np.isfinite(self.lam) or self.lam < 0:
            raise ValueError(f"lam must be a finite number >= 0, got {self.lam!r}.")
        if isinstance(self.refine_radius, bool) or not isinstance(self.refine_radius, int) \
                or self.refine_radius < 1:
            raise ValueError(f"refine_radius must be an integer >= 1 (fine grid steps), got "
                             f"{self.refine_radius!r}.")
        from .features import ConvColumnExtractor

        # Networks are built lazily: a search fits one clone per candidate and fold, and
        # most of them find every feature map in the cache.
        self.features_ = clone(self.features if self.features is not None
                               else ConvColumnExtractor(layer="conv5", image_size=320))
        self.refine_ = None if self.refine is None else clone(self.refine)
        self._keys = [None if f is None else joblib.hash(f.get_params(deep=True))
                      for f in (self.features_, self.refine_)]
        return self

    def _feature_map(self, image, which: int = 0):
        features = (self.features_, self.refine_)[which]
        key = (self._keys[which], _image_key(image))
        fmap = _CACHE.get("maps", key) if self.cache else None
        if fmap is None:
            try:
                check_is_fitted(features)
            except NotFittedError:
                features.fit()
            fmap = features.extract_dense([image])[0]
            if self.cache:
                _CACHE.put("maps", key, fmap)
        return fmap

    def _transfer(self, source, target, keypoints):
        from .flow import align

        settings = {"lam": float(self.lam), "radius": self.radius, "levels": self.levels,
                    "max_iter": self.max_iter}
        keypoints = np.asarray(keypoints, dtype=np.float64)
        key = (*self._keys, self.refine_radius, tuple(sorted(settings.items())),
               _image_key(source), _image_key(target), keypoints.tobytes())
        done = _CACHE.get("transfers", key) if self.cache else None
        if done is None:
            flow = align(self._feature_map(source), self._feature_map(target), **settings)
            done = flow.transfer_points(keypoints)
            if self.refine_ is not None:
                done = self._refined(source, target, keypoints, done)
            if self.cache:
                _CACHE.put("transfers", key, done)
        return done.copy()

    def _refined(self, source, target, keypoints, predicted):
        """Move each prediction to the best-matching fine-grid node near it.

        The flow lives on the coarse grid of ``features``; this coarse-to-fine step
        compares the source keypoint's column of the fine map (bilinear) with the
        columns of the target's fine-grid nodes within ``refine_radius`` steps of the
        flow's prediction, and keeps the closest.
        """
        fine_source, fine_target = self._feature_map(source, 1), self._feature_map(target, 1)
        out = predicted.copy()
        ok = np.flatnonzero(~np.isnan(keypoints).any(axis=1) & ~np.isnan(predicted).any(axis=1))
        if len(ok) == 0:
            return out
        columns = fine_source.sample(keypoints[ok], "bilinear")
        cols = np.rint(_grid_coordinate(fine_target.xs, predicted[ok, 0])).astype(int)
        rows = np.rint(_grid_coordinate(fine_target.ys, predicted[ok, 1])).astype(int)
        r = self.refine_radius
        n_rows, n_cols = fine_target.grid_shape
        for i, row, col, column in zip(ok, rows, cols, columns, strict=True):
            r0, r1 = max(row - r, 0), min(row + r + 1, n_rows)
            c0, c1 = max(col - r, 0), min(col + r + 1, n_cols)
            window = fine_target.features[r0:r1, c0:c1]
            cost = ((window - column) ** 2).sum(axis=2)
            best_row, best_col = np.unravel_index(np.argmin(cost), cost.shape)
            out[i] = (fine_target.xs[c0 + best_col], fine_target.ys[r0 + best_row])
        return out

    def predict(self, X) -> np.ndarray:
        """Transfer each pair's source keypoints into its target.

        Parameters
        ----------
        X : array-like of shape (n_pairs, 3), dtype object
            Pair samples from :func:`pair_samples`.

        Returns
        -------
        keypoints : ndarray of shape (n_pairs, K, 2)
            Predicted ``(x, y)`` in each target; NaN where the source keypoint is NaN.
        """
        check_is_fitted(self, "features_")
        X = _check_pairs(X)
        return np.stack([self._transfer(s, t, k) for s, t, k in X])

    def score(self, X, y) -> float:
        """PCK@0.1 of the predictions, with the targets' keypoint boxes.

        Parameters
        ----------
        X : array-like of shape (n_pairs, 3), dtype object
            Pair samples.
        y : array-like of shape (n_pairs, K, 2)
            The targets' true keypoints.

        Returns
        -------
        score : float
            PCK in ``[0, 1]``.
        """
        return pck_score(y, self.predict(X), alpha=0.1)

    @staticmethod
    def clear_cache() -> None:
        """Empty the process-wide cache of feature maps and transfers."""
        _CACHE.clear()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.requires_fit = True
        tags.non_deterministic = False
        return tags


def _check_pairs(X) -> np.ndarray:
    X = np.asarray(X, dtype=object) if not isinstance(X, np.ndarray) else X
    if X.ndim != 2 or X.shape[1] != 3 or len(X) == 0:
        raise ValueError(
            f"X must hold pair samples, rows [source_image, target_image, source_keypoints], "
            f"shape (n_pairs, 3); got shape {X.shape}. Build them with "
            "skcorr.evaluation.pair_samples(dataset)."
        )
    return X


def cross_validated_transfer(dataset, estimator, param_grid, *, alphas=(0.05, 0.1, 0.15),
                             alpha=0.1, reference="bbox", verbose=False):
    """Nested leave-one-category-out cross-validation of a pair transfer's settings.

    For each category in turn (see :func:`pair_categories`), the settings are chosen by
    :class:`~sklearn.model_selection.GridSearchCV` on the pairs of the other categories
    (itself leaving one category out at a time, scoring with
    :func:`~skcorr.metrics.pck_scorer` at ``alpha``), then the held-out category is
    predicted with them. No setting is ever chosen on pairs it is scored on.

    Parameters
    ----------
    dataset : Bunch
        A pair data set with at least three categories (PF-WILLOW has four).
    estimator : PairTransfer
        The transfer to tune.
    param_grid : dict or list of dict
        Candidate settings, as for GridSearchCV (e.g. ``{"lam": [0.05, 0.1, 0.2]}``).
    alphas : sequence of float, default=(0.05, 0.1, 0.15)
        PCK tolerances of the reported table.
    alpha : float, default=0.1
        Tolerance of the selection score.
    reference : {"bbox", "image"}, default="bbox"
        Threshold reference of the reported table (selection always uses the keypoint
        box, see :func:`pck_scorer`).
    verbose : bool, default=False
        Print each fold's choice.

    Returns
    -------
    table : PCKTable
        The held-out PCK of every class (each class predicted with the settings chosen
        without its category) and the ``"mean"`` row.
    folds : list of dict
        Per held-out category: ``"held-out"``, ``"classes"``, ``"chosen"`` (the
        settings), ``"cv PCK"`` (the selection score on the other categories: the mean
        over those folds of PCK averaged over keypoint types) and ``"PCK@<alpha>"`` on
        the held-out pairs (the mean of its classes' rows of the table).
    """
    X, y = pair_samples(dataset)
    groups = pair_categories(dataset)
    if len(np.unique(groups)) < 3:
        raise ValueError(
            f"nested leave-one-category-out needs at least 3 categories, the data set has "
            f"{len(np.unique(groups))}."
        )
    chosen_for, folds = {}, []
    for train, test in LeaveOneGroupOut().split(X, y, groups):
        held_out = str(groups[test[0]])
        search = GridSearchCV(estimator, param_grid, scoring=pck_scorer(alpha=alpha),
                              cv=LeaveOneGroupOut(), refit=True, error_score="raise")
        search.fit(X[train], y[train], groups=groups[train])
        chosen_for[held_out] = search.best_estimator_
        classes = sorted({dataset.class_names[label] for label
                          in np.asarray(dataset.labels)[dataset.pairs[test, 1]]})
        folds.append({"held-out": held_out, "classes": ", ".join(classes),
                      "chosen": _describe_params(search.best_params_),
                      "cv PCK": float(search.best_score_)})
        if verbose:
            print(f"held out {held_out}: chose {folds[-1]['chosen']} (PCK@{alpha:g} "
                  f"{100 * folds[-1]['cv PCK']:.1f} on the other categories)", flush=True)

    category_of = {_image_key(dataset.images[t]): g
                   for (_, t), g in zip(dataset.pairs, groups, strict=True)}

    def predict(source, target, keypoints):
        return chosen_for[category_of[_image_key(target)]]._transfer(source, target, keypoints)

    alphas = list(alphas) + ([alpha] if alpha not in alphas else [])
    table = transfer_pck_table(dataset, predict, alphas=alphas, reference=reference)
    for fold in folds:  # the held-out score as the table counts it: mean over classes
        rows = [row for row in table if row["class"] in fold["classes"].split(", ")]
        fold[f"PCK@{alpha:g}"] = float(np.mean([row[f"PCK@{alpha:g}"] for row in rows]))
    return table, folds


def _describe_params(params: dict) -> str:
    def show(value):
        if isinstance(value, (list, tuple)):
            return "+".join(map(str, value))
        return f"{value:g}" if isinstance(value, float) else str(value)

    return ", ".join(f"{name}={show(value)}" for name, value in sorted(params.items()))
