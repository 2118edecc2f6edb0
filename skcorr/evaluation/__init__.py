"""Evaluation protocols: every study of the paper, each returning one :class:`ResultTable`.

* Pair transfer scored by PCK: :func:`transfer_pck_table` runs :func:`identity_transfer`
  or :class:`FlowTransfer` over the pairs of a data set; :func:`evaluate_pf_willow`.
* Settings chosen honestly: :class:`PairTransfer`, :func:`cross_validated_transfer`
  (nested leave-one-category-out), :func:`pair_samples`, :func:`pair_categories`.
* CUB-200-2011: :func:`evaluate_cub_transfer`, :func:`evaluate_cub_classification`,
  :func:`evaluate_cub_detection` (Studies 2 to 4).
* :func:`receptive_field_table`, and the settings shared with the demo and the command
  line: ``TUNED_LAM``, ``CV_LAMS``, ``CUB_CV_LAMS`` and :func:`flow_features`.

Names are imported on first use, so that the command line's ``--help`` loads no network.
"""

import importlib

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
__all__ = sorted(set(_LAZY) - {"PCKTable"})


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
