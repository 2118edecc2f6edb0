"""Two images in, correspondences out: flow files, pictures, skcorr.match and `skcorr match`."""

import json
import struct

import numpy as np
import pytest
from PIL import Image

import skcorr
from skcorr import ConvColumnExtractor
from skcorr.flow import (
    PRESETS,
    match,
    match_files,
    preset_settings,
    read_flo,
    read_flow,
    read_pairs,
    write_flo,
    write_flow,
)


# -- .flo and .npy files ----------------------------------------------------------------------
def _independent_read(path):
    """A .flo reader written from the format's description, sharing no code with skcorr."""
    data = path.read_bytes()
    magic, width, height = struct.unpack("<fii", data[:12])
    assert magic == 202021.25 and data[:4] == b"PIEH"
    assert len(data) == 12 + 4 * 2 * width * height
    return np.frombuffer(data[12:], dtype="<f4").reshape(height, width, 2)


def _independent_write(path, field):
    height, width = field.shape[:2]
    values = [float(v) for v in field.ravel()]  # u, v interleaved, row-major
    path.write_bytes(struct.pack("<fii", 202021.25, width, height)
                     + struct.pack(f"<{len(values)}f", *values))


@pytest.fixture
def field():
    rng = np.random.default_rng(0)
    field = rng.normal(scale=20, size=(5, 7, 2)).astype(np.float32)
    field[0, 0] = (1e-30, -3.5e7)  # extreme values survive too
    return field


def test_flo_written_by_skcorr_reads_back_exactly_elsewhere(tmp_path, field):
    path = tmp_path / "f.flo"
    write_flo(path, field)
    assert path.stat().st_size == 12 + 5 * 7 * 2 * 4
    back = _independent_read(path)
    np.testing.assert_array_equal(back, field)  # bit for bit
    # u of pixel (row 1, col 2) is value 2 * (1 * 7 + 2) of the body
    assert struct.unpack_from("<f", path.read_bytes(), 12 + 4 * 2 * 9)[0] == field[1, 2, 0]
    np.testing.assert_array_equal(read_flo(path), field)
    assert read_flo(path).dtype == np.float32


def test_flo_written_elsewhere_reads_back_exactly(tmp_path, field):
    path = tmp_path / "other.flo"
    _independent_write(path, field)
    np.testing.assert_array_equal(read_flo(path), field)
    np.testing.assert_array_equal(read_flow(path), field)


def test_npy_and_overwrite(tmp_path, field):
    path = tmp_path / "f.npy"
    write_flow(path, field.astype(np.float64))
    assert np.load(path).dtype == np.float32
    np.testing.assert_array_equal(read_flow(path), field)
    with pytest.raises(FileExistsError, match="already exists.*overwrite=True"):
        write_flow(path, np.zeros((2, 2, 2)))
    np.testing.assert_array_equal(np.load(path), field)  # untouched
    write_flow(path, np.zeros((2, 2, 2)), overwrite=True)
    assert np.load(path).shape == (2, 2, 2)
    with pytest.raises(FileExistsError):
        write_flo(tmp_path / "f.npy", field)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.npy"]  # no temporary left


def test_flow_files_reject_bad_input(tmp_path, field):
    with pytest.raises(ValueError, match=r"shape \(H, W, 2\).*got shape \(5, 7\)"):
        write_flo(tmp_path / "a.flo", field[..., 0])
    with pytest.raises(ValueError, match="must end in .flo or .npy"):
        write_flow(tmp_path / "a.png", field)
    assert not any(tmp_path.iterdir())
    path = tmp_path / "good.flo"
    write_flo(path, field)
    data = path.read_bytes()
    (tmp_path / "short.flo").write_bytes(data[:-4])
    with pytest.raises(ValueError, match="damaged .flo file.*7x5 pixels.*truncated"):
        read_flo(tmp_path / "short.flo")
    (tmp_path / "head.flo").write_bytes(data[:6])
    with pytest.raises(ValueError, match="too short"):
        read_flo(tmp_path / "head.flo")
    (tmp_path / "magic.flo").write_bytes(b"PIEX" + data[4:])
    with pytest.raises(ValueError, match="not a .flo file.*magic number 202021.25"):
        read_flo(tmp_path / "magic.flo")


