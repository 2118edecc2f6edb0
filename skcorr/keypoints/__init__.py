"""Keypoint classification and prediction (the paper's Studies 3 and 4): estimators.

* :class:`KeypointClassifier`: the label of a keypoint from the column at it.
* :func:`localization_histogram`: how precisely such a classifier localises.
* :class:`SlidingKeypointDetector`: per-type sliding-window SVMs in box crops.
* :class:`GaussianNNPrior`: a Gaussian at the nearest training crop's keypoint.

The studies on CUB-200-2011 are in :mod:`skcorr.evaluation`, the plot of a
localization histogram in :mod:`skcorr.visualize`.
"""

from ._classifier import KeypointClassifier
from ._detector import SlidingKeypointDetector
from ._precision import localization_histogram
from ._prior import GaussianNNPrior

__all__ = [
    "GaussianNNPrior",
    "KeypointClassifier",
    "SlidingKeypointDetector",
    "localization_histogram",
]

_MOVED = {"evaluate_cub_classification": "skcorr.evaluation",
          "evaluate_cub_detection": "skcorr.evaluation",
          "plot_localization_histogram": "skcorr.visualize"}


def __getattr__(name: str):
    if name in _MOVED:
        raise AttributeError(f"skcorr.keypoints.{name} moved: import it from {_MOVED[name]}.")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
