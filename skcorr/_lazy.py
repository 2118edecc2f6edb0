"""skcorr's one lazy-import policy: a package names its public names and the private
module defining each; a name is imported on first use, so that ``import skcorr`` and the
command line's ``--help`` load no network, numba kernel or faiss index."""

from __future__ import annotations

import importlib


def lazy_exports(package: str, modules: dict[str, tuple[str, ...]], submodules=()):
    """``(__getattr__, __dir__, __all__)`` for ``package`` exporting ``modules``' names.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    modules : dict
        Relative module name (``"._align"``) -> the public names it defines.
    submodules : sequence of str, default=()
        Sub-packages reachable as attributes (``skcorr.flow`` after ``import skcorr``).
    """
    where = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str):
        if name in submodules:
            return importlib.import_module(f".{name}", package)
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where[name], package), name)
        vars(importlib.import_module(package))[name] = value  # later look-ups skip this
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(importlib.import_module(package))) | set(where)
                      | set(submodules))

    return __getattr__, __dir__, sorted(where)
