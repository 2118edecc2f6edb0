"""Study 1 (nonparametric reconstruction, RF averages), the column database and figures."""

import json
import shutil

import numpy as np
import pytest
from matplotlib.figure import Figure

from skcorr import ConvColumnExtractor, DenseSIFT
from skcorr.flow import align
from skcorr.visualize import (
    ColumnDatabase,
    plot_flow,
    plot_localization_histogram,
    plot_reconstruction,
    plot_rf_averages,
    plot_score_maps,
    reconstruct,
    reconstruction_error,
    rf_averages,
    uniform_rf_reconstruction,
)

# Distinct photographs bundled with scikit-image (``cat`` is ``chelsea`` again: left out).
PHOTOS = ("chelsea", "astronaut", "coffee", "rocket", "immunohistochemistry",
          "hubble_deep_field", "retina", "colorwheel", "camera", "coins", "brick", "grass",
          "gravel", "moon")


def _photo(name, side=160):
    import skimage.data
    from skimage.transform import resize

    image = np.asarray(getattr(skimage.data, name)())
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    height, width = image.shape[:2]
    scale = side / max(height, width)
    small = resize(image, (round(height * scale), round(width * scale)), anti_aliasing=True)
    return np.round(small * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def random_images():
    rng = np.random.default_rng(0)
    shapes = [(48, 64), (64, 40), (56, 56), (40, 72)]
    return [rng.integers(0, 256, (*shape, 3), dtype=np.uint8) for shape in shapes]


@pytest.fixture(scope="module")
def small_extractor():
    """A random network's stride-4 layer: fast, and enough for the database mechanics."""
    return ConvColumnExtractor(layer="stage2", weights=None, mode="dense").fit()


@pytest.fixture(scope="module")
def small_db(tmp_path_factory, small_extractor, random_images):
    path = tmp_path_factory.mktemp("db") / "small"
    return ColumnDatabase.build(small_extractor, random_images, path, batch_size=3,
                                dtype="float32")


@pytest.fixture(scope="module")
def photos():
    return [_photo(name) for name in PHOTOS]


@pytest.fixture(scope="module")
def conv4():
    """The default pretrained backbone's conv4 role (stride 16), at the photos' size."""
    return ConvColumnExtractor(layer="conv4", mode="dense").fit()


@pytest.fixture(scope="module")
def photo_db(tmp_path_factory, conv4, photos):
    return ColumnDatabase.build(conv4, photos, tmp_path_factory.mktemp("db") / "photos")


def _brute_force(db, queries, k, excluded_columns=None):
    columns = np.asarray(db.columns, dtype=np.float32)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    sims = q @ columns.T
    if excluded_columns is not None:
        sims[excluded_columns] = -np.inf
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(sims, order, axis=1)


# -- the database ---------------------------------------------------------------------
def test_build_writes_memmapped_columns_and_open_reads_them_back(
        small_db, small_extractor, random_images):
    fmaps = small_extractor.extract_dense(random_images)
    n = sum(f.grid_shape[0] * f.grid_shape[1] for f in fmaps)
    assert len(small_db) == small_db.n_columns == n
    assert small_db.n_images == len(random_images)
    assert small_db.n_features == small_extractor.n_features_out_ == 24
    assert isinstance(small_db.columns, np.memmap)
    assert small_db.columns.shape == (n, 24) and small_db.columns.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(small_db.columns, axis=1), 1.0, rtol=1e-5)
    assert (small_db.path / "columns.npy").is_file()
    assert small_db.nbytes > n * 24 * 4

    reopened = ColumnDatabase.open(small_db.path)
    np.testing.assert_array_equal(reopened.columns, small_db.columns)
    np.testing.assert_array_equal(np.load(small_db.path / "columns.npy"), small_db.columns)
    start = 0
    for i, (image, fmap) in enumerate(zip(random_images, fmaps, strict=True)):
        cells = fmap.grid_shape[0] * fmap.grid_shape[1]
        rows = slice(start, start + cells)
        assert (reopened.image_index[rows] == i).all()
        np.testing.assert_allclose(reopened.centers[rows], fmap.centers(), atol=1e-4)
        expected = fmap.features.reshape(cells, -1)
        expected = expected / np.linalg.norm(expected, axis=1, keepdims=True)
        np.testing.assert_allclose(reopened.columns[rows], expected, atol=1e-5)
        np.testing.assert_array_equal(reopened.image(i), image)
        start += cells
    meta = json.loads((small_db.path / "meta.json").read_text())
    assert meta["backbone"] == "efficientnet_lite0" and meta["n_features"] == 24
    assert meta["layers"] == small_extractor.layers_ and meta["n_columns"] == n
    assert "ColumnDatabase(" in repr(reopened)


