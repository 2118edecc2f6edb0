"""The extractor a column database belongs to: its signature, fingerprint and grid."""

from __future__ import annotations

import os

import numpy as np

__all__ = ["check_extractor", "check_fitted_extractor", "extractor_signature", "fingerprint",
           "grid_steps"]

_PROBE_SIDE = 96
_FINGERPRINT_MIN_COSINE = 0.999


def extractor_signature(extractor) -> dict:
    """What ``meta.json`` records of the extractor, and what a query's must equal."""
    weights = extractor.weights
    return {
        "backbone": str(extractor.backbone),
        "weights": None if weights is None else os.fspath(weights),
        "layers": [str(name) for name in extractor.layers_],
        "n_features": int(extractor.n_features_out_),
        "normalize": bool(extractor.normalize),
        "image_size": extractor.image_size,
    }


def fingerprint(extractor) -> np.ndarray:
    """The spatial mean of each layer's raw output on a fixed pseudo-random probe image.

    It tells apart two extractors with the same names but different weights (two random
    initialisations, or two weight files). The probe is fed to the network as it is,
    without the ``image_size`` resizing, so that the fingerprint does not depend on it.
    """
    probe = np.random.default_rng(20140101).integers(
        0, 256, (_PROBE_SIDE, _PROBE_SIDE, 3), dtype=np.uint8)
    outputs = extractor.layer_outputs([probe])[0]
    parts = [o.reshape(o.shape[0], -1).mean(axis=1) if o.ndim == 3 else o.reshape(-1)
             for o in outputs]
    return np.concatenate(parts).astype(np.float32)


def check_fitted_extractor(extractor):
    """``extractor``, or a fitted clone of it if it is not fitted (it is never changed)."""
    from sklearn.base import clone
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    if not hasattr(extractor, "layer_outputs"):  # what sets convnet columns apart
        raise TypeError(
            f"extractor must be a ConvColumnExtractor, got {type(extractor).__name__}; "
            "column databases hold convnet columns."
        )
    try:
        check_is_fitted(extractor)
    except NotFittedError:
        extractor = clone(extractor).fit()
    if any(extractor.receptive_fields_[name] is None for name in extractor.layers_):
        raise ValueError(
            f"Layer(s) {extractor.layers_} of {extractor.backbone!r} have no spatial grid; "
            "a column database needs a convolutional layer (for example layer='conv4')."
        )
    return extractor


def grid_steps(fmap, fallback: float) -> tuple[float, float]:
    """Distance (x, y) between neighbouring RF centres of a feature map, in its pixels."""
    steps = [float(np.diff(a).mean()) if len(a) > 1 else float("nan")
             for a in (fmap.xs, fmap.ys)]
    if np.isnan(steps[0]) and np.isnan(steps[1]):
        return fallback, fallback
    if np.isnan(steps[0]):
        steps[0] = steps[1]
    if np.isnan(steps[1]):
        steps[1] = steps[0]
    return steps[0], steps[1]


def check_extractor(meta: dict, stored: np.ndarray, extractor, path) -> None:
    """Raise ValueError unless ``extractor`` matches a database's ``meta`` and fingerprint.

    See :meth:`ColumnDatabase.check_extractor`; ``stored`` is the database's fingerprint
    and ``path`` its folder, for the messages.
    """
    extractor = check_fitted_extractor(extractor)
    mine = extractor_signature(extractor)
    keys = ("backbone", "weights", "layers", "n_features", "normalize")
    diff = [f"{key}: database {meta[key]!r}, extractor {mine[key]!r}"
            for key in keys if meta[key] != mine[key]]
    if diff:
        raise ValueError(
            f"The extractor does not match the column database {str(path)!r} ("
            + "; ".join(diff) + "). Query with the extractor the database was built with, "
            "or build a database for this extractor."
        )
    theirs = np.asarray(stored, dtype=np.float64)
    ours = fingerprint(extractor).astype(np.float64)
    cosine = float(ours @ theirs / max(np.linalg.norm(ours) * np.linalg.norm(theirs),
                                       1e-30))
    if ours.shape != theirs.shape or cosine < _FINGERPRINT_MIN_COSINE:
        raise ValueError(
            f"The extractor has the database's backbone and layers but different weights "
            f"(its response to a probe image has cosine {cosine:.4f} with the one recorded "
            f"in {str(path)!r}); with weights=None every fit draws new random "
            "weights. Query with the same fitted extractor that built the database."
        )
