"""The paper's studies on CUB-200-2011: keypoint transfer, classification, detection.

Each function takes the ``CUB_200_2011`` folder and returns a :class:`ResultTable`.
"""

from __future__ import annotations

import contextlib
import sys
import time

import numpy as np
from sklearn.model_selection import GridSearchCV
from tqdm.auto import tqdm

from .._geometry import rescale_points, resize_longer_side
from .._image import as_rgb
from .._parallel import scratch_folder
from .._validation import check_alpha, check_n_jobs
from ..features import MAX_IMAGE_SIZE
from ..metrics import pck_score, pck_scorer
from ._defaults import CUB_CV_LAMS
from ._table import ResultTable
from ._transfer import _describe_features, _flow_setup

__all__ = ["evaluate_cub_classification", "evaluate_cub_detection", "evaluate_cub_transfer"]

_PROGRESS_DELAY = 2.0  # seconds a stage runs before its progress bar shows

DEFAULT_LAYERS = ("stage1", "stage2", "stage3", "stage4", "stage5", "stage6", "stage7")


def _layer_name(layer):
    """``"stage5"`` -> "stage5"; a hypercolumn ``["stage5", "stage6"]`` -> "stage5+stage6"."""
    return layer if isinstance(layer, str) else "+".join(layer)


def _check_size(value, name: str, *, optional: bool = False):
    """A side in pixels from 16 to MAX_IMAGE_SIZE (or None when ``optional``), checked
    before any image is read."""
    if value is None and optional:
        return None
    if (isinstance(value, bool) or not isinstance(value, (int, np.integer))
            or not 16 <= value <= MAX_IMAGE_SIZE):
        none = " or None (keep the size)" if optional else ""
        raise ValueError(f"{name} must be a whole number of pixels from 16 to "
                         f"{MAX_IMAGE_SIZE}{none}, got {value!r}.")
    return int(value)


def _bar(total: int, desc: str, verbose: bool, unit: str = "image"):
    """A progress bar on stderr, shown with ``verbose`` once the stage lasts two seconds."""
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, delay=_PROGRESS_DELAY,
                disable=not verbose)


def _say(message: str, verbose: bool) -> None:
    """A line of progress on stderr (stdout holds the tables), between the bars."""
    if verbose:
        tqdm.write(message, file=sys.stderr)


def _verbose_features(features, verbose: bool):
    """``features`` with its progress bar on or off, if it has one."""
    if "verbose" in features.get_params(deep=False):
        features.set_params(verbose=verbose)
    return features


def _load_resized(images, keypoints, image_size, verbose=False):
    """Images read and resized (longer side image_size), keypoints mapped with them."""
    out, kps = [], np.array(keypoints, dtype=np.float64, copy=True)
    with _bar(len(images), "reading images", verbose) as progress:
        for i, path in enumerate(images):
            rgb = as_rgb(path, name=str(path))
            if image_size is not None:
                rgb, scales = resize_longer_side(rgb, image_size)
                kps[i] = np.clip(rescale_points(kps[i], scales), 0,
                                 (rgb.shape[1] - 1, rgb.shape[0] - 1))
            out.append(rgb)
            progress.update()
    return out, kps


def _crops(images, keypoints, boxes, *, size, padding=0.0, verbose=False, chunk=256):
    """:func:`~skcorr.datasets.crop_to_boxes` a chunk at a time, under a progress bar."""
    from ..datasets import crop_to_boxes

    crops, inside, transforms = [], [], []
    with _bar(len(images), "cropping to boxes", verbose) as progress:
        for start in range(0, len(images), chunk):
            part = slice(start, start + chunk)
            c, k, t = crop_to_boxes(list(images[part]), keypoints[part], boxes[part],
                                    size=size, padding=padding)
            crops.extend(c)
            inside.append(k)
            transforms.append(t)
            progress.update(len(c))
    return crops, np.concatenate(inside), np.concatenate(transforms)


