"""Keypoint transfer by the flow MRF, as estimators: one family, one cache.

* :class:`FlowAligner` transfers keypoints to new images from their nearest annotated
  neighbours (retrieved, aligned, the best-aligned ones' transfers combined).
* :class:`PairTransfer` transfers the keypoints of given ``(source, target)`` pairs.

Both wrap :func:`skcorr.flow.align` with the same settings and share one cache,
``memory=``: the feature transformers store every image's features there (keyed by image
content and network weights, see ``skcorr/features/_cache.py``), and each transfer is
stored under the content digests of its two feature maps, its points and its settings, so
a grid search over ``lam`` extracts every image once and aligns every pair once per
setting, in one process or in many sharing the folder.
"""

from __future__ import annotations

import numbers
import os
from contextlib import nullcontext

import numpy as np
from joblib import delayed, effective_n_jobs
from sklearn.base import BaseEstimator, _fit_context, clone
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, check_memory
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from .._array import l2_normalize
from .._image import check_images
from .._parallel import chunks, parallel
from .._validation import N_JOBS_CONSTRAINT, check_image_keypoints, pass_memory
from ..features import ConvColumnExtractor
from ..metrics import pck_score
from ._align import _align_unchecked, align
from ._presets import preset_settings
from ._settings import FLOW_CONSTRAINTS, flow_settings
from ._store import FlowStore, map_digest

__all__ = ["FlowAligner", "PairTransfer"]

class _FlowTransfer(BaseEstimator):
    """What the transfer estimators share: dense features, the flow's settings, the cache
    and the parallel loop over the work."""

    _parameter_constraints: dict = {
        "features": [HasMethods(["fit", "extract_dense"]), None],
        **FLOW_CONSTRAINTS,
        "n_jobs": N_JOBS_CONSTRAINT,
        "verbose": ["boolean"],
        "memory": [None, str, os.PathLike, HasMethods(["cache"])],
    }

    def _fit_features(self, features, default):
        """A fitted clone of ``features`` (``default`` when None) sharing ``memory``, with a
        progress bar when this estimator is ``verbose``."""
        features = pass_memory(clone(features if features is not None else default),
                               self.memory)
        if self.verbose and "verbose" in features.get_params(deep=False):
            features.set_params(verbose=True)
        return features.fit()

    def align(self, source_map, target_map):
        """The flow from one feature map to another with this estimator's settings.

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

    def _transfers(self, groups):
        """Per group of pairs: a list of (transferred points, deformation, data energy).

        A group is a list of ``(source_map, target_map, points)``: each pair aligns the
        source to the target and moves the points. With ``memory``, each pair's result
        is stored in the alignment cache (:class:`~skcorr.flow._store.FlowStore`, keyed by
        the content of its maps, its points and the settings) and only the pairs not
        found there are aligned, over joblib (``n_jobs``) in chunks, with a progress bar.
        """
        settings = flow_settings(self)
        memory = self.memory
        location = check_memory(os.fspath(memory) if isinstance(memory, os.PathLike)
                                else memory).location
        store = None if location is None else FlowStore(location)
        pairs = [(s, t, np.asarray(p, dtype=np.float64)) for group in groups
                 for s, t, p in group]
        results: list = [None] * len(pairs)
        keys = [None] * len(pairs)
        if store is not None:
            maps = {id(m): m for pair in pairs for m in pair[:2]}
            digests = {key: map_digest(fmap) for key, fmap in maps.items()}
            keys = [store.key(digests[id(s)], digests[id(t)], p, settings)
                    for s, t, p in pairs]
            results = [store.get(key, len(p)) for key, (_, _, p) in zip(keys, pairs,
                                                                         strict=True)]
        todo: dict = {}  # the same pair asked twice is aligned once
        for i, result in enumerate(results):
            if result is None:
                todo.setdefault(keys[i] if store is not None else i, []).append(i)
        work = [(key, pairs[rows[0]]) for key, rows in todo.items()]
        tasks = (_transfer_task(chunk, settings, store) for chunk in chunks(work, self.n_jobs))
        # Several alignments at once: one BLAS thread each, or their threads fight.
        several = effective_n_jobs(self.n_jobs) > 1
        with (threadpool_limits(1, user_api="blas") if several else nullcontext()), \
                tqdm(total=len(work), desc="aligning", leave=False,
                     disable=not self.verbose or not work) as progress:
            done = parallel(self.n_jobs, prefer="threads", return_as="generator")(
                tasks)
            for chunk in done:
                for key, result in chunk:
                    for i in todo[key]:
                        results[i] = result
                progress.update(len(chunk))
        out, start = [], 0
        for group in groups:
            out.append(results[start:start + len(group)])
            start += len(group)
        return out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.non_deterministic = False
        return tags


def _transfer_task(chunk, settings, store):
    """The joblib task of a chunk of ``(key, (source, target, points))``.

    Each distinct feature map of the chunk is an argument of the task of its own, so
    that on a dask cluster joblib sends it to the cluster once per call of the
    estimator (it scatters large arguments, and a map reports its size), however many
    tasks use it; the chunk itself holds only keys, indices and points.
    """
    maps: dict = {}
    items = [(key, maps.setdefault(id(source), (len(maps), source))[0],
              maps.setdefault(id(target), (len(maps), target))[0], points)
             for key, (source, target, points) in chunk]
    return delayed(_transfer_chunk)(items, settings, store, *[m for _, m in maps.values()])


def _transfer_chunk(items, settings, store, *maps):
    """Align each ``(key, source index, target index, points)`` of ``items`` (indices
    into ``maps``) and move its points; each result goes into ``store`` (when there is
    one) as soon as it is computed. The settings were validated by the estimator, with
    align's own constraints."""
    out = []
    for key, source, target, points in items:
        flow = _align_unchecked(maps[source], maps[target], **settings)
        result = (flow.transfer_points(points), flow.deformation, flow.data_energy)
        if store is not None:
            store.put(key, result)
        out.append((key, result))
    return out


