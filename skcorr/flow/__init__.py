"""Flow alignment: the SIFT-flow-style MRF on feature grids, solved by belief propagation.

* :func:`align` and :class:`Flow`: pairwise alignment, warping, point transfer.
* :class:`FlowAligner`: the estimator that transfers keypoints from neighbours.
* :mod:`skcorr.flow._kernels` and :mod:`skcorr.flow._bp`: the numba distance transform
  and the min-sum belief propagation they run on.
"""

from ._align import Flow, align
from ._aligner import FlowAligner
from ._bp import BPResult, coarse_to_fine_bp, min_sum_bp
from ._kernels import data_cost, distance_transform_1d, distance_transform_2d

__all__ = [
    "BPResult",
    "Flow",
    "FlowAligner",
    "align",
    "coarse_to_fine_bp",
    "data_cost",
    "distance_transform_1d",
    "distance_transform_2d",
    "min_sum_bp",
]
