"""FlowAligner: keypoint transfer from retrieved neighbours aligned by the flow MRF."""

from __future__ import annotations

import numbers
import os

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, _fit_context, clone
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from .._array import l2_normalize
from .._image import check_images
from .._validation import (
    FLOW_SETTING_CONSTRAINTS,
    check_image_keypoints,
    flow_settings,
    pass_memory,
)
from ..features import ConvColumnExtractor
from ..metrics import pck_score
from ._align import align

__all__ = ["FlowAligner"]


class FlowAligner(BaseEstimator):
    """Predict keypoints by aligning each image with its nearest annotated neighbours.

    For every image to predict (Long et al. 2014, Study 2): retrieve its
    ``n_neighbors`` nearest training images by cosine similarity of a global feature;
    align each neighbour to it with the flow MRF (:func:`skcorr.flow.align`, the flow
    living on the neighbour's grid); order the neighbours by deformation energy
    (smallest first) or by data energy; transfer the keypoints of the ``n_top`` first
    and predict each keypoint as their coordinate-wise median.

    Parameters
    ----------
    features : transformer, default=None
        Dense features for the flow: a ConvColumnExtractor or DenseSIFT (cloned in fit).
        ``None`` means ``ConvColumnExtractor(layer="conv5", image_size=320)``: for the
        default backbone its conv5 role (stride 16) aligned PF-WILLOW better than its
        conv4 role (RESULTS.md); with AlexNet pass ``layer="conv4"`` as the paper.
    retrieval : transformer, default=None
        Global features for retrieving neighbours; ``None`` means
        ``ConvColumnExtractor(layer="fc7", mode="global", image_size=224)``. The same
        neighbours serve every choice of ``features``.
    lam : float, default=0.1
        Smoothness weight per squared grid step. 0 is plain nearest-neighbour matching.
    n_neighbors : int, default=25
    n_top : int, default=5
    ordering : {"deformation", "data"}, default="deformation"
    radius : int or None, default=None
        Label set: every target grid position (None) or a window of this radius.
    levels : int, default=2
        Coarse-to-fine levels of belief propagation.
    max_iter : int, default=50
        Belief-propagation iterations at most.
    truncation : float or None, default=None
        Per-axis truncation of the smoothness, in grid steps (None: plain quadratic).
    ot_reg : float or None, default=None
        Optimal-transport prices of the target nodes, with this regularisation (None: no
        prices).
    subcell : bool, default=False
        Refine every match between grid nodes. These three are as in
        :func:`skcorr.flow.align`.
    n_jobs : int or None, default=None
        joblib workers over the images to predict (``None``: one, unless a
        :func:`joblib.parallel_config` context says otherwise; ``-1``: all cores). Work
        goes through joblib, so ``with joblib.parallel_config(backend="dask"):`` spreads
        it over a dask cluster. Predictions do not depend on it.
    verbose : bool, default=False
        Show a progress bar over the images to predict.
    memory : None, str or joblib.Memory, default=None
        Feature cache given to ``features`` and ``retrieval`` (unless they have their
        own): in a grid search over ``lam`` or ``n_top`` each image's features are then
        computed once.

    ``features`` and ``retrieval`` take effect at the next ``fit`` (the training
    features are computed there); every other parameter is read by ``predict`` and may
    change after ``fit`` (``set_params(lam=...)``), and is validated again there.

    Attributes
    ----------
    features_, retrieval_ : fitted transformers
    train_maps_ : list of FeatureMap
        Dense features of the training images, computed once in fit.
    train_global_ : ndarray of shape (n_train, d)
    keypoints_ : ndarray of shape (n_train, K, 2)

    Examples
    --------
    >>> from skcorr import ConvColumnExtractor, FlowAligner
    >>> from skcorr.datasets import make_warped_pairs
    >>> pairs = make_warped_pairs(2, image_size=128, random_state=0)
    >>> src, tgt = pairs.pairs[0]
    >>> aligner = FlowAligner(features=ConvColumnExtractor(layer="conv4"), n_neighbors=1,
    ...                       n_top=1).fit([pairs.images[src]], pairs.keypoints[[src]])
    >>> aligner.predict([pairs.images[tgt]]).shape
    (1, 10, 2)
    """

    _parameter_constraints: dict = {
        "features": [HasMethods(["fit", "extract_dense"]), None],
        "retrieval": [HasMethods(["fit", "extract_global"]), None],
        **FLOW_SETTING_CONSTRAINTS,
        "n_neighbors": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_top": [Interval(numbers.Integral, 1, None, closed="left")],
        "ordering": [StrOptions({"deformation", "data"})],
        "n_jobs": [numbers.Integral, None],
        "verbose": ["boolean"],
        "memory": [None, str, os.PathLike, HasMethods(["cache"])],
    }

    def __init__(self, *, features=None, retrieval=None, lam=0.1, n_neighbors=25, n_top=5,
                 ordering="deformation", radius=None, levels=2, max_iter=50,
                 truncation=None, ot_reg=None, subcell=False, n_jobs=None, verbose=False,
                 memory=None):
        self.features = features
        self.retrieval = retrieval
        self.lam = lam
        self.n_neighbors = n_neighbors
        self.n_top = n_top
        self.ordering = ordering
        self.radius = radius
        self.levels = levels
        self.max_iter = max_iter
        self.truncation = truncation
        self.ot_reg = ot_reg
        self.subcell = subcell
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.memory = memory

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y):
        """Keep the training images' features and keypoints.

        Parameters
        ----------
        X : sequence of images
            Training images, as ``(H, W, 3)`` uint8 arrays or file paths.
        y : array-like of shape (n_images, K, 2)
            Keypoints (x, y), NaN where absent.

        Returns
        -------
        self : FlowAligner
            The fitted estimator.
        """
        images = check_images(X, name="X")
        keypoints = _check_keypoints(y, images, fit=True)
        _check_counts(self, len(images))
        features = (self.features if self.features is not None
                    else ConvColumnExtractor(layer="conv5", image_size=320))
        retrieval = (self.retrieval if self.retrieval is not None
                     else ConvColumnExtractor(layer="fc7", mode="global", image_size=224))
        self.features_ = pass_memory(clone(features), self.memory).fit()
        self.retrieval_ = pass_memory(clone(retrieval), self.memory).fit()
        self.train_maps_ = self.features_.extract_dense(images)
        self.train_global_ = l2_normalize(self.retrieval_.extract_global(images))
        self.keypoints_ = keypoints
        return self

    def neighbors(self, X) -> np.ndarray:
        """Indices of the ``n_neighbors`` nearest training images of each image, nearest first.

        Parameters
        ----------
        X : sequence of images
            Query images, as ``(H, W, 3)`` uint8 arrays or file paths.

        Returns
        -------
        indices : ndarray of shape (n_images, n_neighbors), int
            Indices into the training images, by decreasing cosine similarity of the
            retrieval features.
        """
        check_is_fitted(self)
        self._validate_params()  # the settings predict reads may have changed after fit
        _check_counts(self, len(self.keypoints_))
        query = l2_normalize(self.retrieval_.extract_global(check_images(X, name="X")))
        similarity = query @ self.train_global_.T
        return np.argsort(-similarity, axis=1, kind="stable")[:, :self.n_neighbors]

    def align(self, source_map, target_map):
        """The flow from one feature map to another with this aligner's settings.

        Parameters
        ----------
        source_map : FeatureMap
            Dense features of the source image; the flow lives on its grid.
        target_map : FeatureMap
            Dense features of the target image.

        Returns
        -------
        Flow
            The flow from source to target (see :func:`skcorr.flow.align`).
        """
        return align(source_map, target_map, **flow_settings(self))

    def predict(self, X) -> np.ndarray:
        """Keypoints (n_images, K, 2) transferred from the best-aligned neighbours.

        Parameters
        ----------
        X : sequence of images
            Images to predict, as ``(H, W, 3)`` uint8 arrays or file paths.

        Returns
        -------
        keypoints : ndarray of shape (n_images, K, 2)
            Predicted ``(x, y)`` pixels: the coordinate-wise median over the ``n_top``
            neighbours' transferred keypoints; NaN where no such neighbour has the
            keypoint.
        """
        check_is_fitted(self)
        images = check_images(X, name="X")
        neighbors = self.neighbors(images)
        maps = self.features_.extract_dense(images)
        settings = flow_settings(self)
        # One task per image to predict, carrying only its neighbours' maps.
        tasks = (delayed(_transfer_from_neighbours)(
            maps[i], [self.train_maps_[j] for j in neighbors[i]], self.keypoints_[neighbors[i]],
            settings, self.ordering, self.n_top) for i in range(len(images)))
        results = Parallel(n_jobs=self.n_jobs, prefer="threads", return_as="generator")(tasks)
        return np.stack(list(tqdm(results, total=len(images), desc="aligning",
                                  disable=not self.verbose)))

    def score(self, X, y, bbox=None) -> float:
        """``PCK@0.1`` of the predictions (see :func:`skcorr.metrics.pck_score`).

        Parameters
        ----------
        X : sequence of images
            Images, as ``(H, W, 3)`` uint8 arrays or file paths.
        y : array-like of shape (n_images, K, 2)
            True keypoints (x, y), NaN where absent.
        bbox : array-like of shape (n_images, 4), default=None
            Object boxes ``(x, y, width, height)`` of the images; ``None`` uses the
            bounding box of each image's true keypoints.

        Returns
        -------
        score : float
            PCK in ``[0, 1]``, averaged over keypoint types.
        """
        y = _check_keypoints(y, check_images(X, name="X"))
        return pck_score(y, self.predict(X), alpha=0.1, bbox=bbox)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.target_tags.required = True
        return tags