def _default_features():
    """The dense features of the "best" preset (stage5+stage6 hypercolumns at 480 px)."""
    return ConvColumnExtractor(**preset_settings("best")[0])


def _feature_maps(features, images) -> list:
    """Dense maps of ``images`` (arrays or paths), each distinct image extracted once."""
    keys = [os.fspath(im) if isinstance(im, str | os.PathLike) else id(im) for im in images]
    first = {}
    for key, image in zip(keys, images, strict=True):
        first.setdefault(key, image)
    maps = dict(zip(first, features.extract_dense(list(first.values())), strict=True))
    return [maps[key] for key in keys]


class FlowAligner(_FlowTransfer):
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
        ``None`` means the "best" preset's, ``ConvColumnExtractor(layer=["stage5",
        "stage6"], image_size=480)``: hypercolumns of the default backbone's layers of
        stride 16 and 32. The paper's are ``ConvColumnExtractor(layer="conv5",
        image_size=320)`` (with AlexNet, ``layer="conv4"``).
    retrieval : transformer, default=None
        Global features for retrieving neighbours; ``None`` means
        ``ConvColumnExtractor(layer="fc7", mode="global", image_size=224)``. The same
        neighbours serve every choice of ``features``.
    lam : float, default=0.05
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
    truncation : float or None, default=3.0
        Per-axis truncation of the smoothness, in grid steps (None: plain quadratic).
    ot_reg : float or None, default=0.2
        Optimal-transport prices of the target nodes, with this regularisation (None: no
        prices).
    subcell : bool, default=True
        Refine every match between grid nodes. These three are as in
        :func:`skcorr.flow.align`.
    energy : {"l2", "sift-flow"}, default="l2"
    eta : float, default=0.0
    data_truncation : float or None, default=None
        The flow's energy: the paper's, or SIFT Flow's with its small-displacement
        weight and data truncation (see :func:`skcorr.flow.align`).

        The defaults of ``features``, ``lam``, ``truncation``, ``ot_reg`` and
        ``subcell`` are the "best" preset (:data:`skcorr.flow.PRESETS`), chosen by a
        grid search on PF-WILLOW's pairs leaving one object category out at a time; the
        paper's flow is ``lam=0.1, truncation=None, ot_reg=None, subcell=False`` with
        its features (``skcorr.flow.preset_settings("paper")`` gives both).
    n_jobs : int or None, default=None
        joblib workers over the alignments (``None``: one, unless a
        :func:`joblib.parallel_config` context says otherwise; ``-1``: all cores). Work
        goes through joblib, so ``with joblib.parallel_config(backend="dask"):`` spreads
        it over a dask cluster. Predictions do not depend on it.
    verbose : bool, default=False
        Show progress bars over the feature extraction and the alignments (on stderr).
    memory : None, str or joblib.Memory, default=None
        The cache of features (given to ``features`` and ``retrieval`` unless they have
        their own) and of alignments: in a grid search over ``lam`` or ``n_top`` each
        image's features are computed once and each pair is aligned once per setting.

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

    References
    ----------
    .. [1] J. Long, N. Zhang, T. Darrell. Do Convnets Learn Correspondence? NIPS 2014.
       https://arxiv.org/abs/1411.1091

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
        **_FlowTransfer._parameter_constraints,
        "retrieval": [HasMethods(["fit", "extract_global"]), None],
        "n_neighbors": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_top": [Interval(numbers.Integral, 1, None, closed="left")],
        "ordering": [StrOptions({"deformation", "data"})],
    }

    def __init__(self, *, features=None, retrieval=None, lam=0.05, n_neighbors=25, n_top=5,
                 ordering="deformation", radius=None, levels=2, max_iter=50,
                 truncation=3.0, ot_reg=0.2, subcell=True, energy="l2", eta=0.0,
                 data_truncation=None, n_jobs=None, verbose=False, memory=None):
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
        self.energy = energy
        self.eta = eta
        self.data_truncation = data_truncation
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
        self.features_ = self._fit_features(self.features, _default_features())
        self.retrieval_ = self._fit_features(
            self.retrieval, ConvColumnExtractor(layer="fc7", mode="global", image_size=224))
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
        # Per query, its neighbours aligned to it (the flow lives on each neighbour's grid).
        done = self._transfers([[(self.train_maps_[j], maps[i], self.keypoints_[j])
                                 for j in neighbors[i]] for i in range(len(images))])
        out = np.empty((len(images), *self.keypoints_.shape[1:]))
        for i in range(len(images)):
            mine = done[i]
            key = [deformation if self.ordering == "deformation" else data
                   for _, deformation, data in mine]
            order = np.argsort(key, kind="stable")[:self.n_top]
            out[i] = _nanmedian(np.stack([mine[k][0] for k in order]))
        return out

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
        tags.target_tags.required = True
        return tags


