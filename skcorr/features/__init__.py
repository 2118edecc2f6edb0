"""Feature transformers: convnet columns and dense SIFT, with one output convention."""

from ._base import MAX_IMAGE_SIZE as MAX_IMAGE_SIZE  # image_size's bound, for the protocols
from ._base import FeatureMap, FeatureTransformer, keypoint_samples, split_keypoint_samples
from ._conv import ConvColumnExtractor
from ._sift import DenseSIFT

__all__ = [
    "ConvColumnExtractor",
    "DenseSIFT",
    "FeatureMap",
    "FeatureTransformer",
    "keypoint_samples",
    "split_keypoint_samples",
]
