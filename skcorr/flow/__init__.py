"""Flow alignment: the SIFT-flow-style MRF on feature grids, solved by belief propagation.

* :func:`align` and :class:`Flow`: pairwise alignment, warping, point transfer.
* :class:`FlowAligner`: the estimator that transfers keypoints from neighbours.
* :func:`min_sum_bp`, :func:`coarse_to_fine_bp`, :func:`distance_transform_1d`,
  :func:`distance_transform_2d`, :func:`data_cost`: the numba distance transform and
  the min-sum belief propagation they run on, with the label-set offsets
  :func:`absolute_offsets` and :func:`window_offsets`.
"""

from ._align import Flow, align
from ._aligner import FlowAligner
from ._bp import (
    BPResult,
    absolute_offsets,
    bp_energy,
    coarse_to_fine_bp,
    min_sum_bp,
    window_offsets,
)
from ._kernels import data_cost, distance_transform_1d, distance_transform_2d

__all__ = [
    "BPResult",
    "Flow",
    "FlowAligner",
    "absolute_offsets",
    "align",
    "bp_energy",
    "coarse_to_fine_bp",
    "data_cost",
    "distance_transform_1d",
    "distance_transform_2d",
    "min_sum_bp",
    "window_offsets",
]