def test_write_flo_of_a_flow_writes_its_pixel_field(tmp_path):
    from skcorr.features import FeatureMap
    from skcorr.flow import align

    rng = np.random.default_rng(1)
    target = rng.normal(size=(6, 7, 4))
    maps = [FeatureMap(features=f, xs=4.0 + 8 * np.arange(f.shape[1]),
                       ys=4.0 + 8 * np.arange(f.shape[0]), rf_size=16,
                       image_shape=(8 * f.shape[0], 8 * f.shape[1]))
            for f in (target[1:5, 2:6], target)]
    flow = align(*maps, lam=0.01)
    write_flo(tmp_path / "f.flo", flow)
    np.testing.assert_array_equal(read_flo(tmp_path / "f.flo"), flow.pixel_flow())
    np.testing.assert_array_equal(read_flo(tmp_path / "f.flo")[..., 0], 16.0)


# -- skcorr.match ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scene():
    """A smooth random texture, and a crop of it moved 24 px right and 16 px down."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(4)
    noise = gaussian_filter(rng.normal(size=(128, 160, 3)), sigma=(2, 2, 0))
    big = np.clip(128 + 60 * noise / noise.std(), 0, 255).astype(np.uint8)
    return big[16:112, 24:136].copy(), big


@pytest.fixture(scope="module")
def small_net():
    """A random network's stride-8 layer: fast, and its columns are a function of pixels."""
    return ConvColumnExtractor(layer="stage3", weights=None, mode="dense").fit()


def test_match_finds_a_known_shift_with_a_confidence(scene, small_net):
    source, target = scene
    flow = match(source, target, features=small_net, lam=0.01, truncation=None, ot_reg=None,
                 subcell=False)
    field = flow.pixel_flow()
    assert field.shape == (96, 112, 2)
    # the inner nodes (away from the zero padding that differs) find the shift exactly
    inner = field[24:72, 24:88].reshape(-1, 2)
    share = np.mean((np.abs(inner - [24, 16]) < 0.5).all(axis=1))
    assert share > 0.9, share
    assert flow.confidence is not None and flow.confidence.shape == flow.target_index.shape[:2]
    grid_rows, grid_cols = flow.target_index.shape[:2]
    assert np.median(flow.confidence[2:-2, 2:-2]) > 0.99  # both directions agree there
    src, dst, scores = flow.matches(min_confidence=0.9)
    np.testing.assert_allclose(np.median(dst - src, axis=0), [24, 16])
    assert match(source, target, features=small_net, backward=False).confidence is None


def test_match_takes_files_and_is_the_public_entry_point(tmp_path, scene, small_net):
    source, target = scene
    Image.fromarray(source).save(tmp_path / "s.png")
    Image.fromarray(target).save(tmp_path / "t.png")
    from_files = skcorr.match(tmp_path / "s.png", str(tmp_path / "t.png"), features=small_net)
    from_arrays = skcorr.match(source, target, features=small_net)
    np.testing.assert_array_equal(from_files.target_index, from_arrays.target_index)
    assert skcorr.match is match and "match" in skcorr.__all__


def test_preset_settings_split_and_override():
    features, flow = preset_settings()
    assert features == {"backbone": "efficientnet_lite0", "layer": ["stage5", "stage6"],
                        "image_size": 480}
    assert flow == {"lam": 0.05, "truncation": 3.0, "ot_reg": 0.2, "subcell": True,
                    "levels": 2, "radius": None, "max_iter": 50}
    features, flow = preset_settings("paper", image_size=200, lam=0.3, solver="2d")
    assert features["layer"] == "conv5" and features["image_size"] == 200
    assert flow["lam"] == 0.3 and flow["solver"] == "2d" and flow["truncation"] is None
    assert PRESETS["best"]["lam"] == 0.05  # the preset itself is not changed


def test_match_rejects_bad_input(tmp_path, scene, small_net):
    source, target = scene
    with pytest.raises(ValueError, match=r"preset must be one of \['best', 'paper'\]"):
        match(source, target, preset="fast")
    with pytest.raises(ValueError, match=r"Unknown setting\(s\) \['smoothness'\].*lam, radius"):
        match(source, target, smoothness=0.1)
    with pytest.raises(ValueError, match=r"\['layer'\].*features= replaces them"):
        match(source, target, features=small_net, layer="stage2")
    with pytest.raises(ValueError, match="pass memory to the extractor"):
        match(source, target, features=small_net, memory=tmp_path)
    with pytest.raises(TypeError, match="features must be a skcorr feature transformer"):
        match(source, target, features="conv5")
    with pytest.raises(ValueError, match="backward must be True or False"):
        match(source, target, features=small_net, backward="yes")
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ValueError, match="notes.png.*not an image format"):
        match(tmp_path / "notes.png", target, features=small_net)
    with pytest.raises(ValueError, match=r"target has shape \(4, 4, 5\)"):
        match(source, np.zeros((4, 4, 5), np.uint8), features=small_net)
    with pytest.raises(ValueError, match="'lam' parameter of align must be"):
        match(source, target, features=small_net, lam=-1)


