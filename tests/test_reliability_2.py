"""Faults of issue 23 and the rules that keep their siblings out.

* the feature cache recomputes what it cannot read and never stores what it did not
  compute; its weights digest follows in-place edits of the network;
* SIGTERM ends a command like Ctrl-C;
* a dask scheduler address that does not answer fails within its timeout;
* n_jobs and image_size are bounded;
* the command line checks every argument before it reads data;
* tables are written through symlinks and name their target in errors;
* a multi-frame image is refused;
* long commands show progress bars on stderr, never on stdout.
"""

import contextlib
import functools
import os
import signal
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from skcorr import ConvColumnExtractor, FeatureMap, keypoint_samples
from skcorr.features._sift import DenseSIFT

REPO = Path(__file__).resolve().parents[1]


def _images(n=2, shape=(40, 48)):
    rng = np.random.default_rng(7)
    return [rng.integers(0, 255, (*shape, 3), dtype=np.uint8) for _ in range(n)]


# --- the feature cache: damaged entries ------------------------------------------------

IMAGES = _images()
KEYPOINTS = np.array([[[5.0, 6.0], [30.0, 20.0]], [[12.0, 33.0], [40.0, 2.0]]])


def _conv(mode, memory=None):
    return ConvColumnExtractor(weights=None, layer="stage3", mode=mode, memory=memory,
                               device="cpu")


def _sift(mode, memory=None):
    return DenseSIFT(mode=mode, radius=6, step=8, bin_size=4, memory=memory)


def _input(mode):
    return keypoint_samples(IMAGES, KEYPOINTS)[0] if mode == "keypoints" else IMAGES


@functools.cache
def _fitted(family, mode):
    """A fitted transformer without a cache and its features (a cold run)."""
    torch.manual_seed(0)
    ext = (_conv if family == "conv" else _sift)(mode).fit()
    return ext, ext.transform(_input(mode))


@pytest.fixture(scope="module")
def fitted():
    return {(family, mode): _fitted(family, mode) for family in ("conv", "sift")
            for mode in ("dense", "global", "keypoints")}


def _assert_same(got, expected):
    """Equal features (a convnet's last bits depend on which images share a batch)."""
    if isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected)
        for g, e in zip(got, expected, strict=True):
            assert isinstance(g, FeatureMap)
            np.testing.assert_allclose(g.features, e.features, rtol=1e-5, atol=1e-6)
            np.testing.assert_array_equal(g.xs, e.xs)
            np.testing.assert_array_equal(g.ys, e.ys)
            assert (g.rf_size, g.image_shape, g.bin_size) == (e.rf_size, e.image_shape,
                                                              e.bin_size)
    else:
        assert isinstance(got, np.ndarray) and got.dtype == expected.dtype
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def _entries(folder) -> list[Path]:
    return sorted(Path(folder).rglob("output.pkl"))


def _damage(path: Path, how):
    kind, arg = how
    data = path.read_bytes()
    if kind == "delete":
        path.unlink()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncate":
        path.write_bytes(data[: arg % (len(data) + 1)])
    elif kind == "flip" and data:
        buffer = bytearray(data)
        for position, mask in arg:
            buffer[position % len(buffer)] ^= mask
        path.write_bytes(bytes(buffer))
    elif kind == "garbage":
        path.write_bytes(arg)


DAMAGE = st.one_of(
    st.tuples(st.just("delete"), st.none()),
    st.tuples(st.just("empty"), st.none()),
    st.tuples(st.just("truncate"), st.integers(0, 10**6)),
    st.tuples(st.just("flip"), st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)),
                                        min_size=1, max_size=4)),
    st.tuples(st.just("garbage"), st.binary(max_size=64)),
)


@settings(max_examples=30, deadline=None)
@given(family=st.sampled_from(["conv", "sift"]),
       mode=st.sampled_from(["dense", "global", "keypoints"]),
       damages=st.lists(st.tuples(st.integers(0, 10), DAMAGE), min_size=1, max_size=3))
