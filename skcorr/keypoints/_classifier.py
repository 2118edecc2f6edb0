"""Keypoint classification (the paper's Study 3): which part is at this point?"""

from __future__ import annotations

import numbers
import os

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.model_selection import GridSearchCV, GroupKFold, StratifiedKFold
from sklearn.multiclass import OneVsRestClassifier
from sklearn.svm import LinearSVC
from sklearn.utils._param_validation import HasMethods, Interval
from sklearn.utils.validation import check_is_fitted

from .._validation import N_JOBS_CONSTRAINT
from ..features import ConvColumnExtractor, split_keypoint_samples
from ._base import FeaturesMixin

__all__ = ["KeypointClassifier"]


class KeypointClassifier(FeaturesMixin, ClassifierMixin, BaseEstimator):
    """Label keypoints from the feature column at their location, with linear SVMs.

    Given keypoint samples (rows ``[image, x, y]`` from
    :func:`~skcorr.keypoint_samples`), computes the features at each point
    with ``features`` and trains one-vs-all linear SVMs
    (:class:`~sklearn.svm.LinearSVC`). ``C`` is chosen by ``cv``-fold
    cross-validation on the training samples (a :class:`~sklearn.model_selection.GridSearchCV`
    inside ``fit``; folds grouped by image when ``groups`` is given, so that the
    keypoints of one image never sit on both sides of a split).

    The same model can be built as a plain scikit-learn pipeline when no inner
    cross-validation is wanted (or an outer one is)::

        pipe = make_pipeline(ConvColumnExtractor(layer="conv4"), LinearSVC(C=0.1))
        GridSearchCV(pipe, {"linearsvc__C": [1e-3, 1e-2, 1e-1]}, cv=5).fit(X, y)

    :class:`KeypointClassifier` differs in computing each training feature once
    for all values of ``C`` (a pipeline in a grid search recomputes them per fold and
    value), and in exposing the curve of ``C`` as ``cv_results_``.

    Parameters
    ----------
    features : transformer, default=None
        A feature transformer whose ``extract_at`` gives columns at keypoint samples
        (:class:`~skcorr.ConvColumnExtractor`,
        :class:`~skcorr.DenseSIFT`). Cloned in ``fit``. ``None`` means
        ``ConvColumnExtractor(layer="conv4")``.
    Cs : sequence of float, default=(1e-3, 1e-2, 1e-1, 1, 10)
        The values of the SVM's ``C`` tried by cross-validation.
    cv : int, default=5
        Number of folds.
    max_iter : int, default=20000
        Iterations of liblinear per SVM (raise it if a ConvergenceWarning appears).
    n_jobs : int, default=None
        Number of joblib workers of the inner grid search (over ``C`` and folds) and of the
        one-vs-all SVMs (one per class); any joblib backend, e.g. dask through
        :func:`joblib.parallel_config`. Results do not depend on it.
    random_state : int, RandomState or None, default=None
        Shuffling of the folds (without groups) and of liblinear.
    memory : None, str or joblib.Memory, default=None
        Feature cache given to ``features`` (unless it has its own): in a grid
        search each image's features are then computed once.

    Attributes
    ----------
    features_ : transformer
        The fitted clone of ``features``.
    svc_ : OneVsRestClassifier
        The one-vs-all :class:`~sklearn.svm.LinearSVC` s refitted on all training
        samples with ``best_C_``.
    best_C_ : float
        The ``C`` of highest mean cross-validated accuracy.
    cv_results_ : dict
        ``{"C": array, "mean_test_score": array, "std_test_score": array}``: the
        cross-validation curve of ``C``, in the order of ``Cs``.
    classes_ : ndarray
        The keypoint labels.

    Notes
    -----
    Every parameter takes effect at the next ``fit``; ``predict`` uses only what
    ``fit`` learnt, so changing a parameter after ``fit`` changes nothing until then.

    References
    ----------
    .. [1] J. Long, N. Zhang, T. Darrell. Do Convnets Learn Correspondence? NIPS 2014.
       https://arxiv.org/abs/1411.1091

    Examples
    --------
    >>> import numpy as np
    >>> from skcorr import DenseSIFT, KeypointClassifier, keypoint_samples
    >>> rng = np.random.default_rng(0)
    >>> images = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(4)]
    >>> X, y, groups = keypoint_samples(images, np.tile([[[16.0, 16.0], [48.0, 48.0]]],
    ...                                                  (4, 1, 1)))
    >>> clf = KeypointClassifier(features=DenseSIFT(radius=8), Cs=[0.1, 1], cv=2)
    >>> clf.fit(X, y, groups=groups).best_C_ in (0.1, 1)
    True
    """

    _parameter_constraints: dict = {
        "features": [HasMethods(["fit", "extract_at"]), None],
        "Cs": ["array-like"],
        "cv": [Interval(numbers.Integral, 2, None, closed="left")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_jobs": N_JOBS_CONSTRAINT,
        "random_state": ["random_state"],
        "memory": [None, str, os.PathLike, HasMethods(["cache"])],
    }

    def __init__(self, *, features=None, Cs=(1e-3, 1e-2, 1e-1, 1.0, 10.0), cv=5,
                 max_iter=20000, n_jobs=None, random_state=None, memory=None):
        self.features = features
        self.Cs = Cs
        self.cv = cv
        self.max_iter = max_iter
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.memory = memory

    def _svc(self, C=1.0, n_jobs=None):
        """One-vs-all linear SVMs, fitted one class per joblib task."""
        return OneVsRestClassifier(LinearSVC(C=C, dual="auto", max_iter=self.max_iter,
                                             random_state=self.random_state), n_jobs=n_jobs)

    @_fit_context(prefer_skip_nested_validation=False)  # features is an estimator
    def fit(self, X, y=None, groups=None):
        """Compute features at the keypoint samples, choose C by CV, refit the SVMs.

        Parameters
        ----------
        X : ndarray of shape (n_samples, 3), dtype object
            Keypoint samples ``[image, x, y]``.
        y : array-like of shape (n_samples,)
            Keypoint labels (e.g. the part index from ``keypoint_samples``).
        groups : array-like of shape (n_samples,), default=None
            Image index of each sample; folds then never split an image.

        Returns
        -------
        self : KeypointClassifier
            The fitted estimator.
        """
        if y is None:
            raise ValueError(
                "KeypointClassifier.fit needs the keypoint labels y (one per row of X); "
                "keypoint_samples(images, keypoints) returns them as its second output."
            )
        y = np.asarray(y)
        split_keypoint_samples(X)  # validates the shape and coordinates of X
        if len(y) != len(X):
            raise ValueError(
                f"X has {len(X)} keypoint samples but y has {len(y)} labels; pass one label "
                "per sample."
            )
        Cs = np.asarray(self.Cs, dtype=np.float64).ravel()
        if Cs.size == 0 or not np.all(np.isfinite(Cs) & (Cs > 0)):
            raise ValueError(f"Cs must be a non-empty list of positive numbers, got {self.Cs!r}.")
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError(
                f"y holds a single label ({self.classes_[0]!r}); classification needs samples "
                "of at least two keypoint types."
            )
        self._validate_features(ConvColumnExtractor(layer="conv4", mode="keypoints")).fit(X)
        F = self.features_.extract_at(X)
        if groups is not None:
            groups = np.asarray(groups)
            if len(groups) != len(X):
                raise ValueError(
                    f"groups has {len(groups)} entries for {len(X)} samples; pass one image "
                    "index per sample."
                )
            n_groups = len(np.unique(groups))
            if n_groups < self.cv:
                raise ValueError(
                    f"cv={self.cv} folds grouped by image need at least {self.cv} images, got "
                    f"{n_groups}; lower cv or pass more images."
                )
            splitter = GroupKFold(n_splits=self.cv)
        else:
            splitter = StratifiedKFold(n_splits=self.cv, shuffle=True,
                                       random_state=self.random_state)
        search = GridSearchCV(self._svc(), {"estimator__C": list(Cs)}, cv=splitter,
                              n_jobs=self.n_jobs, scoring="accuracy", refit=False)
        search.fit(F, y, groups=groups)
        self.best_C_ = float(search.best_params_["estimator__C"])
        self.cv_results_ = {
            "C": Cs.copy(),
            "mean_test_score": np.asarray(search.cv_results_["mean_test_score"]),
            "std_test_score": np.asarray(search.cv_results_["std_test_score"]),
        }
        self.svc_ = self._svc(self.best_C_, n_jobs=self.n_jobs).fit(F, y)
        return self

    def transform_features(self, X):
        """The feature columns of keypoint samples, (n_samples, n_features).

        Parameters
        ----------
        X : ndarray of shape (n_samples, 3), dtype object
            Keypoint samples ``[image, x, y]`` (see
            :func:`~skcorr.keypoint_samples`).

        Returns
        -------
        features : ndarray of shape (n_samples, n_features)
            The columns of the fitted ``features_`` at each sample.
        """
        check_is_fitted(self)
        return self.features_.extract_at(X)

    def decision_function(self, X):
        """SVM scores of each class at each keypoint sample, (n_samples, n_classes).

        Parameters
        ----------
        X : ndarray of shape (n_samples, 3), dtype object
            Keypoint samples ``[image, x, y]``.

        Returns
        -------
        scores : ndarray of shape (n_samples, n_classes)
            One-vs-all SVM scores, columns in the order of ``classes_`` (also with two
            classes).
        """
        check_is_fitted(self)
        scores = self.svc_.decision_function(self.features_.extract_at(X))
        if scores.ndim == 1:  # two classes: liblinear gives one column
            scores = np.stack([-scores, scores], axis=1)
        return scores

    def predict(self, X):
        """The label of highest score at each keypoint sample.

        Parameters
        ----------
        X : ndarray of shape (n_samples, 3), dtype object
            Keypoint samples ``[image, x, y]``.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            The predicted keypoint label of each sample, from ``classes_``.
        """
        check_is_fitted(self)
        return self.svc_.predict(self.features_.extract_at(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.requires_fit = True
        return tags