def evaluate_cub_transfer(path, features="conv", *, backbone="efficientnet_lite0",
                          layer="conv5", lam=0.1, lam_grid=None, n_neighbors=25, n_top=5,
                          crop_size=160, padding=0.1, alpha=0.1, radius=None, levels=2,
                          truncation=None, ot_reg=None, subcell=False, n_jobs=None,
                          verbose=False) -> ResultTable:
    """Keypoint transfer on CUB-200-2011: test birds from their training neighbours.

    The paper's protocol (Study 2) on the ground-truth boxes: every image is cropped to
    its box (with ``padding``) and resized to ``crop_size`` pixels square; a
    :class:`~skcorr.flow.FlowAligner` retrieves each test crop's ``n_neighbors``
    nearest training crops (fc7 role, cosine), aligns them, keeps the ``n_top`` with
    the smallest deformation energy and predicts the coordinate-wise median of their
    transferred keypoints. Predictions are mapped back to the original image and scored
    by PCK with ``alpha * max(w, h)`` of the ground-truth box.

    Parameters
    ----------
    path : str or path
        The ``CUB_200_2011`` folder, see :func:`skcorr.datasets.load_cub`.
    features : {"conv", "sift"} or transformer, default="conv"
        Dense features for the flow: a ConvColumnExtractor or DenseSIFT, or the name of
        the protocols' own (see :func:`flow_features`).
    backbone, layer : str, default="efficientnet_lite0", "conv5"
        The network and layer of ``features="conv"``.
    lam : float, "cv" or None, default=0.1
        Smoothness weight of the flow; ``"cv"`` chooses it from ``lam_grid`` by 3-fold
        cross-validation on the training split only (PCK@``alpha`` of each fold's crops
        predicted from the other folds' crops), then predicts the test split with it;
        ``None``: the weight tuned on PF-WILLOW for the feature kind (``TUNED_LAM``).
    lam_grid : sequence of float, default=None
        Candidates of ``lam="cv"``; ``None``: ``CUB_CV_LAMS`` (0.02, 0.05, 0.1, 0.2).
    n_neighbors, n_top : int, default=25, 5
        Neighbours retrieved and transferred, as in :class:`~skcorr.flow.FlowAligner`.
    crop_size : int, default=160
        Side of the square the crops are resized to.
    padding : float, default=0.1
        Margin around the box, as a fraction of its width and height.
    alpha : float, default=0.1
        PCK tolerance.
    radius, levels : int or None, int
        Label set and coarse-to-fine levels of the flow.
    truncation, ot_reg, subcell : float or None, float or None, bool
        The flow's smoothness truncation, optimal-transport prices and sub-cell
        refinement, as in :func:`skcorr.flow.align`.
    n_jobs : int or None
        joblib workers over the test crops (see :class:`~skcorr.flow.FlowAligner`).
    verbose : bool, default=False
        Progress bars on stderr (reading and cropping, features, aligning).

    Returns
    -------
    ResultTable
        One row per part (``"part"``, ``"n"``, ``"PCK@<alpha>"``) and a ``"mean"`` row,
        the mean over parts; its attribute ``chosen_lam`` is the weight used, the
        seconds are in its notes.

    Examples
    --------
    With CUB-200-2011 in ``$SKCORR_DATA/CUB_200_2011`` (RESULTS.md gives the numbers and
    ``skcorr evaluate cub-transfer`` runs the same):

    >>> import os
    >>> from skcorr import ConvColumnExtractor
    >>> from skcorr.evaluation import evaluate_cub_transfer
    >>> path = os.path.join(os.environ["SKCORR_DATA"], "CUB_200_2011")  # doctest: +SKIP
    >>> table = evaluate_cub_transfer(path, ConvColumnExtractor(layer="conv5"),
    ...                               lam=0.1)  # doctest: +SKIP
    >>> print(table)  # doctest: +SKIP
    """
    from ..datasets import load_cub, uncrop_keypoints
    from ..flow import FlowAligner

    start = time.perf_counter()
    crop_size = _check_size(crop_size, "crop_size")
    check_alpha(alpha)
    check_n_jobs(n_jobs)
    kind, features, lam = _flow_setup(features, backbone, layer, lam)
    features = _verbose_features(features, verbose)
    cub = load_cub(path)
    crops, crop_keypoints, transforms = _crops(
        cub.images, cub.keypoints, cub.boxes, size=crop_size, padding=padding, verbose=verbose)
    train = np.flatnonzero(cub.split == "train")
    test = np.flatnonzero(cub.split == "test")
    aligner = FlowAligner(features=features, lam=0.1 if lam == "cv" else lam,
                          n_neighbors=n_neighbors, n_top=n_top, radius=radius, levels=levels,
                          truncation=truncation, ot_reg=ot_reg, subcell=subcell,
                          n_jobs=n_jobs, verbose=verbose)
    if isinstance(lam, str) and lam == "cv":  # chosen on the training split only
        grid = {"lam": list(CUB_CV_LAMS if lam_grid is None else lam_grid)}
        search = GridSearchCV(aligner, grid, scoring=pck_scorer(alpha=alpha),
                              cv=3, refit=False, error_score="raise")
        search.fit([crops[i] for i in train], crop_keypoints[train])
        aligner.set_params(**search.best_params_)
    aligner.fit([crops[i] for i in train], crop_keypoints[train])
    predicted = uncrop_keypoints(aligner.predict([crops[i] for i in test]), transforms[test])
    per_part = pck_score(cub.keypoints[test], predicted, alpha=alpha, bbox=cub.boxes[test],
                         average=None)
    present = (~np.isnan(cub.keypoints[test]).any(axis=2)).sum(axis=0)
    column = f"PCK@{alpha:g}"
    how = " (chosen by 3-fold CV on the training split)" if lam == "cv" else ""
    table = ResultTable(
        ({"part": name, "n": int(n), column: float(value)}
         for name, n, value in zip(cub.keypoint_names, present, per_part, strict=True)),
        title=f"CUB-200-2011 keypoint transfer, flow on {_describe_features(features)}, "
              f"lam={aligner.lam:g}{how}, levels={levels}, truncation={truncation}, "
              f"ot_reg={ot_reg}, subcell={subcell}: test crops from {n_neighbors} "
              f"training neighbours, top {n_top} by deformation; {column} of the box",
        notes=[f"{time.perf_counter() - start:.1f} s"])
    table.append({"part": "mean", "n": int(present.sum()), column: float(np.nanmean(per_part))})
    table.chosen_lam = float(aligner.lam)
    table.name = f"cub-transfer-{kind}"
    return table