def test_any_damage_to_any_entry_is_recomputed(family, mode, damages):
    """Issue 23 item 1: a damaged output.pkl made joblib rerun the cached function, which
    stored and returned None, for this and every later run."""
    ext, cold = _fitted(family, mode)
    X = _input(mode)
    with tempfile.TemporaryDirectory() as folder:
        cached = ext.set_params(memory=folder)
        try:
            _assert_same(cached.transform(X), cold)  # fills the cache
            entries = _entries(folder)
            assert entries
            for index, how in damages:
                path = entries[index % len(entries)]
                if path.exists():
                    _damage(path, how)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", ".* of the feature cache .* could not be read",
                                        UserWarning)
                _assert_same(cached.transform(X), cold)  # recomputed, not None
            _assert_same(cached.transform(X), cold)  # and stored whole again
            assert len(_entries(folder)) == len(entries)
        finally:
            ext.set_params(memory=None)


def test_a_damaged_entry_warns_and_is_rewritten(fitted, tmp_path):
    ext, cold = fitted["conv", "dense"]
    cached = ext.set_params(memory=tmp_path)
    try:
        cached.transform(IMAGES)
        entry = _entries(tmp_path)[0]
        entry.write_bytes(entry.read_bytes()[:100])
        with pytest.warns(UserWarning, match="1 entry of the feature cache .* could not be "
                                             "read .* computed again"):
            _assert_same(cached.transform(IMAGES), cold)
        _assert_same(cached.transform(IMAGES), cold)  # no warning: the entry is whole
    finally:
        ext.set_params(memory=None)


def test_the_cache_never_stores_what_was_not_computed(tmp_path):
    from skcorr.features._cache import FeatureCache, check_memory_folder

    cache = FeatureCache(check_memory_folder(tmp_path), "signature")
    with pytest.raises(RuntimeError, match="A dense result is a NoneType, not FeatureMap; "
                                           "nothing was cached"):
        cache.get_or_compute("dense", IMAGES, lambda images: [None] * len(images),
                             expect=FeatureMap)
    assert not _entries(tmp_path)


def test_an_entry_of_the_wrong_type_is_recomputed(tmp_path):
    """A readable entry holding something else (another version's format) is not served."""
    from skcorr.features._cache import FeatureCache, check_memory_folder

    cache = FeatureCache(check_memory_folder(tmp_path), "signature")
    cache.get_or_compute("global", IMAGES, lambda images: [np.zeros(3) for _ in images])
    calls = []

    def compute(images):
        calls.append(len(images))
        return [[1.0, 2.0] for _ in images]

    with pytest.warns(UserWarning, match="2 entries of the feature cache"):
        got = cache.get_or_compute("global", IMAGES, compute, expect=list)
    assert calls == [2] and got == [[1.0, 2.0], [1.0, 2.0]]
    assert cache.get_or_compute("global", IMAGES, compute, expect=list) == got
    assert calls == [2]  # the recomputed entries were stored


# --- the weights digest follows in-place edits ---------------------------------------


def test_editing_the_network_in_place_gives_new_features(tmp_path):
    """Issue 23 item 4: the digest was memoised per module, so edited weights were served
    the features of the old ones."""
    torch.manual_seed(1)
    ext = _conv("dense", memory=tmp_path).fit()
    before = ext.transform(IMAGES)
    with torch.no_grad():
        for parameter in ext.network_.parameters():
            parameter.mul_(-1.5)
    after = ext.transform(IMAGES)
    fresh = _conv("dense").fit()
    fresh.network_.load_state_dict(ext.network_.state_dict())
    _assert_same(after, fresh.transform(IMAGES))
    assert not np.allclose(after[0].features, before[0].features)
    # load_state_dict (copy_ in place) and a replaced tensor are seen too
    ext.network_.load_state_dict(_conv("dense").fit().network_.state_dict())
    third = ext.transform(IMAGES)
    assert not np.allclose(third[0].features, after[0].features)


def test_the_digest_is_memoised_while_nothing_changes(monkeypatch):
    from skcorr.features import _cache

    module = torch.nn.Linear(3, 2)
    first = _cache.weights_digest(module)
    hashed = []
    blake2b = _cache.hashlib.blake2b
    monkeypatch.setattr(_cache.hashlib, "blake2b",
                        lambda **kw: hashed.append(1) or blake2b(**kw))
    assert _cache.weights_digest(module) == first and not hashed
    with torch.no_grad():
        module.bias.add_(1.0)
    assert _cache.weights_digest(module) != first and hashed
