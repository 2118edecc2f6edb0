"""Data set loaders, fetchers and crops, on small files written here and on real data."""

import json
import zipfile
from pathlib import Path

import numpy as np
import pooch
import pytest
import scipy.io
from PIL import Image

from skcorr._geometry import keypoint_boxes
from skcorr.datasets import (
    crop_to_boxes,
    fetch_cub,
    fetch_pf_willow,
    get_data_home,
    load_cub,
    load_pascal_keypoints,
    load_pf_pascal,
    load_pf_willow,
    load_spair71k,
    read_annotations,
    uncrop_keypoints,
    write_keypoints_csv,
)

COMMON_FIELDS = {"images", "keypoints", "keypoint_names", "boxes", "DESCR"}


def _check_common(data):
    assert COMMON_FIELDS <= set(data)
    n, k = len(data.images), len(data.keypoint_names)
    assert all(isinstance(p, str) for p in data.images)
    assert data.keypoints.shape == (n, k, 2) and data.keypoints.dtype == np.float64
    assert data.boxes.shape == (n, 4)
    if "pairs" in data:
        assert data.pairs.ndim == 2 and data.pairs.shape[1] == 2
        assert data.pairs.size == 0 or (data.pairs.min() >= 0 and data.pairs.max() < n)


def _png(path, width=40, height=30):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (120, 60, 30)).save(path)


# ------------------------------------------------------------------------- PF-WILLOW
def _write_willow(root, subclasses=("car(G)", "duck(S)"), n_images=3, n_points=10):
    rng = np.random.default_rng(0)
    for subclass in subclasses:
        for i in range(n_images):
            _png(root / subclass / f"img{i}.png")
            coords = rng.uniform(1, 30, size=(2, n_points))
            scipy.io.savemat(root / subclass / f"img{i}.mat", {"pts_coord": coords})
    return root


def test_pf_willow_layout(tmp_path):
    root = _write_willow(tmp_path / "PF-WILLOW")
    data = load_pf_willow(root)
    _check_common(data)
    assert data.keypoints.shape == (6, 10, 2)
    assert data.classes == ["car(G)"] * 3 + ["duck(S)"] * 3
    assert data.class_names == ["car(G)", "duck(S)"] and data.labels.tolist() == [0] * 3 + [1] * 3
    # every ordered pair of distinct images within a sub-class: 2 * 3 * 2
    expected = {(i, j) for group in ([0, 1, 2], [3, 4, 5]) for i in group for j in group if i != j}
    assert set(map(tuple, data.pairs.tolist())) == expected and len(data.pairs) == 6 * 2
    # 1-based MATLAB coordinates become 0-based
    coords = scipy.io.loadmat(root / "duck(S)" / "img1.mat")["pts_coord"]
    assert data.images[4] == str(root / "duck(S)" / "img1.png")
    np.testing.assert_array_equal(data.keypoints[4, 3], coords[:, 3] - 1)
    # no object boxes in PF-WILLOW: the keypoints' bounding box
    low = data.keypoints[4].min(axis=0)
    np.testing.assert_allclose(data.boxes[4], [*low, *(data.keypoints[4].max(axis=0) - low)])