def evaluate_cub_classification(path, *, layers=None, sift_radii=(4, 8, 12, 16, 20),
                                Cs=(1e-3, 1e-2, 1e-1, 1.0, 10.0), cv=5, image_size=256,
                                backbone="efficientnet_lite0", weights="default",
                                random_state=0, verbose=False) -> ResultTable:
    """Keypoint classification accuracy on CUB per feature (the paper's Study 3).

    Every visible part of a training image is a sample labelled with its part (15
    classes); a :class:`~skcorr.keypoints.KeypointClassifier` (one-vs-all linear
    SVMs, ``C`` by ``cv``-fold cross-validation grouped by image on the training
    split) is trained per feature and scored on the test split.

    Parameters
    ----------
    path : str or path
        The ``CUB_200_2011`` folder.
    layers : sequence of str or of lists of str
        Layers of ``backbone`` (names or roles such as ``"conv4"``), one row each; a
        list such as ``["stage5", "stage6"]`` is one row of hypercolumns (see
        :class:`~skcorr.features.ConvColumnExtractor`). ``None``: stage1 to stage7
        (``DEFAULT_LAYERS``).
    sift_radii : sequence of float
        SIFT descriptor radii (pixels of the resized images), one row each.
    Cs : sequence of float
        Values of ``C`` tried by cross-validation.
    cv : int
        Folds.
    image_size : int or None
        Images are resized so that their longer side has this many pixels before
        any feature is computed (both SIFT and convnet see the same pixels).
    backbone, weights : str
        Passed to :class:`~skcorr.features.ConvColumnExtractor`.
    random_state : int
    verbose : bool
        Progress bars on stderr (reading images, features) and a line per row as it is
        computed.

    Returns
    -------
    table : ResultTable
        One row per feature: ``"features"`` ("sift" or the backbone), ``"layer"`` or
        ``"radius"`` (``None`` where it does not apply), ``"C"`` (chosen),
        ``"test accuracy"`` and ``"cv accuracy C=<C>"`` per ``C`` (the cross-validation
        curve). The numbers of keypoints are in the title, the seconds per row in the
        notes.

    Examples
    --------
    With CUB-200-2011 in ``$SKCORR_DATA/CUB_200_2011`` (``skcorr evaluate cub-classify``
    runs the same; RESULTS.md gives the numbers):

    >>> import os
    >>> from skcorr.evaluation import evaluate_cub_classification
    >>> path = os.path.join(os.environ["SKCORR_DATA"], "CUB_200_2011")  # doctest: +SKIP
    >>> table = evaluate_cub_classification(path, layers=["conv5"], sift_radii=[12],
    ...                                     verbose=True)  # doctest: +SKIP
    >>> print(table)  # doctest: +SKIP
    """
    from ..datasets import load_cub
    from ..features import ConvColumnExtractor, DenseSIFT, keypoint_samples
    from ..keypoints import KeypointClassifier

    image_size = _check_size(image_size, "image_size", optional=True)
    data = load_cub(path)
    images, keypoints = _load_resized(data.images, data.keypoints, image_size, verbose)
    train = np.flatnonzero(data.split == "train")
    test = np.flatnonzero(data.split == "test")
    X_train, y_train, g_train = keypoint_samples([images[i] for i in train], keypoints[train])
    X_test, y_test, _ = keypoint_samples([images[i] for i in test], keypoints[test])

    settings = [({"features": "sift", "layer": None, "radius": float(r)},
                 DenseSIFT(radius=float(r), verbose=verbose)) for r in sift_radii]
    settings += [({"features": backbone, "layer": _layer_name(layer), "radius": None},
                  ConvColumnExtractor(backbone=backbone, weights=weights, layer=layer,
                                      verbose=verbose))
                 for layer in (DEFAULT_LAYERS if layers is None else layers)]
    table = ResultTable(title=f"CUB-200-2011 keypoint classification, 15 parts: "
                              f"{len(X_train)} training and {len(X_test)} test keypoints, "
                              f"images resized to {image_size} px, C by {cv}-fold CV",
                        name="cub-classify")
    seconds = []
    with table.keep_on_interrupt():  # an interrupted run keeps its finished rows
        for row, extractor in settings:
            start = time.perf_counter()
            clf = KeypointClassifier(features=extractor, Cs=Cs, cv=cv,
                                     random_state=random_state)
            clf.fit(X_train, y_train, groups=g_train)
            row.update({"C": float(clf.best_C_),
                        "test accuracy": float(clf.score(X_test, y_test))})
            row.update({f"cv accuracy C={c:g}": float(score) for c, score in
                        zip(clf.cv_results_["C"], clf.cv_results_["mean_test_score"],
                            strict=True)})
            what = row["layer"] or f"radius {row['radius']:g}"
            seconds.append(f"{what} {time.perf_counter() - start:.1f}")
            _say(f"{row['features']} {seconds[-1]} s: test accuracy "
                 f"{100 * row['test accuracy']:.1f}% (C={row['C']:g})", verbose)
            table.append(row)
            table.notes = ["Seconds per feature (fit with CV, then test): "
                           + ", ".join(seconds)]
    return table


