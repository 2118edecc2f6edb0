"""Resolve cross-references to skcorr objects by any of their public import paths.

skcorr re-exports its main estimators at the top level (``skcorr.FlowAligner``) and
its docstrings often name them by their sub-package (``skcorr.flow.FlowAligner``) or,
now and then, by a private module (``skcorr.features._sift.DenseSIFT``). The API
reference documents each object once; when a Python cross-reference finds no target,
this extension imports what it names and, when that object is documented under another
name, links there.
"""

import importlib
import inspect

_INDEX = {}


def _import(name):
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def _linkable(obj):
    return (inspect.isclass(obj) or inspect.isroutine(obj) or inspect.ismodule(obj)
            or isinstance(obj, property))


def _index(env):
    if not _INDEX:
        domain = env.get_domain("py")
        for name, *_ in domain.get_objects():
            if name.startswith("skcorr"):
                obj = _import(name)
                if obj is not None and _linkable(obj):
                    _INDEX.setdefault(id(obj), (name, obj))
    return _INDEX


def _missing_reference(app, env, node, contnode):
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    module = node.get("py:module")
    klass = node.get("py:class")
    candidates = [target]
    if module:
        if klass:
            candidates.append(f"{module}.{klass}.{target}")
        candidates.append(f"{module}.{target}")
    domain = env.get_domain("py")
    for name in candidates:
        if not name.startswith("skcorr"):
            continue
        obj = _import(name)
        if obj is None or not _linkable(obj):
            continue
        entry = _index(env).get(id(obj))
        if entry is None or entry[1] is not obj or entry[0] == name:
            continue
        return domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"],
                                   entry[0], node, contnode)
    return None


def _reset(app):
    _INDEX.clear()


def setup(app):
    app.connect("builder-inited", _reset)
    app.connect("missing-reference", _missing_reference)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
