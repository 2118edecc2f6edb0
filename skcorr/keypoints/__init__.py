"""Keypoint classification and prediction (the paper's Studies 3 and 4).

* :class:`KeypointClassifier`: the label of a keypoint from the column at it.
* :func:`localization_histogram`: how precisely such a classifier localises.
* :class:`SlidingKeypointDetector`: per-type sliding-window SVMs in box crops.
* :class:`GaussianNNPrior`: a Gaussian at the nearest training crop's keypoint.
* :func:`evaluate_cub_classification`, :func:`evaluate_cub_detection`: the studies on
  CUB-200-2011.
"""

from ._classifier import KeypointClassifier
from ._detector import SlidingKeypointDetector
from ._evaluate import evaluate_cub_classification, evaluate_cub_detection
from ._precision import localization_histogram, plot_localization_histogram
from ._prior import GaussianNNPrior

__all__ = [
    "GaussianNNPrior",
    "KeypointClassifier",
    "SlidingKeypointDetector",
    "evaluate_cub_classification",
    "evaluate_cub_detection",
    "localization_histogram",
    "plot_localization_histogram",
]
