"""Keypoints from annotated image files to new ones: skcorr.flow.transfer_files and
``skcorr transfer``, on tiny images written here."""

import numpy as np
import pytest
from PIL import Image

from skcorr.cli import main
from skcorr.datasets import make_affine_category, read_annotations, write_keypoints_csv
from skcorr.features import ConvColumnExtractor
from skcorr.flow import transfer_files


def _features():
    return ConvColumnExtractor(layer="stage3", weights=None, image_size=96)


def _retrieval():
    return ConvColumnExtractor(layer="fc7", mode="global", weights=None, image_size=64)


def _small(**options):
    """transfer_files with a small random network: no weights, fast."""
    return dict(features=_features(), retrieval=_retrieval(), **options)


@pytest.fixture(scope="module")
def cats():
    return make_affine_category(4, height=96, random_state=0)


@pytest.fixture
def scene(tmp_path, cats):
    """cat0 and cat1 annotated (annotations.csv); new/ holds cat2, cat3 and a copy of cat0."""
    (tmp_path / "new").mkdir()
    for i, image in enumerate(cats.images):
        folder = tmp_path if i < 2 else tmp_path / "new"
        Image.fromarray(image).save(folder / f"cat{i}.png")
    Image.fromarray(cats.images[0]).save(tmp_path / "new" / "copy0.png")
    write_keypoints_csv(tmp_path / "annotations.csv", [tmp_path / "cat0.png",
                                                       tmp_path / "cat1.png"],
                        cats.keypoint_names, cats.keypoints[:2])
    return tmp_path


def _one_annotated(scene, cats):
    path = scene / "one.csv"
    write_keypoints_csv(path, [scene / "cat0.png"], cats.keypoint_names, cats.keypoints[:1])
    return path


def test_one_annotated_image_transfers_to_its_copy_exactly(scene, cats):
    # the paper's flow (no sub-cell matches, no transport prices) keeps the identity exact
    result = transfer_files(_one_annotated(scene, cats), [scene / "new"], scene / "out",
                            **_small(preset="paper"))
    names = ["cat2.png", "cat3.png", "copy0.png"]  # the folder's images, sorted
    assert result.images == [str(scene / "new" / n) for n in names]
    assert result.keypoint_names == cats.keypoint_names
    assert result.keypoints.shape == (3, 6, 2) and not np.isnan(result.keypoints).any()
    # the copy of the annotated image aligns with it by the identity
    np.testing.assert_allclose(result.keypoints[2], cats.keypoints[0], atol=5e-4)  # CSV: 1/1000 px
    assert result.files == [scene / "out" / "keypoints.csv"]
    written = read_annotations(scene / "out" / "keypoints.csv")
    assert written.images == result.images and written.keypoint_names == cats.keypoint_names
    np.testing.assert_allclose(written.keypoints, result.keypoints, atol=5e-4)
    assert sorted(p.name for p in (scene / "out").iterdir()) == ["keypoints.csv"]


def test_neighbour_counts_are_capped_by_the_annotated_images(scene, cats):
    # two annotated images: n_neighbors=5, n_top=3 become 2 and 2 (FlowAligner refuses 5)
    result = transfer_files(scene / "annotations.csv", [scene / "new" / "copy0.png"],
                            scene / "out", n_neighbors=5, n_top=3, **_small())
    assert result.keypoints.shape == (1, 6, 2)
    with pytest.raises(ValueError, match="n_top must be an integer >= 1"):
        transfer_files(scene / "annotations.csv", [scene / "new"], scene / "o2", n_top=0,
                       **_small())
    with pytest.raises(ValueError, match="n_neighbors must be an integer >= 1"):
        transfer_files(scene / "annotations.csv", [scene / "new"], scene / "o2",
                       n_neighbors=True, **_small())


def test_stray_files_in_a_folder_are_listed_in_a_warning(scene, cats):
    (scene / "new" / "notes.txt").write_text("not an image")
    (scene / "new" / "sub").mkdir()
    (scene / "new" / ".hidden").write_text("")
    with pytest.warns(UserWarning, match=r"2 file\(s\) that are not images, skipped: "
                                         r"notes.txt, sub\."):
        result = transfer_files(_one_annotated(scene, cats), [scene / "new"], scene / "out",
                                **_small())
    assert len(result.images) == 3


def test_pictures_are_written_one_per_image(scene, cats):
    (scene / "other").mkdir()
    Image.fromarray(cats.images[3]).save(scene / "other" / "cat2.png")  # the same name
    result = transfer_files(scene / "annotations.csv",
                            [scene / "new" / "cat2.png", scene / "other" / "cat2.png",
                             scene / "new" / "cat2.png"],  # a repeat is predicted once
                            scene / "out", pictures=True, **_small())
    assert [p.name for p in result.files] == ["keypoints.csv", "cat2.png", "cat2_2.png"]
    for path in result.files[1:]:
        with Image.open(path) as picture:
            assert picture.format == "PNG" and picture.width > 100
    assert sorted(p.name for p in (scene / "out").iterdir()) == [
        "cat2.png", "cat2_2.png", "keypoints.csv"]


def test_output_folder_with_files_is_refused_unless_overwrite(scene, cats):
    out = scene / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    (out / "keypoints.csv").write_text("old")
    with pytest.raises(ValueError, match="already holds files; pass overwrite=True"):
        transfer_files(scene / "annotations.csv", [scene / "new"], out, **_small())
    assert (out / "keypoints.csv").read_text() == "old"
    transfer_files(scene / "annotations.csv", [scene / "new"], out, overwrite=True,
                   **_small())
    assert (out / "mine.txt").read_text() == "keep me"
    assert len(read_annotations(out / "keypoints.csv").images) == 3
    assert sorted(p.name for p in out.iterdir()) == ["keypoints.csv", "mine.txt"]