def _check_folds(cv) -> int:
    """``cv`` of :func:`evaluate_cub_detection`: a whole number of folds, at least 2."""
    if isinstance(cv, bool) or not isinstance(cv, (int, np.integer)) or cv < 2:
        raise ValueError(f"cv must be a whole number of folds, at least 2, got {cv!r}.")
    return int(cv)


def _check_positive_grid(values, name: str) -> list[float]:
    """A non-empty sequence of positive finite numbers (``Cs``), as floats, in order."""
    try:
        grid = [float(v) for v in values]
    except (TypeError, ValueError):
        grid = None
    if (not grid or isinstance(values, (str, bytes))
            or any(isinstance(v, bool) for v in values)
            or not all(np.isfinite(v) and v > 0 for v in grid)):
        raise ValueError(f"{name} must be a non-empty sequence of positive numbers, "
                         f"e.g. (0.01, 0.1, 1.0), got {values!r}.")
    return list(dict.fromkeys(grid))


def _check_betas(betas) -> list[float]:
    """Candidate prior weights in [0, 1], sorted, with 0 (no prior) among them."""
    try:
        grid = [float(b) for b in betas]
    except (TypeError, ValueError):
        grid = None
    if grid is None or isinstance(betas, (str, bytes)) or not all(0 <= b <= 1 for b in grid):
        raise ValueError(f"betas must be a sequence of prior weights from 0 to 1, "
                         f"got {betas!r}.")
    return sorted({0.0, *grid})


