"""skcorr: dense correspondence, keypoint transfer and part localisation from convnet
features, with the scikit-learn API."""

from .features import ConvColumnExtractor, DenseSIFT, FeatureMap, keypoint_samples
from .flow import FlowAligner
from .keypoints import GaussianNNPrior, KeypointClassifier, SlidingKeypointDetector

__version__ = "0.1.0.dev0"

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
]