def test_batch_size_and_float16_storage(tmp_path, small_extractor, small_db, random_images):
    one = ColumnDatabase.build(small_extractor, random_images, tmp_path / "one", batch_size=1,
                               dtype="float32")
    np.testing.assert_array_equal(one.columns, small_db.columns)
    half = ColumnDatabase.build(small_extractor, random_images, tmp_path / "half")
    assert half.columns.dtype == np.float16
    np.testing.assert_allclose(half.columns, small_db.columns, atol=1e-3)


def test_search_equals_brute_force_top_k(small_db, rng):
    queries = rng.normal(size=(9, small_db.n_features)).astype(np.float32)
    queries[:3] = small_db.columns[[0, 100, 500]]
    for k in (1, 5):
        indices, sims = small_db.search(queries, k=k)
        expected, expected_sims = _brute_force(small_db, queries, k)
        np.testing.assert_array_equal(indices, expected)
        np.testing.assert_allclose(sims, expected_sims, rtol=1e-5, atol=1e-6)
    assert indices[:3, 0].tolist() == [0, 100, 500]
    assert np.all(np.diff(sims, axis=1) <= 0)


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 10_000])
def test_chunked_search_equals_unchunked(small_db, rng, chunk_size):
    queries = rng.normal(size=(6, small_db.n_features))
    whole = small_db.search(queries, k=4, chunk_size=len(small_db))
    chunked = small_db.search(queries, k=4, chunk_size=chunk_size)
    np.testing.assert_array_equal(chunked[0], whole[0])
    np.testing.assert_allclose(chunked[1], whole[1], rtol=1e-6)


def test_search_exclusions(small_db, rng):
    queries = rng.normal(size=(5, small_db.n_features))
    indices, _ = small_db.search(queries, k=6, exclude_images=[0, 2])
    assert not np.isin(small_db.image_index[indices], [0, 2]).any()
    excluded = np.isin(small_db.image_index, [0, 2])
    expected, _ = _brute_force(small_db, queries, 6, excluded_columns=(slice(None), excluded))
    np.testing.assert_array_equal(indices, expected)

    rows = np.array([3, 300, 700])
    own = small_db.image_index[rows]
    indices, _ = small_db.search(small_db.columns[rows], k=3, query_images=own)
    assert (small_db.image_index[indices] != own[:, None]).all()


