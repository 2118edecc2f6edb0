"""PF-WILLOW's protocol: keypoint transfer over its 900 pairs, PCK per sub-class."""

from __future__ import annotations

import time

from ._cv import PairTransfer, cross_validated_transfer
from ._defaults import CV_LAMS, TUNED_LAM
from ._table import ResultTable
from ._transfer import (
    FlowTransfer,
    _describe_features,
    flow_features,
    identity_transfer,
    transfer_pck_table,
)

__all__ = ["evaluate_identity_pf_willow", "evaluate_pf_willow"]

_REFERENCES = {"bbox": "keypoint box", "image": "image"}


def evaluate_pf_willow(path, *, method="flow", features="conv",
                       backbones=("efficientnet_lite0",), layers=("conv5",), lam=None,
                       lam_grid=None, radius=None, levels=2, image_size=320,
                       alphas=(0.05, 0.1, 0.15), reference="bbox", n_jobs=None,
                       verbose=False) -> ResultTable:
    """Keypoint transfer over PF-WILLOW's 900 pairs: PCK per sub-class and their mean.

    ``skcorr evaluate pf-willow`` runs this function. Each pair is aligned by the flow
    MRF on dense features (:class:`FlowTransfer`), or, with ``method="identity"``, each
    keypoint is put at the same relative position (:func:`identity_transfer`, the floor
    any method must beat). With ``lam="cv"`` the flow's settings are chosen by nested
    leave-one-category-out cross-validation (:func:`cross_validated_transfer`), never on
    the pairs they are scored on.

    Parameters
    ----------
    path : str or os.PathLike
        The PF-WILLOW folder, see :func:`skcorr.datasets.load_pf_willow`.
    method : {"flow", "identity"}, default="flow"
        The transfer.
    features : {"conv", "sift"}, default="conv"
        The flow's features, see :func:`flow_features`.
    backbones, layers : sequence, default=("efficientnet_lite0",), ("conv5",)
        Backbones and layers of ``features="conv"`` (a layer may be a list of layers:
        hypercolumns). More than one of either are candidates of ``lam="cv"``.
    lam : float, "cv" or None, default=None
        Smoothness weight; ``None``: ``TUNED_LAM[features]`` (tuned on PF-WILLOW
        itself, see RESULTS.md); ``"cv"``: chosen by cross-validation.
    lam_grid : sequence of float, default=None
        Candidates of ``lam="cv"``; ``None``: ``CV_LAMS[features]``.
    radius : int or None, default=None
        Label window radius in target grid steps (``None``: every target position).
    levels : int, default=2
        Coarse-to-fine levels (0: flat belief propagation).
    image_size : int, default=320
        Longer image side the features are computed at.
    alphas : sequence of float, default=(0.05, 0.1, 0.15)
        PCK tolerances.
    reference : {"bbox", "image"}, default="bbox"
        PCK threshold relative to the target's keypoint box (PF-WILLOW's protocol) or
        to the whole image, see :func:`transfer_pck_table`.
    n_jobs : int or None, default=None
        joblib workers over the pairs.
    verbose : bool, default=False
        Progress bar, and each cross-validation fold's choice.

    Returns
    -------
    table : ResultTable
        Ten sub-class rows and a ``"mean"`` row (see :func:`transfer_pck_table`); with
        ``lam="cv"`` also the settings chosen for each row's category and their
        selection score (see :func:`cross_validated_transfer`). The seconds are in the
        notes.

    Raises
    ------
    ValueError
        If several backbones or layers are given without ``lam="cv"``.
    """
    from ..datasets import load_pf_willow

    several = features == "conv" and (len(layers) > 1 or len(backbones) > 1)
    if several and lam != "cv":
        raise ValueError("several --layer or --backbone values are candidates for "
                         "cross-validation; add --lam cv, or give one of each.")
    start = time.perf_counter()
    dataset = load_pf_willow(path)
    extractor = flow_features(features, backbone=backbones[0], layer=layers[0],
                              image_size=image_size)
    described = f"flow on {_describe_features(extractor)}"
    if features == "conv" and several:
        shown = ["+".join(x) if isinstance(x, list) else x for x in layers]
        described = f"flow on {' | '.join(backbones)}: {' | '.join(shown)}"
    if method == "identity":
        what = "identity baseline"
        table = transfer_pck_table(dataset, identity_transfer, alphas=alphas, n_jobs=n_jobs,
                                   verbose=verbose, reference=reference)
    elif lam == "cv":
        grid = {"lam": list(lam_grid or CV_LAMS[features])}
        if features == "conv" and len(layers) > 1:
            grid["features__layer"] = list(layers)
        if features == "conv" and len(backbones) > 1:
            grid["features__backbone"] = list(backbones)
        estimator = PairTransfer(extractor, radius=radius, levels=levels)
        table, _ = cross_validated_transfer(dataset, estimator, grid, alphas=alphas,
                                            reference=reference, verbose=verbose)
        candidates = ", ".join(f"{k} in {' | '.join(map(str, v))}" for k, v in grid.items())
        what = (f"{described}, settings chosen by nested leave-one-category-out CV "
                f"({candidates}), levels={levels}, image_size={image_size}")
    else:
        lam = TUNED_LAM[features] if lam is None else lam
        transfer = FlowTransfer(extractor, lam=lam, radius=radius, levels=levels)
        transfer.precompute(dataset.images)
        table = transfer_pck_table(dataset, transfer, alphas=alphas, n_jobs=n_jobs,
                                   verbose=verbose, reference=reference)
        what = (f"{described}, lam={lam:g}, levels={levels}, "
                f"labels={'all' if radius is None else f'radius {radius}'}, "
                f"image_size={image_size}")
    table.title = (f"PF-WILLOW, {len(dataset.pairs)} pairs, {what}; PCK threshold "
                   f"alpha * max(h, w) of the target's {_REFERENCES[reference]}")
    table.notes = [f"{time.perf_counter() - start:.1f} s"]
    if method == "identity":
        table.name = "pf-willow-identity"
    else:
        table.name = f"pf-willow-flow-{features}-lam{lam if lam == 'cv' else f'{lam:g}'}"
    return table


def evaluate_identity_pf_willow(path, alphas=(0.05, 0.1, 0.15)) -> ResultTable:
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
    table : ResultTable
        Ten sub-class rows and a ``"mean"`` row; see :func:`transfer_pck_table`.

    Examples
    --------
    With PF-WILLOW in ``$SKCORR_DATA/PF-WILLOW`` (or downloaded by
    :func:`~skcorr.datasets.fetch_pf_willow`):

    >>> import os
    >>> from skcorr.evaluation import evaluate_identity_pf_willow
    >>> path = os.path.join(os.environ["SKCORR_DATA"], "PF-WILLOW")  # doctest: +SKIP
    >>> print(evaluate_identity_pf_willow(path))  # doctest: +SKIP
    """
    return evaluate_pf_willow(path, method="identity", alphas=alphas)


