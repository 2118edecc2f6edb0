"""Flow fields in files: the Middlebury ``.flo`` format and numpy's ``.npy``.

A ``.flo`` file (Baker et al., "A Database and Evaluation Methodology for Optical Flow")
is, little-endian: the float32 ``202021.25`` (the bytes ``PIEH``), the int32 width, the
int32 height, then ``height * width * 2`` float32 values, ``u`` (dx) and ``v`` (dy)
interleaved, row by row. OpenCV (``readOpticalFlow``), torchvision and the optical flow
benchmarks read it. Files are written whole or not at all, and never over an existing
file unless asked.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .._io import atomic_path
from ._align import Flow

__all__ = ["read_flo", "read_flow", "write_flo", "write_flow"]

FLO_MAGIC = 202021.25
_HEADER = np.dtype([("magic", "<f4"), ("width", "<i4"), ("height", "<i4")])


def _as_field(flow_field) -> np.ndarray:
    """``flow_field`` (an (H, W, 2) array or a Flow) as a float32 (H, W, 2) array."""
    if isinstance(flow_field, Flow):
        return flow_field.pixel_flow()
    field = np.asarray(flow_field)
    if field.ndim != 3 or field.shape[2] != 2 or 0 in field.shape:
        raise ValueError(
            f"flow_field must be an array of shape (H, W, 2) holding (u, v) per pixel, or a "
            f"Flow; got shape {field.shape}. A Flow's field is flow.pixel_flow()."
        )
    if not (np.issubdtype(field.dtype, np.floating) or np.issubdtype(field.dtype, np.integer)):
        raise TypeError(f"flow_field must hold numbers, got dtype {field.dtype}.")
    return field.astype(np.float32, copy=False)


def _check_new(path, overwrite: bool) -> Path:
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{str(path)!r} is a folder; pass the path of a file to write.")
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"{str(path)!r} already exists; pass overwrite=True to replace it, or choose "
            "another path."
        )
    return path


def write_flo(path, flow_field, *, overwrite: bool = False) -> None:
    """Write a flow field to a Middlebury ``.flo`` file, whole or not at all.

    Parameters
    ----------
    path : str or path-like
        The file to write (its extension is not checked).
    flow_field : array-like of shape (H, W, 2) or Flow
        ``(u, v)`` in pixels at every pixel (a :class:`Flow` is written as its
        :meth:`~Flow.pixel_flow`). Stored as float32.
    overwrite : bool, default=False
        Replace ``path`` when it exists; otherwise an existing file is an error.

    Raises
    ------
    FileExistsError
        When ``path`` exists and ``overwrite`` is False.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from skcorr.flow import read_flo, write_flo
    >>> path = Path(tempfile.mkdtemp()) / "example.flo"
    >>> field = np.zeros((3, 4, 2), np.float32)
    >>> field[..., 0] = 1.5  # every pixel moves 1.5 px right
    >>> write_flo(path, field)
    >>> bool((read_flo(path) == field).all())
    True
    """
    field = _as_field(flow_field)
    path = _check_new(path, overwrite)
    height, width = field.shape[:2]
    header = np.array([(FLO_MAGIC, width, height)], dtype=_HEADER)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        handle.write(header.tobytes())
        handle.write(np.ascontiguousarray(field, dtype="<f4").tobytes())


def read_flo(path) -> np.ndarray:
    """Read a Middlebury ``.flo`` file.

    Parameters
    ----------
    path : str or path-like
        The file.

    Returns
    -------
    field : ndarray of shape (H, W, 2), float32
        ``(u, v)`` at every pixel.

    Raises
    ------
    ValueError
        When the file does not start with the ``.flo`` magic number, or its size does
        not match the width and height in its header (truncated or padded).
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{str(path)!r} is a folder, not a .flo file.")
    data = path.read_bytes()
    if len(data) < _HEADER.itemsize:
        raise ValueError(f"{str(path)!r} is too short ({len(data)} bytes) to be a .flo file; "
                         "its 12-byte header is incomplete.")
    magic, width, height = np.frombuffer(data, _HEADER, count=1)[0].tolist()
    if magic != FLO_MAGIC:
        raise ValueError(
            f"{str(path)!r} is not a .flo file: it starts with {data[:4]!r} (float {magic!r}), "
            f"not the magic number {FLO_MAGIC} (b'PIEH')."
        )
    expected = _HEADER.itemsize + 8 * width * height
    if width <= 0 or height <= 0 or len(data) != expected:
        raise ValueError(
            f"{str(path)!r} is a damaged .flo file: its header says {width}x{height} pixels "
            f"({expected} bytes) but it holds {len(data)} bytes"
            + (" (truncated)." if len(data) < expected else ".")
        )
    values = np.frombuffer(data, "<f4", offset=_HEADER.itemsize)
    return values.reshape(height, width, 2).astype(np.float32)


def write_flow(path, flow_field, *, overwrite: bool = False) -> None:
    """Write a flow field as ``.flo`` or ``.npy``, as the path's extension says.

    Parameters
    ----------
    path : str or path-like
        Ending in ``.flo`` (Middlebury, :func:`write_flo`) or ``.npy`` (numpy, an
        ``(H, W, 2)`` float32 array).
    flow_field : array-like of shape (H, W, 2) or Flow
        ``(u, v)`` in pixels at every pixel, or a :class:`Flow`.
    overwrite : bool, default=False
        Replace ``path`` when it exists.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from skcorr.flow import read_flow, write_flow
    >>> path = Path(tempfile.mkdtemp()) / "example.npy"
    >>> write_flow(path, np.ones((2, 3, 2)))
    >>> read_flow(path).shape
    (2, 3, 2)
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".flo":
        write_flo(path, flow_field, overwrite=overwrite)
    elif suffix == ".npy":
        field = _as_field(flow_field)
        path = _check_new(path, overwrite)
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.save(handle, field)
    else:
        raise ValueError(f"path must end in .flo or .npy, got {os.fspath(path)!r}.")


def read_flow(path) -> np.ndarray:
    """Read a flow field from a ``.flo`` or ``.npy`` file, as the extension says.

    Parameters
    ----------
    path : str or path-like
        Ending in ``.flo`` or ``.npy``.

    Returns
    -------
    field : ndarray of shape (H, W, 2), float32
        ``(u, v)`` at every pixel.
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".flo":
        return read_flo(path)
    if suffix != ".npy":
        raise ValueError(f"path must end in .flo or .npy, got {os.fspath(path)!r}.")
    field = np.load(path, allow_pickle=False)
    if field.ndim != 3 or field.shape[2] != 2:
        raise ValueError(f"{os.fspath(path)!r} holds an array of shape {field.shape}, not a "
                         "flow field of shape (H, W, 2).")
    return field.astype(np.float32, copy=False)
