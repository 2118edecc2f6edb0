"""The column database (skcorr.columns) and Study 1: reconstructions and RF averages."""

import json
import os
import shutil

import numpy as np
import pytest

from skcorr import ConvColumnExtractor, DenseSIFT
from skcorr.columns import (
    ColumnDatabase,
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
        sims, indices = small_db.search(queries, k=k)
        expected, expected_sims = _brute_force(small_db, queries, k)
        np.testing.assert_array_equal(indices, expected)
        np.testing.assert_allclose(sims, expected_sims, rtol=1e-5, atol=1e-6)
    assert indices[:3, 0].tolist() == [0, 100, 500]
    assert np.all(np.diff(sims, axis=1) <= 0)
    # (similarities, indices), as scikit-learn's kneighbors gives (distances, indices)
    assert sims.dtype == np.float32 and indices.dtype == np.int64
    np.testing.assert_allclose(sims[:3, 0], 1.0, rtol=1e-5)


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 10_000])
def test_chunked_search_equals_unchunked(small_db, rng, chunk_size):
    queries = rng.normal(size=(6, small_db.n_features))
    whole = small_db.search(queries, k=4, chunk_size=len(small_db))
    chunked = small_db.search(queries, k=4, chunk_size=chunk_size)
    np.testing.assert_array_equal(chunked[1], whole[1])
    np.testing.assert_allclose(chunked[0], whole[0], rtol=1e-6)


def test_search_exclusions(small_db, rng):
    queries = rng.normal(size=(5, small_db.n_features))
    _, indices = small_db.search(queries, k=6, exclude_images=[0, 2])
    assert not np.isin(small_db.image_index[indices], [0, 2]).any()
    excluded = np.isin(small_db.image_index, [0, 2])
    expected, _ = _brute_force(small_db, queries, 6, excluded_columns=(slice(None), excluded))
    np.testing.assert_array_equal(indices, expected)

    rows = np.array([3, 300, 700])
    own = small_db.image_index[rows]
    _, indices = small_db.search(small_db.columns[rows], k=3, query_images=own)
    assert (small_db.image_index[indices] != own[:, None]).all()


def test_approximate_index_finds_most_true_neighbours(tmp_path, small_extractor,
                                                     random_images, rng):
    db = ColumnDatabase.build(small_extractor, random_images, tmp_path / "db", dtype="float32")
    queries = rng.normal(size=(40, db.n_features)).astype(np.float32)
    with pytest.raises(ValueError, match="no approximate index"):
        db.search(queries, k=5, approximate=True)
    db.build_index("IVF16,PQ8", nprobe=4, train_size=2000, chunk_size=300)
    _, exact = db.search(queries, k=5)
    reopened = ColumnDatabase.open(db.path)
    sims, approx = reopened.search(queries, k=5, approximate=True)
    recall = np.mean([len(set(a) & set(e)) / 5 for a, e in zip(approx, exact, strict=True)])
    assert recall > 0.5
    _, all_lists = reopened.search(queries, k=5, approximate=True, nprobe=16)
    all_recall = np.mean([len(set(a) & set(e)) / 5
                          for a, e in zip(all_lists, exact, strict=True)])
    assert all_recall >= recall
    assert np.all(np.diff(sims, axis=1) <= 1e-6)
    _, indices = reopened.search(queries, k=5, approximate=True, exclude_images=[1, 2])
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


def _siblings(path):
    return sorted(p.name for p in path.parent.iterdir() if p.name != path.name)


@pytest.mark.parametrize("failure", ["unreadable image", "interrupt"])
def test_a_failed_overwrite_leaves_the_old_database_openable(
        tmp_path, small_extractor, random_images, rng, monkeypatch, failure):
    folder = tmp_path / "dbs"
    path = folder / "db"
    old = ColumnDatabase.build(small_extractor, random_images[:3], path, dtype="float32")
    queries = rng.normal(size=(5, old.n_features)).astype(np.float32)
    expected = old.search(queries, k=4)
    build_id = old.meta["build_id"]
    new_images = list(random_images)
    if failure == "unreadable image":
        broken = tmp_path / "broken.png"
        broken.write_bytes(b"\x89PNG\r\n\x1a\n not an image")
        new_images.append(str(broken))  # read, and found broken, in the last batch
        error = ValueError
    else:
        calls = []
        extract_dense = small_extractor.extract_dense

        def interrupted(images):
            calls.append(len(images))
            if len(calls) == 2:
                raise KeyboardInterrupt
            return extract_dense(images)

        monkeypatch.setattr(small_extractor, "extract_dense", interrupted)
        error = KeyboardInterrupt
    with pytest.raises(error):
        ColumnDatabase.build(small_extractor, new_images, path, batch_size=2,
                             overwrite=True)
    if failure == "interrupt":
        assert calls == [2, 2]  # stopped after one batch had been written
    reopened = ColumnDatabase.open(path)
    assert reopened.meta["build_id"] == build_id and reopened.n_images == 3
    got = reopened.search(queries, k=4)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])
    assert _siblings(path) == []  # no half-built folder left beside it


