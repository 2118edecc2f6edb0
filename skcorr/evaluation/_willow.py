"""PF-WILLOW's protocol: keypoint transfer over its 900 pairs, PCK per sub-class."""

from __future__ import annotations

import contextlib
import time

from .._parallel import scratch_folder
from ..flow import PairTransfer
from ._cv import cross_validated_transfer
from ._defaults import CV_LAMS, TUNED_LAM
from ._pairs import pair_samples
from ._table import ResultTable
from ._transfer import _describe_features, flow_features, identity_transfer, transfer_pck_table

__all__ = ["evaluate_identity_pf_willow", "evaluate_pf_willow"]

_REFERENCES = {"bbox": "keypoint box", "image": "image"}

# Candidates of lam="cv" with energy="sift-flow" (alpha per grid step): its data costs are
# L1 distances of the features, several times their squared distances, and its smoothness
# grows with |d| rather than d**2.
SIFT_FLOW_CV_LAMS = (0.25, 0.5, 1.0, 2.0, 4.0)


def evaluate_pf_willow(path, *, method="flow", features="conv",
                       backbones=("efficientnet_lite0",), layers=("conv5",), lam=None,
                       lam_grid=None, radius=None, levels=2, image_sizes=(320,),
                       truncations=(None,), ot_regs=(None,), subcell=False, energy="l2",
                       etas=(0.0,), data_truncations=(None,),
                       alphas=(0.05, 0.1, 0.15), reference="bbox", n_jobs=None,
                       memory=None, verbose=False) -> ResultTable:
    """Keypoint transfer over PF-WILLOW's 900 pairs: PCK per sub-class and their mean.

    What ``skcorr evaluate pf-willow`` runs. Each pair is aligned by the flow MRF
    (:class:`skcorr.flow.PairTransfer`) or, with ``method="identity"``, each keypoint is put at the
    same relative position (:func:`identity_transfer`, the floor any method must beat).
    ``lam="cv"`` chooses the flow's settings by nested leave-one-category-out
    cross-validation (:func:`cross_validated_transfer`), never on the scored pairs.

    Parameters
    ----------
    path : str or os.PathLike
        The PF-WILLOW folder, see :func:`skcorr.datasets.load_pf_willow`.
    method : {"flow", "identity"}, default="flow"
        The transfer.
    features : {"conv", "sift"}, default="conv"
        The flow's features, see :func:`flow_features`.
    backbones, layers : sequence, default=("efficientnet_lite0",), ("conv5",)
        Of ``features="conv"`` (a layer may be a list: hypercolumns); more than one of
        either are candidates of ``lam="cv"``.
    lam : float, "cv" or None, default=None
        Smoothness weight; ``None``: ``TUNED_LAM[features]`` (tuned on PF-WILLOW itself;
        with ``energy="sift-flow"`` give it).
    lam_grid : sequence of float, default=None
        Candidates of ``lam="cv"``; ``None``: ``CV_LAMS[features]``
        (:data:`SIFT_FLOW_CV_LAMS` with ``energy="sift-flow"``).
    radius, levels : int or None, int, default=None, 2
        As in :func:`skcorr.flow.align`.
    image_sizes : sequence of int, default=(320,)
        Longer image side the features are computed at; more than one are candidates of
        ``lam="cv"``.
    truncations, ot_regs : sequence of float or None, default=(None,), (None,)
        The flow's smoothness truncation and optimal-transport regularisation (see
        :func:`skcorr.flow.align`; ``None``: off); more than one are candidates of
        ``lam="cv"``.
    subcell : bool, default=False
        Refine matches between grid nodes (:func:`skcorr.flow.align`).
    energy : {"l2", "sift-flow"}, default="l2"
        The flow's energy (:func:`skcorr.flow.align`).
    etas, data_truncations : sequence of float (or None), default=(0.0,), (None,)
        SIFT Flow's small-displacement weight and data truncation (see
        :func:`skcorr.flow.align`); more than one are candidates of ``lam="cv"``.
    alphas, reference
        As in :func:`transfer_pck_table`.
    n_jobs : int or None, default=None
        joblib workers over the pairs (see :class:`skcorr.flow.PairTransfer`).
    memory : None, str or joblib.Memory, default=None
        The cache of features and alignments; ``None``: a temporary folder, removed at
        the end (every image's features are still computed once per setting).
    verbose : bool, default=False
        Progress bars; with ``lam="cv"``, each fold's choice too.

    Returns
    -------
    table : ResultTable
        Ten sub-class rows and a ``"mean"`` row; with ``lam="cv"`` also the settings
        chosen for each row (see :func:`cross_validated_transfer`).

    Examples
    --------
    With PF-WILLOW in ``$SKCORR_DATA/PF-WILLOW`` (RESULTS.md gives the numbers):

    >>> import os
    >>> from skcorr.evaluation import evaluate_pf_willow
    >>> path = os.path.join(os.environ["SKCORR_DATA"], "PF-WILLOW")  # doctest: +SKIP
    >>> print(evaluate_pf_willow(path, method="identity"))  # doctest: +SKIP
    """
    from ..datasets import load_pf_willow

    several = (max(len(image_sizes), len(truncations), len(ot_regs), len(etas),
                   len(data_truncations)) > 1
               or (features == "conv" and max(len(layers), len(backbones)) > 1))
    if several and lam != "cv":
        raise ValueError("several --layer, --backbone, --image-size, --truncation, --ot-reg, "
                         "--eta or --data-truncation values are candidates for "
                         "cross-validation; add --lam cv, or give one of each.")
    sift_flow = energy == "sift-flow"
    if sift_flow and lam is None and method != "identity":
        raise ValueError("energy='sift-flow' has no tuned lam: give lam (SIFT Flow's alpha per "
                         "grid step, e.g. 0.5; --lam 0.5) or lam='cv' (--lam cv).")
    start = time.perf_counter()
    dataset = load_pf_willow(path)
    extractor = flow_features(features, backbone=backbones[0], layer=layers[0],
                              image_size=image_sizes[0]).set_params(verbose=verbose)
    grid = {"lam": list(lam_grid or (SIFT_FLOW_CV_LAMS if sift_flow else CV_LAMS[features]))}
    if features == "conv":
        grid.update({f"features__{name}": list(values) for name, values
                     in [("layer", layers), ("backbone", backbones)] if len(values) > 1})
    if len(image_sizes) > 1:
        grid["features__image_size"] = list(image_sizes)
    grid.update({name: list(values) for name, values
                 in [("truncation", truncations), ("ot_reg", ot_regs), ("eta", etas),
                     ("data_truncation", data_truncations)] if len(values) > 1})
    flow = {"radius": radius, "levels": levels, "truncation": truncations[0],
            "ot_reg": ot_regs[0], "subcell": subcell, "energy": energy, "eta": etas[0],
            "data_truncation": data_truncations[0]}
    lam = TUNED_LAM[features] if lam is None else lam
    if method == "identity":
        what, name = "identity baseline", "pf-willow-identity"
    elif lam == "cv":
        candidates = ", ".join(f"{k} in {' | '.join(map(str, v))}" for k, v in grid.items())
        what = (f"flow on {_describe_features(extractor)}, settings chosen by nested "
                f"leave-one-category-out CV ({candidates})")
    else:
        what = f"flow on {_describe_features(extractor)}, lam={lam:g}"
    if method != "identity":
        name = (f"pf-willow-flow-{features}-lam{lam if lam == 'cv' else f'{lam:g}'}"
                + ("-siftflow" if sift_flow else ""))
        what += (f", levels={levels}, labels={'all' if radius is None else f'radius {radius}'}"
                 f", image_size={' | '.join(map(str, image_sizes))}"
                 f", truncation={' | '.join(map(str, truncations))}"
                 f", ot_reg={' | '.join(map(str, ot_regs))}, subcell={subcell}")
        if sift_flow or any(etas) or any(t is not None for t in data_truncations):
            what += (f", energy={energy}, eta={' | '.join(map(str, etas))}"
                     f", data_truncation={' | '.join(map(str, data_truncations))}")
    if method == "identity":
        table = transfer_pck_table(dataset, identity_transfer, alphas=alphas,
                                   reference=reference)
    else:
        own = scratch_folder("skcorr-pf-willow-") if memory is None else None
        with own or contextlib.nullcontext(memory) as cache:
            estimator = PairTransfer(extractor, **flow, n_jobs=n_jobs, memory=cache,
                                     verbose=verbose)
            if lam == "cv":
                table, _ = cross_validated_transfer(dataset, estimator, grid, alphas=alphas,
                                                    reference=reference, verbose=verbose)
            else:
                estimator.set_params(lam=lam).fit(pair_samples(dataset)[0])
                table = transfer_pck_table(dataset, estimator, alphas=alphas,
                                           reference=reference)
    table.title = (f"PF-WILLOW, {len(dataset.pairs)} pairs, {what}; PCK threshold "
                   f"alpha * max(h, w) of the target's {_REFERENCES[reference]}")
    table.notes, table.name = [f"{time.perf_counter() - start:.1f} s"], name
    return table


def evaluate_identity_pf_willow(path, alphas=(0.05, 0.1, 0.15)) -> ResultTable:
    """The identity baseline on PF-WILLOW: ``evaluate_pf_willow(path, method="identity")``.

    Parameters
    ----------
    path : str or os.PathLike
        The PF-WILLOW folder.
    alphas : sequence of float, default=(0.05, 0.1, 0.15)
        PCK tolerances.

    Returns
    -------
    table : ResultTable
        Ten sub-class rows and a ``"mean"`` row.
    """
    return evaluate_pf_willow(path, method="identity", alphas=alphas)

