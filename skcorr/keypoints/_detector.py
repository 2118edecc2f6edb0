"""Sliding-window part detectors with hard negative mining (the paper's Study 4)."""

from __future__ import annotations

import numbers
import os
import sys
import warnings
from dataclasses import dataclass

import numpy as np
from joblib import delayed
from sklearn.base import BaseEstimator, _fit_context, clone
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC
from sklearn.utils import Bunch, check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from .._geometry import rescale_points, resize
from .._image import as_rgb, check_images
from .._parallel import parallel
from .._validation import N_JOBS_CONSTRAINT, pass_memory
from ..features import ConvColumnExtractor
from ._base import FeaturesMixin
from ._crops import CropKeypointsMixin, check_crops_keypoints

__all__ = ["SlidingKeypointDetector"]

_CHUNK = 32  # crops per batch of feature extraction and scoring


class SlidingKeypointDetector(FeaturesMixin, CropKeypointsMixin, BaseEstimator):
    """One linear SVM per keypoint type, slid over the dense feature grid of a box crop.

    Each input crop (an object's box, e.g. from
    :func:`~skcorr.datasets.crop_to_boxes`) is rescaled to ``box_size x box_size``
    pixels; ``features`` gives a dense grid of columns on it. The descriptor of a cell
    is the concatenation of the columns of the ``neighborhood x neighborhood`` cells
    around it (zeros beyond the grid's border). Per keypoint type a
    :class:`~sklearn.svm.LinearSVC` is trained with hard negative mining, and a
    keypoint is predicted at the receptive-field (RF) centre of the highest-scoring
    cell, mapped back to the input crop's pixels.

    Training samples of a type, in each crop where the type is present:

    * positives: the ``n_positives`` cells whose RF centres are nearest (Euclidean) to
      the keypoint, among those within ``positive_radius`` (at least the nearest one);
    * negatives: cells whose centre lies outside the square of half-side
      ``negative_radius`` around the keypoint (the paper's "RF does not contain the
      keypoint" when ``negative_radius`` is half the descriptor's RF). Cells between
      the two radii are not used.

    Mining starts from a random ``cache_size // 2`` negatives, which stay for good;
    each of ``mining_rounds`` rounds scores every negative cell of the training crops,
    adds those inside the margin (score > -1), keeps the highest scoring of the mined
    ones so that the cache holds at most ``cache_size``, then retrains. It stops early when no new
    negative violates the margin.

    **Combination with the prior.** Raw SVM scores have no common scale with a
    log-prior, so each type's scores are calibrated by Platt scaling: a logistic
    regression ``p = sigmoid(a s + b)`` fitted on the final training set (positives
    and cached negatives). The final score of a cell is the product of experts
    ``(1 - beta) * log p_det + beta * log prior`` with ``log prior = -d^2 / (2
    sigma^2)`` from :meth:`GaussianNNPrior.log_density`. ``beta = 0`` is exactly the
    detector (the raw scores' argmax; the calibration is monotone), ``beta = 1``
    exactly the prior (the cell nearest to the neighbour's keypoint).

    Parameters
    ----------
    features : transformer, default=None
        A feature transformer with ``extract_dense`` (one
        :class:`~skcorr.features.FeatureMap` per image). Cloned in ``fit``. ``None``
        means ``ConvColumnExtractor(layer="conv5", mode="dense")``.
    box_size : int, default=224
        Side in pixels of the square every crop is rescaled to.
    neighborhood : int, default=3
        Odd side of the neighbourhood of cells whose columns form a descriptor.
    C : float, default=0.1
        Regularisation of the SVMs.
    n_positives : int, default=10
        Positives per keypoint and crop.
    positive_radius : "auto" or float, default="auto"
        Largest distance of a positive cell's centre to the keypoint, in pixels of the
        box frame. ``"auto"``: two bins for dense SIFT (the feature map's ``bin_size``;
        the paper's "within 2 bins"), no limit otherwise (the ``n_positives`` nearest cells).
    negative_radius : "auto" or float, default="auto"
        Half-side, in pixels of the box frame, of the square around the keypoint
        where no negative is taken. ``"auto"``: four bins for dense SIFT (the paper's "at
        least 4 bins away"); otherwise half the descriptor's RF
        (``rf_size + (neighborhood - 1) * stride``), capped at ``box_size / 8``.
        The cap is needed for modern networks whose theoretical RF exceeds the box
        (EfficientNet-Lite0's stage5: 339 px), where the uncapped rule leaves no
        negatives; ``box_size / 8`` lies just beyond the ``PCK@0.1`` threshold.
    mining_rounds : int, default=3
        Rounds of hard negative mining after the first training.
    cache_size : int, default=4000
        Largest number of negatives per type.
    class_weight : "balanced" or None, default="balanced"
        Passed to the SVMs.
    prior : GaussianNNPrior or None, default=None
        Cloned and fitted on the rescaled training crops (so its ``sigma`` is in
        pixels of the box frame). Required when ``beta > 0``.
    beta : float in [0, 1], default=0.0
        Weight of the prior in the combination above. The one parameter that may
        change after ``fit`` (``set_params(beta=...)``, then ``predict``): it only
        weighs scores that ``fit`` prepared, and is checked again at predict time
        (``beta > 0`` needs a detector fitted with a prior). Every other parameter
        takes effect at the next ``fit``; ``box_size`` and ``neighborhood`` changed
        after ``fit`` make ``predict`` raise until the detector is refitted.
    max_iter : int, default=20000
        Iterations of liblinear per SVM.
    random_state : int, RandomState or None, default=None
        The initial random negatives and liblinear.
    n_jobs : int or None, default=None
        joblib workers over the keypoint types (one SVM each; liblinear releases the
        GIL, so threads are preferred). Any joblib backend works, e.g. dask through
        :func:`joblib.parallel_config`. Results do not depend on it.
    memory : None, str or joblib.Memory, default=None
        Feature cache given to ``features`` and ``prior`` (unless they have their
        own): in a grid search over ``C`` or ``beta`` each crop's features are then
        computed once.
    verbose : bool, default=False
        A progress bar on stderr over the rounds of training and hard negative mining
        in ``fit``, once they take more than two seconds (the features show their own
        bar when their ``verbose`` is on).

    Attributes
    ----------
    features_ : transformer
        The fitted clone of ``features``.
    prior_ : GaussianNNPrior or None
        The fitted clone of ``prior``.
    coef_ : ndarray of shape (K, neighborhood**2 * n_features)
        SVM weights per type (NaN for a skipped type).
    intercept_ : ndarray of shape (K,)
    platt_ : ndarray of shape (K, 2)
        ``(a, b)`` of the calibration ``sigmoid(a s + b)`` per type.
    positive_radius_, negative_radius_ : float
        The radii in use (``"auto"`` resolved), in pixels of the box frame.
    grid_xs_, grid_ys_ : ndarray
        RF centres of the grid, in pixels of the box frame.
    n_keypoint_types_ : int
    skipped_types_ : list of int
        Types without a present keypoint in the training data: not trained, predicted
        as NaN (a :class:`UserWarning` names them in ``fit``).
    n_negatives_ : ndarray of shape (K,)
        Final cache size per type.

    References
    ----------
    .. [1] J. Long, N. Zhang, T. Darrell. Do Convnets Learn Correspondence? NIPS 2014.
       https://arxiv.org/abs/1411.1091

    Examples
    --------
    >>> from skcorr import ConvColumnExtractor, GaussianNNPrior, SlidingKeypointDetector
    >>> from skcorr.datasets import crop_to_boxes, make_affine_category
    >>> cats = make_affine_category(6, height=96, random_state=0)
    >>> crops, kps, _ = crop_to_boxes(cats.images, cats.keypoints, cats.boxes, padding=0.2)
    >>> det = SlidingKeypointDetector(features=ConvColumnExtractor(layer="conv5"),
    ...                               box_size=96, prior=GaussianNNPrior(), beta=0.1)
    >>> det.fit(crops[:4], kps[:4]).predict(crops[4:]).shape
    (2, 6, 2)
    """

    _parameter_constraints: dict = {
        "features": [HasMethods(["fit", "extract_dense"]), None],
        "box_size": [Interval(numbers.Integral, 16, None, closed="left")],
        "neighborhood": [Interval(numbers.Integral, 1, None, closed="left")],
        "C": [Interval(numbers.Real, 0, None, closed="neither")],
        "n_positives": [Interval(numbers.Integral, 1, None, closed="left")],
        "positive_radius": [StrOptions({"auto"}), Interval(numbers.Real, 0, None,
                                                             closed="neither")],
        "negative_radius": [StrOptions({"auto"}), Interval(numbers.Real, 0, None,
                                                             closed="left")],
        "mining_rounds": [Interval(numbers.Integral, 0, None, closed="left")],
        "cache_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "class_weight": [StrOptions({"balanced"}), None],
        "prior": [HasMethods(["fit", "log_density"]), None],
        "beta": [Interval(numbers.Real, 0, 1, closed="both")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "n_jobs": N_JOBS_CONSTRAINT,
        "memory": [None, str, os.PathLike, HasMethods(["cache"])],
        "verbose": ["boolean"],
    }

    def __init__(self, *, features=None, box_size=224, neighborhood=3, C=0.1,
                 n_positives=10, positive_radius="auto", negative_radius="auto",
                 mining_rounds=3, cache_size=4000, class_weight="balanced", prior=None,
                 beta=0.0, max_iter=20000, random_state=None, n_jobs=None, memory=None,
                 verbose=False):
        self.features = features
        self.box_size = box_size
        self.neighborhood = neighborhood
        self.C = C
        self.n_positives = n_positives
        self.positive_radius = positive_radius
        self.negative_radius = negative_radius
        self.mining_rounds = mining_rounds
        self.cache_size = cache_size
        self.class_weight = class_weight
        self.prior = prior
        self.beta = beta
        self.max_iter = max_iter
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.memory = memory
        self.verbose = verbose

    # -- features ---------------------------------------------------------------------
    def _rescale(self, crops):
        """Crops rescaled to box_size, and their scales (n, 2) as (sx, sy)."""
        size = self.box_size
        out, scales = [], np.empty((len(crops), 2))
        for i, crop in enumerate(crops):
            rgb = as_rgb(crop, name=f"crops[{i}]")
            height, width = rgb.shape[:2]
            if (height, width) != (size, size):
                rgb = resize(rgb, (size, size))
            out.append(rgb)
            scales[i] = (size / width, size / height)
        return out, scales

    def _maps(self, resized):
        """Stacked features (n, rows, cols, d), zero-padded by neighborhood // 2."""
        maps = self.features_.extract_dense(resized)
        shapes = {m.features.shape for m in maps}
        if len(shapes) != 1:
            raise RuntimeError(f"feature maps of equal crops differ in shape: {shapes}")
        h = self.neighborhood // 2
        F = np.stack([m.features for m in maps]).astype(np.float32, copy=False)
        return np.pad(F, ((0, 0), (h, h), (h, h), (0, 0))), maps[0]

    def _offsets(self):
        n = self.neighborhood
        return np.array([(oy, ox) for oy in range(n) for ox in range(n)])

    def _descriptors(self, Fp, cells):
        """Neighbourhood descriptors (m, n**2 * d) of cells, flat indices into (n, rows, cols)."""
        h = self.neighborhood // 2
        img, r, c = np.unravel_index(cells, (Fp.shape[0], Fp.shape[1] - 2 * h,
                                             Fp.shape[2] - 2 * h))
        offsets = self._offsets()
        parts = Fp[img[:, None], r[:, None] + offsets[:, 0], c[:, None] + offsets[:, 1]]
        return parts.reshape(len(img), -1)

    def _score_padded(self, Fp, coef, intercept):
        """SVM scores of every cell: (n, rows, cols, K), by correlating per offset."""
        n_img, rp, cp, d = Fp.shape
        h = self.neighborhood // 2
        rows, cols = rp - 2 * h, cp - 2 * h
        K = coef.shape[0]
        weights = coef.reshape(K, len(self._offsets()), d).astype(np.float32)
        scores = np.empty((n_img, rows, cols, K), dtype=np.float64)
        for start in range(0, n_img, _CHUNK):
            block = Fp[start:start + _CHUNK]
            G = np.einsum("nrcd,kod->nrcko", block, weights, optimize=True)
            total = np.zeros((len(block), rows, cols, K), dtype=np.float64)
            for o, (oy, ox) in enumerate(self._offsets()):
                total += G[:, oy:oy + rows, ox:ox + cols, :, o]
            scores[start:start + _CHUNK] = total + intercept
        return scores

    def _resolve_radii(self, fmap):
        rf, stride = float(fmap.rf_size), float(fmap.stride)
        if not np.isfinite(stride):
            stride = rf
        bins = fmap.bin_size  # the side of a spatial bin, for dense SIFT
        if self.positive_radius == "auto":
            positive = np.inf if bins is None else 2.0 * bins
        else:
            positive = float(self.positive_radius)
        if self.negative_radius == "auto":
            if bins is not None:
                negative = 4.0 * bins
            else:
                descriptor_rf = rf + (self.neighborhood - 1) * stride
                negative = min(descriptor_rf / 2.0, self.box_size / 8.0)
        else:
            negative = float(self.negative_radius)
        return positive, negative

    # -- fit --------------------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, crops, keypoints):
        """Train one SVM per keypoint type with hard negative mining.

        Parameters
        ----------
        crops : sequence of images
            Object crops (arrays or paths), of any sizes.
        keypoints : array-like of shape (n_crops, K, 2)
            ``(x, y)`` in each crop's pixels, NaN where absent.

        Returns
        -------
        self : SlidingKeypointDetector
        """
        crops, keypoints = check_crops_keypoints(crops, keypoints, fit=True)
        if self.neighborhood % 2 == 0:
            raise ValueError(
                f"neighborhood must be odd (a cell and as many neighbours on each side), "
                f"got {self.neighborhood}."
            )
        if self.beta > 0 and self.prior is None:
            raise ValueError(
                f"beta={self.beta} weights a prior but prior=None; pass "
                "prior=GaussianNNPrior() or set beta=0."
            )
        rng = check_random_state(self.random_state)
        self._settings_at_fit = {"box_size": self.box_size, "neighborhood": self.neighborhood}
        self._validate_features(ConvColumnExtractor(layer="conv5", mode="dense")).fit()
        resized, scales = self._rescale(crops)
        box_kp = rescale_points(keypoints, scales[:, None, :])
        Fp, fmap = self._maps(resized)
        self.grid_xs_, self.grid_ys_ = np.asarray(fmap.xs, float), np.asarray(fmap.ys, float)
        self.positive_radius_, self.negative_radius_ = self._resolve_radii(fmap)
        self.n_keypoint_types_ = K = box_kp.shape[1]
        present = ~np.isnan(box_kp).any(axis=2)
        # check_crops_keypoints warned about these: no detector, NaN predictions.
        self.skipped_types_ = [k for k in range(K) if not present[:, k].any()]
        samples = {k: self._sample(k, box_kp[:, k], rng) for k in range(K)
                   if k not in self.skipped_types_}
        svc = LinearSVC(C=self.C, dual="auto", class_weight=self.class_weight,
                        max_iter=self.max_iter, random_state=rng.randint(np.iinfo(np.int32).max))
        self.coef_ = np.full((K, Fp.shape[-1] * self.neighborhood**2), np.nan)
        self.intercept_ = np.full(K, np.nan)
        self._mine(Fp, samples, svc)
        self._calibrate(Fp, samples)
        self.n_negatives_ = np.array([len(samples[k].cache) if k in samples else 0
                                      for k in range(K)])

        self.prior_ = None
        if self.prior is not None:
            with warnings.catch_warnings():  # absent types: warned about above
                warnings.filterwarnings("ignore", "Keypoint type", UserWarning)
                self.prior_ = pass_memory(clone(self.prior), self.memory).fit(resized, box_kp)
        return self

    def _sample(self, k, points, rng) -> _Samples:
        """The training cells of keypoint type ``k``, whose (x, y) per crop are ``points``."""
        gx, gy = np.meshgrid(self.grid_xs_, self.grid_ys_)  # (rows, cols)
        positives, candidates = [], []
        for i in np.flatnonzero(~np.isnan(points).any(axis=1)):
            x, y = points[i]
            dist = np.hypot(gx - x, gy - y).ravel()
            order = np.argsort(dist, kind="stable")
            chosen = order[dist[order] <= self.positive_radius_][:self.n_positives]
            if len(chosen) == 0:
                chosen = order[:1]
            positives.append(i * gx.size + chosen)
            far = np.maximum(np.abs(gx - x), np.abs(gy - y)).ravel() > self.negative_radius_
            candidates.append(i * gx.size + np.flatnonzero(far))
        candidates = np.concatenate(candidates)
        if len(candidates) == 0:
            raise ValueError(
                f"No negative cell for keypoint type {k}: every cell centre lies within "
                f"negative_radius={self.negative_radius_:g} px of the keypoint in a "
                f"{self.box_size}px box. Lower negative_radius or raise box_size."
            )
        n_init = min(max(self.cache_size // 2, 1), len(candidates))
        anchors = np.sort(rng.choice(candidates, n_init, replace=False))
        return _Samples(np.concatenate(positives), candidates, anchors, cache=anchors)

    def _train(self, Fp, samples, svc) -> None:
        """One SVM per type on its positives and cached negatives, as joblib tasks."""
        tasks = (delayed(_fit_linear)(svc, self._descriptors(Fp, s.positives),
                                      self._descriptors(Fp, s.cache))
                 for s in samples.values())
        fitted = parallel(self.n_jobs, prefer="threads")(tasks)
        for k, (coef, intercept) in zip(samples, fitted, strict=True):
            self.coef_[k], self.intercept_[k] = coef, intercept

    def _mine(self, Fp, samples, svc) -> None:
        """Train, then add the negatives inside the margin and retrain, round by round."""
        self.n_mining_rounds_ = 0
        with tqdm(total=self.mining_rounds + 1, desc="training and mining", unit="round",
                  file=sys.stderr, delay=2.0, leave=False,
                  disable=not self.verbose) as progress:
            for round_ in range(self.mining_rounds + 1):
                self._train(Fp, samples, svc)
                progress.update()
                if round_ == self.mining_rounds:
                    break
                scores = self._score_padded(Fp, np.nan_to_num(self.coef_),
                                            np.nan_to_num(self.intercept_))
                scores = scores.reshape(-1, self.n_keypoint_types_)
                changed = [self._add_hard_negatives(s, scores[:, k])
                           for k, s in samples.items()]
                if not any(changed):
                    break
                self.n_mining_rounds_ = round_ + 1

    def _add_hard_negatives(self, samples: _Samples, scores) -> bool:
        """Put the candidates scoring above -1 into the cache; False if none is new."""
        hard = samples.candidates[scores[samples.candidates] > -1.0]
        new = np.setdiff1d(hard, samples.cache, assume_unique=True)
        if len(new) == 0:
            return False
        # The initial random negatives stay (they represent the background and keep the
        # SVM from forgetting it); mined ones fill the rest, hardest first.
        mined = np.setdiff1d(np.union1d(samples.cache, new), samples.anchors)
        room = max(self.cache_size - len(samples.anchors), 0)
        if len(mined) > room:
            mined = mined[np.argsort(-scores[mined], kind="stable")][:room]
        samples.cache = np.union1d(samples.anchors, mined)
        return True

    def _calibrate(self, Fp, samples) -> None:
        """Platt scaling of each type's SVM scores on its final training set."""
        self.platt_ = np.tile([1.0, 0.0], (self.n_keypoint_types_, 1))
        for k, s in samples.items():
            pos, neg = self._descriptors(Fp, s.positives), self._descriptors(Fp, s.cache)
            scores = np.concatenate([pos, neg]) @ self.coef_[k] + self.intercept_[k]
            y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
            lr = LogisticRegression(C=1.0).fit(scores[:, None], y)
            if lr.coef_[0, 0] > 0:
                self.platt_[k] = (lr.coef_[0, 0], lr.intercept_[0])

    # -- prediction -------------------------------------------------------------------
    def decision_maps(self, crops):
        """Score maps of every keypoint type on each crop's grid, for plotting.

        Parameters
        ----------
        crops : sequence of images, length n
            Object crops, as ``(H, W, 3)`` uint8 arrays or file paths, of any sizes.

        Returns
        -------
        maps : Bunch
            ``detector`` (n, K, rows, cols): raw SVM scores; ``log_prior`` (same shape,
            or None without a prior); ``combined`` (same shape): the score whose argmax
            is the prediction (see the class notes); ``xs`` (n, cols) and ``ys``
            (n, rows): the RF centres in each input crop's pixels.
        """
        check_is_fitted(self)
        self._check_predict_params()
        crops = check_images(crops, name="crops")
        resized, scales = self._rescale(crops)
        Fp, _ = self._maps(resized)
        coef = np.nan_to_num(self.coef_)
        raw = self._score_padded(Fp, coef, np.nan_to_num(self.intercept_))
        raw = raw.transpose(0, 3, 1, 2)  # (n, K, rows, cols)
        log_prior = None
        if self.prior_ is not None:
            log_prior = self.prior_.log_density(resized, self.grid_xs_, self.grid_ys_)
        if log_prior is None or self.beta == 0:
            combined = raw.copy()
        elif self.beta == 1:
            combined = log_prior.copy()
        else:
            a, b = self.platt_[:, 0], self.platt_[:, 1]
            z = a[None, :, None, None] * raw + b[None, :, None, None]
            log_det = -np.logaddexp(0.0, -z)
            combined = (1.0 - self.beta) * log_det + self.beta * log_prior
        skipped = np.zeros(self.n_keypoint_types_, bool)
        skipped[self.skipped_types_] = True
        raw[:, skipped] = np.nan
        combined[:, skipped] = np.nan
        xs = rescale_points(self.grid_xs_[None, :], scales[:, :1], inverse=True)
        ys = rescale_points(self.grid_ys_[None, :], scales[:, 1:], inverse=True)
        return Bunch(detector=raw, log_prior=log_prior, combined=combined, xs=xs, ys=ys)

    def _check_predict_params(self):
        """Validate the parameters again: only ``beta`` may have changed since fit."""
        self._validate_params()
        changed = [f"{name}={getattr(self, name)!r} (fitted with {value!r})"
                   for name, value in getattr(self, "_settings_at_fit", {}).items()
                   if getattr(self, name) != value]
        if changed:
            raise ValueError(
                f"{', '.join(changed)} changed after fit; the SVMs were trained for the "
                "fitted value. Call fit again, or set it back."
            )
        if self.beta > 0 and self.prior_ is None:
            raise ValueError(
                f"beta={self.beta} weights a prior, but this detector was fitted with "
                "prior=None; fit it with prior=GaussianNNPrior(), or set beta=0."
            )

    def predict(self, crops):
        """The highest-scoring location of each keypoint type in each crop.

        Parameters
        ----------
        crops : sequence of images
            Object crops, as ``(H, W, 3)`` uint8 arrays or file paths, of any sizes.

        Returns
        -------
        keypoints : ndarray of shape (n_crops, K, 2)
            ``(x, y)`` in each crop's pixels (the RF centre of the best cell); NaN for
            types skipped in ``fit``.
        """
        maps = self.decision_maps(crops)
        n, K, rows, cols = maps.combined.shape
        flat = np.nan_to_num(maps.combined.reshape(n, K, -1), nan=-np.inf)
        best = flat.argmax(axis=2)
        r, c = np.divmod(best, cols)
        out = np.stack([np.take_along_axis(maps.xs, c, axis=1),
                        np.take_along_axis(maps.ys, r, axis=1)], axis=2)
        out[:, self.skipped_types_] = np.nan
        return out


@dataclass
class _Samples:
    """Training cells of one keypoint type, as flat indices into (crops, rows, cols)."""

    positives: np.ndarray
    candidates: np.ndarray  # every cell far enough from the keypoint to be a negative
    anchors: np.ndarray  # the initial random negatives, kept for good
    cache: np.ndarray  # the negatives the SVM is trained on


def _fit_linear(svc, positives, negatives):
    """Fit a clone of ``svc`` on positives against negatives: (coef, intercept)."""
    X = np.concatenate([positives, negatives])
    y = np.r_[np.ones(len(positives)), -np.ones(len(negatives))]
    fitted = clone(svc).fit(X, y)
    return fitted.coef_[0], fitted.intercept_[0]

