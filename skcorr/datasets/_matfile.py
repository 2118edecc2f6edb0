"""A structural check of MATLAB 5 files before scipy reads them.

``scipy.io.loadmat`` can crash the interpreter (a segmentation fault in its compiled
reader) on a damaged file, for example one whose variable-name tag declares the wrong
length. :func:`check_mat5` walks the file's data elements first and refuses any whose
sizes do not fit together, so a damaged annotation file becomes a ValueError naming
the file. The layout follows MathWorks' "MAT-File Format" (level 5): a 128-byte header,
then tagged data elements (8-byte tag: type and byte count, or a 4-byte "small" tag),
padded to 8 bytes; ``miMATRIX`` elements hold array flags, dimensions, a name and the
data; ``miCOMPRESSED`` elements hold zlib-compressed elements.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

_MI_MATRIX, _MI_COMPRESSED = 14, 15
#: Byte size of each element type (miINT8 ... miUTF32).
_ITEM_SIZE = {1: 1, 2: 1, 3: 2, 4: 2, 5: 4, 6: 4, 7: 4, 9: 8, 12: 8, 13: 8,
              _MI_MATRIX: 1, _MI_COMPRESSED: 1, 16: 1, 17: 2, 18: 4}
_CELL, _STRUCT, _OBJECT, _CHAR, _SPARSE = 1, 2, 3, 4, 5
_MAX_DEPTH = 16


class MatFileError(ValueError):
    """The bytes are not a well-formed MATLAB 5 file."""


def check_mat5(data: bytes) -> None:
    """Raise MatFileError unless ``data`` is a structurally sound MATLAB 5 file.

    Files of MATLAB 4 and 7.3 (HDF5) layouts are left to scipy, which reads the former
    and refuses the latter with an error of its own.
    """
    if data[:4] != b"MATL":
        return  # level 4 (no text header) or not a MAT-file: scipy's own checks apply
    if len(data) < 128 or data[126:128] not in (b"IM", b"MI"):
        raise MatFileError("the 128-byte MAT-file header is incomplete")
    if data[124:126] in (b"\x00\x02", b"\x02\x00"):
        return  # level 7.3 (HDF5), which scipy refuses with its own error
    order = "<" if data[126:128] == b"IM" else ">"
    _elements(data, 128, len(data), order, depth=0)


def _tag(data: bytes, pos: int, end: int, order: str) -> tuple[int, int, int, int]:
    """(type, byte count, data start, next element) of the element at ``pos``."""
    if pos + 8 > end:
        raise MatFileError(f"a data element at byte {pos} is cut off")
    word = struct.unpack_from(order + "I", data, pos)[0]
    if word >> 16:  # small data element: count in the upper half, data in the tag
        kind, count = word & 0xFFFF, word >> 16
        if count > 4:
            raise MatFileError(f"a small data element at byte {pos} claims {count} bytes")
        return kind, count, pos + 4, pos + 8
    kind, count = struct.unpack_from(order + "II", data, pos)
    start = pos + 8
    padded = count if kind == _MI_COMPRESSED else -(-count // 8) * 8
    if start + count > end or (kind != _MI_COMPRESSED and start + padded > end
                               and start + count != end):
        raise MatFileError(f"the data element at byte {pos} claims {count} bytes past the end")
    return kind, count, start, min(start + padded, end)


def _elements(data: bytes, pos: int, end: int, order: str, depth: int) -> None:
    while pos < end:
        kind, count, start, pos = _tag(data, pos, end, order)
        if kind == _MI_COMPRESSED:
            try:
                inner = zlib.decompress(data[start:start + count])
            except zlib.error as exc:
                raise MatFileError(f"a compressed element does not decompress ({exc})") from None
            _elements(inner, 0, len(inner), order, depth + 1)
        elif kind == _MI_MATRIX:
            _matrix(data, start, start + count, order, depth + 1)
        elif kind not in _ITEM_SIZE:
            raise MatFileError(f"unknown data type {kind} at byte {start - 8}")


def _matrix(data: bytes, pos: int, end: int, order: str, depth: int) -> None:
    """An miMATRIX element's content: flags, dimensions, name, then its data."""
    if depth > _MAX_DEPTH:
        raise MatFileError("arrays are nested too deeply")
    if pos == end:
        return  # an empty cell or struct entry
    kind, count, start, pos = _tag(data, pos, end, order)
    if kind != 6 or count != 8:
        raise MatFileError("an array lacks its flags")
    array_class = struct.unpack_from(order + "I", data, start)[0] & 0xFF
    kind, count, start, pos = _tag(data, pos, end, order)
    if kind != 5 or count < 8 or count % 4:
        raise MatFileError("an array lacks its dimensions")
    dims = struct.unpack_from(f"{order}{count // 4}i", data, start)
    if min(dims) < 0:
        raise MatFileError(f"an array has negative dimensions {dims}")
    n_items = int(np.prod(dims, dtype=np.float64))
    kind, count, start, pos = _tag(data, pos, end, order)
    if kind != 1:
        raise MatFileError("an array lacks its name")
    if array_class == _CELL:
        for _ in range(n_items):
            kind, count, start, pos = _tag(data, pos, end, order)
            if kind != _MI_MATRIX:
                raise MatFileError("a cell of a cell array is not an array")
            _matrix(data, start, start + count, order, depth + 1)
    elif array_class in (_STRUCT, _OBJECT):
        if array_class == _OBJECT:
            kind, count, start, pos = _tag(data, pos, end, order)  # class name
        kind, count, start, pos = _tag(data, pos, end, order)
        if kind != 5 or count != 4:
            raise MatFileError("a struct lacks its field-name length")
        name_length = struct.unpack_from(order + "i", data, start)[0]
        kind, count, start, pos = _tag(data, pos, end, order)
        if kind != 1 or name_length <= 0 or count % name_length:
            raise MatFileError("a struct's field names do not fit their length")
        for _ in range(n_items * (count // name_length)):
            kind, count, start, pos = _tag(data, pos, end, order)
            if kind != _MI_MATRIX:
                raise MatFileError("a struct field is not an array")
            _matrix(data, start, start + count, order, depth + 1)
    elif array_class == _CHAR or 6 <= array_class <= 15:
        parts = 0
        while pos < end:
            kind, count, start, pos = _tag(data, pos, end, order)
            size = _ITEM_SIZE.get(kind)
            if size is None or kind in (_MI_MATRIX, _MI_COMPRESSED):
                raise MatFileError(f"array data of unknown type {kind}")
            if array_class != _CHAR and count != n_items * size:
                raise MatFileError(f"array data of {count} bytes for {n_items} values")
            parts += 1
        if parts == 0 and n_items:
            raise MatFileError("an array lacks its data")
    elif array_class != _SPARSE:
        raise MatFileError(f"unknown array class {array_class}")
