"""The alignment cache of the flow estimators: one small file per transfer.

An entry is the result of aligning one feature map to another and moving points with
the flow: the moved points and the flow's deformation and data energies. It is keyed by
the content digests of the two maps, the points and the flow's settings, so a grid
search aligns each pair once per setting, whichever estimator, fold or process asks.

Entries live under ``<memory folder>/skcorr-flows/`` as ``.npy`` files of float64 (no
pickle: a damaged or foreign file is found by its shape and computed again, never
executed), fanned out over 256 subfolders by the key's first two hex digits. Each is
written under a temporary name and renamed into place, so readers in other processes
or on other machines sharing the folder see an entry whole or not at all. A file per
entry, rather than joblib's folder with two files, keeps a search's 10^4 entries cheap
to write, to read and to remove.
"""

from __future__ import annotations

import hashlib
from contextlib import suppress
from pathlib import Path

import numpy as np

from .._io import atomic_path

__all__ = ["FlowStore", "map_digest"]

# Part of every key: raise it when align's results change (the cache outlives upgrades).
FORMAT = 3


def map_digest(fmap) -> str:
    """Digest of a :class:`~skcorr.FeatureMap`'s content: its columns, grid and fields."""
    digest = hashlib.blake2b(digest_size=20)
    for array in (fmap.features, fmap.xs, fmap.ys):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(memoryview(array).cast("B"))
    fields = sorted((fmap.receptive_fields or {}).items())
    digest.update(repr((float(fmap.rf_size), tuple(fmap.image_shape), fmap.bin_size,
                        fields)).encode())
    return digest.hexdigest()


class FlowStore:
    """Transfers stored by key in a folder (see the module's description).

    Parameters
    ----------
    location : str or path
        The cache folder (``memory``'s); entries go in its ``skcorr-flows`` subfolder.
    """

    def __init__(self, location):
        self.folder = Path(location) / "skcorr-flows"

    @staticmethod
    def key(source_digest: str, target_digest: str, points: np.ndarray, settings: dict) -> str:
        """The key of moving ``points`` by the flow from one map to the other."""
        points = np.ascontiguousarray(points, dtype=np.float64)
        digest = hashlib.blake2b(digest_size=20)
        settings = sorted((name, value.item() if isinstance(value, np.generic) else value)
                          for name, value in settings.items())
        digest.update(repr((FORMAT, source_digest, target_digest, points.shape,
                            settings)).encode())
        digest.update(memoryview(points).cast("B"))
        return digest.hexdigest()

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.npy"

    def get(self, key: str, n_points: int):
        """``(points, deformation, data_energy)`` stored under ``key``, or None when the
        entry is absent or unreadable (a damaged one is removed)."""
        path = self._path(key)
        try:
            values = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, EOFError):  # damaged: truncated, garbled, foreign
            with suppress(OSError):
                path.unlink()
            return None
        if values.dtype != np.float64 or values.shape != (2 + 2 * n_points,):
            with suppress(OSError):
                path.unlink()
            return None
        return values[2:].reshape(n_points, 2), float(values[0]), float(values[1])

    def put(self, key: str, result) -> None:
        """Store ``(points, deformation, data_energy)`` under ``key``, whole or not at all."""
        points, deformation, data_energy = result
        values = np.concatenate([[deformation, data_energy],
                                 np.asarray(points, dtype=np.float64).ravel()])
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # A cache entry needs no fsync: one lost in a crash is only computed again.
        with atomic_path(path, durable=False) as tmp:
            np.save(tmp, values, allow_pickle=False)
