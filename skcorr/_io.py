"""Writing files whole or not at all.

Every file skcorr writes (tables, figures, the column database's index and metadata; its
column arrays grow in place and count only once ``meta.json`` is written, last) is
first written under a temporary name in the folder of its target, flushed to disk, and
then renamed onto the target with :func:`os.replace`, which is atomic on POSIX and
Windows within one file system. A failure or an interrupt (Ctrl-C) at any point leaves
the target as it was (absent, or its old content) and removes the temporary file.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

__all__ = ["atomic_path", "check_output_folder", "unique_names", "write_text"]


@contextmanager
def atomic_path(path, *, durable: bool = True) -> Iterator[Path]:
    """A temporary path to write instead of ``path``; renamed onto it on success.

    The temporary file lies in the same folder (so the rename stays on one file system),
    is hidden (``.name.<random>.tmp``) and ends with the suffix of ``path``, for writers
    that choose the format from the extension. It is created empty, with the permissions
    a new file would get. A ``path`` that is a symbolic link is written through: the file
    it points to gets the content and the link stays. An :class:`OSError` about the
    temporary file is raised about ``path``, the file the caller asked for. With
    ``durable=False`` the file is not flushed to disk before the rename (for caches,
    whose entries are only computed again if a crash loses them).
    """
    path = Path(path)
    if path.is_symlink():  # write the file the link points to, keep the link
        path = Path(os.path.realpath(path))
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp{path.suffix}")
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as exc:
        raise _about(exc, tmp, path) from exc
    try:
        yield tmp
        if durable:
            with open(tmp, "rb+") as handle:  # on disk before the rename makes it visible
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:  # KeyboardInterrupt included: never leave the temporary file
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and os.fspath(tmp) in (exc.filename, exc.filename2):
            raise _about(exc, tmp, path) from exc
        raise


def _about(exc: OSError, tmp: Path, path: Path) -> OSError:
    """``exc`` told about ``path`` where it names the temporary file ``tmp``."""
    if exc.errno is None:
        return exc
    return type(exc)(exc.errno, exc.strerror, os.fspath(path))


def write_text(path, text: str, *, newline: str | None = None) -> None:
    """Write ``text`` (UTF-8) to ``path`` whole or not at all."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline=newline) as handle:
        handle.write(text)


def unique_names(bases, suffix: str = "", taken=()) -> list[str]:
    """``base + suffix`` for each base, with ``_2``, ``_3``... where a name repeats or is
    ``taken``: one file name per output, none overwriting another."""
    names, seen = [], set(taken)
    for base in bases:
        name, n = f"{base}{suffix}", 1
        while name in seen:
            n += 1
            name = f"{base}_{n}{suffix}"
        seen.add(name)
        names.append(name)
    return names


def check_output_folder(path, overwrite: bool, *, fix: str = "overwrite=True") -> Path:
    """``path`` as a Path if it may take a command's results: missing, or a folder that is
    empty unless ``overwrite``. ``fix`` names the switch that allows a full one."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"Output path {str(path)!r} exists and is not a folder; choose a "
                         "folder for the results.")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise ValueError(f"Output folder {str(path)!r} already holds files; pass {fix} to "
                         "replace the files of the same names in it, or choose another "
                         "folder.")
    return path