def test_nothing_is_written_when_a_picture_fails(scene, monkeypatch):
    from skcorr.flow import _transfer_files

    calls = []

    def failing(image, points, names, path):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        path.write_bytes(b"png")

    monkeypatch.setattr(_transfer_files, "_plot_keypoints", failing)
    with pytest.raises(OSError, match="disk full"):
        transfer_files(scene / "annotations.csv", [scene / "new"], scene / "out",
                       pictures=True, **_small())
    assert len(calls) == 2
    assert not (scene / "out").exists()  # created by the call, removed again


@pytest.mark.parametrize("images, options, error, message", [
    (["new/missing.png"], {}, ValueError, "missing.png' does not exist"),
    ("new", {}, TypeError, "wrap a single path in a list"),
    ([], {}, ValueError, "images is empty"),
    (["empty"], {}, ValueError, "holds no image file"),
    (["new"], {"image_size": 64}, ValueError, r"\['image_size'\] set the preset's features"),
    (["new"], {"tol": 1e-3}, ValueError, r"\['tol'\] are not used in keypoint transfer"),
    (["new"], {"banana": 1}, ValueError, r"Unknown setting\(s\) \['banana'\]"),
    (["new"], {"preset": "fast"}, ValueError, "preset must be one of"),
    (["new/bad.png"], {}, ValueError, "Cannot read image file"),
])
def test_bad_input(scene, images, options, error, message):
    (scene / "empty").mkdir()
    (scene / "new" / "bad.png").write_text("not a png")
    images = [scene / p for p in images] if isinstance(images, list) else images
    with pytest.raises(error, match=message):
        transfer_files(scene / "annotations.csv", images, scene / "out",
                       **_small(**options))
    assert not (scene / "out").exists()


def test_annotation_errors_name_the_file(scene):
    (scene / "bad.csv").write_text("image,keypoint,x,y\nnowhere.png,beak,1,2\n")
    with pytest.raises(ValueError, match="line 2: image file .*nowhere.png.* does not exist"):
        transfer_files(scene / "bad.csv", [scene / "new"], scene / "out", **_small())
    (scene / "none.json").write_text('{"images": {"cat0.png": {}}}')
    with pytest.raises(ValueError, match="holds no keypoint"):
        transfer_files(scene / "none.json", [scene / "new"], scene / "out", **_small())
    assert not (scene / "out").exists()


# -- the command line -------------------------------------------------------------------------
def test_cli_transfer_end_to_end_with_the_default_weights(scene, cats, capsys):
    """One annotated image, the real default network, a small image size."""
    code = main(["transfer", str(_one_annotated(scene, cats)), str(scene / "new" / "cat2.png"),
                 str(scene / "new" / "cat3.png"), "--output", str(scene / "out"),
                 "--pictures", "--image-size", "128", "--preset", "paper"])
    assert code == 0, capsys.readouterr().err
    assert "Wrote" in capsys.readouterr().out
    assert sorted(p.name for p in (scene / "out").iterdir()) == [
        "cat2.png", "cat3.png", "keypoints.csv"]
    predicted = read_annotations(scene / "out" / "keypoints.csv")
    assert predicted.keypoint_names == cats.keypoint_names
    assert predicted.keypoints.shape == (2, 6, 2)
    # the parts land near their true places (the images are affine warps of one photo)
    error = np.linalg.norm(predicted.keypoints - cats.keypoints[2:], axis=2)
    assert np.median(error) < 0.1 * 96, error


@pytest.mark.parametrize("setup, message", [
    ("unreadable", "is not valid JSON"),
    ("unknown", "image file .*nowhere.png.* does not exist"),
    ("full", "already holds files"),
])
def test_cli_transfer_errors_exit_2_with_one_line(scene, capsys, setup, message):
    annotations = scene / "annotations.csv"
    if setup == "unreadable":
        annotations = scene / "broken.json"
        annotations.write_text("{images")
    elif setup == "unknown":
        annotations = scene / "unknown.csv"
        annotations.write_text("image,keypoint,x,y\nnowhere.png,beak,1,2\n")
    else:
        (scene / "out").mkdir()
        (scene / "out" / "keep.txt").write_text("")
    code = main(["transfer", str(annotations), str(scene / "new"), "--output",
                 str(scene / "out")])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("skcorr transfer: error:"), err
    assert __import__("re").search(message, lines[0]), lines[0]
    if setup != "full":
        assert not (scene / "out").exists()


def test_cli_transfer_warns_about_stray_files_in_one_line(scene, cats, capsys, monkeypatch):
    from skcorr.flow import _transfer_files

    (scene / "new" / "notes.txt").write_text("")
    seen = {}

    def fake(annotations, images, output, **options):
        seen.update(options)
        _transfer_files._image_files(images)
        return _transfer_files.Bunch(images=[], files=[])

    monkeypatch.setattr("skcorr.flow.transfer_files", fake)
    assert main(["transfer", str(scene / "annotations.csv"), str(scene / "new"), "--output",
                 str(scene / "out"), "--n-neighbors", "2", "--n-top", "1"]) == 0
    err = capsys.readouterr().err
    assert err.strip() == (f"skcorr transfer: warning: Folder {str(scene / 'new')!r} holds 1 "
                           "file(s) that are not images, skipped: notes.txt.")
    assert seen["n_neighbors"] == 2 and seen["n_top"] == 1 and seen["preset"] == "best"
    assert "image_size" not in seen  # the preset's, unless given