def test_approximate_index_finds_most_true_neighbours(tmp_path, small_extractor,
                                                     random_images, rng):
    db = ColumnDatabase.build(small_extractor, random_images, tmp_path / "db", dtype="float32")
    queries = rng.normal(size=(40, db.n_features)).astype(np.float32)
    with pytest.raises(ValueError, match="no approximate index"):
        db.search(queries, k=5, approximate=True)
    db.build_index("IVF16,PQ8", nprobe=4, train_size=2000, chunk_size=300)
    exact, _ = db.search(queries, k=5)
    reopened = ColumnDatabase.open(db.path)
    approx, sims = reopened.search(queries, k=5, approximate=True)
    recall = np.mean([len(set(a) & set(e)) / 5 for a, e in zip(approx, exact, strict=True)])
    assert recall > 0.5
    all_lists, _ = reopened.search(queries, k=5, approximate=True, nprobe=16)
    all_recall = np.mean([len(set(a) & set(e)) / 5
                          for a, e in zip(all_lists, exact, strict=True)])
    assert all_recall >= recall
    assert np.all(np.diff(sims, axis=1) <= 1e-6)
    indices, _ = reopened.search(queries, k=5, approximate=True, exclude_images=[1, 2])
    assert not np.isin(db.image_index[indices[indices >= 0]], [1, 2]).any()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        db.build_index("IVF16,PQ8")
    with pytest.raises(ValueError, match="faiss cannot build the index"):
        db.build_index("IVF16,PQ7", overwrite=True)  # 7 does not divide 24

    # An index from another database (or other settings) is refused with the fix.
    other = ColumnDatabase.build(small_extractor, random_images[:2], tmp_path / "other",
                                 dtype="float32").build_index("IVF4,Flat", train_size=500)
    shutil.copy(other.path / "index.faiss", db.path / "index.faiss")
    with pytest.raises(ValueError, match=r"built with other settings.*n_columns.*overwrite"):
        ColumnDatabase.open(db.path).search(queries, k=5, approximate=True)
    shutil.copy(other.path / "index.json", db.path / "index.json")
    with pytest.raises(ValueError, match="build_id"):
        ColumnDatabase.open(db.path).search(queries, k=5, approximate=True)
    # The database's own index.json beside an index built with other settings.
    db.build_index("IVF16,PQ8", train_size=2000, overwrite=True)
    own = (db.path / "index.json").read_bytes()
    db.build_index("IVF8,Flat", train_size=2000, overwrite=True)
    (db.path / "index.json").write_bytes(own)
    with pytest.raises(ValueError, match=r"index.faiss is not the index .*IVF16,PQ8"):
        ColumnDatabase.open(db.path).search(queries, k=5, approximate=True)


def test_overwrite_removes_an_incomplete_build_and_nothing_else(tmp_path, small_extractor,
                                                                 random_images):
    path = tmp_path / "db"
    ColumnDatabase.build(small_extractor, random_images, path)
    (path / "meta.json").unlink()  # what a killed build leaves: the marker, no meta.json
    with pytest.raises(FileNotFoundError, match="build did not finish.*overwrite=True"):
        ColumnDatabase.open(path)
    rebuilt = ColumnDatabase.build(small_extractor, random_images, path, overwrite=True)
    assert rebuilt.n_images == len(random_images)

    user = tmp_path / "user-folder"
    user.mkdir()
    (user / "columns.npy").write_text("the user's own file")
    with pytest.raises(FileExistsError, match="not a column database.*refusing"):
        ColumnDatabase.build(small_extractor, random_images, user, overwrite=True)
    assert (user / "columns.npy").read_text() == "the user's own file"


@pytest.mark.parametrize("content, problem", [
    ("{not json", "not readable JSON"),
    ("", "not readable JSON"),
    ("[1, 2]", "holds a list"),
    ("drop n_columns", "lacks the key 'n_columns'"),
    ("n_features=text", "n_features='x', of the wrong type"),
])
def test_damaged_meta_json_is_one_error_naming_the_file(tmp_path, small_db, content, problem):
    path = shutil.copytree(small_db.path, tmp_path / "db")
    meta = json.loads((path / "meta.json").read_text())
    if content == "drop n_columns":
        del meta["n_columns"]
        content = json.dumps(meta)
    elif content == "n_features=text":
        meta["n_features"] = "x"
        content = json.dumps(meta)
    (path / "meta.json").write_text(content)
    with pytest.raises(ValueError, match=f"meta.json.*{problem}.*overwrite=True") as info:
        ColumnDatabase.open(path)
    assert str(path / "meta.json") in str(info.value)


