"""The files of a column database: their layout, how they are written and checked.

Layout of a database folder (every array a ``.npy`` file, memory-mapped on reading):

==================  ===========================  ===========================================
file                shape, dtype                 content
==================  ===========================  ===========================================
``columns.npy``     (n_columns, d) float16/32    the columns, L2-normalised
``image_index.npy`` (n_columns,) int32           the database image each column comes from
``centers.npy``     (n_columns, 2) float32       RF centre (x, y) in that image's pixels
``pixels.npy``      (n_pixels,) uint8            every image's RGB pixels, one after another
``images.npy``      (n_images, 5) float64        per image: pixel offset, height, width,
                                                 grid stride x, grid stride y
``rf_sizes.npy``    (n_images,) float64          the layer's RF side in that image's pixels
``fingerprint.npy`` (m,) float32                 the extractor's response to a fixed probe
``meta.json``                                    backbone, weights, layers, n_features, ...
``.skcorr-column-database``                      marker: skcorr made this folder
``index.faiss``                                  optional approximate index (build_index)
``index.json``                                   what the index was built from and with
==================  ===========================  ===========================================

Patches are cut on demand from the stored pixels (a copy of every image, so a database
does not depend on files that may move and works for images given as arrays): any
patch size can be cut later (stride-sized patches for reconstruction, whole receptive
fields for RF averages). The price is disk: an image of ``H x W`` pixels costs ``3 H W``
bytes beside its columns.

``columns.npy`` and ``pixels.npy`` are written incrementally, batch by batch, so that
building never holds more than one batch of columns in memory: the ``.npy`` header is
written first for zero rows (numpy reserves room in it for the first axis to grow), the
rows are appended, and the header is rewritten in place with the final count.
``meta.json`` is written last; a folder with the marker and no ``meta.json`` is an
incomplete build. A build fills a hidden sibling folder and takes the place of the
target only once complete (:func:`staged_folder`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .._array import l2_normalize
from .._image import as_rgb
from .._io import write_text
from ._extractor import extractor_signature, fingerprint, grid_steps

__all__ = ["FORMAT_VERSION", "MARKER", "NpyAppender", "digest", "made_by_skcorr", "read_store",
           "staged_folder", "write_store"]

FORMAT_VERSION = 1
MARKER = ".skcorr-column-database"
#: meta.json keys, with the types their values must have.
_META_TYPES = {
    "format_version": int, "backbone": str, "weights": (str, type(None)), "layers": list,
    "n_features": int, "normalize": bool, "image_size": (int, type(None)), "dtype": str,
    "rf_size": list, "stride": list, "n_columns": int, "n_images": int,
}


class NpyAppender:
    """Write a C-ordered ``.npy`` file by appending rows, never holding them all."""

    def __init__(self, path, dtype, row_shape: tuple[int, ...]):
        self.path = path
        self.dtype = np.dtype(dtype)
        self.row_shape = tuple(row_shape)
        self.n_rows = 0
        self._file = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        self._write_header()
        self._header_length = self._file.tell()

    def _write_header(self) -> None:
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                  "shape": (self.n_rows, *self.row_shape)}
        np.lib.format.write_array_header_1_0(self._file, header)

    def append(self, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if rows.shape[1:] != self.row_shape:
            raise ValueError(f"rows of shape {rows.shape[1:]} where {self.row_shape} belongs")
        self._file.write(rows.tobytes())
        self.n_rows += len(rows)

    def close(self) -> None:
        self._file.seek(0)
        self._write_header()
        if self._file.tell() != self._header_length:  # pragma: no cover - numpy reserves room
            raise RuntimeError(f"The .npy header of {self.path} changed length on update.")
        self._file.close()

    def abort(self) -> None:
        self._file.close()


def digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=20).hexdigest()


# -- writing ---------------------------------------------------------------------------
def write_store(extractor, images, folder, *, batch_size: int, dtype: str,
                verbose: bool) -> None:
    """Write the files of a database of ``images`` into the new ``folder``.

    ``extractor`` is fitted and checked, ``images`` checked (:func:`check_images`). On
    an error the files written so far stay; the caller removes the folder.
    """
    layer = extractor.layers_[0]
    network_rf = extractor.receptive_fields_[layer]
    columns = NpyAppender(folder / "columns.npy", dtype, (int(extractor.n_features_out_),))
    pixels = NpyAppender(folder / "pixels.npy", np.uint8, ())
    index_parts, centre_parts, image_rows, rf_sizes = [], [], [], []
    progress = tqdm(total=len(images), desc="column database", unit="image",
                    disable=not verbose)
    try:
        for first in range(0, len(images), batch_size):
            batch = [as_rgb(image, name=f"images[{first + j}]")
                     for j, image in enumerate(images[first:first + batch_size])]
            fmaps = extractor.extract_dense(batch)
            for j, (rgb, fmap) in enumerate(zip(batch, fmaps, strict=True)):
                feats = fmap.features.reshape(-1, fmap.features.shape[2])
                columns.append(l2_normalize(feats.astype(np.float32)))
                index_parts.append(np.full(len(feats), first + j, dtype=np.int32))
                centre_parts.append(fmap.centers().astype(np.float32))
                sx, sy = grid_steps(fmap, float(network_rf.stride[0]))
                image_rows.append((pixels.n_rows, rgb.shape[0], rgb.shape[1], sx, sy))
                rf_sizes.append(fmap.rf_size)
                pixels.append(rgb.reshape(-1))
            progress.update(len(batch))
        columns.close()
        pixels.close()
    except BaseException:
        columns.abort()
        pixels.abort()
        raise
    finally:
        progress.close()
    np.save(folder / "image_index.npy", np.concatenate(index_parts))
    np.save(folder / "centers.npy", np.concatenate(centre_parts))
    np.save(folder / "images.npy", np.array(image_rows, dtype=np.float64))
    np.save(folder / "rf_sizes.npy", np.array(rf_sizes, dtype=np.float64))
    np.save(folder / "fingerprint.npy", fingerprint(extractor))
    meta = {
        "format_version": FORMAT_VERSION,
        **extractor_signature(extractor),
        "dtype": dtype,
        "rf_size": [float(v) for v in network_rf.size],
        "stride": [float(v) for v in network_rf.stride],
        "n_columns": int(columns.n_rows),
        "n_images": len(images),
        "build_id": uuid.uuid4().hex,
    }
    write_text(folder / "meta.json", json.dumps(meta, indent=1) + "\n")


# -- replacing a database whole -------------------------------------------------------
def _host() -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", socket.gethostname()) or "host"


def _stage_name(path: Path, kind: str) -> Path:
    """A hidden sibling of ``path`` that says which process on which host made it."""
    return path.with_name(f".{path.name}.skcorr-{kind}-{_host()}-{os.getpid()}-"
                          f"{secrets.token_hex(4)}")


def _stages(path: Path) -> list[tuple[Path, str, int]]:
    """The folders beside ``path`` that builds of it made: (folder, host, process id)."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.skcorr-(?:building|replaced)-"
                         r"(\w+)-(\d+)-[0-9a-f]{8}")
    if not path.parent.is_dir():
        return []
    found = []
    for folder in sorted(path.parent.iterdir()):
        match = pattern.fullmatch(folder.name)
        if match and folder.is_dir() and (folder / MARKER).is_file():
            found.append((folder, match[1], int(match[2])))
    return found


