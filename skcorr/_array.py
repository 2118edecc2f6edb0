"""Small array helpers shared across skcorr."""

from __future__ import annotations

import numpy as np


def l2_normalize(a, axis: int = -1) -> np.ndarray:
    """``a`` divided by its L2 norm along ``axis``; all-zero vectors stay zero."""
    a = np.asarray(a)
    norm = np.linalg.norm(a, axis=axis, keepdims=True)
    return a / np.maximum(norm, 1e-12)
