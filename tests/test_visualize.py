"""The figures of skcorr.visualize (the column database is tested in test_columns.py)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from skcorr import ConvColumnExtractor
from skcorr.datasets import make_affine_category
from skcorr.flow import align
from skcorr.visualize import (
    plot_flow,
    plot_localization_histogram,
    plot_reconstruction,
    plot_rf_averages,
    plot_score_maps,
)


@pytest.fixture(scope="module")
def photos():
    return make_affine_category(2, height=120, random_state=0).images


def test_plots_return_figures_and_write_pngs(tmp_path, photos):
    rng = np.random.default_rng(0)
    rebuilt = np.clip(photos[0].astype(int) + rng.integers(-20, 20, photos[0].shape), 0,
                      255).astype(np.uint8)
    figures = {
        "reconstruction": lambda p: plot_reconstruction(photos[0], {"k=1": rebuilt}, path=p),
        "rf_averages": lambda p: plot_rf_averages(
            rng.uniform(0, 255, (5, 24, 24, 3)).astype(np.float32), n_cols=3,
            titles=list("abcde"), path=p),
        "score_maps_array": lambda p: plot_score_maps(
            photos[0], rng.normal(size=(3, 5, 6)), ["a", "b", "c"], path=p),
    }
    source, target = photos[1], photos[1][:, ::-1].copy()
    width = source.shape[1]
    extractor = ConvColumnExtractor(layer="stage2", weights=None, mode="dense").fit()
    fs, ft = extractor.extract_dense([source, target])
    flow = align(fs, ft, lam=0.01, radius=3)
    points = np.array([[40.0, 50.0], [100.0, 80.0]])
    figures["flow"] = lambda p: plot_flow(source, target, flow, points,
                                          points * [-1, 1] + [width - 1, 0], path=p)
    figures["flow_bare"] = lambda p: plot_flow(source, target, flow, path=p)
    maps = {"combined": np.stack([np.full((2, 4, 5), np.nan),
                                  np.arange(40.0).reshape(2, 4, 5)]),
            "xs": np.tile(np.linspace(10, 150, 5), (2, 1)),
            "ys": np.tile(np.linspace(10, 100, 4), (2, 1))}
    figures["score_maps_bunch"] = lambda p: plot_score_maps(photos[0], maps, index=1, path=p)
    figures["localization"] = lambda p: plot_localization_histogram(
        {"histogram": np.eye(5)}, title="SIFT", path=p)
    for name, make in figures.items():
        path = tmp_path / f"{name}.png"
        fig = make(path)
        assert isinstance(fig, Figure), name
        assert path.is_file() and path.read_bytes()[:4] == b"\x89PNG", name
        assert isinstance(make(None), Figure)


def test_plot_reconstruction_titles_carry_the_mean_absolute_error(photos):
    shifted = (photos[0].astype(int) + 10).clip(0, 255).astype(np.uint8)
    expected = np.abs(shifted.astype(float) - photos[0]).mean()
    fig = plot_reconstruction(photos[0], {"shifted": shifted})
    assert fig.axes[1].get_title() == f"shifted\nmean abs. error {expected:.1f}"
    with pytest.raises(ValueError, match=r"original has shape .* but "
                                         r"reconstructions\['half'\]"):
        plot_reconstruction(photos[0], {"half": photos[0][::2]})


def test_importing_visualize_imports_neither_faiss_nor_the_column_database():
    code = ("import sys, skcorr.visualize, skcorr.visualize._plot; "
            "print(sorted(m for m in sys.modules if m == 'faiss' or "
            "m.startswith(('faiss.', 'skcorr.columns'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", ["ColumnDatabase", "reconstruct", "reconstruction_error",
                                  "rf_averages", "uniform_rf_reconstruction"])
def test_the_column_database_moved_to_skcorr_columns(name):
    import skcorr.columns
    import skcorr.visualize

    with pytest.raises(AttributeError, match=f"visualize.{name} moved to skcorr.columns"):
        getattr(skcorr.visualize, name)
    with pytest.raises(ImportError):
        exec(f"from skcorr.visualize import {name}", {})
    assert callable(getattr(skcorr.columns, name))
    assert skcorr.columns is skcorr.__getattr__("columns")
