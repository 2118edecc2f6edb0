"""Grouped cross-validation of a pair transfer's settings.

:class:`skcorr.flow.PairTransfer` has no parameters to learn, only settings (``lam``, the
layer, the backbone); :func:`cross_validated_transfer` chooses them by nested
leave-one-category-out cross-validation, never on the pairs they are scored on.
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import GridSearchCV, LeaveOneGroupOut

from ..metrics import pck_scorer
from ._pairs import pair_categories, pair_samples
from ._table import ResultTable
from ._transfer import _pck_table

__all__ = ["cross_validated_transfer"]


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
        The transfer to tune (:class:`skcorr.flow.PairTransfer`); give it ``memory=``
        so that each image's features are extracted once.
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
    predictions = np.empty(y.shape)
    chosen_params, folds = {}, []
    for train, test in LeaveOneGroupOut().split(X, y, groups):
        held_out = str(groups[test[0]])
        search = GridSearchCV(estimator, param_grid, scoring=pck_scorer(alpha=alpha),
                              cv=LeaveOneGroupOut(), refit=True, error_score="raise")
        search.fit(X[train], y[train], groups=groups[train])
        predictions[test] = search.best_estimator_.predict(X[test])
        chosen_params[held_out] = search.best_params_
        classes = sorted({dataset.class_names[label] for label
                          in np.asarray(dataset.labels)[dataset.pairs[test, 1]]})
        folds.append({"held-out": held_out, "classes": ", ".join(classes),
                      "chosen": _describe_params(search.best_params_),
                      "cv PCK": float(search.best_score_)})
        if verbose:
            print(f"held out {held_out}: chose {folds[-1]['chosen']} (PCK@{alpha:g} "
                  f"{100 * folds[-1]['cv PCK']:.1f} on the other categories)", flush=True)

    alphas = list(alphas) + ([alpha] if alpha not in alphas else [])
    scores = _pck_table(dataset, dataset.pairs, predictions, alphas=alphas, reference=reference)
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