class PairTransfer(_FlowTransfer):
    """Keypoint transfer between given image pairs by the flow MRF, as an estimator.

    Each sample is a pair ``[source_image, target_image, source_keypoints]`` (built by
    :func:`skcorr.evaluation.pair_samples`); :meth:`predict` aligns the pair with
    :func:`skcorr.flow.align` and transfers the source keypoints into the target. The
    method is training-free: :meth:`fit` only prepares the features, so in
    :class:`~sklearn.model_selection.GridSearchCV` the estimator chooses its settings
    (``lam``, ``features__layer``, ...) by the PCK of :func:`~skcorr.metrics.pck_scorer`
    on held-out pairs. Give it ``memory=`` there, so that each image's features are
    extracted once and each pair is aligned once per setting.

    Parameters
    ----------
    features : transformer, default=None
        Dense features for the flow (ConvColumnExtractor or DenseSIFT); cloned in fit.
        ``None``: the "best" preset's, as in :class:`FlowAligner`.
    lam : float, default=0.05
    radius : int or None, default=None
    levels : int, default=2
    max_iter : int, default=50
    truncation : float or None, default=3.0
    ot_reg : float or None, default=0.2
    subcell : bool, default=True
        As in :func:`skcorr.flow.align`; the defaults are the "best" preset, as in
        :class:`FlowAligner`.
    energy : {"l2", "sift-flow"}, default="l2"
    eta : float, default=0.0
    data_truncation : float or None, default=None
        The flow's energy, as in :func:`skcorr.flow.align`.
    refine : transformer or None, default=None
        Finer dense features (e.g. hypercolumns with a stride-8 layer) for a
        coarse-to-fine last step: each transferred keypoint moves to the node of the
        target's fine grid, within ``refine_radius`` steps of the flow's prediction,
        whose column is closest to the source keypoint's. ``None``: no refinement.
    refine_radius : int, default=2
        Half-width of the refinement window, in fine-grid steps.
    n_jobs : int or None, default=None
        joblib workers over the pairs, as in :class:`FlowAligner`.
    verbose : bool, default=False
        Show progress bars over the feature extraction and the pairs (on stderr).
    memory : None, str or joblib.Memory, default=None
        The cache of features and alignments, as in :class:`FlowAligner`.

    Attributes
    ----------
    features_ : transformer
        The fitted clone of ``features``.
    refine_ : transformer or None
        The fitted clone of ``refine``.

    Examples
    --------
    >>> from sklearn.model_selection import GridSearchCV
    >>> from skcorr.datasets import load_sample_pairs
    >>> from skcorr.evaluation import pair_samples
    >>> from skcorr.features import ConvColumnExtractor
    >>> from skcorr.flow import PairTransfer
    >>> from skcorr.metrics import pck_scorer
    >>> X, y = pair_samples(load_sample_pairs())
    >>> features = ConvColumnExtractor(layer="stage3", weights=None, image_size=96)
    >>> search = GridSearchCV(PairTransfer(features), {"lam": [0.01, 0.1]},
    ...                       scoring=pck_scorer(alpha=0.1), cv=2).fit(X, y)
    >>> sorted(search.best_params_)
    ['lam']
    """

    _parameter_constraints: dict = {
        **_FlowTransfer._parameter_constraints,
        "refine": [HasMethods(["fit", "extract_dense"]), None],
        "refine_radius": [Interval(numbers.Integral, 1, None, closed="left")],
    }

    def __init__(self, features=None, *, lam=0.05, radius=None, levels=2, max_iter=50,
                 truncation=3.0, ot_reg=0.2, subcell=True, energy="l2", eta=0.0,
                 data_truncation=None, refine=None, refine_radius=2, n_jobs=None,
                 verbose=False, memory=None):
        self.features = features
        self.lam = lam
        self.radius = radius
        self.levels = levels
        self.max_iter = max_iter
        self.truncation = truncation
        self.ot_reg = ot_reg
        self.subcell = subcell
        self.energy = energy
        self.eta = eta
        self.data_truncation = data_truncation
        self.refine = refine
        self.refine_radius = refine_radius
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.memory = memory

    # The nested feature transformers are parameters: their own checks must still run.
    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None):
        """Check the pairs and prepare the features (nothing is learned).

        Parameters
        ----------
        X : array-like of shape (n_pairs, 3), dtype object
            Pair samples from :func:`skcorr.evaluation.pair_samples`.
        y : ignored
            Present for API consistency (GridSearchCV passes the target keypoints).

        Returns
        -------
        self : PairTransfer
            The estimator.
        """
        _check_pairs(X)
        self.features_ = self._fit_features(self.features, _default_features())
        self.refine_ = (None if self.refine is None
                        else self._fit_features(self.refine, None))
        return self

    def predict(self, X) -> np.ndarray:
        """Transfer each pair's source keypoints into its target.

        Parameters
        ----------
        X : array-like of shape (n_pairs, 3), dtype object
            Pair samples from :func:`skcorr.evaluation.pair_samples`.

        Returns
        -------
        keypoints : ndarray of shape (n_pairs, K, 2)
            Predicted ``(x, y)`` in each target; NaN where the source keypoint is NaN.
        """
        check_is_fitted(self, "features_")
        self._validate_params()  # the settings may have changed after fit
        X = _check_pairs(X)
        n = len(X)
        maps = _feature_maps(self.features_, [*X[:, 0], *X[:, 1]])
        points = [np.asarray(k, dtype=np.float64) for k in X[:, 2]]
        groups = [[pair] for pair in zip(maps[:n], maps[n:], points, strict=True)]
        predicted = np.stack([group[0][0] for group in self._transfers(groups)])
        if self.refine_ is not None:
            fine = _feature_maps(self.refine_, [*X[:, 0], *X[:, 1]])
            predicted = np.stack([_refined(fine[i], fine[n + i], points[i], predicted[i],
                                           self.refine_radius) for i in range(n)])
        return predicted

    def score(self, X, y) -> float:
        """PCK@0.1 of the predictions, with the targets' keypoint boxes.

        Parameters
        ----------
        X : array-like of shape (n_pairs, 3), dtype object
            Pair samples.
        y : array-like of shape (n_pairs, K, 2)
            The targets' true keypoints.

        Returns
        -------
        score : float
            PCK in ``[0, 1]``.
        """
        return pck_score(y, self.predict(X), alpha=0.1)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = True
        return tags


