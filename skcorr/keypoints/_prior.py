"""The nearest-neighbour Gaussian prior on keypoint locations (the paper's Study 4)."""

from __future__ import annotations

import numbers
import os

import numpy as np
from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils._param_validation import HasMethods, Interval
from sklearn.utils.validation import check_is_fitted

from .._array import l2_normalize
from ..features import ConvColumnExtractor
from ._base import FeaturesMixin
from ._crops import CropKeypointsMixin, check_crops_keypoints, crop_shapes

__all__ = ["GaussianNNPrior"]


class GaussianNNPrior(FeaturesMixin, CropKeypointsMixin, BaseEstimator):
    """A spherical Gaussian at the keypoint of the most similar training crop.

    For a test crop, the training crop of highest cosine similarity of global
    features (``pool5`` by default) is found, separately for each keypoint type among
    the training crops where that type is present; the prior of the type is a
    spherical Gaussian of standard deviation ``sigma`` centred at that crop's
    keypoint, transferred to the test crop in relative coordinates (a keypoint at
    30% of the width of its crop lands at 30% of the width of the test crop).

    Used alone, :meth:`predict` is the nearest-neighbour keypoint transfer; inside
    :class:`~skcorr.SlidingKeypointDetector` (``prior=``) its
    :meth:`log_density` is combined with the detector's scores.

    Parameters
    ----------
    features : transformer, default=None
        A feature transformer with ``extract_global`` (one vector per image). Cloned in
        ``fit``. ``None`` means ``ConvColumnExtractor(layer="pool5", mode="global")``.
    sigma : float, default=22.0
        Standard deviation of the Gaussian, in pixels of the crops it is given (inside
        a detector: of the ``box_size x box_size`` frame). Must be > 0. It may change
        after ``fit`` (it is read, and validated again, by :meth:`log_density`);
        ``features`` takes effect at the next ``fit``.
    memory : None, str or joblib.Memory, default=None
        Feature cache given to ``features`` (unless it has its own): in a grid
        search each image's features are then computed once.

    Attributes
    ----------
    features_ : transformer
        The fitted clone of ``features``.
    train_features_ : ndarray of shape (n_train, n_features)
        L2-normalised global features of the training crops.
    train_keypoints_ : ndarray of shape (n_train, K, 2)
        Training keypoints in relative coordinates: ``((x + 0.5) / w, (y + 0.5) / h)``,
        NaN where absent.

    References
    ----------
    .. [1] J. Long, N. Zhang, T. Darrell. Do Convnets Learn Correspondence? NIPS 2014.
       https://arxiv.org/abs/1411.1091

    Examples
    --------
    >>> import numpy as np
    >>> from skcorr import DenseSIFT, GaussianNNPrior
    >>> rng = np.random.default_rng(0)
    >>> crops = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(3)]
    >>> keypoints = np.array([[[10.0, 10.0]], [[30.0, 30.0]], [[50.0, 50.0]]])
    >>> prior = GaussianNNPrior(features=DenseSIFT(mode="global"), sigma=5.0)
    >>> prior.fit(crops, keypoints).predict(crops[1:2]).tolist()
    [[[30.0, 30.0]]]
    """

    _parameter_constraints: dict = {
        "features": [HasMethods(["fit", "extract_global"]), None],
        "sigma": [Interval(numbers.Real, 0, None, closed="neither")],
        "memory": [None, str, os.PathLike, HasMethods(["cache"])],
    }

    def __init__(self, *, features=None, sigma=22.0, memory=None):
        self.features = features
        self.sigma = sigma
        self.memory = memory

    @_fit_context(prefer_skip_nested_validation=False)  # features is an estimator
    def fit(self, crops, keypoints):
        """Store the global features and relative keypoints of the training crops.

        Parameters
        ----------
        crops : sequence of images
            Training crops, as ``(H, W, 3)`` uint8 arrays or file paths.
        keypoints : array-like of shape (n_crops, K, 2)
            ``(x, y)`` in crop pixels, NaN where absent.

        Returns
        -------
        self : GaussianNNPrior
            The fitted estimator.
        """
        crops, keypoints = check_crops_keypoints(crops, keypoints, fit=True)
        self._validate_features(ConvColumnExtractor(layer="pool5", mode="global")).fit()
        self.train_features_ = l2_normalize(self.features_.extract_global(crops))
        sizes = np.array([(w, h) for h, w in crop_shapes(crops)], dtype=np.float64)
        self.train_keypoints_ = (keypoints + 0.5) / sizes[:, None, :]
        self.n_keypoint_types_ = keypoints.shape[1]
        return self

    def neighbors(self, crops):
        """Per test crop and keypoint type, the index of the nearest training crop.

        The nearest by cosine similarity among training crops where the type is
        present.

        Parameters
        ----------
        crops : sequence of images
            Test crops, as ``(H, W, 3)`` uint8 arrays or file paths.

        Returns
        -------
        index : ndarray of shape (n_crops, K), int
            Index of the nearest training crop per crop and keypoint type; -1 where no
            training crop has the type.
        """
        check_is_fitted(self)
        test = l2_normalize(self.features_.extract_global(crops))
        similarity = test @ self.train_features_.T  # (n_test, n_train)
        present = ~np.isnan(self.train_keypoints_).any(axis=2)  # (n_train, K)
        masked = np.where(present.T[None, :, :], similarity[:, None, :], -np.inf)
        index = masked.argmax(axis=2)
        index[:, ~present.any(axis=0)] = -1
        return index

    def predict(self, crops):
        """The neighbour's keypoints transferred to each crop: (n_crops, K, 2), NaN if none.

        Parameters
        ----------
        crops : sequence of images
            Test crops, as ``(H, W, 3)`` uint8 arrays or file paths.

        Returns
        -------
        keypoints : ndarray of shape (n_crops, K, 2)
            ``(x, y)`` in each crop's pixels, at the same relative position as in the
            nearest training crop; NaN for types no training crop has.
        """
        check_is_fitted(self)
        return self._transfer(crops, self.neighbors(crops))

    def _transfer(self, crops, index):
        sizes = np.array([(w, h) for h, w in crop_shapes(crops)], dtype=np.float64)
        relative = self.train_keypoints_[np.maximum(index, 0), np.arange(index.shape[1])]
        relative[index < 0] = np.nan
        return relative * sizes[:, None, :] - 0.5

    def log_density(self, crops, xs, ys):
        """Log of the (unnormalised) Gaussian prior on a grid of candidate locations.

        Parameters
        ----------
        crops : sequence of images, length n
            Test crops, as ``(H, W, 3)`` uint8 arrays or file paths.
        xs : array-like of shape (cols,)
            The x of the candidate grid's columns, in crop pixels.
        ys : array-like of shape (rows,)
            The y of its rows.

        Returns
        -------
        log_prior : ndarray of shape (n, K, rows, cols)
            ``-||p - mu||^2 / (2 sigma^2)`` (0 at the centre ``mu``); 0 everywhere for a
            type no training crop has (a flat prior).
        """
        check_is_fitted(self)
        self._validate_params()  # sigma may have changed after fit
        centres = self.predict(crops)
        return self._log_density(centres, np.asarray(xs, float), np.asarray(ys, float))

    def _log_density(self, centres, xs, ys):
        dx = xs[None, None, None, :] - centres[:, :, 0, None, None]
        dy = ys[None, None, :, None] - centres[:, :, 1, None, None]
        log_prior = -(dx**2 + dy**2) / (2.0 * self.sigma**2)
        return np.nan_to_num(log_prior, nan=0.0)


