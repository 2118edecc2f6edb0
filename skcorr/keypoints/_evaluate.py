"""The paper's Studies 3 and 4 on CUB-200-2011: keypoint classification and prediction.

Both functions return a list of dicts (one per feature / setting), ready for
``pandas.DataFrame(rows)`` or printing, and take the ``CUB_200_2011`` folder.
"""

from __future__ import annotations

import time

import numpy as np
from PIL import Image

from .._image import as_rgb

__all__ = ["evaluate_cub_classification", "evaluate_cub_detection"]

DEFAULT_LAYERS = ("stage1", "stage2", "stage3", "stage4", "stage5", "stage6", "stage7")


def _load_resized(images, keypoints, image_size):
    """Images read and resized (longer side image_size), keypoints mapped with them."""
    out, kps = [], np.array(keypoints, dtype=np.float64, copy=True)
    for i, path in enumerate(images):
        rgb = as_rgb(path, name=str(path))
        if image_size is not None:
            h, w = rgb.shape[:2]
            s = image_size / max(h, w)
            nw, nh = max(1, round(w * s)), max(1, round(h * s))
            rgb = np.asarray(Image.fromarray(rgb).resize((nw, nh), Image.BILINEAR))
            kps[i, :, 0] = (kps[i, :, 0] + 0.5) * nw / w - 0.5
            kps[i, :, 1] = (kps[i, :, 1] + 0.5) * nh / h - 0.5
            kps[i, :, 0] = np.clip(kps[i, :, 0], 0, nw - 1)
            kps[i, :, 1] = np.clip(kps[i, :, 1], 0, nh - 1)
        out.append(rgb)
    return out, kps


def evaluate_cub_classification(path, *, layers=DEFAULT_LAYERS, sift_radii=(4, 8, 12, 16, 20),
                                Cs=(1e-3, 1e-2, 1e-1, 1.0, 10.0), cv=5, image_size=256,
                                backbone="efficientnet_lite0", weights="default",
                                random_state=0, verbose=False):
    """Keypoint classification accuracy on CUB per feature (the paper's Study 3).

    Every visible part of a training image is a sample labelled with its part (15
    classes); a :class:`~skcorr.keypoints.KeypointClassifier` (one-vs-all linear
    SVMs, ``C`` by ``cv``-fold cross-validation grouped by image on the training
    split) is trained per feature and scored on the test split.

    Parameters
    ----------
    path : str or path
        The ``CUB_200_2011`` folder.
    layers : sequence of str
        Layers of ``backbone`` (names or roles such as ``"conv4"``).
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
        Print each row as it is computed.

    Returns
    -------
    rows : list of dict
        ``feature`` ("sift" or the backbone), ``setting`` (radius or layer),
        ``test_accuracy``, ``best_C``, ``cv_C`` and ``cv_accuracy`` (the
        cross-validation curve), ``n_train``, ``n_test``, ``seconds``.

    Examples
    --------
    With CUB-200-2011 in ``$SKCORR_DATA/CUB_200_2011`` (``skcorr evaluate cub-classify``
    runs the same; RESULTS.md gives the numbers):

    >>> import os
    >>> from skcorr.keypoints import evaluate_cub_classification
    >>> path = os.path.join(os.environ["SKCORR_DATA"], "CUB_200_2011")  # doctest: +SKIP
    >>> rows = evaluate_cub_classification(path, layers=["conv5"], sift_radii=[12],
    ...                                    verbose=True)  # doctest: +SKIP
    >>> [(row["setting"], round(row["test_accuracy"], 3)) for row in rows]  # doctest: +SKIP
    """
    from ..datasets import load_cub
    from ..features import ConvColumnExtractor, keypoint_samples
    from ..features._sift import DenseSIFT
    from ._classifier import KeypointClassifier

    data = load_cub(path)
    images, keypoints = _load_resized(data.images, data.keypoints, image_size)
    train = np.flatnonzero(data.split == "train")
    test = np.flatnonzero(data.split == "test")
    X_train, y_train, g_train = keypoint_samples([images[i] for i in train], keypoints[train])
    X_test, y_test, _ = keypoint_samples([images[i] for i in test], keypoints[test])

    settings = [("sift", f"radius={r:g}", DenseSIFT(radius=float(r))) for r in sift_radii]
    settings += [(backbone, layer, ConvColumnExtractor(backbone=backbone, weights=weights,
                                                       layer=layer))
                 for layer in layers]
    rows = []
    for feature, setting, extractor in settings:
        start = time.perf_counter()
        clf = KeypointClassifier(features=extractor, Cs=Cs, cv=cv, random_state=random_state)
        clf.fit(X_train, y_train, groups=g_train)
        row = {
            "feature": feature,
            "setting": setting,
            "test_accuracy": float(clf.score(X_test, y_test)),
            "best_C": clf.best_C_,
            "cv_C": clf.cv_results_["C"].tolist(),
            "cv_accuracy": clf.cv_results_["mean_test_score"].round(4).tolist(),
            "n_train": len(X_train),
            "n_test": len(X_test),
            "seconds": round(time.perf_counter() - start, 1),
        }
        if verbose:
            print(f"{feature} {setting}: test accuracy {100 * row['test_accuracy']:.1f}% "
                  f"(C={row['best_C']:g}, {row['seconds']} s)", flush=True)
        rows.append(row)
    return rows


