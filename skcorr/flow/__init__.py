"""Flow alignment: the SIFT-flow-style MRF on feature grids, solved by belief propagation.

* :func:`match`: two images (arrays or files) to a :class:`Flow`, with the best
  cross-validated settings (:data:`PRESETS`, :func:`preset_settings`);
  :func:`match_files` and :func:`read_pairs`: many pairs from files to files
  (``skcorr match``).
* :func:`align` and :class:`Flow`: pairwise alignment, warping, point transfer, per-pixel
  flow fields, sparse matches; :func:`consistency`: forward-backward consistency of two
  flows (a flow's confidence).
* :class:`FlowAligner`: keypoints transferred from retrieved, aligned neighbours;
  :class:`PairTransfer`: keypoints transferred between given pairs of images;
  :func:`transfer_files`: keypoints from annotated image files to new ones
  (``skcorr transfer``).
* :func:`write_flo`, :func:`read_flo` (Middlebury ``.flo``), :func:`write_flow` and
  :func:`read_flow` (``.flo`` or ``.npy`` by extension): flow fields in files.

The MRF's solvers (costs and label grids, dual-layer and 2-D belief propagation,
coarse-to-fine, transport prices) are private, in :mod:`skcorr.flow._mrf`.
"""

from .._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "._align": ("Flow", "align"),
    "._estimators": ("FlowAligner", "PairTransfer"),
    "._fields": ("consistency",),
    "._files": ("read_flo", "read_flow", "write_flo", "write_flow"),
    "._match": ("match", "match_files", "read_pairs"),
    "._presets": ("PRESETS", "preset_settings"),
    "._settings": ("check_flow_settings",),
    "._transfer_files": ("transfer_files",),
})