def _check_keypoints(y, images, *, fit: bool = False) -> np.ndarray:
    """skcorr's one keypoint rule (:func:`skcorr._validation.check_image_keypoints`)."""
    if y is None:
        raise ValueError("FlowAligner needs the keypoints y of shape (n_images, K, 2).")
    return check_image_keypoints(images, y, name="y", images_name="X", fit=fit)


def _check_counts(aligner, n_train: int) -> None:
    if aligner.n_top > aligner.n_neighbors:
        raise ValueError(f"n_top={aligner.n_top} is larger than n_neighbors="
                         f"{aligner.n_neighbors}; choose n_top <= n_neighbors.")
    if aligner.n_neighbors > n_train:
        raise ValueError(f"n_neighbors={aligner.n_neighbors} but only {n_train} training "
                         "images; lower n_neighbors or add images.")


def _transfer_from_neighbours(target_map, neighbour_maps, neighbour_keypoints, settings,
                              ordering, n_top) -> np.ndarray:
    """Align each neighbour to the target; median of the best ``n_top`` transfers (K, 2)."""
    flows = [align(source, target_map, **settings) for source in neighbour_maps]
    key = [f.deformation if ordering == "deformation" else f.data_energy for f in flows]
    order = np.argsort(key, kind="stable")[:n_top]
    return _nanmedian(np.stack([flows[k].transfer_points(neighbour_keypoints[k])
                                for k in order]))


def _nanmedian(stack: np.ndarray) -> np.ndarray:
    """Median over axis 0 ignoring NaN; NaN where every value is NaN (no warning)."""
    present = ~np.isnan(stack).all(axis=0)
    out = np.full(stack.shape[1:], np.nan)
    if present.any():
        out[present] = np.nanmedian(stack[:, present], axis=0)
    return out
