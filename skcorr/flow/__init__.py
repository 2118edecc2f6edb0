"""Flow alignment: the SIFT-flow-style MRF on feature grids, solved by belief propagation.

* :func:`match`: two images (arrays or files) to a :class:`Flow`, with the best
  cross-validated settings (:data:`PRESETS`, :func:`preset_settings`);
  :func:`match_files` and :func:`read_pairs`: many pairs from files to files
  (``skcorr match``).
* :func:`align` and :class:`Flow`: pairwise alignment, warping, point transfer, per-pixel
  flow fields, sparse matches; :func:`consistency`: forward-backward consistency of two
  flows (a flow's confidence).
* :class:`FlowAligner`: the estimator that transfers keypoints from neighbours.
* :func:`dual_layer_bp` (the default solver: SIFT Flow's dual-layer decomposition of the
  same energy), :func:`min_sum_bp` (2-D messages), :func:`coarse_to_fine_bp`,
  :func:`distance_transform_1d`, :func:`distance_transform_2d`, :func:`data_cost`,
  :func:`data_cost_window`: the numba min-sum belief propagation and its kernels, with
  the label-set offsets :func:`absolute_offsets` and :func:`window_offsets`.
* :func:`write_flo`, :func:`read_flo` (Middlebury ``.flo``), :func:`write_flow` and
  :func:`read_flow` (``.flo`` or ``.npy`` by extension): flow fields in files.
* :func:`target_prices`: optimal-transport prices of target nodes (``align(ot_reg=...)``).
"""

from ._align import Flow, align
from ._aligner import FlowAligner
from ._bp import (
    BPResult,
    absolute_offsets,
    bp_energy,
    coarse_to_fine_bp,
    dual_layer_bp,
    min_sum_bp,
    window_offsets,
)
from ._fields import consistency
from ._files import read_flo, read_flow, write_flo, write_flow
from ._kernels import data_cost, data_cost_window, distance_transform_1d, distance_transform_2d
from ._match import match, match_files, read_pairs
from ._presets import PRESETS, preset_settings
from ._transport import target_prices

__all__ = [
    "PRESETS",
    "BPResult",
    "Flow",
    "FlowAligner",
    "absolute_offsets",
    "align",
    "bp_energy",
    "coarse_to_fine_bp",
    "consistency",
    "data_cost",
    "data_cost_window",
    "distance_transform_1d",
    "distance_transform_2d",
    "dual_layer_bp",
    "match",
    "match_files",
    "min_sum_bp",
    "preset_settings",
    "read_flo",
    "read_flow",
    "read_pairs",
    "target_prices",
    "window_offsets",
    "write_flo",
    "write_flow",
]
