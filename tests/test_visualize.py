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
    flow_to_color,
    plot_flow,
    plot_localization_histogram,
    plot_matches,
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


def _hue_saturation(image):
    from matplotlib.colors import rgb_to_hsv

    hsv = rgb_to_hsv(image.astype(float) / 255)
    return hsv[..., 0], hsv[..., 1]


def test_flow_to_color_follows_the_colour_wheel():

    assert (flow_to_color(np.zeros((4, 5, 2))) == 255).all()  # no motion is white
    field = np.zeros((3, 4, 2), np.float32)
    field[..., 0] = np.arange(1, 5)  # +x motion of four lengths
    image = flow_to_color(field)
    assert image.shape == (3, 4, 3) and image.dtype == np.uint8
    hue, saturation = _hue_saturation(image)
    np.testing.assert_allclose(hue, hue[0, 0], atol=0.02)  # one direction: one hue
    assert (np.diff(saturation[0]) > 0).all() and saturation[0, -1] > 0.9  # longer: stronger
    other, _ = _hue_saturation(flow_to_color(-field))
    assert abs(other[0, 0] - hue[0, 0]) > 0.2  # the opposite direction: another hue
    # a fixed scale: 2 px with max_flow=4 is drawn as 2 px beside a 4 px motion
    scaled = flow_to_color(np.full((1, 1, 2), (2.0, 0.0)), max_flow=4)
    np.testing.assert_array_equal(scaled[0, 0], image[0, 1])
    with pytest.raises(ValueError, match=r"shape \(H, W, 2\)"):
        flow_to_color(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="NaN"):
        flow_to_color(np.full((2, 2, 2), np.nan))
    with pytest.raises(ValueError, match="max_flow must be"):
        flow_to_color(field, max_flow=0)


def test_flow_to_color_of_a_flow_draws_its_pixel_field():
    from skcorr.features import FeatureMap

    rng = np.random.default_rng(2)
    grids = [FeatureMap(features=rng.normal(size=(4, 5, 6)), xs=8.0 + 16 * np.arange(5),
                        ys=8.0 + 16 * np.arange(4), rf_size=32, image_shape=(64, 80))
             for _ in range(2)]
    flow = align(*grids, lam=0.01)
    np.testing.assert_array_equal(flow_to_color(flow), flow_to_color(flow.pixel_flow()))


def test_plot_matches_draws_coloured_lines_and_writes_a_png(tmp_path):
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import LineCollection
    from PIL import Image


    source = np.zeros((60, 80, 3), np.uint8)
    target = np.zeros((40, 100, 3), np.uint8)
    src = np.array([[10.0, 20.0], [70.0, 50.0], [np.nan, 1.0]])
    dst = np.array([[90.0, 20.0], [5.0, 35.0], [3.0, 3.0]])
    scores = np.array([1.0, 0.25, 0.5])
    path = tmp_path / "matches.png"
    fig = plot_matches(source, target, src, dst, scores, path=path)
    # the figure is 10 in wide and as tall as the images side by side (+ 0.6 in), at 100 dpi
    gap = 100 // 20
    expected = (1000, round(100 * (10 * 60 / (80 + gap + 100) + 0.6)))
    with Image.open(path) as png:
        assert png.format == "PNG" and png.size == expected
    ax = fig.axes[0]
    (lines,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    segments = lines.get_segments()
    assert len(segments) == 2  # the NaN row is left out
    np.testing.assert_allclose(segments[0], [[10, 20], [80 + gap + 90, 20]])
    np.testing.assert_allclose(lines.get_colors()[:, :3],
                               colormaps["viridis"]([1.0, 0.25])[:, :3])
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "confidence"  # the colorbar
    # the line is really drawn: the middle of the first one is not black
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    pixels = np.asarray(canvas.buffer_rgba())
    x, y = ax.transData.transform([(10 + 80 + gap + 90) / 2, 20])
    colour = pixels[int(round(pixels.shape[0] - y)), int(round(x)), :3]
    assert colour.max() > 100, colour


def test_plot_matches_draws_at_most_max_lines_and_checks_its_input():
    from matplotlib.collections import LineCollection


    image = np.zeros((20, 20, 3), np.uint8)
    points = np.stack([np.arange(50.0) % 20, np.arange(50.0) // 20], axis=1)
    fig = plot_matches(image, image, points, points, max_lines=10)
    (lines,) = [c for c in fig.axes[0].collections if isinstance(c, LineCollection)]
    assert len(lines.get_segments()) == 10 and len(fig.axes) == 1  # no scores: no colorbar
    assert fig.axes[0].get_title().endswith("10 of 50 matches")
    with pytest.raises(ValueError, match="same length"):
        plot_matches(image, image, points, points[:3])
    with pytest.raises(ValueError, match="one value per match"):
        plot_matches(image, image, points, points, np.ones(3))
    with pytest.raises(ValueError, match=r"source_points must have shape \(n, 2\)"):
        plot_matches(image, image, points[:, 0], points)
    with pytest.raises(ValueError, match="max_lines must be"):
        plot_matches(image, image, points, points, max_lines=0)


def test_plot_flow_title_names_the_method_and_no_title_is_clipped(photos):
    source, target = photos[0], photos[1]
    extractor = ConvColumnExtractor(layer="stage2", weights=None, mode="dense").fit()
    flow = align(*extractor.extract_dense([source, target]), lam=0.1, radius=2)
    points = np.array([[40.0, 50.0], [100.0, 80.0]])
    assert plot_flow(source, target, flow).get_suptitle() == "flow MRF, lam=0.1"
    long = ("flow MRF on efficientnet_lite0 stage5+stage6 at 480 px, lam=0.05, truncation 3, "
            "transport prices 0.2, sub-cell matches, on a pair of photographs of a cat " * 2)
    fig = plot_flow(source, target, flow, points, points, title=long)
    assert fig.get_suptitle() == long
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    box = fig.bbox
    texts = [fig._suptitle, *(ax.title for ax in fig.axes)]
    for text in texts:
        extent = text.get_window_extent(renderer)
        assert (extent.x0 >= box.x0 - 1 and extent.x1 <= box.x1 + 1
                and extent.y0 >= box.y0 - 1 and extent.y1 <= box.y1 + 1), text.get_text()
    with pytest.raises(TypeError, match="title must be a str"):
        plot_flow(source, target, flow, title=3)