def evaluate_cub_detection(path, *, box_size=224, conv_layer="conv5", sift_step=8,
                           sift_bin_size=8, betas=(0.0, 0.05, 0.1, 0.2, 0.3, 0.5),
                           sigma=None, C=0.1, neighborhood=3, mining_rounds=3,
                           cache_size=3000, validation_fraction=1 / 3,
                           backbone="efficientnet_lite0", weights="default",
                           random_state=0, verbose=False):
    """``PCK@0.1`` of sliding-window part detectors on CUB (the paper's Study 4).

    Each image is cropped to its ground-truth box and rescaled to
    ``box_size x box_size``. A :class:`~skcorr.keypoints.SlidingKeypointDetector`
    per feature (convnet ``conv_layer``; dense SIFT with ``sift_step`` /
    ``sift_bin_size``) is trained on the training split, with and without a
    :class:`~skcorr.keypoints.GaussianNNPrior` (``pool5`` neighbours). ``beta`` is
    chosen from ``betas`` on a held-out ``validation_fraction`` of the training
    split (detector fitted on the rest), then the detector is refitted on the whole
    training split. Predictions are mapped back to image pixels and scored with ``PCK@0.1``
    of ``max(box w, h)``, per part and averaged over parts. Training parts that lie
    outside their box are left out of training (NaN); test parts are all scored.

    Parameters
    ----------
    path : str or path
        The ``CUB_200_2011`` folder.
    box_size : int
    conv_layer : str
        Layer of ``backbone`` for the convnet detector.
    sift_step, sift_bin_size : int
        Dense SIFT grid, in pixels of the box frame (the paper: 8 and 8).
    betas : sequence of float in [0, 1]
        Candidate prior weights (0 is added if missing).
    sigma : float or None
        The prior's standard deviation in box-frame pixels; ``None``: the paper's 22
        px scaled by ``box_size / 224``.
    C, neighborhood, mining_rounds, cache_size
        Passed to the detectors.
    validation_fraction : float
        Share of training images held out to choose beta.
    backbone, weights : str
        Passed to the convnet extractors.
    random_state : int
    verbose : bool

    Returns
    -------
    rows : list of dict
        One per detector: ``features``, ``prior`` (bool), ``beta``, ``pck_mean``,
        ``pck_per_part`` (dict part name -> PCK), ``validation_pck`` (dict beta ->
        PCK, with the prior), ``fit_seconds``, ``predict_seconds_per_image``. A last
        row per feature with ``prior="only"`` gives the prior alone (beta = 1).

    Examples
    --------
    With CUB-200-2011 in ``$SKCORR_DATA/CUB_200_2011`` (``skcorr evaluate cub-detect``
    runs the same with ``box_size=160``; RESULTS.md gives the numbers):

    >>> import os
    >>> from skcorr.keypoints import evaluate_cub_detection
    >>> path = os.path.join(os.environ["SKCORR_DATA"], "CUB_200_2011")  # doctest: +SKIP
    >>> rows = evaluate_cub_detection(path, box_size=160, verbose=True)  # doctest: +SKIP
    >>> [(row["features"], row["prior"], row["pck_mean"]) for row in rows]  # doctest: +SKIP
    """
    from ..datasets import crop_to_boxes, load_cub, uncrop_keypoints
    from ..features import ConvColumnExtractor
    from ..features._sift import DenseSIFT
    from ..metrics import pck_score
    from ._detector import SlidingKeypointDetector
    from ._prior import GaussianNNPrior

    data = load_cub(path)
    crops, crop_kp, transforms = crop_to_boxes(data.images, data.keypoints, data.boxes,
                                               size=box_size)
    inside = (crop_kp >= -0.5).all(axis=2) & (crop_kp <= box_size - 0.5).all(axis=2)
    fit_kp = np.where(inside[..., None], crop_kp, np.nan)
    train = np.flatnonzero(data.split == "train")
    test = np.flatnonzero(data.split == "test")
    rng = np.random.default_rng(random_state)
    shuffled = rng.permutation(train)
    n_val = max(1, int(round(validation_fraction * len(train))))
    val, sub = np.sort(shuffled[:n_val]), np.sort(shuffled[n_val:])
    betas = sorted({0.0, *map(float, betas)})
    sigma = 22.0 * box_size / 224 if sigma is None else float(sigma)

    def take(index):
        return [crops[i] for i in index]

    def pck(index, predicted, average="types"):
        image_kp = uncrop_keypoints(predicted, transforms[index])
        return pck_score(data.keypoints[index], image_kp, alpha=0.1,
                         bbox=data.boxes[index], average=average)

    prior = GaussianNNPrior(features=ConvColumnExtractor(backbone=backbone, weights=weights,
                                                         layer="pool5", mode="global"),
                            sigma=sigma)
    feature_sets = [
        (f"{backbone}:{conv_layer}",
         ConvColumnExtractor(backbone=backbone, weights=weights, layer=conv_layer,
                             mode="dense")),
        (f"dsift(step={sift_step},bin={sift_bin_size})",
         DenseSIFT(mode="dense", step=sift_step, bin_size=sift_bin_size)),
    ]
    rows = []
    for name, features in feature_sets:
        det = SlidingKeypointDetector(features=features, box_size=box_size, C=C,
                                      neighborhood=neighborhood, mining_rounds=mining_rounds,
                                      cache_size=cache_size, prior=prior, beta=0.0,
                                      random_state=random_state)
        # beta on held-out training images
        det.fit(take(sub), fit_kp[sub])
        validation = {b: float(pck(val, det.set_params(beta=b).predict(take(val))))
                      for b in betas}
        best_beta = max(betas, key=lambda b: (validation[b], -b))
        start = time.perf_counter()
        det.set_params(beta=0.0).fit(take(train), fit_kp[train])
        fit_seconds = time.perf_counter() - start
        for label, beta in ((False, 0.0), (True, best_beta), ("only", 1.0)):
            start = time.perf_counter()
            predicted = det.set_params(beta=beta).predict(take(test))
            seconds = (time.perf_counter() - start) / len(test)
            per_part = pck(test, predicted, average=None)
            row = {
                "features": name,
                "prior": label,
                "beta": beta,
                "pck_mean": float(np.nanmean(per_part)),
                "pck_per_part": dict(zip(data.keypoint_names,
                                         np.round(per_part, 4).tolist(), strict=True)),
                "validation_pck": validation,
                "fit_seconds": round(fit_seconds, 1),
                "predict_seconds_per_image": round(seconds, 4),
            }
            if verbose:
                print(f"{name}, prior={label}, beta={beta:g}: PCK@0.1 "
                      f"{100 * row['pck_mean']:.1f}%", flush=True)
            rows.append(row)
    return rows