def _grouped_folds(groups, cv: int) -> list:
    """(fit, held-out) positions of ``cv`` grouped folds: no group on both sides."""
    from sklearn.model_selection import GroupKFold

    n_groups = len(np.unique(groups))
    if n_groups < cv:
        raise ValueError(
            f"cv={cv} folds need at least {cv} bird classes in the training split, which "
            f"has {n_groups}; lower cv (at least 2) or list images of more classes.")
    return list(GroupKFold(n_splits=cv).split(np.zeros(len(groups)), groups=groups))


def evaluate_cub_detection(path, *, box_size=224, conv_layer="conv5", sift_step=8,
                           sift_bin_size=8, betas=(0.0, 0.05, 0.1, 0.2, 0.3, 0.5),
                           sigma=None, Cs=(0.01, 0.1, 1.0), cv=3, neighborhood=3,
                           mining_rounds=3, cache_size=3000, memory=None,
                           backbone="efficientnet_lite0", weights="default", sift=True,
                           random_state=0, verbose=False) -> ResultTable:
    """``PCK@0.1`` of sliding-window part detectors on CUB (the paper's Study 4).

    Each image is cropped to its ground-truth box and rescaled to
    ``box_size x box_size``. A :class:`~skcorr.keypoints.SlidingKeypointDetector`
    per feature (convnet ``conv_layer``; dense SIFT with ``sift_step`` /
    ``sift_bin_size``) is trained on the training split, with and without a
    :class:`~skcorr.keypoints.GaussianNNPrior` (``pool5`` neighbours).

    The SVMs' ``C`` (from ``Cs``) and the prior's weight ``beta`` (from ``betas``) are
    chosen together by ``cv``-fold cross-validation over the whole training split,
    scored by ``PCK@0.1`` exactly as the test split is (every training image is held
    out once; ties go to the smaller ``beta``, then the smaller ``C``). The folds
    are grouped by bird class (:class:`~sklearn.model_selection.GroupKFold`), so no
    held-out bird has birds of its species among its fold's training images: birds of
    one species look alike, and random folds would reward a setting, above all a large
    prior weight (whose neighbour is then a bird of the same species), for recalling
    the species rather than for finding the part. The choice is thus made for birds
    unlike the training ones, a conservative one (a beta chosen on a few random
    held-out images lowered the test PCK on other classes); the cross-validated PCK
    may well be lower than the test PCK, whose species all appear in the training
    split. Per fold and ``C`` the detector is fitted once and its held-out images
    predicted at every ``beta`` (``beta`` only weighs scores at predict time); each
    crop's features are computed once for all folds through the detectors' feature
    cache (``memory``). The detector is then refitted on the whole training split with
    the chosen ``C``, and scored on the test split without the prior, with it at the
    chosen ``beta`` and with the prior alone. Predictions are mapped back to image
    pixels and scored with ``PCK@0.1`` of ``max(box w, h)``, per part and averaged over
    parts. Training parts that lie outside their box are left out of training (NaN);
    test parts are all scored.

    Parameters
    ----------
    path : str or path
        The ``CUB_200_2011`` folder.
    box_size : int, default=224
    conv_layer : str or list of str, default="conv5"
        Layer of ``backbone`` for the convnet detector; a list such as
        ``["stage5", "stage6"]`` makes hypercolumns.
    sift_step, sift_bin_size : int, default=8, 8
        Dense SIFT grid, in pixels of the box frame (the paper: 8 and 8).
    betas : sequence of float in [0, 1], default=(0.0, 0.05, 0.1, 0.2, 0.3, 0.5)
        Candidate prior weights (0 is added if missing).
    sigma : float or None, default=None
        The prior's standard deviation in box-frame pixels; ``None``: the paper's 22
        px scaled by ``box_size / 224``.
    Cs : sequence of positive float, default=(0.01, 0.1, 1.0)
        Candidate regularisations of the SVMs; each costs ``cv`` fits per feature.
    cv : int, default=3
        Folds of the cross-validation, at least 2 and at most the number of bird
        classes in the training split.
    neighborhood, mining_rounds, cache_size : int, default=3, 3, 3000
        Passed to the detectors.
    memory : None, str or joblib.Memory, default=None
        Feature cache of the detectors and the prior (see
        :class:`~skcorr.keypoints.SlidingKeypointDetector`); ``None``: a temporary
        folder, removed at the end.
    backbone, weights : str, default="efficientnet_lite0", "default"
        Passed to the convnet extractors (the detector's and the prior's).
    sift : bool, default=True
        Also train and score the dense-SIFT detector (the baseline); ``False`` skips it.
    random_state : int, default=0
    verbose : bool, default=False
        Progress bars on stderr (cropping, features, mining) and a line per fit and row.

    Returns
    -------
    table : ResultTable
        Three rows per feature: ``"features"``, ``"prior"`` (``"no"``, ``"yes"`` with
        the chosen beta, ``"only"``: the prior alone, beta = 1), ``"C"`` (chosen),
        ``"beta"``, ``"PCK@0.1"`` (the mean over parts), ``"cv PCK@0.1"`` (the
        cross-validated PCK of that ``C`` and ``beta``; ``None`` for ``"only"``) and
        ``"PCK@0.1 <part>"`` per part. The notes give the cross-validated PCK of every
        ``(C, beta)`` and the seconds. The attribute ``cv_scores`` maps each feature's
        name to ``{(C, beta): cv PCK@0.1}``.

    Raises
    ------
    ValueError
        If ``cv`` is not a whole number of at least 2 or exceeds the number of bird
        classes in the training split, ``Cs`` is empty or not positive, or a beta lies
        outside [0, 1].

    Examples
    --------
    With CUB-200-2011 in ``$SKCORR_DATA/CUB_200_2011`` (``skcorr evaluate cub-detect``
    runs the same with ``box_size=160``; RESULTS.md gives the numbers):

    >>> import os
    >>> from skcorr.evaluation import evaluate_cub_detection
    >>> path = os.path.join(os.environ["SKCORR_DATA"], "CUB_200_2011")  # doctest: +SKIP
    >>> table = evaluate_cub_detection(path, box_size=160, verbose=True)  # doctest: +SKIP
    >>> print(table)  # doctest: +SKIP
    """
    from ..datasets import load_cub, uncrop_keypoints
    from ..features import ConvColumnExtractor, DenseSIFT
    from ..keypoints import GaussianNNPrior, SlidingKeypointDetector

    box_size = _check_size(box_size, "box_size")
    cv = _check_folds(cv)
    Cs = _check_positive_grid(Cs, "Cs")
    betas = _check_betas(betas)
    data = load_cub(path)
    train = np.flatnonzero(data.split == "train")
    test = np.flatnonzero(data.split == "test")
    folds = [(train[fit], train[held_out])
             for fit, held_out in _grouped_folds(data.labels[train], cv)]
    crops, crop_kp, transforms = _crops(data.images, data.keypoints, data.boxes,
                                        size=box_size, verbose=verbose)
    inside = (crop_kp >= -0.5).all(axis=2) & (crop_kp <= box_size - 0.5).all(axis=2)
    fit_kp = np.where(inside[..., None], crop_kp, np.nan)
    sigma = 22.0 * box_size / 224 if sigma is None else float(sigma)

    def take(index):
        return [crops[i] for i in index]

    def pck(index, predicted, average="types"):
        image_kp = uncrop_keypoints(predicted, transforms[index])
        return pck_score(data.keypoints[index], image_kp, alpha=0.1,
                         bbox=data.boxes[index], average=average)

    prior = GaussianNNPrior(features=ConvColumnExtractor(backbone=backbone, weights=weights,
                                                         layer="pool5", mode="global",
                                                         verbose=verbose),
                            sigma=sigma)
    feature_sets = [
        (f"{backbone}:{_layer_name(conv_layer)}",
         ConvColumnExtractor(backbone=backbone, weights=weights, layer=conv_layer,
                             mode="dense", verbose=verbose)),
    ]
    if sift:
        feature_sets.append((f"dsift(step={sift_step},bin={sift_bin_size})",
                             DenseSIFT(mode="dense", step=sift_step, bin_size=sift_bin_size,
                                       verbose=verbose)))
    classes = len(np.unique(data.labels[train]))
    table = ResultTable(title=f"CUB-200-2011 part detection in ground-truth boxes rescaled to "
                              f"{box_size} px, PCK@0.1 of the box; C and beta chosen by "
                              f"{cv}-fold cross-validation on the {len(train)} training "
                              f"images, grouped by bird class ({classes} classes)",
                        name="cub-detect")
    table.cv_scores = {}
    with contextlib.ExitStack() as stack, table.keep_on_interrupt():
        if memory is None:  # every crop's features once, for all folds and settings
            memory = stack.enter_context(scratch_folder("skcorr-cub-detect-"))
        for name, features in feature_sets:
            det = SlidingKeypointDetector(features=features, box_size=box_size,
                                          neighborhood=neighborhood,
                                          mining_rounds=mining_rounds, cache_size=cache_size,
                                          prior=prior, beta=0.0, memory=memory,
                                          random_state=random_state, verbose=verbose)
            start = time.perf_counter()
            # One held-out prediction per training image, C and beta: PCK over them all.
            predicted = {(C, b): np.full((len(crops),) + crop_kp.shape[1:], np.nan)
                         for C in Cs for b in betas}
            for C in Cs:
                for k, (fit, held_out) in enumerate(folds):
                    det.set_params(C=C, beta=0.0).fit(take(fit), fit_kp[fit])
                    for b in betas:
                        predicted[C, b][held_out] = det.set_params(beta=b).predict(
                            take(held_out))
                    _say(f"{name}: C={C:g}, fold {k + 1} of {cv} done", verbose)
            scores = {key: float(pck(train, value[train])) for key, value in predicted.items()}
            best_C, best_beta = max(scores, key=lambda key: (scores[key], -key[1], -key[0]))
            cv_seconds = time.perf_counter() - start
            table.cv_scores[name] = scores
            start = time.perf_counter()
            det.set_params(C=best_C, beta=0.0).fit(take(train), fit_kp[train])
            fit_seconds = time.perf_counter() - start
            table.notes.append(
                f"{name}: cv PCK@0.1 (%) by C and beta "
                + "; ".join(f"C={C:g}: " + ", ".join(f"{b:g}: {100 * scores[C, b]:.1f}"
                                                   for b in betas) for C in Cs)
                + f"; cross-validation {cv_seconds:.1f} s, fit {fit_seconds:.1f} s")
            for label, beta in (("no", 0.0), ("yes", best_beta), ("only", 1.0)):
                start = time.perf_counter()
                predicted = det.set_params(beta=beta).predict(take(test))
                seconds = (time.perf_counter() - start) / len(test)
                per_part = pck(test, predicted, average=None)
                table.append({
                    "features": name, "prior": label, "C": best_C, "beta": beta,
                    "PCK@0.1": float(np.nanmean(per_part)),
                    "cv PCK@0.1": scores[best_C, beta] if label != "only" else None,
                    **{f"PCK@0.1 {part}": float(value)
                       for part, value in zip(data.keypoint_names, per_part, strict=True)},
                })
                table.notes[-1] += f", predict {seconds:.4f} s per image (prior {label})"
                _say(f"{name}, prior={label}, C={best_C:g}, beta={beta:g}: PCK@0.1 "
                     f"{100 * table[-1]['PCK@0.1']:.1f}%", verbose)
    return table
