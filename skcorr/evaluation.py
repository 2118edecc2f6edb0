"""Evaluation protocols: keypoint transfer over the pairs of a data set, scored by PCK.

For every pair (source, target) of a data set, a transfer method predicts where the
source keypoints lie in the target image; PCK compares the predictions with the
target's keypoints, with thresholds from the target's box. The table has one row per
class of the target image and a final ``"mean"`` row, the mean over classes.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Sequence

import numpy as np
from joblib import Parallel, delayed, effective_n_jobs
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from ._image import image_size
from .features._cache import image_digest
from .metrics import _check_alpha, pck_score

__all__ = [
    "FlowTransfer",
    "PCKTable",
    "evaluate_cub_transfer",
    "evaluate_identity_pf_willow",
    "identity_transfer",
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
    pairs = np.asarray(dataset.get("pairs", []), dtype=np.intp).reshape(-1, 2)
    if len(pairs) == 0:
        raise ValueError("the data set defines no pairs (its 'pairs' field is missing or empty).")
    keypoints, images = dataset.keypoints, dataset.images
    predictions = _predict_pairs_parallel(dataset, pairs, predict_fn, n_jobs, verbose)

    targets = pairs[:, 1]
    labels = np.asarray(dataset.get("labels", np.zeros(len(images), dtype=np.intp)))[targets]
    class_names = dataset.get("class_names", ["all"])
    table = PCKTable()
    for label in np.unique(labels):
        mask = labels == label
        row = {"class": class_names[label], "pairs": int(mask.sum())}
        for alpha in alphas:
            row[f"PCK@{alpha:g}"] = pck_score(
                keypoints[targets[mask]], predictions[mask], alpha=alpha,
                bbox=dataset.boxes[targets[mask]], average=average,
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
    progress = tqdm(total=len(pairs), desc="pairs", disable=not verbose)
    p = 0
    for chunk, predicted in zip(chunks, results, strict=True):
        for (s, t), value in zip(chunk, predicted, strict=True):
            if value.shape != keypoints.shape[1:]:
                raise ValueError(
                    f"predict_fn returned shape {value.shape} for pair {p} ({s}, {t}); it "
                    f"must return the {keypoints.shape[1:]} positions of the source keypoints."
                )
            predictions[p] = value
            p += 1
        progress.update(len(chunk))
    progress.close()
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


def evaluate_cub_transfer(path, features, *, lam=0.1, n_neighbors=25, n_top=5,
                          crop_size=160, padding=0.1, alpha=0.1, radius=None, levels=2,
                          n_jobs=None, verbose=False) -> PCKTable:
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
    lam : float, default=0.1
        Smoothness weight of the flow.
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
        the mean over parts.

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
    aligner = FlowAligner(features=features, lam=lam, n_neighbors=n_neighbors, n_top=n_top,
                          radius=radius, levels=levels, n_jobs=n_jobs, verbose=verbose)
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
    return table
