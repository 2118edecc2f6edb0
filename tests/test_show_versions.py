"""The files and entry points people look for: show_versions, --version, python -m skcorr,
lazy top-level exports, the `sift` extra's error, py.typed."""

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

import skcorr
from skcorr.cli import BACKBONE_NAMES, _build_parser


def test_show_versions_names_every_dependency(capsys):
    skcorr.show_versions()
    out = capsys.readouterr().out
    assert f"skcorr: {skcorr.__version__}" in out
    assert f"python: {sys.version.split()[0]}" in out
    for name in ("platform", "numpy", "scipy", "scikit-learn", "torch", "torchvision",
                 "numba", "cyvlfeat", "CUDA"):
        assert f"{name}:" in out, name
    import numpy

    assert f"numpy: {numpy.__version__}" in out


def test_top_level_names_are_lazy_but_complete():
    assert set(skcorr.__all__) == {*skcorr._exported, "__version__"}
    assert set(skcorr.__all__) <= set(dir(skcorr))
    from skcorr.flow import FlowAligner

    assert skcorr.FlowAligner is FlowAligner
    with pytest.raises(AttributeError, match="no attribute 'FlowAlinger'"):
        skcorr.FlowAlinger  # noqa: B018
    # Sub-packages are attributes after a plain `import skcorr`, as before.
    code = "import skcorr; print(skcorr.flow.align.__name__, skcorr.datasets.__name__)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.split() == ["align", "skcorr.datasets"]


def test_import_skcorr_and_help_do_not_import_torch():
    code = ("import sys, skcorr, skcorr.cli; skcorr.cli._build_parser().format_help(); "
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"


def test_python_m_skcorr_prints_the_version():
    result = subprocess.run([sys.executable, "-m", "skcorr", "--version"],
                            capture_output=True, text=True, check=True)
    assert result.stdout.strip() == f"skcorr {skcorr.__version__}"


def _subparsers(parser):
    """Every (prog, parser) of the command tree, the root included."""
    yield parser.prog, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from _subparsers(child)


def test_every_option_has_help_and_shows_its_default():
    progs = []
    for prog, parser in _subparsers(_build_parser()):
        progs.append(prog)
        formatter = parser._get_formatter()
        for action in parser._actions:
            if not action.option_strings or action.dest in ("help", "version"):
                continue
            text = formatter._get_help_string(action)
            assert text, f"{prog} {action.option_strings[0]} has no help"
            if action.default is not None and action.default is not False:
                assert "default:" in text, f"{prog} {action.option_strings[0]}: {text}"
            if action.dest == "data":
                assert "$SKCORR_DATA" in text, prog
    assert "skcorr evaluate cub-detect" in progs and "skcorr layers" in progs


def test_layers_help_names_every_registered_backbone():
    # In a fresh process: examples and tests register backbones of their own.
    code = "from skcorr.backbones import list_backbones; print(' '.join(list_backbones()))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert set(BACKBONE_NAMES) == set(result.stdout.split())


def test_dense_sift_without_cyvlfeat_names_the_extra(monkeypatch):
    # Load a second copy of the module with cyvlfeat made unimportable.
    monkeypatch.setitem(sys.modules, "cyvlfeat", None)
    monkeypatch.setitem(sys.modules, "cyvlfeat.sift", None)
    path = Path(skcorr.__file__).parent / "features" / "_sift.py"
    spec = importlib.util.spec_from_file_location("skcorr.features._sift_absent", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(ImportError, match=r"pip install skcorr\[sift\]"):
        module.DenseSIFT().fit()


def test_package_ships_py_typed():
    assert (Path(skcorr.__file__).parent / "py.typed").is_file()


def test_show_versions_names_the_cuda_devices(monkeypatch, capsys):
    torch = pytest.importorskip("torch")
    names = ["NVIDIA H200", "NVIDIA A100"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(names))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: names[i])
    skcorr.show_versions()
    cuda = capsys.readouterr().out.split("CUDA:")[1]
    assert "device 0: NVIDIA H200" in cuda and "device 1: NVIDIA A100" in cuda
    assert "none" not in cuda
