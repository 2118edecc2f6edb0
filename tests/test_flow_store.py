"""The flow estimators' alignment cache: one .npy file per transfer, keyed by content."""

import numpy as np
import pytest
import torch

from skcorr.datasets import load_sample_pairs
from skcorr.evaluation import pair_samples
from skcorr.features import ConvColumnExtractor
from skcorr.flow import PairTransfer, _estimators
from skcorr.flow._store import FlowStore, map_digest


@pytest.fixture(scope="module")
def samples():
    return pair_samples(load_sample_pairs())


def _features():
    torch.manual_seed(0)
    return ConvColumnExtractor(layer="stage3", weights=None, image_size=96)


def _counting(monkeypatch):
    calls = []
    original = _estimators._align_unchecked

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(_estimators, "_align_unchecked", counted)
    return calls


def test_entries_round_trip_and_damaged_ones_are_dropped(tmp_path):
    store = FlowStore(tmp_path)
    points = np.array([[1.5, 2.25], [np.nan, np.nan], [10.0, -3.0]])
    key = store.key("a" * 40, "b" * 40, points, {"lam": 0.1})
    assert store.get(key, 3) is None
    store.put(key, (points, 2.5, 7.0))
    moved, deformation, data = store.get(key, 3)
    np.testing.assert_array_equal(moved, points)
    assert (deformation, data) == (2.5, 7.0)
    assert store.get(key, 4) is None  # another shape: not this entry; removed
    path = next(tmp_path.joinpath("skcorr-flows").rglob("*.npy"), None)
    assert path is None
    store.put(key, (points, 2.5, 7.0))
    path = next(tmp_path.joinpath("skcorr-flows").rglob("*.npy"))
    path.write_bytes(path.read_bytes()[:40])  # truncated
    assert store.get(key, 3) is None and not path.exists()
    np.save(path, np.array([{"x": 1}], dtype=object), allow_pickle=True)  # a pickle
    assert store.get(key, 3) is None and not path.exists()
    assert not list(tmp_path.rglob(".*.tmp*"))


def test_keys_follow_content_and_settings():
    points = np.array([[1.0, 2.0]])
    key = FlowStore.key("a", "b", points, {"lam": 0.1, "radius": None})
    assert key == FlowStore.key("a", "b", points.copy(), {"radius": None,
                                                          "lam": np.float64(0.1)})
    assert key != FlowStore.key("a", "b", points, {"lam": 0.2, "radius": None})
    assert key != FlowStore.key("b", "a", points, {"lam": 0.1, "radius": None})
    assert key != FlowStore.key("a", "b", points + 1e-9, {"lam": 0.1, "radius": None})


def test_map_digest_follows_every_value(samples):
    X, _ = samples
    fmap = _features().set_params(mode="dense").fit().extract_dense([X[0, 0]])[0]
    same = type(fmap)(**{**vars(fmap), "features": fmap.features.copy()})
    assert map_digest(same) == map_digest(fmap)
    same.features[3, 2, 1] += 1e-6
    assert map_digest(same) != map_digest(fmap)
    moved = type(fmap)(**{**vars(fmap), "xs": fmap.xs + 0.5})
    assert map_digest(moved) != map_digest(fmap)


def test_each_pair_is_aligned_once_per_setting(samples, tmp_path, monkeypatch):
    X, _ = samples
    calls = _counting(monkeypatch)
    estimator = PairTransfer(_features(), lam=0.1, memory=tmp_path).fit(X)
    first = estimator.predict(X[[0, 1, 0]])[[0, 1]]  # a pair asked twice is aligned once
    assert len(calls) == 2
    first = estimator.predict(X)
    assert len(calls) == len(X)
    again = PairTransfer(_features(), lam=0.1, memory=tmp_path).fit(X).predict(X[::-1])
    assert len(calls) == len(X)  # all read from the cache
    np.testing.assert_array_equal(again, first[::-1])
    estimator.set_params(lam=0.2).predict(X[:2])
    assert len(calls) == len(X) + 2  # a new setting is a new entry

    # Damaged entries are computed again, to the same result.
    for entry in tmp_path.joinpath("skcorr-flows").rglob("*.npy"):
        entry.write_bytes(b"garbage")
    assert np.array_equal(estimator.set_params(lam=0.1).predict(X), first, equal_nan=True)
    assert len(calls) == 2 * len(X) + 2


def test_with_and_without_memory_results_agree(samples, tmp_path, monkeypatch):
    X, _ = samples
    calls = _counting(monkeypatch)
    cached = PairTransfer(_features(), memory=tmp_path).fit(X).predict(X)
    plain = PairTransfer(_features()).fit(X).predict(X[[0, 0, 1]])
    np.testing.assert_array_equal(plain, cached[[0, 0, 1]])
    assert len(calls) == len(X) + 3
