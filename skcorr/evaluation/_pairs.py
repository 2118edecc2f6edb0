"""The pairs of a data set as samples: what a pair estimator predicts, grouped by category."""

from __future__ import annotations

import numpy as np

__all__ = ["pair_categories", "pair_samples"]


def pair_samples(dataset, pairs=None):
    """The pairs of a data set as samples for :class:`skcorr.flow.PairTransfer`.

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
