"""Data sets: loaders of the public benchmarks, fetchers, synthetic pairs and crops.

Every loader returns a :class:`sklearn.utils.Bunch` with the same fields: ``images``
(file paths, read lazily), ``keypoints`` ``(n, K, 2)`` (x, y; 0-based; NaN where absent
or not visible), ``keypoint_names``, ``boxes`` ``(n, 4)`` (x, y, width, height),
``labels`` / ``class_names`` where meaningful, ``split`` and ``pairs`` ``(m, 2)``
(source, target) where the data set defines them, and ``DESCR``.

:func:`read_annotations` reads keypoints of your own images from a CSV or JSON file
(the same ``images``, ``keypoint_names`` and ``keypoints``); :func:`write_keypoints_csv`
writes them in the same CSV format.
"""

from ._annotations import read_annotations, write_keypoints_csv
from ._crops import crop_to_boxes, uncrop_keypoints
from ._cub import load_cub
from ._fetch import fetch_cub, fetch_pf_willow, get_data_home
from ._pascal import load_pascal_keypoints
from ._pf import load_pf_pascal, load_pf_willow
from ._spair import load_spair71k
from ._synthetic import load_sample_pairs, make_affine_category, make_warped_pairs

__all__ = [
    "crop_to_boxes",
    "fetch_cub",
    "fetch_pf_willow",
    "get_data_home",
    "load_cub",
    "load_pascal_keypoints",
    "load_pf_pascal",
    "load_pf_willow",
    "load_sample_pairs",
    "load_spair71k",
    "make_affine_category",
    "make_warped_pairs",
    "read_annotations",
    "uncrop_keypoints",
    "write_keypoints_csv",
]