@pytest.mark.parametrize("damage, problem", [
    ("truncate columns", "columns.npy cannot be read"),
    ("short image_index", r"image_index.npy has shape \(\d+,\)"),
    ("long centers", "centers.npy has shape"),
    ("short pixels", "pixels.npy has shape"),
    ("images out of order", "image_index.npy must list images"),
    ("garbage rf_sizes", "rf_sizes.npy cannot be read"),
])
def test_damaged_arrays_are_caught_on_open(tmp_path, small_db, damage, problem):
    path = shutil.copytree(small_db.path, tmp_path / "db")
    if damage == "truncate columns":
        with open(path / "columns.npy", "r+b") as handle:
            handle.truncate((path / "columns.npy").stat().st_size // 2)
    elif damage == "short image_index":
        np.save(path / "image_index.npy", np.load(path / "image_index.npy")[:-3])
    elif damage == "long centers":
        np.save(path / "centers.npy", np.zeros((len(small_db) + 1, 2), np.float32))
    elif damage == "short pixels":
        np.save(path / "pixels.npy", np.load(path / "pixels.npy")[:-10])
    elif damage == "images out of order":
        np.save(path / "image_index.npy", np.load(path / "image_index.npy")[::-1].copy())
    else:
        (path / "rf_sizes.npy").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=f"is damaged: {problem}.*overwrite=True"):
        ColumnDatabase.open(path)


# -- reconstruction ----------------------------------------------------------------------
def test_reconstruction_with_the_query_in_the_database_copies_its_patches(
        photo_db, conv4, photos):
    for q in (0, 2):
        rebuilt = reconstruct(photos[q], conv4, photo_db, k=1)
        assert rebuilt.shape == photos[q].shape and rebuilt.dtype == np.uint8
        # every column's nearest neighbour is itself: the patches come back unchanged
        assert reconstruction_error(photos[q], rebuilt) < 0.5


def test_reconstruction_beats_the_uniform_rf_baseline_on_photographs(photo_db, conv4, photos):
    # each of six photographs rebuilt from the other thirteen; measured ratios of the mean
    # errors (real / uniform RF): about 0.92 for k=1 and 0.95 for k=5
    queries = range(6)
    for k, bound in ((1, 0.96), (5, 0.98)):
        real, uniform = [], []
        for q in queries:
            rebuilt = reconstruct(photos[q], conv4, photo_db, k=k, exclude_images=[q])
            baseline = uniform_rf_reconstruction(photos[q], conv4, photo_db, k=k,
                                                 exclude_images=[q], random_state=0)
            real.append(reconstruction_error(photos[q], rebuilt))
            uniform.append(reconstruction_error(photos[q], baseline))
        assert np.mean(real) < bound * np.mean(uniform), (k, real, uniform)


@pytest.mark.realdata
def test_reconstruction_beats_the_uniform_rf_baseline_on_pf_willow(pf_willow_dir, tmp_path):
    from skcorr.datasets import load_pf_willow

    images = list(load_pf_willow(pf_willow_dir).images)[::4]  # 25 images
    ext = ConvColumnExtractor(layer="conv4", mode="dense", image_size=160).fit()
    db = ColumnDatabase.build(ext, images, tmp_path / "pf")
    real, uniform = [], []
    for image in images[::5]:
        # PF-WILLOW files some photographs twice: "query" leaves out every copy
        rebuilt = reconstruct(image, ext, db, k=5, exclude_images="query")
        baseline = uniform_rf_reconstruction(image, ext, db, k=5, exclude_images="query",
                                             random_state=0)
        real.append(reconstruction_error(image, rebuilt))
        uniform.append(reconstruction_error(image, baseline))
    # measured: 55.6 against 61.7 (ratio 0.90)
    assert np.mean(real) < 0.95 * np.mean(uniform), (real, uniform)


