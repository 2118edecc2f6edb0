"""skcorr: dense correspondence, keypoint transfer and part localisation from convnet
features, with the scikit-learn API.

The estimators and transformers are exported here lazily: ``import skcorr`` does not
import torch, which is imported when one of them is first used (``skcorr.FlowAligner``,
``from skcorr import ConvColumnExtractor``), so that ``skcorr --help`` starts fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_exports

__version__ = "0.1.0.dev0"

__getattr__, __dir__, _exported = lazy_exports(__name__, {
    ".features": ("ConvColumnExtractor", "DenseSIFT", "FeatureMap", "keypoint_samples"),
    ".flow": ("FlowAligner", "PairTransfer", "match"),
    ".keypoints": ("GaussianNNPrior", "KeypointClassifier", "SlidingKeypointDetector"),
    "._show_versions": ("show_versions",),
}, submodules=("backbones", "columns", "datasets", "evaluation", "features", "flow",
               "keypoints", "metrics", "receptive", "visualize"))

__all__ = [  # the names above, listed for static tools (a test checks they agree)
    "ConvColumnExtractor", "DenseSIFT", "FeatureMap", "FlowAligner", "GaussianNNPrior",
    "KeypointClassifier", "PairTransfer", "SlidingKeypointDetector", "__version__",
    "keypoint_samples", "match", "show_versions",
]

if TYPE_CHECKING:  # pragma: no cover - what static type checkers and IDEs see
    from ._show_versions import show_versions
    from .features import ConvColumnExtractor, DenseSIFT, FeatureMap, keypoint_samples
    from .flow import FlowAligner, PairTransfer, match
    from .keypoints import GaussianNNPrior, KeypointClassifier, SlidingKeypointDetector