def test_overwrite_swaps_the_new_database_in_and_leaves_nothing_beside_it(
        tmp_path, small_extractor, random_images):
    path = tmp_path / "db"
    old = ColumnDatabase.build(small_extractor, random_images[:2], path)
    old.build_index("IVF4,Flat", train_size=500)
    new = ColumnDatabase.build(small_extractor, random_images, path, overwrite=True)
    assert new.path == path and new.n_images == len(random_images)
    assert new.meta["build_id"] != old.meta["build_id"]
    assert not (path / "index.faiss").exists()  # the old database's index went with it
    assert _siblings(path) == []
    # the old database, still open, keeps reading its (renamed, removed) files
    assert old.image(1).shape == random_images[1].shape


def test_a_killed_build_is_cleaned_up_and_a_killed_swap_is_named(
        tmp_path, small_extractor, random_images):
    import subprocess
    import sys

    from skcorr.columns._store import MARKER, _host

    path = tmp_path / "db"
    ColumnDatabase.build(small_extractor, random_images[:2], path)
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    dead = tmp_path / f".db.skcorr-building-{_host()}-{int(ended.stdout)}-0123abcd"
    alive = tmp_path / f".db.skcorr-building-{_host()}-{os.getpid()}-4567cdef"
    for stage in (dead, alive):  # what a killed build and a running one leave
        stage.mkdir()
        (stage / MARKER).write_text("")
    ColumnDatabase.build(small_extractor, random_images[:2], path, overwrite=True)
    assert _siblings(path) == [alive.name]

    # Killed between its two renames: no database at path, the old one beside it.
    aside = tmp_path / f".db.skcorr-replaced-{_host()}-{int(ended.stdout)}-89abcdef"
    path.rename(aside)
    with pytest.raises(FileNotFoundError, match=f"killed while swapping.*{aside.name}"):
        ColumnDatabase.open(path)
    aside.rename(path)
    assert ColumnDatabase.open(path).n_images == 2


@pytest.mark.parametrize("edit", ["nprobe", "factory", "no checksum"])
def test_an_edited_index_json_is_refused(tmp_path, small_extractor, random_images, rng,
                                         edit):
    db = ColumnDatabase.build(small_extractor, random_images, tmp_path / "db",
                              dtype="float32").build_index("IVF16,PQ8", nprobe=2,
                                                           train_size=2000)
    queries = rng.normal(size=(20, db.n_features)).astype(np.float32)
    before = ColumnDatabase.open(db.path).search(queries, k=5, approximate=True)
    info_file = db.path / "index.json"
    info = json.loads(info_file.read_text())
    assert info["nprobe"] == 2 and info["factory"] == "IVF16,PQ8"
    if edit == "nprobe":
        info["nprobe"] = 16
    elif edit == "factory":
        info["factory"] = "IVF16,Flat"
    else:  # an index.json as skcorr wrote it before it had a checksum
        del info["checksum"]
    info_file.write_text(json.dumps(info))
    with pytest.raises(ValueError, match=r"index.json' was edited.*checksum.*"
                                         r"build_index\(\.\.\., overwrite=True\)"):
        ColumnDatabase.open(db.path).search(queries, k=5, approximate=True)
    np.testing.assert_array_equal(  # the exact search does not need the index
        ColumnDatabase.open(db.path).search(queries, k=5)[1], db.search(queries, k=5)[1])
    db.build_index("IVF16,PQ8", nprobe=2, train_size=2000, overwrite=True)
    after = ColumnDatabase.open(db.path).search(queries, k=5, approximate=True)
    np.testing.assert_array_equal(after[1], before[1])


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
                                          neighborhood=16, random_state=0)
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
    with pytest.raises(ValueError, match="neighborhood"):
        uniform_rf_reconstruction(photos[0], conv4, photo_db, neighborhood=0)
