"""Run every gallery example (examples/**/plot_*.py) so that none rots.

Each script runs in this process with :func:`runpy.run_path`, as Sphinx-Gallery runs
it, in a temporary working directory, with matplotlib's non-interactive Agg backend.
pytest turns warnings into errors (``filterwarnings = ["error"]`` in pyproject.toml),
so an example that warns fails here. The examples need no network and no data beyond
what the installed packages ship.
"""

import os
import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = sorted(EXAMPLES.rglob("plot_*.py"))


def test_examples_are_found():
    assert SCRIPTS, f"no plot_*.py script under {EXAMPLES}"
    for folder in {script.parent for script in SCRIPTS} | {EXAMPLES}:
        assert (folder / "README.txt").is_file(), f"{folder} needs a README.txt for the gallery"


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS, ids=[str(s.relative_to(EXAMPLES)) for s in SCRIPTS])
def test_example_runs(script, tmp_path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(script)])
    try:
        runpy.run_path(str(script), run_name="__main__")
    finally:
        plt.close("all")
    assert not os.listdir(tmp_path), "examples must not leave files in the working directory"