def _ended(host: str, pid: int) -> bool:
    """True if process ``pid`` of ``host`` is known to have ended."""
    if os.name != "posix" or host != _host():  # on Windows os.kill(pid, 0) ends it
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists, under another user
        return False
    return False


@contextmanager
def staged_folder(path: Path) -> Iterator[Path]:
    """A new hidden folder beside ``path`` to fill; it takes ``path``'s place on success.

    The swap renames the old folder aside, the new one in, then removes the old one, so
    that an error or interrupt while filling leaves ``path`` as it was (the new folder
    is removed). A killed process leaves its folder, which the next build of ``path``
    removes. Only a process killed between the two renames leaves ``path`` absent, with
    both folders beside it (:func:`read_store` names them).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():  # folders of killed builds, not of a swap they did not finish
        for stage, host, pid in _stages(path):
            if _ended(host, pid):
                shutil.rmtree(stage, ignore_errors=True)
    stage = _stage_name(path, "building")
    stage.mkdir()
    try:
        (stage / MARKER).write_text("A skcorr ColumnDatabase; removed by build(..., "
                                    "overwrite=True).\n")
        yield stage
        if not path.exists():
            os.rename(stage, path)
            return
        aside = _stage_name(path, "replaced")
        os.rename(path, aside)
        try:
            os.rename(stage, path)
        except BaseException:
            os.rename(aside, path)
            raise
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    shutil.rmtree(aside, ignore_errors=True)


# -- reading and checking --------------------------------------------------------------
def made_by_skcorr(path) -> bool:
    """True for an empty folder or one skcorr made for a database (marker, or valid meta)."""
    if not path.is_dir():
        return False
    if (path / MARKER).is_file() or not any(path.iterdir()):
        return True
    try:  # databases written before the marker existed
        meta = json.loads((path / "meta.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("format_version") == 1 and "n_columns" in meta


def damaged(path, what: str) -> ValueError:
    return ValueError(
        f"Column database {str(path)!r} is damaged: {what}. Build it again with "
        "ColumnDatabase.build(extractor, images, path, overwrite=True)."
    )


def read_meta(path) -> dict:
    """``meta.json`` of the database folder ``path``, its keys and types checked."""
    file = path / "meta.json"
    try:
        meta = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise damaged(path, f"{file} is not readable JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise damaged(path, f"{file} holds a {type(meta).__name__}, not an object")
    for key, kind in _META_TYPES.items():
        if key not in meta:
            raise damaged(path, f"{file} lacks the key {key!r}")
        value = meta[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise damaged(path, f"{file} has {key}={value!r}, of the wrong type")
    if meta["dtype"] not in ("float16", "float32") or meta["n_features"] < 1 \
            or meta["n_columns"] < 1 or meta["n_images"] < 1:
        raise damaged(path, f"{file} has impossible values (dtype {meta['dtype']!r}, "
                            f"{meta['n_columns']} columns of {meta['n_features']} from "
                            f"{meta['n_images']} images)")
    return meta


def read_arrays(path, meta: dict) -> dict:
    """Load the arrays and check them against each other and against meta.json."""
    n, d, n_images = meta["n_columns"], meta["n_features"], meta["n_images"]
    arrays = {}
    for name in ("columns", "pixels", "image_index", "centers", "images", "rf_sizes",
                 "fingerprint"):
        file = path / f"{name}.npy"
        if not file.is_file():
            raise FileNotFoundError(
                f"Column database {str(path)!r} lacks {file.name}; it is damaged. Build "
                "it again with ColumnDatabase.build(..., overwrite=True)."
            )
        try:
            arrays[name] = np.load(file, mmap_mode="r" if name in ("columns", "pixels")
                                   else None, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise damaged(path, f"{file.name} cannot be read, truncated or not a .npy "
                                f"file ({exc})") from exc
    expected = {"columns": ((n, d), meta["dtype"]), "image_index": ((n,), "int32"),
                "centers": ((n, 2), "float32"), "images": ((n_images, 5), "float64"),
                "rf_sizes": ((n_images,), "float64")}
    for name, (shape, dtype) in expected.items():
        array = arrays[name]
        if array.shape != shape or array.dtype != np.dtype(dtype):
            raise damaged(path, f"{name}.npy has shape {array.shape} and dtype {array.dtype}"
                                f", meta.json implies {shape} and {dtype}")
    images, index = arrays["images"], arrays["image_index"]
    heights, widths = images[:, 1], images[:, 2]
    sizes = 3 * heights * widths
    offsets = np.concatenate([[0.0], np.cumsum(sizes)[:-1]])
    if np.any(heights < 1) or np.any(widths < 1) or not np.array_equal(images[:, 0], offsets):
        raise damaged(path, "images.npy holds image sizes or pixel offsets that do not fit "
                            "together")
    if arrays["pixels"].shape != (int(sizes.sum()),) or arrays["pixels"].dtype != np.uint8:
        raise damaged(path, f"pixels.npy has shape {arrays['pixels'].shape}, the images need "
                            f"({int(sizes.sum())},) uint8")
    if index.min() < 0 or index.max() >= n_images or np.any(np.diff(index) < 0):
        raise damaged(path, f"image_index.npy must list images 0 .. {n_images - 1} in order")
    if arrays["fingerprint"].ndim != 1 or arrays["fingerprint"].size == 0:
        raise damaged(path, "fingerprint.npy is empty")
    return arrays


def read_store(path: Path) -> tuple[dict, dict]:
    """``meta.json`` and the arrays of the database folder ``path``, all checked.

    Raises FileNotFoundError (with the fix) for a missing, incomplete or foreign folder,
    ValueError for a damaged one.
    """
    if not path.exists():
        # killed between the two renames of staged_folder: the databases beside it
        left = [stage for stage, _, _ in _stages(path) if (stage / "meta.json").is_file()]
        if left:
            raise FileNotFoundError(
                f"No column database at {str(path)!r}: a build that replaced it was "
                f"killed while swapping folders, and left the old and the new database "
                f"beside it ({', '.join(str(p) for p in left)}). Rename the one to keep "
                "to the path (and delete the other), or build it again."
            )
        raise FileNotFoundError(
            f"No column database at {str(path)!r}; build one with "
            "ColumnDatabase.build(extractor, images, path)."
        )
    if not (path / "meta.json").is_file():
        if (path / MARKER).is_file():
            raise FileNotFoundError(
                f"The column database {str(path)!r} is incomplete: its build did not "
                "finish (interrupted or killed). Build it again with "
                "ColumnDatabase.build(extractor, images, path, overwrite=True), which "
                "removes the incomplete folder."
            )
        raise FileNotFoundError(
            f"{str(path)!r} holds no meta.json: it is not a column database. Build one "
            "with ColumnDatabase.build(extractor, images, path)."
        )
    meta = read_meta(path)
    if meta["format_version"] != FORMAT_VERSION:
        raise ValueError(
            f"Column database {str(path)!r} has format version "
            f"{meta['format_version']!r}; this skcorr reads version {FORMAT_VERSION}. "
            "Build it again."
        )
    return meta, read_arrays(path, meta)
