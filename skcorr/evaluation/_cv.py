"""Keypoint transfer between pairs as an estimator, and its grouped cross-validation.

:class:`PairTransfer` has no parameters to learn, only settings (``lam``, the layer, the
backbone); :func:`cross_validated_transfer` chooses them by nested
leave-one-category-out cross-validation, never on the pairs they are scored on.
"""

from __future__ import annotations

import numbers
from collections import OrderedDict

import joblib
import numpy as np
from sklearn.base import BaseEstimator, _fit_context, clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, LeaveOneGroupOut
from sklearn.utils._param_validation import HasMethods, Interval
from sklearn.utils.validation import check_is_fitted

from .._validation import FLOW_SETTING_CONSTRAINTS, flow_settings
from ..metrics import pck_score, pck_scorer
from ._table import ResultTable
from ._transfer import _image_key, transfer_pck_table

__all__ = ["PairTransfer", "cross_validated_transfer", "pair_categories", "pair_samples"]


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


# Process-wide LRU caches of feature maps and transfers, keyed by content: cross-validation
# clones the estimator for every candidate and fold, and the caches let each image be
# extracted once per feature configuration and each pair be aligned once per setting.
_CACHE = {"maps": OrderedDict(), "transfers": OrderedDict()}
_CACHE_SIZE = {"maps": 1000, "transfers": 200_000}


def _cached(kind: str, key, compute, enabled: bool = True):
    """``compute()``, or the value ``_CACHE[kind]`` holds for ``key``."""
    store = _CACHE[kind]
    if not enabled:
        return compute()
    if key in store:
        store.move_to_end(key)
        return store[key]
    value = store[key] = compute()
    while len(store) > _CACHE_SIZE[kind]:
        store.popitem(last=False)
    return value


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
    truncation : float or None, default=None
    ot_reg : float or None, default=None
    subcell : bool, default=False
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
                 truncation=None, ot_reg=None, subcell=False, refine=None, refine_radius=2,
                 cache=True):
        self.features = features
        self.lam = lam
        self.radius = radius
        self.levels = levels
        self.max_iter = max_iter
        self.truncation = truncation
        self.ot_reg = ot_reg
        self.subcell = subcell
        self.refine = refine
        self.refine_radius = refine_radius
        self.cache = cache

    _parameter_constraints: dict = {
        "features": [HasMethods(["fit", "extract_dense"]), None],
        **FLOW_SETTING_CONSTRAINTS,
        "refine": [HasMethods(["fit", "extract_dense"]), None],
        "refine_radius": [Interval(numbers.Integral, 1, None, closed="left")],
        "cache": ["boolean"],
    }

    # The nested feature transformers are parameters: their own checks must still run.
    @_fit_context(prefer_skip_nested_validation=False)
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
        from ..features import ConvColumnExtractor

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

        def compute():
            try:
                check_is_fitted(features)
            except NotFittedError:
                features.fit()
            return features.extract_dense([image])[0]

        return _cached("maps", (self._keys[which], _image_key(image)), compute, self.cache)

    def _transfer(self, source, target, keypoints):
        from ..flow import align

        settings = flow_settings(self)
        keypoints = np.asarray(keypoints, dtype=np.float64)
        key = (*self._keys, self.refine_radius, tuple(sorted(settings.items())),
               _image_key(source), _image_key(target), keypoints.tobytes())

        def compute():
            flow = align(self._feature_map(source), self._feature_map(target), **settings)
            done = flow.transfer_points(keypoints)
            return done if self.refine_ is None else self._refined(source, target,
                                                                   keypoints, done)

        return _cached("transfers", key, compute, self.cache).copy()

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
        rows, cols = fine_target.nearest_cells(predicted[ok])
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
        for store in _CACHE.values():
            store.clear()

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
    table : ResultTable
        The held-out PCK of every class (each class predicted with the settings chosen
        without its category) and the ``"mean"`` row: ``"class"``, ``"pairs"``,
        ``"held-out"`` (the category left out), one column per setting of
        ``param_grid`` (as chosen), ``"PCK@<alpha>"`` per alpha and ``"cv PCK@<alpha>"``
        (the selection score on the other categories); settings are ``None`` in the
        mean row.
    folds : ResultTable
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
    chosen_for, chosen_params, folds = {}, {}, []
    for train, test in LeaveOneGroupOut().split(X, y, groups):
        held_out = str(groups[test[0]])
        search = GridSearchCV(estimator, param_grid, scoring=pck_scorer(alpha=alpha),
                              cv=LeaveOneGroupOut(), refit=True, error_score="raise")
        search.fit(X[train], y[train], groups=groups[train])
        chosen_for[held_out] = search.best_estimator_
        chosen_params[held_out] = search.best_params_
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
    scores = transfer_pck_table(dataset, predict, alphas=alphas, reference=reference)
    for fold in folds:  # the held-out score as the table counts it: mean over classes
        rows = [row for row in scores if row["class"] in fold["classes"].split(", ")]
        fold[f"PCK@{alpha:g}"] = float(np.mean([row[f"PCK@{alpha:g}"] for row in rows]))
    # Each class row with the settings that predicted it, each in its own column.
    fold_of = {name: fold for fold in folds for name in fold["classes"].split(", ")}
    names = sorted({name for params in chosen_params.values() for name in params})
    table = ResultTable()
    for row in scores:
        fold = fold_of.get(row["class"])
        params = chosen_params[fold["held-out"]] if fold else {}
        table.append({"class": row["class"], "pairs": row["pairs"],
                      "held-out": fold["held-out"] if fold else None,
                      **{name: _show(params[name]) if name in params else None
                         for name in names},
                      **{key: value for key, value in row.items() if key.startswith("PCK")},
                      f"cv PCK@{alpha:g}": fold["cv PCK"] if fold else None})
    return table, ResultTable(folds)


def _show(value):
    """A setting as a table cell: hypercolumn layers joined by "+"."""
    return "+".join(map(str, value)) if isinstance(value, (list, tuple)) else value


def _describe_params(params: dict) -> str:
    def show(value):
        value = _show(value)
        return f"{value:g}" if isinstance(value, float) else str(value)

    return ", ".join(f"{name}={show(value)}" for name, value in sorted(params.items()))