def test_match_fits_a_copy_of_an_unfitted_extractor(scene):
    source, target = scene
    extractor = ConvColumnExtractor(layer="stage3", weights=None, mode="dense")
    flow = match(source, target, features=extractor, backward=False)
    assert flow.target_index.shape[:2] == (12, 14)
    assert not hasattr(extractor, "network_")  # the caller's object is left as it was


# -- match_files and `skcorr match` ------------------------------------------------------------
SMALL = {"layer": "stage3", "image_size": 64}  # the default network's stride-8 layer, small


@pytest.fixture(scope="module")
def photo_files(tmp_path_factory):
    """Three small photos as files; two of them share the stem ``x``."""
    from skcorr.datasets import load_sample_pairs

    images = load_sample_pairs().images
    root = tmp_path_factory.mktemp("photos")
    (root / "a").mkdir()
    (root / "b").mkdir()
    paths = [root / "a" / "x.png", root / "b" / "x.png", root / "t.jpg"]
    for path, image in zip(paths, images[:3], strict=True):
        Image.fromarray(image[::3, ::3]).save(path)  # 80x80
    return paths


def _check_pair_folder(folder, source_shape):
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["warped.png", "flow.flo", "flow.npy", "flow.png", "matches.png", "summary.json"])
    field = np.load(folder / "flow.npy")
    assert field.shape == (*source_shape, 2) and field.dtype == np.float32
    np.testing.assert_array_equal(read_flo(folder / "flow.flo"), field)
    for name in ("warped.png", "flow.png"):
        with Image.open(folder / name) as image:
            assert image.size == (source_shape[1], source_shape[0])
    with Image.open(folder / "matches.png") as image:
        assert image.format == "PNG" and image.width == 1000
    return json.loads((folder / "summary.json").read_text())


def test_match_files_writes_a_folder_per_pair(tmp_path, photo_files):
    a, b, t = photo_files
    out = tmp_path / "out"
    folders = match_files([(a, t), (b, t)], out, **SMALL)
    assert [f.name for f in folders] == ["x_to_t", "x_to_t_2"]  # repeated stems made unique
    assert sorted(p.name for p in out.iterdir()) == ["x_to_t", "x_to_t_2"]  # no temporaries
    summary = _check_pair_folder(out / "x_to_t", (80, 80))
    assert summary["source"] == str(a) and summary["target"] == str(t)
    assert summary["settings"]["preset"] == "best" and summary["settings"]["layer"] == "stage3"
    assert summary["settings"]["truncation"] == 3.0  # the preset's, not overridden
    assert summary["energy"] == pytest.approx(
        summary["data_energy"] + summary["lam"] * summary["deformation"])
    assert 0 < summary["mean_confidence"] <= 1 and summary["seconds"] >= 0
    # the field is the flow match() computes for the same pair and settings
    flow = match(a, t, **SMALL)
    np.testing.assert_allclose(np.load(out / "x_to_t" / "flow.npy"), flow.pixel_flow())


def test_match_files_never_overwrites_without_being_asked(tmp_path, photo_files):
    a, _, t = photo_files
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="already holds files; pass overwrite=True"):
        match_files([(a, t)], out, **SMALL)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    match_files([(a, t)], out, overwrite=True, **SMALL)
    (out / "x_to_t" / "flow.npy").write_bytes(b"old")
    match_files([(a, t)], out, overwrite=True, lam=0.2, **SMALL)  # the pair folder replaced
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "x_to_t"]
    assert (out / "notes.txt").read_text() == "mine"
    assert _check_pair_folder(out / "x_to_t", (80, 80))["lam"] == 0.2


def test_a_pair_folder_is_written_whole_or_not_at_all(tmp_path, photo_files, monkeypatch):
    import skcorr.visualize

    a, _, t = photo_files

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(skcorr.visualize, "plot_matches", broken)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="disk full"):
        match_files([(a, t)], out, **SMALL)
    assert not out.exists()  # created by the call, removed again while empty
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(OSError, match="disk full"):
        match_files([(a, t)], out, overwrite=True, **SMALL)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]  # no half-written pair folder


def test_match_files_checks_the_images_before_any_work(tmp_path, photo_files):
    a, _, t = photo_files
    text = tmp_path / "readme.png"
    text.write_text("not an image")
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="readme.png.*not an image format"):
        match_files([(a, t), (a, text)], out, **SMALL)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        match_files([(tmp_path / "missing.png", t)], out, **SMALL)
    with pytest.raises(ValueError, match=r"pairs\[0\] must be a \(source, target\) pair"):
        match_files([(a, t, t)], out, **SMALL)
    assert not out.exists()


