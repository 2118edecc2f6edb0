"""skcorr: dense correspondence, keypoint transfer and part localisation from convnet
features, with the scikit-learn API."""

from .features import ConvColumnExtractor, DenseSIFT, FeatureMap, keypoint_samples
from .flow import FlowAligner

__version__ = "0.1.0.dev0"

__all__ = [
    "ConvColumnExtractor",
    "DenseSIFT",
    "FeatureMap",
    "FlowAligner",
    "__version__",
    "keypoint_samples",
]
