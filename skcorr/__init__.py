"""skcorr: dense correspondence, keypoint transfer and part localisation from convnet
features, with the scikit-learn API."""

from .features import ConvColumnExtractor, FeatureMap, keypoint_samples

__version__ = "0.1.0.dev0"

__all__ = ["ConvColumnExtractor", "FeatureMap", "keypoint_samples", "__version__"]
