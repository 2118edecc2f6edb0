"""skcorr: dense correspondence, keypoint transfer and part localisation from convnet
features, with the scikit-learn API.

The estimators and transformers are exported here lazily: ``import skcorr`` does not
import torch, which is imported when one of them is first used (``skcorr.FlowAligner``,
``from skcorr import ConvColumnExtractor``), so that ``skcorr --help`` starts fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0.dev0"

# Public name -> the sub-module that defines it.
_LAZY_EXPORTS = {
    "ConvColumnExtractor": ".features",
    "DenseSIFT": ".features",
    "FeatureMap": ".features",
    "keypoint_samples": ".features",
    "FlowAligner": ".flow",
    "match": ".flow",
    "GaussianNNPrior": ".keypoints",
    "KeypointClassifier": ".keypoints",
    "SlidingKeypointDetector": ".keypoints",
    "show_versions": "._show_versions",
}

__all__ = [
    "ConvColumnExtractor",
    "DenseSIFT",
    "FeatureMap",
    "FlowAligner",
    "GaussianNNPrior",
    "KeypointClassifier",
    "SlidingKeypointDetector",
    "__version__",
    "keypoint_samples",
    "match",
    "show_versions",
]

if TYPE_CHECKING:  # pragma: no cover - what static type checkers and IDEs see
    from ._show_versions import show_versions
    from .features import ConvColumnExtractor, DenseSIFT, FeatureMap, keypoint_samples
    from .flow import FlowAligner, match
    from .keypoints import GaussianNNPrior, KeypointClassifier, SlidingKeypointDetector


# Sub-packages reachable as attributes after a plain ``import skcorr`` (skcorr.flow.align).
_SUBMODULES = ("backbones", "columns", "datasets", "evaluation", "features", "flow",
               "keypoints", "metrics", "receptive", "visualize")


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    module = _LAZY_EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'skcorr' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_EXPORTS) | set(_SUBMODULES))
