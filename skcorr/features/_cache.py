"""A feature cache keyed by image content, following ``Pipeline(memory=...)``.

A transformer with ``memory`` set (a folder or a :class:`joblib.Memory`) stores the
features of every image it computes and serves them again to any transformer with the
same *signature*: the class, every parameter that changes the output (not the batch
size or the mode) and, for convnets, a digest of the network's weights (so a weights
file is known by its content, and two random initialisations never share entries) and
the kind of device (the CPU, or the model of GPU, whose kernels round differently).
Images are known by a digest of their RGB pixels, never by their path: a file whose
content changes gets new features.

Entries are written by :class:`joblib.Memory` (one pickle per image and feature kind),
so several processes, or the workers of a cluster sharing the folder, may read and
write the same cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import warnings
import weakref

import joblib
import numpy as np
from sklearn.utils.validation import check_memory

from .._image import image_digest

__all__ = ["FeatureCache", "carry_weights_digest", "check_memory_folder", "weights_digest"]


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


def _weights_fingerprint(state: dict) -> tuple:
    """What changes when a tensor is edited or replaced: its storage and version counter.

    torch bumps a tensor's ``_version`` on every in-place operation (``p.mul_``,
    ``load_state_dict``, an optimiser step) and a new tensor has a new ``data_ptr``.
    """
    return tuple((name, tensor.data_ptr(), tensor._version, tuple(tensor.shape),
                  str(tensor.dtype), str(tensor.device))
                 for name, tensor in sorted(state.items()))


def weights_digest(module) -> str:
    """Digest of a torch module's parameters and buffers (names and values).

    Memoised per module for as long as no tensor of it is edited in place or replaced
    (torch's version counters and data pointers are unchanged), so that a network whose
    weights are edited after ``fit`` gets new cache entries. Edits made through
    ``tensor.data``, which torch does not count, are not seen: edit under
    ``torch.no_grad()`` instead.
    """
    state = module.state_dict()
    fingerprint = _weights_fingerprint(state)
    memo = _WEIGHT_DIGESTS.get(module)
    if memo is not None and memo[0] == fingerprint:
        return memo[1]
    h = hashlib.blake2b(digest_size=20)
    for name, tensor in sorted(state.items()):
        array = tensor.detach().cpu().contiguous().numpy()
        h.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
        h.update(memoryview(array).cast("B"))
    digest = h.hexdigest()
    _WEIGHT_DIGESTS[module] = (fingerprint, digest)
    return digest


def carry_weights_digest(module, digest: str) -> None:
    """Record ``digest`` as the weights digest of ``module``, a fresh copy of a module
    whose digest it is (so that :func:`weights_digest` need not hash the copy again)."""
    _WEIGHT_DIGESTS[module] = (_weights_fingerprint(module.state_dict()), digest)


class _NotCached(Exception):
    """Raised by the cached function when joblib calls it to fill an entry it cannot read."""


def _remember(value, signature, kind, image, extra):
    """The cached function: joblib stores its result under the digest of the other arguments.

    It is only ever called with a value to store; joblib calls it with ``None`` when an
    entry it was asked to read has gone or cannot be read, and nothing is stored then.
    """
    if value is None:
        raise _NotCached
    return value


def _checksum(value) -> str:
    return joblib.hash(value)


class FeatureCache:
    """Per-image results of one transformer signature, stored by a :class:`joblib.Memory`.

    Every entry holds the result with a checksum of it. An entry that cannot be read
    (truncated, garbled, emptied, written by another version), whose checksum does not
    match or whose result is not of the expected type is cleared and computed again;
    a result that is not of the expected type is never stored.

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

    def _load(self, key, expect):
        """The result stored under ``key``, or None when absent or unreadable (then cleared)."""
        if not self._store.check_call_in_cache(None, *key):
            return None
        try:
            entry = self._store.call_and_shelve(None, *key)
        except _NotCached:  # removed since the check, by another process
            return None
        try:
            checksum, value = entry.get()
            if (not isinstance(checksum, str) or not isinstance(value, expect)
                    or _checksum(value) != checksum):
                raise ValueError("not an entry of this cache")
        except Exception:  # noqa: BLE001 - any damage: unpickling can raise anything
            with contextlib.suppress(OSError):
                entry.clear()
            self.damaged += 1
            return None
        return value

    def get_or_compute(self, kind: str, images, compute, extras=None, expect=object) -> list:
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
        expect : type or tuple of type, default=object
            The type of a result: entries holding anything else are recomputed, and a
            computed result of another type raises a RuntimeError instead of being
            stored.

        Returns
        -------
        results : list
            One result per image, in order.
        """
        keys = []
        for i, image in enumerate(images):
            extra = None
            if extras is not None:
                extra = hashlib.blake2b(np.ascontiguousarray(extras[i]).tobytes(),
                                        digest_size=20).hexdigest()
            keys.append((self.signature, kind, image_digest(image), extra))
        self.damaged = 0
        results: list = [None] * len(images)
        missing: dict = {}
        for i, key in enumerate(keys):
            if key in missing:
                missing[key].append(i)
                continue
            value = self._load(key, expect)
            if value is None:
                missing[key] = [i]
            else:
                results[i] = value
        if self.damaged:
            what = "1 entry" if self.damaged == 1 else f"{self.damaged} entries"
            warnings.warn(
                f"{what} of the feature cache in {self._store.store_backend.location} could "
                "not be read (damaged, or written by another version of skcorr) and were "
                "computed again.", UserWarning, stacklevel=3)
        if missing:
            first = [rows[0] for rows in missing.values()]
            todo = [images[i] for i in first]
            computed = (compute(todo) if extras is None
                        else compute(todo, [extras[i] for i in first]))
            computed = list(computed)
            if len(computed) != len(first):
                raise RuntimeError(f"{len(computed)} {kind} results for {len(first)} images; "
                                   "nothing was cached.")
            for value in computed:
                if not isinstance(value, expect):
                    raise RuntimeError(f"A {kind} result is a {type(value).__name__}, not "
                                       f"{_type_names(expect)}; nothing was cached.")
            for (key, rows), value in zip(missing.items(), computed, strict=True):
                self._store.call((_checksum(value), value), *key)
                for i in rows:
                    results[i] = value
        return results


def _type_names(expect) -> str:
    types = expect if isinstance(expect, tuple) else (expect,)
    return " or ".join(t.__name__ for t in types)


def signature(transformer, ignored, identity=None) -> str:
    """Digest of a transformer's class, output-changing parameters and identity."""
    params = {name: value for name, value in transformer.get_params(deep=False).items()
              if name not in ignored}
    params = {name: os.fspath(value) if isinstance(value, os.PathLike) else value
              for name, value in params.items()}
    kind = f"{type(transformer).__module__}.{type(transformer).__qualname__}"
    return joblib.hash((kind, sorted(params.items()), identity))
