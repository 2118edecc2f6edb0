"""The approximate faiss index of a column database (``index.faiss``, ``index.json``).

:meth:`ColumnDatabase.build_index` trains an IVF/PQ (or any inner-product) faiss index
on a sample of the columns and fills it block by block. ``index.json`` records what it
was built from and with (factory string, default ``nprobe``, the database's
``build_id``, a digest of ``index.faiss``) and a checksum of all of that, so that an
edited ``index.json``, or one that belongs to another index, is refused on reading
instead of silently changing how searches run.
"""

from __future__ import annotations

import json
import numbers

import faiss
import numpy as np
from tqdm.auto import tqdm

from .._io import atomic_path, write_text
from ._store import digest

__all__ = ["build_index", "load_index"]

INDEX_FILE, INFO_FILE = "index.faiss", "index.json"


def _checksum(info: dict) -> str:
    """Digest of every entry of ``info`` but the checksum itself, in a fixed order."""
    fields = {key: value for key, value in info.items() if key != "checksum"}
    return digest(json.dumps(fields, sort_keys=True).encode())


def build_index(columns, folder, build_id, factory, *, nprobe, train_size, chunk_size,
                random_state, overwrite, verbose):
    """Train and fill a faiss index of ``columns``; write it to ``folder``.

    See :meth:`ColumnDatabase.build_index` for the parameters.

    Returns
    -------
    (faiss.Index, dict)
        The index and what ``index.json`` says of it.
    """
    index_file = folder / INDEX_FILE
    if index_file.exists() and not overwrite:
        raise FileExistsError(
            f"{str(index_file)!r} exists; pass overwrite=True to build it again."
        )
    for name, value in (("nprobe", nprobe), ("train_size", train_size),
                        ("chunk_size", chunk_size)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    n, d = columns.shape
    try:
        index = faiss.index_factory(d, str(factory), faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise ValueError(
            f"faiss cannot build the index {factory!r} for columns of {d} "
            f"({str(exc).strip().splitlines()[-1]}); see faiss.index_factory, e.g. "
            "'IVF1024,PQ16' (the PQ size must divide the column length)."
        ) from exc
    rng = np.random.default_rng(random_state)
    sample = np.sort(rng.choice(n, min(n, train_size), replace=False))
    train = np.ascontiguousarray(columns[sample], dtype=np.float32)
    if not index.is_trained:
        ivf = faiss.try_extract_index_ivf(index)
        lists = ivf.nlist if ivf is not None else 0
        if lists > len(train):
            raise ValueError(
                f"{factory!r} has {lists} inverted lists but only {len(train)} training "
                "columns; use fewer lists (IVF<n> with n well below the column count)."
            )
        index.train(train)
    for start in tqdm(range(0, n, chunk_size), desc="index", disable=not verbose):
        index.add(np.ascontiguousarray(columns[start:start + chunk_size], dtype=np.float32))
    data = faiss.serialize_index(index).tobytes()
    info = {"factory": str(factory), "nprobe": int(nprobe), "n_columns": n,
            "n_features": d, "metric": "inner_product", "build_id": build_id,
            "digest": digest(data)}
    info["checksum"] = _checksum(info)
    with atomic_path(index_file) as temporary:
        temporary.write_bytes(data)
    write_text(folder / INFO_FILE, json.dumps(info, indent=1) + "\n")
    return index, info


def load_index(folder, *, n_columns, n_features, build_id):
    """Read the index of the database in ``folder``; refuse one that does not fit it.

    Returns
    -------
    (faiss.Index, dict)
        The index and its ``index.json``.
    """
    index_file, info_file = folder / INDEX_FILE, folder / INFO_FILE
    if not index_file.is_file():
        raise ValueError(
            f"Column database {str(folder)!r} has no approximate index; build one "
            "with db.build_index() or search with approximate=False."
        )
    fix = ("Build it again with db.build_index(..., overwrite=True), or search with "
           "approximate=False.")
    try:
        info = json.loads(info_file.read_text())
        data = index_file.read_bytes()
        index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
    except (OSError, ValueError, RuntimeError) as exc:
        raise ValueError(f"The index {str(index_file)!r} (or its index.json) cannot be "
                         f"read ({exc}). {fix}") from exc
    if not isinstance(info, dict) or info.get("checksum") != _checksum(info):
        raise ValueError(
            f"{str(info_file)!r} was edited, or was not written with this index by this "
            f"version of build_index (its checksum does not match its content); its "
            f"settings cannot be trusted. {fix}"
        )
    expected = {"n_columns": n_columns, "n_features": n_features,
                "metric": "inner_product", "build_id": build_id}
    actual = {"n_columns": index.ntotal, "n_features": index.d,
              "metric": ("inner_product" if index.metric_type == faiss.METRIC_INNER_PRODUCT
                         else "other"),
              "build_id": info.get("build_id")}
    diff = [f"{key}: index {actual[key]!r}, database {expected[key]!r}"
            for key in expected if actual[key] != expected[key]]
    if info.get("digest") != digest(data):
        diff.append(f"index.faiss is not the index index.json describes ({info['factory']})")
    if diff:
        raise ValueError(f"The index {str(index_file)!r} was built with other settings "
                         f"than the database ({'; '.join(diff)}). {fix}")
    return index, info
