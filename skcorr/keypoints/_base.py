"""What the keypoint estimators share: their feature transformer, cloned before it is fitted."""

from __future__ import annotations

from sklearn.base import clone

from .._validation import pass_memory

__all__ = ["FeaturesMixin"]


class FeaturesMixin:
    """For estimators with a ``features`` transformer and a ``memory`` parameter."""

    def _validate_features(self, default):
        """Set ``features_`` to an unfitted clone of ``features`` (``default`` if None).

        As :meth:`sklearn.ensemble.BaseEnsemble._validate_estimator`: the user's
        transformer is never fitted or changed. The clone gets ``memory`` unless it has a
        cache of its own. Returns ``features_``, for the caller to fit.
        """
        features = default if self.features is None else self.features
        self.features_ = pass_memory(clone(features), self.memory)
        return self.features_