def test_patches_follow_the_scale_of_each_database_image(tmp_path, photos):
    """A photograph rebuilt from a copy at twice its size (the network sees both alike)."""
    from PIL import Image

    small = photos[2]
    large = np.asarray(Image.fromarray(small).resize((small.shape[1] * 2, small.shape[0] * 2),
                                                     Image.BILINEAR))
    ext = ConvColumnExtractor(layer="conv4", mode="dense", image_size=160).fit()
    db = ColumnDatabase.build(ext, [small, large, photos[0]], tmp_path / "scales")
    np.testing.assert_allclose(db.image_strides, [[16, 16], [32, 32], [16, 16]])
    np.testing.assert_allclose(db.rf_sizes, [147, 294, 147])
    rebuilt = reconstruct(small, ext, db, k=1, exclude_images=[0])  # measured error: 3.1
    baseline = uniform_rf_reconstruction(small, ext, db, k=1, exclude_images=[0],
                                         random_state=0)  # measured: 52
    assert reconstruction_error(small, rebuilt) < 8
    assert reconstruction_error(small, baseline) > 3 * reconstruction_error(small, rebuilt)


def test_find_image_and_query_exclusion(photo_db, conv4, photos):
    assert photo_db.find_image(photos[3]).tolist() == [3]
    assert photo_db.find_image(photos[3][::-1].copy()).tolist() == []
    np.testing.assert_array_equal(
        reconstruct(photos[3], conv4, photo_db, exclude_images="query"),
        reconstruct(photos[3], conv4, photo_db, exclude_images=[3]))


def test_uniform_rf_neighbourhood_of_one_stride_is_the_real_reconstruction(
        photo_db, conv4, photos):
    real = reconstruct(photos[1], conv4, photo_db, k=2, exclude_images=[1])
    no_jitter = uniform_rf_reconstruction(photos[1], conv4, photo_db, k=2, exclude_images=[1],
                                          neighbourhood=16, random_state=0)
    np.testing.assert_array_equal(real, no_jitter)


# -- RF averages -----------------------------------------------------------------------
def test_rf_averages_shapes_and_values(photo_db, conv4, photos):
    drawn = rf_averages(conv4, photo_db, 3, k=4, random_state=0)
    rf = int(round(max(photo_db.meta["rf_size"])))
    assert drawn.shape == (3, rf, rf, 3) and drawn.dtype == np.float32
    assert 0 <= drawn.min() and drawn.max() <= 255
    rows = rf_averages(conv4, photo_db, np.array([10, 200]), k=2, size=33)
    assert rows.shape == (2, 33, 33, 3)
    columns = conv4.extract_dense([photos[0]])[0].features[2, 3:5]
    assert rf_averages(conv4, photo_db, columns, k=1, size=21).shape == (2, 21, 21, 3)
    np.testing.assert_array_equal(
        rf_averages(conv4, photo_db, 3, k=4, random_state=0), drawn)


# -- figures ---------------------------------------------------------------------------
def test_plots_return_figures_and_write_pngs(tmp_path, photo_db, conv4, photos,
                                             small_extractor):
    rebuilt = reconstruct(photos[0], conv4, photo_db, k=1, exclude_images=[0])
    figures = {
        "reconstruction": lambda p: plot_reconstruction(photos[0], {"k=1": rebuilt}, path=p),
        "rf_averages": lambda p: plot_rf_averages(
            rf_averages(conv4, photo_db, 5, k=2, size=24, random_state=0), n_cols=3,
            titles=list("abcde"), path=p),
        "score_maps_array": lambda p: plot_score_maps(
            photos[0], np.random.default_rng(0).normal(size=(3, 5, 6)), ["a", "b", "c"],
            path=p),
    }
    source, target = photos[1], photos[1][:, ::-1].copy()
    fs, ft = small_extractor.extract_dense([source, target])
    flow = align(fs, ft, lam=0.01, radius=3)
    points = np.array([[40.0, 50.0], [100.0, 120.0]])
    figures["flow"] = lambda p: plot_flow(source, target, flow, points,
                                          points * [-1, 1] + [159, 0], path=p)
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


