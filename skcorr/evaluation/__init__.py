"""Evaluation protocols: every study of the paper, each returning one :class:`ResultTable`.

* Pair transfer scored by PCK: :func:`transfer_pck_table` runs a fitted
  :class:`skcorr.flow.PairTransfer` or a function such as :func:`identity_transfer` over
  the pairs of a data set (:func:`pair_samples`); :func:`evaluate_pf_willow`.
* Settings chosen honestly: :func:`cross_validated_transfer` (nested
  leave-one-category-out over :func:`pair_categories`).
* CUB-200-2011: :func:`evaluate_cub_transfer`, :func:`evaluate_cub_classification`,
  :func:`evaluate_cub_detection` (Studies 2 to 4).
* :func:`receptive_field_table`, and the settings shared with the demo and the command
  line: ``TUNED_LAM``, ``CV_LAMS``, ``CUB_CV_LAMS`` and :func:`flow_features`.
"""

from .._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "._cub": ("evaluate_cub_classification", "evaluate_cub_detection", "evaluate_cub_transfer"),
    "._cv": ("cross_validated_transfer",),
    "._defaults": ("CUB_CV_LAMS", "CV_LAMS", "TUNED_LAM"),
    "._layers": ("receptive_field_table",),
    "._pairs": ("pair_categories", "pair_samples"),
    "._table": ("ResultTable",),
    "._transfer": ("flow_features", "identity_transfer", "transfer_pck_table"),
    "._willow": ("evaluate_identity_pf_willow", "evaluate_pf_willow"),
})
