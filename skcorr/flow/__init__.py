"""Flow alignment: the SIFT-flow-style MRF on feature grids, solved by belief propagation.

* :func:`align` and :class:`Flow`: pairwise alignment, warping, point transfer.
* :class:`FlowAligner`: keypoints transferred from retrieved, aligned neighbours.
* :class:`PairTransfer`: keypoints transferred between given pairs of images.

The MRF's solvers (costs and label grids, dual-layer and 2-D belief propagation,
coarse-to-fine, transport prices) are private, in :mod:`skcorr.flow._mrf`.
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "._align": ("Flow", "align"),
    "._estimators": ("FlowAligner", "PairTransfer"),
})

if TYPE_CHECKING:  # pragma: no cover - what static type checkers and IDEs see
    from ._align import Flow, align
    from ._estimators import FlowAligner, PairTransfer