def _refined(fine_source, fine_target, keypoints, predicted, radius) -> np.ndarray:
    """Move each prediction to the best-matching fine-grid node near it.

    The flow lives on the coarse grid of ``features``; this coarse-to-fine step compares
    the source keypoint's column of the fine map (bilinear) with the columns of the
    target's fine-grid nodes within ``radius`` steps of the flow's prediction, and
    keeps the closest.
    """
    out = predicted.copy()
    ok = np.flatnonzero(~np.isnan(keypoints).any(axis=1) & ~np.isnan(predicted).any(axis=1))
    if len(ok) == 0:
        return out
    columns = fine_source.sample(keypoints[ok], "bilinear")
    rows, cols = fine_target.nearest_cells(predicted[ok])
    n_rows, n_cols = fine_target.grid_shape
    for i, row, col, column in zip(ok, rows, cols, columns, strict=True):
        r0, r1 = max(row - radius, 0), min(row + radius + 1, n_rows)
        c0, c1 = max(col - radius, 0), min(col + radius + 1, n_cols)
        window = fine_target.features[r0:r1, c0:c1]
        cost = ((window - column) ** 2).sum(axis=2)
        best_row, best_col = np.unravel_index(np.argmin(cost), cost.shape)
        out[i] = (fine_target.xs[c0 + best_col], fine_target.ys[r0 + best_row])
    return out


def _check_pairs(X) -> np.ndarray:
    X = np.asarray(X, dtype=object) if not isinstance(X, np.ndarray) else X
    if X.ndim != 2 or X.shape[1] != 3 or len(X) == 0:
        raise ValueError(
            f"X must hold pair samples, rows [source_image, target_image, source_keypoints], "
            f"shape (n_pairs, 3); got shape {X.shape}. Build them with "
            "skcorr.evaluation.pair_samples(dataset)."
        )
    return X


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


def _nanmedian(stack: np.ndarray) -> np.ndarray:
    """Median over axis 0 ignoring NaN; NaN where every value is NaN (no warning)."""
    present = ~np.isnan(stack).all(axis=0)
    out = np.full(stack.shape[1:], np.nan)
    if present.any():
        out[present] = np.nanmedian(stack[:, present], axis=0)
    return out
