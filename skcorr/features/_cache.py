"""A feature cache keyed by image content, following ``Pipeline(memory=...)``.

A transformer with ``memory`` set (a folder or a :class:`joblib.Memory`) stores the
features of every image it computes and serves them again to any transformer with the
same *signature*: the class, every parameter that changes the output (not the device,
the batch size or the mode) and, for convnets, a digest of the network's weights (so a
weights file is known by its content, and two random initialisations never share
entries). Images are known by a digest of their RGB pixels, never by their path: a file
whose content changes gets new features.

Entries are written by :class:`joblib.Memory` (one pickle per image and feature kind),
so several processes, or the workers of a cluster sharing the folder, may read and
write the same cache.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import weakref

import joblib
import numpy as np
from sklearn.utils.validation import check_memory

from .._image import image_digest

__all__ = ["FeatureCache", "check_memory_folder", "weights_digest"]


def check_memory_folder(memory):
    """``memory`` as a :class:`joblib.Memory`, or None when it caches nothing.

    Raises a ValueError when its folder cannot be created or written, before any work.
    """
    if isinstance(memory, os.PathLike):
        memory = os.fspath(memory)
    location = memory
    try:
        memory = check_memory(memory)  # joblib.Memory(folder) creates the folder
        location = getattr(memory, "location", None)
        if location is None:
            return None
        if os.fspath(location) in _WRITABLE:
            return memory
        os.makedirs(location, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=location, prefix=".skcorr-write-test-"):
            pass
    except ValueError as exc:
        raise ValueError(
            f"memory must be None, a folder path or a joblib.Memory, got {memory!r}."
        ) from exc
    except OSError as exc:
        raise ValueError(
            f"The feature cache folder {os.fspath(location)!r} is not writable "
            f"({exc.strerror or exc}); pass memory= a folder you can write to, or "
            "memory=None to compute features without a cache."
        ) from exc
    _WRITABLE.add(os.fspath(location))
    return memory


_WRITABLE: set = set()  # folders found writable in this process


_WEIGHT_DIGESTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def weights_digest(module) -> str:
    """Digest of a torch module's parameters and buffers (names and values), memoised."""
    digest = _WEIGHT_DIGESTS.get(module)
    if digest is None:
        h = hashlib.blake2b(digest_size=20)
        for name, tensor in sorted(module.state_dict().items()):
            array = tensor.detach().cpu().contiguous().numpy()
            h.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
            h.update(memoryview(array).cast("B"))
        digest = _WEIGHT_DIGESTS[module] = h.hexdigest()
    return digest


def _remember(value, signature, kind, image, extra):
    """The cached function: joblib stores its result under the digest of the other arguments."""
    return value


class FeatureCache:
    """Per-image results of one transformer signature, stored by a :class:`joblib.Memory`.

    Parameters
    ----------
    memory : joblib.Memory
        Where entries live (its location must be writable).
    signature : str
        Digest of everything but the image that determines the result.
    """

    def __init__(self, memory, signature: str):
        self._store = memory.cache(_remember, ignore=["value"])
        self.signature = signature

    def get_or_compute(self, kind: str, images, compute, extras=None) -> list:
        """Per image, the cached result of ``kind``, computing the missing ones together.

        Parameters
        ----------
        kind : str
            What is cached (``"dense"``, ``"global"``, ``"points"``).
        images : list of ndarray
            RGB arrays.
        compute : callable
            ``compute(images)`` (or ``compute(images, extras)``) returning one result per
            image, called once with the images missing from the cache (duplicates
            computed once).
        extras : list of ndarray, optional
            Per image, more input the result depends on (e.g. the points asked for).
        """
        keys = []
        for i, image in enumerate(images):
            extra = None
            if extras is not None:
                extra = hashlib.blake2b(np.ascontiguousarray(extras[i]).tobytes(),
                                        digest_size=20).hexdigest()
            keys.append((self.signature, kind, image_digest(image), extra))
        results: list = [None] * len(images)
        missing: dict = {}
        for i, key in enumerate(keys):
            if key in missing:
                missing[key].append(i)
            elif self._store.check_call_in_cache(None, *key):
                results[i] = self._store(None, *key)
            else:
                missing[key] = [i]
        if missing:
            first = [rows[0] for rows in missing.values()]
            todo = [images[i] for i in first]
            computed = (compute(todo) if extras is None
                        else compute(todo, [extras[i] for i in first]))
            for (key, rows), value in zip(missing.items(), computed, strict=True):
                self._store(value, *key)
                for i in rows:
                    results[i] = value
        return results


def signature(transformer, ignored, identity=None) -> str:
    """Digest of a transformer's class, output-changing parameters and identity."""
    params = {name: value for name, value in transformer.get_params(deep=False).items()
              if name not in ignored}
    params = {name: os.fspath(value) if isinstance(value, os.PathLike) else value
              for name, value in params.items()}
    kind = f"{type(transformer).__module__}.{type(transformer).__qualname__}"
    return joblib.hash((kind, sorted(params.items()), identity))