# -- bad input -------------------------------------------------------------------------
def test_a_column_database_needs_convnet_columns(tmp_path, random_images):
    with pytest.raises(TypeError, match="extractor must be a ConvColumnExtractor, got DenseSIFT"):
        ColumnDatabase.build(DenseSIFT(mode="dense"), random_images, tmp_path / "sift")
    assert not (tmp_path / "sift").exists()


def test_bad_input_raises_clear_errors(tmp_path, small_db, small_extractor, random_images,
                                       photo_db, conv4, photos):
    with pytest.raises(ValueError, match="images is empty"):
        ColumnDatabase.build(small_extractor, [], tmp_path / "empty")
    with pytest.raises(FileExistsError, match="already exists"):
        ColumnDatabase.build(small_extractor, random_images, small_db.path)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        small_db.search(small_db.columns[:1], k=0)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        reconstruct(photos[0], conv4, photo_db, k=0)
    with pytest.raises(ValueError, match=r"k=\d+ but only \d+ database columns"):
        small_db.search(small_db.columns[:1], k=len(small_db) + 1)
    n_others = int((small_db.image_index != 0).sum())
    with pytest.raises(ValueError, match=f"only {n_others} database columns"):
        small_db.search(small_db.columns[:1], k=n_others + 1, exclude_images=[0])
    with pytest.raises(ValueError, match="queries must have shape"):
        small_db.search(np.ones((2, 5)), k=1)
    with pytest.raises(ValueError, match="exclude_images"):
        small_db.search(small_db.columns[:1], exclude_images=[99])

    # another layer, and the same names with other (random) weights
    other_layer = ConvColumnExtractor(layer="stage3", weights=None, mode="dense").fit()
    with pytest.raises(ValueError, match="does not match the column database.*layers"):
        reconstruct(random_images[0], other_layer, small_db)
    refit = ConvColumnExtractor(layer="stage2", weights=None, mode="dense").fit()
    with pytest.raises(ValueError, match="different weights"):
        reconstruct(random_images[0], refit, small_db)
    with pytest.raises(ValueError, match="weights: database None, extractor 'default'"):
        rf_averages(ConvColumnExtractor(layer="stage2", mode="dense").fit(), small_db, 2)
    with pytest.raises(TypeError, match="ColumnDatabase"):
        reconstruct(photos[0], conv4, str(photo_db.path))

    with pytest.raises(FileNotFoundError, match="No column database"):
        ColumnDatabase.open(tmp_path / "missing")
    damaged = shutil.copytree(small_db.path, tmp_path / "damaged")
    (damaged / "columns.npy").unlink()
    with pytest.raises(FileNotFoundError, match="lacks columns.npy"):
        ColumnDatabase.open(damaged)
    (tmp_path / "half-built").mkdir()
    with pytest.raises(FileNotFoundError, match="no meta.json"):
        ColumnDatabase.open(tmp_path / "half-built")
    with pytest.raises(ValueError, match="seeds"):
        rf_averages(conv4, photo_db, np.array([], dtype=int))
    with pytest.raises(ValueError, match="exclude_images must be"):
        reconstruct(photos[0], conv4, photo_db, exclude_images="self")
    with pytest.raises(ValueError, match="neighbourhood"):
        uniform_rf_reconstruction(photos[0], conv4, photo_db, neighbourhood=0)


# -- flow pictures and matches ---------------------------------------------------------------
def _hue_saturation(image):
    from matplotlib.colors import rgb_to_hsv

    hsv = rgb_to_hsv(image.astype(float) / 255)
    return hsv[..., 0], hsv[..., 1]


def test_flow_to_color_follows_the_colour_wheel():
    from skcorr.visualize import flow_to_color

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
    from skcorr.visualize import flow_to_color

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

    from skcorr.visualize import plot_matches

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

    from skcorr.visualize import plot_matches

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