def test_pf_willow_missing_and_malformed(tmp_path):
    with pytest.raises(FileNotFoundError, match="PF-WILLOW folder .* does not exist"):
        load_pf_willow(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no sub-class folder with .png images"):
        load_pf_willow(tmp_path / "empty")

    root = _write_willow(tmp_path / "a")
    (root / "car(G)" / "img1.mat").unlink()
    with pytest.raises(FileNotFoundError, match=r"img1\.mat' is missing"):
        load_pf_willow(root)

    root = _write_willow(tmp_path / "b")
    scipy.io.savemat(root / "car(G)" / "img2.mat", {"points": np.zeros((2, 10))})
    with pytest.raises(ValueError, match=r"img2\.mat: it has no variable 'pts_coord'"):
        load_pf_willow(root)

    root = _write_willow(tmp_path / "c")
    scipy.io.savemat(root / "duck(S)" / "img0.mat", {"pts_coord": np.ones((2, 8))})
    with pytest.raises(ValueError, match=r"img0\.mat: it has 8 points where the other files"):
        load_pf_willow(root)

    root = _write_willow(tmp_path / "d")
    (root / "car(G)" / "img0.mat").write_bytes(b"not a mat file")
    with pytest.raises(ValueError, match=r"img0\.mat: cannot be read as a MATLAB file"):
        load_pf_willow(root)


@pytest.mark.realdata
def test_pf_willow_real(pf_willow_dir):
    data = load_pf_willow(pf_willow_dir)
    _check_common(data)
    assert data.keypoints.shape == (100, 10, 2) and not np.isnan(data.keypoints).any()
    assert data.pairs.shape == (900, 2) and len(set(map(tuple, data.pairs.tolist()))) == 900
    assert len(data.class_names) == 10 and np.bincount(data.labels).tolist() == [10] * 10
    labels = np.array(data.labels)
    assert (labels[data.pairs[:, 0]] == labels[data.pairs[:, 1]]).all()
    assert (data.pairs[:, 0] != data.pairs[:, 1]).all()
    mat = scipy.io.loadmat(pf_willow_dir / "car(G)" / "Cars_006a.mat")["pts_coord"]
    i = data.images.index(str(pf_willow_dir / "car(G)" / "Cars_006a.png"))
    np.testing.assert_array_equal(data.keypoints[i, :, 0], mat[0] - 1)
    np.testing.assert_array_equal(data.keypoints[i, :, 1], mat[1] - 1)
    for path, points in zip(data.images[::10], data.keypoints[::10], strict=True):
        with Image.open(path) as image:
            width, height = image.size
        assert (points >= -0.5).all() and (points[:, 0] < width).all()
        assert (points[:, 1] < height).all()


# ------------------------------------------------------------------------------- CUB
def _write_cub(root, *, extra_rows=True):
    """Three images of classes 1, 1, 2; tables also list a fourth image that is absent."""
    names = {1: "001.Black_footed_Albatross/a.jpg", 2: "001.Black_footed_Albatross/b.jpg",
             3: "002.Laysan_Albatross/c.jpg"}  # fmt: skip
    for relative in names.values():
        _png(root / "images" / relative, 50, 40)
    ids = [1, 2, 3, 4] if extra_rows else [1, 2, 3]
    rows = {
        "images.txt": [f"{i} {names[i]}" for i in names],
        "image_class_labels.txt": [f"{i} {1 if i < 3 else 2}" for i in ids],
        "classes.txt": ["1 001.Black_footed_Albatross", "2 002.Laysan_Albatross",
                        "3 003.Sooty_Albatross"],  # fmt: skip
        "bounding_boxes.txt": [f"{i} {i}.0 2.0 30.0 20.0" for i in ids],
        "train_test_split.txt": [f"{i} {i % 2}" for i in ids],
        "parts/parts.txt": ["1 back", "2 beak", "3 left eye"],
        "parts/part_locs.txt": [f"{i} {p} {10.0 * p + i} {5.0 * p} {int(p != 2 or i == 1)}"
                                for i in ids for p in (1, 2, 3)],  # fmt: skip
    }
    for name, lines in rows.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("\n".join(lines) + "\n")
    return root


def test_cub_layout(tmp_path):
    root = _write_cub(tmp_path / "CUB_200_2011")
    data = load_cub(root)
    _check_common(data)
    assert data.images == [str(root / "images" / n) for n in (
        "001.Black_footed_Albatross/a.jpg", "001.Black_footed_Albatross/b.jpg",
        "002.Laysan_Albatross/c.jpg")]  # fmt: skip
    assert data.keypoint_names == ["back", "beak", "left eye"]
    assert data.labels.tolist() == [0, 0, 1] and data.image_ids.tolist() == [1, 2, 3]
    assert data.class_names[1] == "002.Laysan_Albatross"
    assert data.split.tolist() == ["train", "test", "train"]
    np.testing.assert_array_equal(data.boxes[1], [2.0, 2.0, 30.0, 20.0])
    np.testing.assert_array_equal(data.keypoints[2, 0], [13.0, 5.0])  # used as given
    np.testing.assert_array_equal(data.keypoints[0, 1], [21.0, 10.0])
    assert np.isnan(data.keypoints[1:, 1]).all()  # part 2 invisible in images 2 and 3
    # the parent folder works too
    assert load_cub(tmp_path).images == data.images


@pytest.mark.parametrize("classes, expected", [
    ([2], [2]), (["002.Laysan_Albatross"], [2]), (["Black_footed_Albatross", 2], [0, 1, 2]),
    (1, [0, 1]),
])  # fmt: skip
def test_cub_class_subset(tmp_path, classes, expected):
    root = _write_cub(tmp_path / "CUB_200_2011")
    data = load_cub(root, classes=classes)
    assert data.image_ids.tolist() == [i + 1 for i in expected]
    assert data.keypoints.shape == (len(expected), 3, 2)


def test_cub_bad_input(tmp_path):
    root = _write_cub(tmp_path / "CUB_200_2011")
    with pytest.raises(ValueError, match="unknown CUB class 'Dodo'"):
        load_cub(root, classes=["Dodo"])
    with pytest.raises(ValueError, match=r"class id 300 is not in 1\.\.3"):
        load_cub(root, classes=[300])
    with pytest.raises(ValueError, match=r"no image of classes \[3\]"):
        load_cub(root, classes=[3])

    lines = (root / "bounding_boxes.txt").read_text().splitlines()
    lines[1] = "2 2.0 2.0 thirty 20.0"
    (root / "bounding_boxes.txt").write_text("\n".join(lines))
    with pytest.raises(ValueError, match=r"bounding_boxes\.txt, line 2: malformed row"):
        load_cub(root)

    root = _write_cub(tmp_path / "b" / "CUB_200_2011")
    lines = (root / "parts/part_locs.txt").read_text().splitlines()
    lines[4] = "2 2 10.0 5.0 2"
    (root / "parts/part_locs.txt").write_text("\n".join(lines))
    with pytest.raises(ValueError, match=r"part_locs\.txt, line 5: .*expected 0 or 1"):
        load_cub(root)

    root = _write_cub(tmp_path / "c" / "CUB_200_2011")
    (root / "parts/part_locs.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"part_locs\.txt' is missing"):
        load_cub(root)

    root = _write_cub(tmp_path / "d" / "CUB_200_2011")
    (root / "images/002.Laysan_Albatross/c.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 image\(s\) listed in images.txt are missing"):
        load_cub(root)

    root = _write_cub(tmp_path / "e" / "CUB_200_2011", extra_rows=False)
    lines = (root / "train_test_split.txt").read_text().splitlines()
    (root / "train_test_split.txt").write_text("\n".join(lines[:2]))
    with pytest.raises(ValueError, match="has no row for image id 3"):
        load_cub(root)

    root = _write_cub(tmp_path / "g" / "CUB_200_2011")
    (root / "classes.txt").write_text("1 001.Black_footed_Albatross\n3 003.Sooty_Albatross\n")
    with pytest.raises(ValueError, match=r"classes\.txt: its ids are not 1, 2, 3"):
        load_cub(root)
    (root / "classes.txt").write_text("1 001.Black_footed_Albatross\n")
    with pytest.raises(ValueError, match=r"image_class_labels\.txt: image 3 has class id 2"):
        load_cub(root)

    root = _write_cub(tmp_path / "f" / "CUB_200_2011")
    scrambled = (root / "bounding_boxes.txt").read_text().replace("1 1.0 2.0 30.0", "1 1.0 2.0 0")
    (root / "bounding_boxes.txt").write_text(scrambled)
    with pytest.raises(ValueError, match=r"the box of .*a\.jpg is .* zero size"):
        load_cub(root)


@pytest.mark.realdata
def test_cub_real(cub_dir):
    data = load_cub(cub_dir)
    _check_common(data)
    assert data.keypoints.shape == (323, 15, 2) and len(data.keypoint_names) == 15
    assert (data.split == "train").sum() == 180 and (data.split == "test").sum() == 143
    assert len(data.class_names) == 200 and set(data.labels.tolist()) == set(range(6))
    first = (cub_dir / "bounding_boxes.txt").read_text().split("\n", 1)[0].split()
    np.testing.assert_array_equal(data.boxes[0], [float(v) for v in first[1:]])
    # invisible parts (visible = 0, written as x = y = 0) are NaN, visible ones are not
    locs = np.loadtxt(cub_dir / "parts/part_locs.txt")
    row = {int(i): k for k, i in enumerate(data.image_ids)}
    for image_id, part, x, y, visible in locs[:300]:
        point = data.keypoints[row[int(image_id)], int(part) - 1]
        if visible:
            np.testing.assert_array_equal(point, [x, y])
        else:
            assert np.isnan(point).all()
    subset = load_cub(cub_dir, classes=["001.Black_footed_Albatross", 2])
    assert set(subset.labels.tolist()) == {0, 1} and len(subset.images) == 120


# -------------------------------------------------------------- PASCAL VOC keypoints
_XML = """<?xml version="1.0" encoding="utf-8"?>
<annotation>
  <image>{image}</image>
  <category>{category}</category>
  <visible_bounds height="50.00" width="60.00" xmin="11.00" ymin="21.00"/>
  <keypoints>
{keypoints}
  </keypoints>
</annotation>
"""


def _write_xml(path, category, keypoints):
    lines = "\n".join(
        f'    <keypoint name="{n}" visible="{v}" x="{x}" y="{y}" z="0.00"/>'
        for n, v, x, y in keypoints
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_XML.format(image=path.stem.rsplit("_", 1)[0], category=category,
                                keypoints=lines))  # fmt: skip


def _write_pascal(root):
    _write_xml(root / "cat" / "2008_000001_1.xml", "cat",
               [("Nose", 1, 31.0, 41.0), ("L_Eye", 0, 0.0, 0.0)])  # fmt: skip
    _write_xml(root / "cat" / "2008_000001_2.xml", "cat", [("L_Eye", 1, 5.5, 6.5)])
    _write_xml(root / "aeroplane" / "2007_000002_1.xml", "aeroplane", [("NoseTip", 1, 2.0, 3.0)])
    return root


def test_pascal_keypoints_layout(tmp_path):
    root = _write_pascal(tmp_path / "annotations")
    data = load_pascal_keypoints(root)
    _check_common(data)
    # ordered by class, then file; names in order of first appearance
    assert data.images == ["2007_000002.jpg", "2008_000001.jpg", "2008_000001.jpg"]
    assert [data.class_names[i] for i in data.labels] == ["aeroplane", "cat", "cat"]
    assert data.keypoint_names == ["NoseTip", "Nose", "L_Eye"]
    expected = np.full((3, 3, 2), np.nan)
    expected[0, 0] = [1.0, 2.0]  # 1-based VOC coordinates minus 1
    expected[1, 1] = [30.0, 40.0]  # L_Eye not visible in object 1: NaN
    expected[2, 2] = [4.5, 5.5]
    np.testing.assert_array_equal(data.keypoints, expected)
    np.testing.assert_array_equal(data.boxes, np.tile([10.0, 20.0, 60.0, 50.0], (3, 1)))

    cats = load_pascal_keypoints(root, classes=["cat"])
    assert cats.keypoint_names == ["Nose", "L_Eye"] and len(cats.images) == 2

    images = tmp_path / "JPEGImages"
    for name in ("2007_000002", "2008_000001"):
        _png(images / f"{name}.jpg")
    with_images = load_pascal_keypoints(root, images)
    assert with_images.images[0] == str(images / "2007_000002.jpg")


def test_pascal_keypoints_bad_input(tmp_path):
    root = _write_pascal(tmp_path / "annotations")
    (tmp_path / "JPEGImages").mkdir()
    with pytest.raises(FileNotFoundError, match=r"3 annotated image\(s\) are missing"):
        load_pascal_keypoints(root, tmp_path / "JPEGImages")
    with pytest.raises(ValueError, match=r"unknown VOC classes \['kitten'\]"):
        load_pascal_keypoints(root, classes=["kitten"])
    with pytest.raises(FileNotFoundError, match=r"no \*\.xml annotation file"):
        load_pascal_keypoints(tmp_path / "JPEGImages")

    bad = root / "cat" / "2008_000001_2.xml"
    bad.write_text("<annotation><category>cat</category>\n<visible_bounds")
    with pytest.raises(ValueError, match=r"2008_000001_2\.xml: invalid XML at line 2"):
        load_pascal_keypoints(root)
    _write_xml(bad, "cat", [("L_Eye", 1, "left", 6.5)])
    with pytest.raises(ValueError, match=r"_2\.xml: <keypoint> has no numeric attribute x="):
        load_pascal_keypoints(root)
    _write_xml(bad, "kitten", [])
    with pytest.raises(ValueError, match=r"<category> is 'kitten'"):
        load_pascal_keypoints(root)


@pytest.mark.realdata
def test_pascal_keypoints_sample(data_root):
    folder = data_root / "PASCAL-VOC2011-keypoints-sample"
    if not folder.is_dir():
        pytest.skip(f"PASCAL keypoint sample not found under SKCORR_DATA ({folder})")
    data = load_pascal_keypoints(folder)
    _check_common(data)
    assert data.images == ["2007_000032.jpg", "2008_000060.jpg"]
    assert [data.class_names[i] for i in data.labels] == ["aeroplane", "cat"]
    assert len(data.keypoint_names) == 14 + 6
    nose = data.keypoint_names.index("Nose")
    np.testing.assert_allclose(data.keypoints[1, nose], [327.26, 128.26])  # 328.26 - 1, ...
    assert np.isnan(data.keypoints[0, nose]).all()  # aeroplanes have no "Nose"
    np.testing.assert_array_equal(data.boxes[0], [103.0, 77.0, 271.0, 105.0])


# ------------------------------------------------------------------------- PF-PASCAL
def _write_pf_pascal(parent):
    root = parent / "PF-dataset-PASCAL"
    rng = np.random.default_rng(0)
    for cls, names, k in (("aeroplane", ["2008_1", "2008_2"], 3), ("cat", ["2009_1", "2009_2"], 2)):
        for name in names:
            kps = rng.uniform(2, 30, size=(k, 2))
            kps[-1] = np.nan  # the last keypoint of each image is absent
            bbox = np.array([[3.0, 4.0, 33.0, 24.0]])
            (root / "Annotations" / cls).mkdir(parents=True, exist_ok=True)
            scipy.io.savemat(root / "Annotations" / cls / f"{name}.mat", {"kps": kps, "bbox": bbox})
            _png(root / "JPEGImages" / f"{name}.jpg")
    (root / "test_pairs.csv").write_text(
        "source_image,target_image,class,flip\n"
        "PF-dataset-PASCAL/JPEGImages/2008_1.jpg,PF-dataset-PASCAL/JPEGImages/2008_2.jpg,1,0\n"
        "PF-dataset-PASCAL/JPEGImages/2009_2.jpg,PF-dataset-PASCAL/JPEGImages/2009_1.jpg,8,0\n"
    )
    return root


def test_pf_pascal_layout(tmp_path):
    root = _write_pf_pascal(tmp_path)
    for path in (tmp_path, root):
        data = load_pf_pascal(path)
        _check_common(data)
        assert data.keypoint_names == ["aeroplane/0", "aeroplane/1", "aeroplane/2", "cat/0",
                                       "cat/1"]  # fmt: skip
        assert data.pairs.tolist() == [[0, 1], [3, 2]]
    assert [data.class_names[i] for i in data.labels] == ["aeroplane"] * 2 + ["cat"] * 2
    kps = scipy.io.loadmat(root / "Annotations" / "cat" / "2009_2.mat")["kps"]
    np.testing.assert_array_equal(data.keypoints[3, 3], kps[0] - 1)
    assert np.isnan(data.keypoints[3, [0, 1, 2, 4]]).all()
    np.testing.assert_array_equal(data.boxes[0], [2.0, 3.0, 30.0, 20.0])
    assert load_pf_pascal(root, split=None).pairs.shape == (0, 2)


def test_pf_pascal_bad_input(tmp_path):
    root = _write_pf_pascal(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"no pair list for split 'val'"):
        load_pf_pascal(root, split="val")
    with pytest.raises(ValueError, match="split must be one of"):
        load_pf_pascal(root, split="train")
    csv_path = root / "test_pairs.csv"
    text = csv_path.read_text()
    csv_path.write_text(text.replace(",8,0", ",x,0"))
    with pytest.raises(ValueError, match=r"test_pairs\.csv, line 3: malformed row"):
        load_pf_pascal(root)
    csv_path.write_text(text.replace(",8,0", ",,0"))
    with pytest.raises(ValueError, match=r"test_pairs\.csv, line 3: malformed row \(a value is"):
        load_pf_pascal(root)
    csv_path.write_text(text.replace(",8,0", ",3,0"))
    with pytest.raises(FileNotFoundError, match=r"line 3: no annotation Annotations/bird/2009_2"):
        load_pf_pascal(root)
    csv_path.write_text("src,trg\na,b\n")
    with pytest.raises(ValueError, match=r"lacks the columns \['source_image'"):
        load_pf_pascal(root)
    (root / "JPEGImages" / "2008_2.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"2008_2\.jpg' is missing"):
        load_pf_pascal(root, split=None)


# ------------------------------------------------------------------------- SPair-71k
def _pair(src, trg, category, ids, src_kps, trg_kps):
    return {"src_imname": src, "trg_imname": trg, "category": category, "kps_ids": ids,
            "src_kps": src_kps, "trg_kps": trg_kps, "src_bndbox": [1, 2, 31, 22],
            "trg_bndbox": [0, 0, 40, 30], "src_imsize": [40, 30, 3], "mirror": 0}  # fmt: skip


def _write_spair(root):
    for category, names in (("bird", ["b1.jpg", "b2.jpg"]), ("cat", ["c1.jpg", "c2.jpg"])):
        for name in names:
            _png(root / "JPEGImages" / category / name)
    pairs = {
        "000001-b1-b2:bird.json": _pair("b1.jpg", "b2.jpg", "bird", ["0", "2"],
                                        [[1, 2], [3, 4]], [[5, 6], [7, 8]]),
        "000002-b2-b1:bird.json": _pair("b2.jpg", "b1.jpg", "bird", ["2", "3"],
                                        [[7, 8], [9, 9]], [[3, 4], [1, 1]]),
        "000003-c1-c2:cat.json": _pair("c1.jpg", "c2.jpg", "cat", ["1"], [[2, 2]], [[4, 4]]),
    }  # fmt: skip
    folder = root / "PairAnnotation" / "test"
    folder.mkdir(parents=True)
    for name, pair in pairs.items():
        (folder / name).write_text(json.dumps(pair))
    (root / "ImageAnnotation" / "bird").mkdir(parents=True)
    return root


def test_spair_layout(tmp_path):
    root = _write_spair(tmp_path / "SPair-71k")
    data = load_spair71k(tmp_path)
    _check_common(data)
    assert data.images == [str(root / "JPEGImages" / c / n) for c, n in
                           (("bird", "b1.jpg"), ("bird", "b2.jpg"), ("cat", "c1.jpg"),
                            ("cat", "c2.jpg"))]  # fmt: skip
    assert data.pairs.tolist() == [[0, 1], [1, 0], [2, 3]]
    assert data.keypoint_names == ["bird/0", "bird/1", "bird/2", "bird/3", "cat/0", "cat/1"]
    nan = np.nan
    np.testing.assert_array_equal(data.keypoints[0], [[1, 2], [nan, nan], [3, 4], [1, 1],
                                                      [nan, nan], [nan, nan]])  # fmt: skip
    np.testing.assert_array_equal(data.keypoints[3, 5], [4, 4])
    np.testing.assert_array_equal(data.boxes[0], [1, 2, 30, 20])  # [x1, y1, x2, y2] -> x, y, w, h
    assert data.class_names == ["bird", "cat"] and data.labels.tolist() == [0, 0, 1, 1]


def test_spair_bad_input(tmp_path):
    root = _write_spair(tmp_path / "SPair-71k")
    with pytest.raises(FileNotFoundError, match=r"PairAnnotation/val' is missing"):
        load_spair71k(root, split="val")
    with pytest.raises(ValueError, match="split must be"):
        load_spair71k(root, split="train")
    bad = root / "PairAnnotation" / "test" / "000002-b2-b1:bird.json"
    pair = json.loads(bad.read_text())
    bad.write_text(json.dumps({**pair, "trg_kps": [[50, 50], [1, 1]]}))  # b1's id 2 was (3, 4)
    with pytest.raises(ValueError, match=r"b1:bird\.json: its keypoints of b1\.jpg differ"):
        load_spair71k(root)
    bad.write_text(json.dumps({**pair, "trg_kps": [[3, 4]]}))
    with pytest.raises(ValueError, match=r"1 trg_kps for 2 kps_ids"):
        load_spair71k(root)
    bad.write_text(json.dumps({k: v for k, v in pair.items() if k != "src_bndbox"}))
    with pytest.raises(ValueError, match=r"keys \['src_bndbox'\] are missing"):
        load_spair71k(root)
    bad.write_text("{")
    with pytest.raises(ValueError, match=r"bird\.json: invalid JSON at line 1"):
        load_spair71k(root)
    bad.write_text(json.dumps(pair))
    (root / "JPEGImages" / "cat" / "c2.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"c2\.jpg' is missing"):
        load_spair71k(root)


# -------------------------------------------------------------------------- fetchers
def test_data_home_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("SKCORR_DATA", str(tmp_path / "env"))
    assert get_data_home(tmp_path / "arg") == tmp_path / "arg"
    assert get_data_home() == tmp_path / "env"
    monkeypatch.delenv("SKCORR_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert get_data_home() == tmp_path / "home" / "skcorr_data"


def _no_network(*args, **kwargs):
    raise ConnectionError("no network here")


def test_fetch_returns_existing_folder_without_network(tmp_path, monkeypatch):
    monkeypatch.setattr(pooch, "retrieve", _no_network)
    root = _write_willow(tmp_path / "PF-WILLOW")
    marker = root / "user_notes.txt"
    marker.write_text("mine")
    assert fetch_pf_willow(tmp_path) == root
    assert marker.read_text() == "mine"
    _write_cub(tmp_path / "CUB_200_2011")
    monkeypatch.setenv("SKCORR_DATA", str(tmp_path))
    assert fetch_cub() == tmp_path / "CUB_200_2011"
    assert len(load_cub(fetch_cub()).images) == 3


def test_fetch_without_network_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(pooch, "retrieve", _no_network)
    with pytest.raises(OSError, match="Could not download PF-WILLOW") as info:
        fetch_pf_willow(tmp_path)
    message = str(info.value)
    assert "https://www.di.ens.fr/willow/research/proposalflow/dataset/PF-dataset.zip" in message
    assert f"unpack it so that {tmp_path / 'PF-WILLOW'} is the folder" in message
    with pytest.raises(OSError, match=r"data\.caltech\.edu.*CUB_200_2011\.tgz") as info:
        fetch_cub(tmp_path)
    assert str(tmp_path / "CUB_200_2011") in str(info.value)
    assert not (tmp_path / "PF-WILLOW").exists() and not (tmp_path / "CUB_200_2011").exists()


def test_fetch_unpacks_a_download_into_place(tmp_path, monkeypatch):
    """The download itself is faked: a zip laid out like PF-dataset.zip."""
    source = _write_willow(tmp_path / "source" / "PF-dataset", n_images=2)
    calls = []

    def fake_retrieve(url, known_hash, fname, path, processor, **kwargs):
        calls.append((url, known_hash))
        archive = Path(path) / fname
        with zipfile.ZipFile(archive, "w") as handle:
            for file in source.rglob("*"):
                handle.write(file, file.relative_to(source.parent))
        return processor(str(archive), "download", None)

    monkeypatch.setattr(pooch, "retrieve", fake_retrieve)
    home = tmp_path / "home"
    folder = fetch_pf_willow(home)
    assert folder == home / "PF-WILLOW" and calls[0][0].endswith("PF-dataset.zip")
    assert len(load_pf_willow(folder).images) == 4
    assert sorted(p.name for p in home.iterdir()) == ["PF-WILLOW"]  # staging removed
    assert fetch_pf_willow(home) == folder and len(calls) == 1  # no second download


@pytest.mark.realdata
def test_fetch_finds_real_data(data_root, monkeypatch):
    monkeypatch.setattr(pooch, "retrieve", _no_network)
    monkeypatch.setenv("SKCORR_DATA", str(data_root))
    assert fetch_pf_willow() == data_root / "PF-WILLOW"
    assert fetch_cub() == data_root / "CUB_200_2011"


# ----------------------------------------------------------------------------- crops
def _gradient(height, width):
    """An image whose red and green channels are the column and row indices."""
    rows, cols = np.mgrid[0:height, 0:width]
    return np.dstack([cols, rows, np.zeros_like(rows)]).astype(np.uint8)


def test_crop_without_resizing_is_exact():
    image = _gradient(80, 120)
    points = np.array([[[30.0, 20.0], [89.0, 59.0], [np.nan, np.nan]]])
    crops, inside, transforms = crop_to_boxes([image], points, [[30, 20, 60, 40]])
    assert crops[0].shape == (40, 60, 3)
    np.testing.assert_array_equal(transforms, [[30, 20, 1, 1]])
    np.testing.assert_array_equal(inside[0, :2], [[0, 0], [59, 39]])
    for (x, y), (cx, cy) in zip(points[0, :2].astype(int), inside[0, :2].astype(int), strict=True):
        np.testing.assert_array_equal(crops[0][cy, cx], image[y, x])
    assert np.isnan(inside[0, 2]).all()


def test_crop_with_resizing_keeps_pixel_centres():
    image = _gradient(200, 240)
    points = np.array([[[100.0, 60.0], [130.2, 90.7], [139.5, 99.5]]])  # the last: an edge
    crops, inside, transforms = crop_to_boxes([image], points, [[60, 40, 80, 60]], size=240)
    assert crops[0].shape == (240, 240, 3)
    np.testing.assert_allclose(transforms, [[60, 40, 3.0, 4.0]])
    # x_new = (x - x0 + 0.5) * s - 0.5
    np.testing.assert_allclose(inside[0, 0], [(40.5) * 3 - 0.5, (20.5) * 4 - 0.5])
    np.testing.assert_allclose(inside[0, 2], [239.5, 239.5])  # pixel edges map to edges
    # bilinear upsampling of a linear ramp: the crop's pixel values give back image coords
    for cx, cy in np.round(inside[0, :2]).astype(int):
        back = uncrop_keypoints([[[cx, cy]]], transforms)[0, 0]
        np.testing.assert_allclose(crops[0][cy, cx, :2], back, atol=0.51)
    np.testing.assert_allclose(uncrop_keypoints(inside, transforms), points, atol=1e-12)


def test_crop_padding_is_clipped_to_the_image():
    image = _gradient(50, 50)
    crops, _, transforms = crop_to_boxes([image], np.zeros((1, 1, 2)), [[5, 10, 20, 20]],
                                         padding=0.5)  # fmt: skip
    np.testing.assert_array_equal(transforms, [[0, 0, 1, 1]])
    assert crops[0].shape == (40, 35, 3)  # rows 0..40 (10 + 20 + 10), cols 0..35


def test_crop_then_uncrop_is_identity(rng):
    images = [np.zeros((int(h), int(w), 3), np.uint8) for h, w in rng.integers(20, 90, (5, 2))]
    boxes = np.array([[rng.uniform(0, 10), rng.uniform(0, 10), rng.uniform(5, 10),
                       rng.uniform(5, 10)] for _ in images])  # fmt: skip
    points = rng.uniform(-5, 60, size=(5, 4, 2))
    points[1, 2] = np.nan
    for size in (None, 7, 64):
        _, inside, transforms = crop_to_boxes(images, points, boxes, size=size, padding=0.2)
        np.testing.assert_allclose(uncrop_keypoints(inside, transforms), points, atol=1e-10)


def test_crop_bad_input():
    image = np.zeros((20, 30, 3), np.uint8)
    points = np.zeros((1, 2, 2))
    with pytest.raises(ValueError, match="keypoints has 2 rows but there are 1 images"):
        crop_to_boxes([image], np.zeros((2, 2, 2)), [[0, 0, 5, 5]])
    with pytest.raises(ValueError, match="boxes has 2 rows but there are 1 images"):
        crop_to_boxes([image], points, [[0, 0, 5, 5]] * 2)
    with pytest.raises(ValueError, match="zero or negative size"):
        crop_to_boxes([image], points, [[0, 0, 0, 5]])
    with pytest.raises(ValueError, match="NaN or infinite"):
        crop_to_boxes([image], points, [[np.nan, 0, 5, 5]])
    with pytest.raises(ValueError, match=r"lies outside its 30x20 image"):
        crop_to_boxes([image], points, [[40, 0, 5, 5]])
    with pytest.raises(ValueError, match="size must be None or a positive integer"):
        crop_to_boxes([image], points, [[0, 0, 5, 5]], size=0)
    with pytest.raises(ValueError, match="padding must be a finite number"):
        crop_to_boxes([image], points, [[0, 0, 5, 5]], padding=-1)
    with pytest.raises(ValueError, match=r"transforms has shape \(1, 3\)"):
        uncrop_keypoints(points, [[0, 0, 1]])
    with pytest.raises(ValueError, match="keypoints has 1 rows but there are 2 images"):
        uncrop_keypoints(points, [[0, 0, 1, 1]] * 2)


def test_keypoint_boxes_match_willow_boxes():
    points = np.array([[[1.0, 5.0], [4.0, 2.0], [np.nan, np.nan]]])
    np.testing.assert_array_equal(keypoint_boxes(points), [[1.0, 2.0, 3.0, 3.0]])


# -- your own annotations: read_annotations, write_keypoints_csv ---------------------------
@pytest.fixture
def annotated(tmp_path):
    """Three tiny images (40 wide, 30 high) in a sub-folder, and the folder."""
    (tmp_path / "img").mkdir()
    for name in ("b.png", "a.png", "c.png"):
        Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / "img" / name)
    return tmp_path


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_read_annotations_csv_orders_images_and_names_by_first_appearance(annotated):
    path = _write(annotated / "points.csv",
                  "image,keypoint,x,y\n"
                  "img/b.png,tail,1,2\n"
                  "img/a.png,beak,3.5,4\n"
                  "img/b.png,beak,5,6\n"
                  "\n"
                  "img/c.png,eye,39.5,29.5\n")
    data = read_annotations(path)
    assert data.images == [str(annotated / "img" / n) for n in ("b.png", "a.png", "c.png")]
    assert data.keypoint_names == ["tail", "beak", "eye"]
    expected = np.full((3, 3, 2), np.nan)
    expected[0, 0], expected[1, 1], expected[0, 1], expected[2, 2] = (1, 2), (3.5, 4), (5, 6), (
        39.5, 29.5)
    np.testing.assert_array_equal(data.keypoints, expected)


def test_read_annotations_json_reads_the_same_as_csv(annotated):
    csv_path = _write(annotated / "points.csv",
                      "x,y,keypoint,image,note\n3,4,beak,img/a.png,ok\n7,8,tail,img/a.png,\n"
                      "1,2,beak,img/c.png,\n")
    json_path = _write(annotated / "points.json", json.dumps(
        {"images": {"img/a.png": {"beak": [3, 4], "tail": [7, 8]},
                    "img/c.png": {"beak": [1, 2]}}}))
    from_csv, from_json = read_annotations(csv_path), read_annotations(json_path)
    assert from_csv.images == from_json.images
    assert from_csv.keypoint_names == from_json.keypoint_names == ["beak", "tail"]
    np.testing.assert_array_equal(from_csv.keypoints, from_json.keypoints)
    assert np.isnan(from_json.keypoints[1, 1]).all()


def test_read_annotations_json_records_read_the_same_as_csv(annotated):
    csv_path = _write(annotated / "points.csv",
                      "image,keypoint,x,y\nimg/b.png,tail,1,2\nimg/a.png,beak,3.5,4\n"
                      "img/b.png,beak,5,6\n")
    json_path = _write(annotated / "points.json", json.dumps([
        {"image": "img/b.png", "keypoint": "tail", "x": 1, "y": 2},
        {"y": 4, "x": 3.5, "keypoint": "beak", "image": "img/a.png", "note": "ignored"},
        {"image": "img/b.png", "keypoint": "beak", "x": 5, "y": "6"}]))
    from_csv, from_json = read_annotations(csv_path), read_annotations(json_path)
    assert from_json.images == from_csv.images == [str(annotated / "img" / n)
                                                   for n in ("b.png", "a.png")]
    assert from_json.keypoint_names == from_csv.keypoint_names == ["tail", "beak"]
    np.testing.assert_array_equal(from_json.keypoints, from_csv.keypoints)
    assert np.isnan(from_json.keypoints[1, 0]).all()


def test_write_keypoints_csv_round_trips_and_refuses_to_overwrite(annotated):
    images = [str(annotated / "img" / "a.png"), str(annotated / "img" / "c.png")]
    points = np.array([[[1.25, 2.0], [np.nan, np.nan]], [[0.0, 29.0], [39.123, 0.5]]])
    out = annotated / "keypoints.csv"
    write_keypoints_csv(out, images, ["beak", "tail"], points)
    assert out.read_text().splitlines() == [
        "image,keypoint,x,y", "img/a.png,beak,1.25,2", "img/c.png,beak,0,29",
        "img/c.png,tail,39.123,0.5"]
    back = read_annotations(out)
    assert back.images == images and back.keypoint_names == ["beak", "tail"]
    np.testing.assert_array_equal(back.keypoints, points)
    with pytest.raises(ValueError, match="already exists; pass overwrite=True"):
        write_keypoints_csv(out, images, ["beak", "tail"], points * 0)
    np.testing.assert_array_equal(read_annotations(out).keypoints, points)  # untouched
    write_keypoints_csv(out, images, ["beak", "tail"], np.zeros((2, 2, 2)), overwrite=True)
    assert read_annotations(out).keypoints.sum() == 0
    assert sorted(p.name for p in annotated.iterdir()) == ["img", "keypoints.csv"]


def test_write_keypoints_csv_names_images_outside_its_folder_absolutely(annotated):
    (annotated / "out").mkdir()
    image = str(annotated / "img" / "a.png")
    write_keypoints_csv(annotated / "out" / "k.csv", [image], ["beak"], [[[1.0, 2.0]]])
    assert read_annotations(annotated / "out" / "k.csv").images == [image]
    assert f"{image},beak,1,2" in (annotated / "out" / "k.csv").read_text()


@pytest.mark.parametrize("kwargs, message", [
    (dict(keypoint_names=["beak", "beak"]), "must be distinct"),
    (dict(keypoint_names=["beak"]), "2 keypoint types but keypoint_names has 1"),
    (dict(keypoints=np.zeros((1, 2, 2))), "1 rows but there are 2 images"),
    (dict(images="a.png"), "images must be a list"),
])
def test_write_keypoints_csv_bad_input(annotated, kwargs, message):
    args = dict(images=["a.png", "c.png"], keypoint_names=["beak", "tail"],
                keypoints=np.zeros((2, 2, 2)), **{})
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=message):
        write_keypoints_csv(annotated / "k.csv", **args)
    assert not (annotated / "k.csv").exists()


@pytest.mark.parametrize("text, message", [
    ("image,name,x,y\nimg/a.png,beak,1,2\n", r"lacks the column\(s\) \['keypoint'\]"),
    ("image,keypoint,x,y\nimg/zz.png,beak,1,2\n", "line 2: image file .*zz.png.* does not exist"),
    ("image,keypoint,x,y\nimg/a.png,beak,1,2\nimg/b.png,beak,1,2\nimg/a.png,beak,3,4\n",
     "line 4: keypoint 'beak' of image 'img/a.png' is given again \\(first at line 2\\)"),
    ("image,keypoint,x,y\nimg/a.png,beak,1,2\n./img/a.png,beak,3,4\n", "given again"),
    ("image,keypoint,x,y\nimg/a.png,beak,one,2\n", "line 2: x = 'one' is not a finite number"),
    ("image,keypoint,x,y\nimg/a.png,beak,1,nan\n", "line 2: y = 'nan' is not a finite number"),
    ("image,keypoint,x,y\nimg/a.png,beak,1,\n", "y = '' is not a finite number"),
    ("image,keypoint,x,y\nimg/a.png,beak,40,2\n",
     r"\(40, 2\) lies outside image 'img/a.png' of size 40x30"),
    ("image,keypoint,x,y\nimg/a.png,beak,3,-0.6\n", "lies outside"),
    ("image,keypoint,x,y\nimg/a.png,,3,4\n", "keypoint name is empty"),
    ("image,keypoint,x,y\n", "annotates no image"),
    ("", "is empty"),
])
def test_read_annotations_csv_errors(annotated, text, message):
    with pytest.raises(ValueError, match=message):
        read_annotations(_write(annotated / "points.csv", text))


@pytest.mark.parametrize("document, message", [
    ({"a": 1}, 'must hold an object with the key "images"'),
    ({"images": {"img/zz.png": {"beak": [1, 2]}}}, "does not exist"),
    ({"images": {"img/a.png": {"beak": [1]}}}, r"expected \[x, y\]"),
    ({"images": {"img/a.png": {"beak": [None, 2]}}}, "x = None is not a finite number"),
    ({"images": {"img/a.png": {"beak": [1, 50]}}}, "lies outside"),
    ({"images": {"img/a.png": [1, 2]}}, "must map keypoint names"),
    ("a", r'must hold an object .* or a list of records \[\{"image": "a.jpg"'),
    ([], "annotates no image"),
    ([{"image": "img/a.png", "keypoint": "beak", "x": 1, "y": 2}, ["img/a.png", "tail", 1, 2]],
     r"points.json', record 1: expected an object with the fields image, keypoint, x, y"),
    ([{"image": "img/a.png", "keypoint": "beak", "y": 2}],
     r"record 0: lacks the field\(s\) \['x'\]; every record names image, keypoint, x, y"),
    ([{"image": "img/zz.png", "keypoint": "beak", "x": 1, "y": 2}],
     "record 0: image file .*zz.png.* does not exist"),
    ([{"image": "", "keypoint": "beak", "x": 1, "y": 2}], "record 0: the image is empty"),
    ([{"image": "img/a.png", "keypoint": None, "x": 1, "y": 2}],
     "record 0: the keypoint name is empty"),
    ([{"image": "img/a.png", "keypoint": " ", "x": 1, "y": 2}],
     "record 0: the keypoint name is empty"),
    ([{"image": "img/a.png", "keypoint": "beak", "x": 1, "y": 2},
      {"image": "img/c.png", "keypoint": "beak", "x": 1, "y": 2},
      {"image": "img/a.png", "keypoint": "beak", "x": 3, "y": 4}],
     r"record 2: keypoint 'beak' of image 'img/a.png' is given again \(first at record 0\)"),
    ([{"image": "img/a.png", "keypoint": "beak", "x": None, "y": 2}],
     "record 0: x = None is not a finite number"),
    ([{"image": "img/a.png", "keypoint": "beak", "x": 1, "y": True}],
     "record 0: y = True is not a finite number"),
    ([{"image": "img/a.png", "keypoint": "beak", "x": 1, "y": 30}],
     r"record 0: keypoint 'beak' at \(1, 30\) lies outside image 'img/a.png' of size 40x30"),
])
def test_read_annotations_json_errors(annotated, document, message):
    with pytest.raises(ValueError, match=message):
        read_annotations(_write(annotated / "points.json", json.dumps(document)))


def test_read_annotations_json_refuses_repeated_keys_and_bad_json(annotated):
    text = '{"images": {"img/a.png": {"beak": [1, 2], "beak": [3, 4]}}}'
    with pytest.raises(ValueError, match=r"names \['beak'\] twice"):
        read_annotations(_write(annotated / "points.json", text))
    with pytest.raises(ValueError, match="not valid JSON"):
        read_annotations(_write(annotated / "points.json", "{images"))
    text = '[{"image": "img/a.png", "keypoint": "beak", "x": 1, "x": 2, "y": 3}]'
    with pytest.raises(ValueError, match=r"names \['x'\] twice"):
        read_annotations(_write(annotated / "points.json", text))


def test_read_annotations_bad_paths(annotated):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_annotations(annotated / "nothing.csv")
    with pytest.raises(ValueError, match="must end in .csv or .json"):
        read_annotations(_write(annotated / "points.txt", "image,keypoint,x,y\n"))
    with pytest.raises(ValueError, match="is a folder"):
        read_annotations(annotated / "img")
    _write(annotated / "img" / "text.png", "not an image")
    with pytest.raises(ValueError, match="line 2: Cannot read image file"):
        read_annotations(_write(annotated / "p.csv", "image,keypoint,x,y\nimg/text.png,b,1,2\n"))


def test_read_annotations_checks_points_in_the_displayed_frame(annotated):
    # Stored 40 wide, 30 high; EXIF orientation 6 shows it turned a quarter: 30 x 40.
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (40, 30)).save(annotated / "img" / "turned.jpg", exif=exif)
    ok = read_annotations(_write(annotated / "p.csv", "image,keypoint,x,y\n"
                                 "img/turned.jpg,beak,5,35\n"))
    np.testing.assert_array_equal(ok.keypoints, [[[5.0, 35.0]]])
    with pytest.raises(ValueError, match="of size 30x40"):
        read_annotations(_write(annotated / "p.csv", "image,keypoint,x,y\n"
                                "img/turned.jpg,beak,35,5\n"))
