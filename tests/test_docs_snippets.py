"""Every Python block of README.md and the user guide runs as written.

Each block is run in fresh globals from an empty folder, so a block must import, load or
create everything it uses. Blocks that read the real data sets name ``SKCORR_DATA`` and
are skipped when it is unset.
"""

import os
import re
from pathlib import Path

import pytest
import sklearn

import skcorr.backbones

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "docs" / "index.rst",
         *sorted((ROOT / "docs" / "user_guide").glob("*.rst"))]


def markdown_blocks(text: str):
    """(line, code) of each ```python fenced block."""
    for match in re.finditer(r"^```python\n(.*?)^```", text, flags=re.S | re.M):
        yield text.count("\n", 0, match.start()) + 2, match.group(1)


def rst_blocks(text: str):
    """(line, code) of each ``.. code-block:: python`` directive, dedented."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        directive = re.match(r"^(\s*)\.\. code-block:: python\s*$", line)
        if not directive:
            continue
        indent = len(directive.group(1))
        body, j = [], i + 1
        while j < len(lines) and re.match(r"^\s+:[\w-]+:", lines[j]):  # directive options
            j += 1
        start = j + 1
        for line in lines[j:]:
            if line.strip() and len(line) - len(line.lstrip()) <= indent:
                break
            body.append(line)
        code = "\n".join(body)
        width = min(len(l) - len(l.lstrip()) for l in body if l.strip())
        yield start, "\n".join(l[width:] for l in code.splitlines()) + "\n"


def blocks():
    for page in PAGES:
        text = page.read_text()
        extract = markdown_blocks if page.suffix == ".md" else rst_blocks
        for line, code in extract(text):
            yield pytest.param(code, id=f"{page.relative_to(ROOT)}:{line}")


BLOCKS = list(blocks())
# Pages repeat some blocks word for word (README.md and the user guide): each distinct
# block runs once, its copies are skipped once it has passed.
PASSED: dict[str, str] = {}


def test_blocks_are_found():
    pages = {param.id.split(":")[0] for param in BLOCKS}
    assert "README.md" in pages
    assert len(BLOCKS) >= 12 and len(pages) >= 8, [param.id for param in BLOCKS]


@pytest.mark.parametrize("code", BLOCKS)
def test_block_runs_as_written(code, tmp_path, monkeypatch, request):
    if "SKCORR_DATA" in code and not os.environ.get("SKCORR_DATA"):
        pytest.skip("this block reads the real data sets: set SKCORR_DATA to run it")
    key = "\n".join(line.rstrip() for line in code.strip().splitlines())
    if key in PASSED:
        pytest.skip(f"the same code as {PASSED[key]}, which passed")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # Blocks may register backbones or change scikit-learn's configuration: keep both to
    # this block.
    monkeypatch.setattr(skcorr.backbones, "_REGISTRY", dict(skcorr.backbones._REGISTRY))
    with sklearn.config_context():
        exec(compile(code, "<docs block>", "exec"), {"__name__": "__docs__"})
    skcorr.backbones._graph_of.cache_clear()
    PASSED[key] = request.node.callspec.id


def test_api_reference_lists_every_public_name():
    import importlib

    text = (ROOT / "docs" / "api.rst").read_text()
    listed, module = set(), None
    for line in text.splitlines():
        current = re.match(r"^\.\. currentmodule:: (\S+)", line)
        if current:
            module = current.group(1)
        elif re.match(r"^   [A-Za-z_][\w.]*$", line) and module:
            listed.add(f"{module}.{line.strip()}")
    documented_elsewhere = {  # re-exports, documented once under skcorr
        "ConvColumnExtractor", "DenseSIFT", "FeatureMap", "keypoint_samples", "FlowAligner",
        "PairTransfer", "match", "GaussianNNPrior", "KeypointClassifier", "SlidingKeypointDetector",
        "plot_localization_histogram",
    }
    missing = []
    for name in ("skcorr", "skcorr.features", "skcorr.receptive", "skcorr.backbones",
                 "skcorr.flow", "skcorr.keypoints", "skcorr.metrics", "skcorr.datasets",
                 "skcorr.evaluation", "skcorr.columns", "skcorr.visualize"):
        for public in importlib.import_module(name).__all__:
            if public == "__version__" or f"{name}.{public}" in listed:
                continue
            if name != "skcorr" and public in documented_elsewhere:
                continue
            missing.append(f"{name}.{public}")
    assert not missing, f"add to docs/api.rst: {missing}"


def _undefined_names(source: str) -> set[str]:
    """Names an example reads but never imports or assigns (builtins aside)."""
    import ast
    import builtins

    tree = ast.parse(source)
    bound = set(dir(builtins))
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            bound |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
        elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    return {node.id for node in ast.walk(tree)
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)} - bound


def test_docstring_examples_import_what_they_use():
    import doctest
    import importlib
    import pkgutil

    import skcorr

    finder = doctest.DocTestFinder(exclude_empty=True)
    problems = []
    for info in pkgutil.walk_packages(skcorr.__path__, "skcorr."):
        module = importlib.import_module(info.name)
        for test in finder.find(module):
            source = "".join(example.source for example in test.examples)
            missing = _undefined_names(source)
            if missing:
                problems.append(f"{test.name}: {sorted(missing)}")
    assert not problems, "examples use names they do not import:\n" + "\n".join(problems)


# -- the checks configured in setup.cfg and pyproject.toml ------------------------------
PUBLIC_MODULES = ("skcorr", "skcorr.features", "skcorr.receptive", "skcorr.backbones",
                  "skcorr.flow", "skcorr.keypoints", "skcorr.metrics", "skcorr.datasets",
                  "skcorr.evaluation", "skcorr.columns", "skcorr.visualize")


def _public_docstring_names() -> list[str]:
    """Importable names of every public object and of the public members of its class."""
    import importlib
    import inspect

    names = set()
    for module in PUBLIC_MODULES:
        for public in importlib.import_module(module).__all__:
            obj = getattr(importlib.import_module(module), public)
            if not (inspect.isclass(obj) or inspect.isroutine(obj)):
                continue  # __version__, constants
            name = f"{obj.__module__}.{obj.__qualname__}"
            names.add(name)
            if inspect.isclass(obj):
                names |= {f"{name}.{member}" for member, value in vars(obj).items()
                          if not member.startswith("_")
                          and (inspect.isroutine(value) or isinstance(value, property))}
    return sorted(names)


def test_public_docstrings_pass_numpydoc_validation():
    """The checks chosen in pyproject.toml's [tool.numpydoc_validation], on the public API."""
    pytest.importorskip("numpydoc", reason="numpydoc (the docs extra) runs this check")
    from numpydoc.hooks.validate_docstrings import parse_config
    from numpydoc.validate import validate

    config = parse_config(ROOT)
    assert "PR01" in config["checks"] and "EX01" not in config["checks"]  # table was read
    names = _public_docstring_names()
    assert len(names) > 100
    errors = [f"{name}: {code} {message}" for name in names
              if not (config["exclude"] and config["exclude"].search(name))
              for code, message in validate(name)["errors"] if code in config["checks"]]
    assert not errors, "\n".join(errors)


def test_spelling():
    """codespell, configured in setup.cfg, finds no misspelling in the repository."""
    import subprocess
    import sys

    pytest.importorskip("codespell_lib", reason="codespell (the test extra) runs this check")
    result = subprocess.run([sys.executable, "-m", "codespell_lib"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