def test_read_pairs(tmp_path, photo_files):
    a, b, t = photo_files
    root = a.parents[1]
    (root / "pairs.csv").write_text("source,target,note\na/x.png,t.jpg,first\n"
                                    f"{b},t.jpg,absolute\n")
    assert read_pairs(root / "pairs.csv") == [(a, t), (b, t)]
    (tmp_path / "cols.csv").write_text("src,target\na.png,b.png\n")
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['source'\].*\['src', "):
        read_pairs(tmp_path / "cols.csv")
    (root / "bad.csv").write_text("source,target\na/x.png,t.jpg\na/x.png,c/nope.jpg\n")
    with pytest.raises(ValueError, match="line 3: target image .*nope.jpg' does not exist"):
        read_pairs(root / "bad.csv")
    (tmp_path / "empty.csv").write_text("source,target\n")
    with pytest.raises(ValueError, match="lists no pairs"):
        read_pairs(tmp_path / "empty.csv")


def test_cli_match_end_to_end_with_the_default_weights(tmp_path, photo_files, capsys):
    from skcorr.cli import main

    a, b, t = photo_files
    out, cache = tmp_path / "out", tmp_path / "cache"
    argv = ["match", str(a), str(t), str(b), "--output", str(out), "--image-size", "64",
            "--memory", str(cache), "--lam", "0.1"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "Wrote 2 pair folder(s)" in captured.out
    assert "features" in captured.err and "pairs" in captured.err  # the progress bars
    assert sorted(p.name for p in out.iterdir()) == ["x_to_t", "x_to_x"]
    summary = _check_pair_folder(out / "x_to_t", (80, 80))
    assert summary["settings"]["image_size"] == 64 and summary["lam"] == 0.1
    assert summary["settings"]["layer"] == ["stage5", "stage6"]  # the best preset
    assert any(cache.rglob("*.pkl"))  # the features went into the cache
    # the same run again is refused, and leaves the results as they were
    before = (out / "x_to_t" / "flow.npy").read_bytes()
    assert main(argv) == 2
    assert "already holds files" in capsys.readouterr().err
    assert (out / "x_to_t" / "flow.npy").read_bytes() == before
    # --pairs, another preset, and --overwrite
    (tmp_path / "pairs.csv").write_text(f"source,target\n{a},{t}\n")
    assert main(["match", "--pairs", str(tmp_path / "pairs.csv"), "--output", str(out),
                 "--preset", "paper", "--image-size", "64", "--no-subcell",
                 "--overwrite"]) == 0
    summary = _check_pair_folder(out / "x_to_t", (80, 80))
    assert summary["settings"]["preset"] == "paper" and summary["settings"]["subcell"] is False


def test_cli_match_bad_input_is_one_clear_error(tmp_path, photo_files, capsys):
    from skcorr.cli import main

    a, _, t = photo_files
    out = tmp_path / "out"
    text = tmp_path / "readme.png"
    text.write_text("not an image")
    (tmp_path / "cols.csv").write_text("src,dst\nx,y\n")
    cases = [
        (["match", str(a), str(text)], "readme.png.*not an image format"),
        (["match", str(a), str(tmp_path / "gone.jpg")], "gone.jpg.*does not exist"),
        (["match", str(a)], "name a source image and at least one target"),
        (["match", "--pairs", str(tmp_path / "cols.csv")], r"lacks the column\(s\)"),
        (["match", str(a), str(t), "--pairs", str(tmp_path / "cols.csv")], "not both"),
    ]
    import re

    for argv, message in cases:
        assert main([*argv, "--output", str(out)]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("skcorr match: error: ") and re.search(message, err), err
        assert not out.exists()
    with pytest.raises(SystemExit) as exit_info:  # argparse's own errors
        main(["match", str(a), str(t), "--output", str(out), "--lam", "cv"])
    assert exit_info.value.code == 2


def test_the_estimators_defaults_are_the_best_preset():
    import inspect

    from skcorr import ConvColumnExtractor
    from skcorr.flow import FlowAligner, PairTransfer
    from skcorr.flow._estimators import _default_features

    features, flow = preset_settings("best")
    for estimator in (FlowAligner, PairTransfer):
        defaults = {name: p.default for name, p in
                    inspect.signature(estimator).parameters.items()}
        assert {name: defaults[name] for name in flow if name in defaults} == \
            {name: value for name, value in flow.items() if name in defaults}
    assert _default_features().get_params() == ConvColumnExtractor(**features).get_params()
