"""Evaluation protocols: every study of the paper, each returning one :class:`ResultTable`.

* Pair transfer scored by PCK: :func:`transfer_pck_table` runs a transfer method
  (:func:`identity_transfer`, :class:`FlowTransfer`) over the pairs of a data set;
  :func:`evaluate_pf_willow` is PF-WILLOW's protocol.
* Settings chosen honestly: :class:`PairTransfer` is the flow transfer as an estimator,
  :func:`cross_validated_transfer` tunes it by nested leave-one-category-out
  cross-validation (:func:`pair_samples`, :func:`pair_categories`).
* CUB-200-2011: :func:`evaluate_cub_transfer` (Study 2),
  :func:`evaluate_cub_classification` (Study 3), :func:`evaluate_cub_detection`
  (Study 4).
* :func:`receptive_field_table`: a backbone's layers and receptive fields.
* Settings shared with the demo and the command line: :data:`TUNED_LAM`,
  :data:`CV_LAMS`, :data:`CUB_CV_LAMS` and :func:`flow_features`.

:class:`ResultTable` is a list of dict rows with a title and notes; it prints as
Markdown (PCK and accuracies in percent) and writes CSV or Markdown. The names are
imported on first use, so that ``import skcorr.evaluation`` (and the command line's
``--help``) does not load the networks.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover - what static type checkers and IDEs see
    from ._cub import evaluate_cub_classification, evaluate_cub_detection, evaluate_cub_transfer
    from ._cv import PairTransfer, cross_validated_transfer, pair_categories, pair_samples
    from ._defaults import CUB_CV_LAMS, CV_LAMS, TUNED_LAM
    from ._layers import receptive_field_table
    from ._table import PCKTable as PCKTable
    from ._table import ResultTable
    from ._transfer import FlowTransfer, flow_features, identity_transfer, transfer_pck_table
    from ._willow import evaluate_identity_pf_willow, evaluate_pf_willow

_MODULES = {
    "_cub": ("evaluate_cub_classification", "evaluate_cub_detection", "evaluate_cub_transfer"),
    "_cv": ("PairTransfer", "cross_validated_transfer", "pair_categories", "pair_samples"),
    "_defaults": ("CUB_CV_LAMS", "CV_LAMS", "TUNED_LAM"),
    "_layers": ("receptive_field_table",),
    "_table": ("PCKTable", "ResultTable"),
    "_transfer": ("FlowTransfer", "flow_features", "identity_transfer", "transfer_pck_table"),
    "_willow": ("evaluate_identity_pf_willow", "evaluate_pf_willow"),
}
_LAZY = {name: module for module, names in _MODULES.items() for name in names}

# PCKTable, the former name of ResultTable, stays importable but is not advertised.
__all__ = [
    "CUB_CV_LAMS",
    "CV_LAMS",
    "FlowTransfer",
    "PairTransfer",
    "ResultTable",
    "TUNED_LAM",
    "cross_validated_transfer",
    "evaluate_cub_classification",
    "evaluate_cub_detection",
    "evaluate_cub_transfer",
    "evaluate_identity_pf_willow",
    "evaluate_pf_willow",
    "flow_features",
    "identity_transfer",
    "pair_categories",
    "pair_samples",
    "receptive_field_table",
    "transfer_pck_table",
]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
