"""Property tests: every loader, given a damaged annotation file, loads or says which file.

Each example copies a small valid data set (written by the helpers of test_datasets),
damages one of its annotation files (truncated, a field replaced by a non-number or an
extra column, bytes inserted; MATLAB variables of the wrong shape or type) and loads
it. The loader must either succeed or raise a ValueError that names the damaged file
(or a FileNotFoundError for a file the damage made it look for); never an IndexError,
KeyError, TypeError or a bare numpy or decoder message.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_datasets import _write_cub, _write_pascal, _write_pf_pascal, _write_spair, _write_willow

from skcorr.datasets import (
    load_cub,
    load_pascal_keypoints,
    load_pf_pascal,
    load_pf_willow,
    load_spair71k,
)

PROPERTY = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

# loader name -> (writer of a valid data set into a folder, loader of that folder,
#                 annotation files relative to the folder)
LOADERS = {
    "cub": (lambda root: _write_cub(root), load_cub,
            ["images.txt", "image_class_labels.txt", "classes.txt", "bounding_boxes.txt",
             "train_test_split.txt", "parts/parts.txt", "parts/part_locs.txt"]),
    "pf-willow": (lambda root: _write_willow(root), load_pf_willow,
                  ["car(G)/img0.mat", "duck(S)/img2.mat"]),
    "pf-pascal": (lambda root: _write_pf_pascal(root), lambda root: load_pf_pascal(root),
                  ["PF-dataset-PASCAL/Annotations/aeroplane/2008_1.mat",
                   "PF-dataset-PASCAL/Annotations/cat/2009_2.mat",
                   "PF-dataset-PASCAL/test_pairs.csv"]),
    "pascal-keypoints": (lambda root: _write_pascal(root), load_pascal_keypoints,
                         ["cat/2008_000001_1.xml", "aeroplane/2007_000002_1.xml"]),
    "spair": (lambda root: _write_spair(root), load_spair71k,
              ["PairAnnotation/test/000001-b1-b2:bird.json",
               "PairAnnotation/test/000003-c1-c2:cat.json"]),
}

_VALUES = st.sampled_from(["", "x", "nan", "inf", "-inf", "-1", "0", "1e999", "0x10", "1,5",
                           "\u0661", "9" * 30, "1 2", "[]", "{}", "null", "true", '"a"',
                           "<a/>", "\x00", "é"])


@pytest.fixture(scope="module")
def templates(tmp_path_factory):
    folders = {}
    for name, (write, load, _) in LOADERS.items():
        folder = tmp_path_factory.mktemp(name)
        write(folder)
        load(folder)  # the template itself is valid
        folders[name] = folder
    return folders


def _damage_text(data: bytes, draw) -> bytes:
    how = draw(st.sampled_from(["truncate", "replace-token", "insert-bytes", "drop-line"]))
    if how == "truncate":
        return data[:draw(st.integers(0, max(len(data) - 1, 0)))]
    if how == "insert-bytes":
        at = draw(st.integers(0, len(data)))
        return data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
    text = data.decode("utf-8")
    if how == "drop-line":
        lines = text.splitlines(keepends=True)
        del lines[draw(st.integers(0, len(lines) - 1))]
        return "".join(lines).encode("utf-8")
    # replace one token (split on whitespace and on JSON/XML/CSV punctuation)
    import re

    tokens = [m.span() for m in re.finditer(r'[^\s,:"<>=/\[\]{}]+', text)]
    start, end = tokens[draw(st.integers(0, len(tokens) - 1))]
    return (text[:start] + draw(_VALUES | st.text(max_size=6)) + text[end:]).encode("utf-8")


_MAT_VALUES = st.sampled_from([
    np.zeros((0, 0)), np.zeros((3, 10)), np.zeros((2, 3, 2)), np.full((2, 10), np.inf),
    np.array(["text"]), np.array([[1 + 2j, 3j]]), np.zeros((10, 2), np.int8),
    np.array([[np.nan, np.nan]]), np.ones((1, 4)), np.zeros((4, 1)),
    np.array([np.zeros(2), "a"], dtype=object),  # a cell array
    {"field": np.ones(2)},  # a struct
])


def _damage_mat(path: Path, draw) -> None:
    how = draw(st.sampled_from(["truncate", "insert-bytes", "variable", "drop-variable"]))
    data = path.read_bytes()
    if how == "truncate":
        path.write_bytes(data[:draw(st.integers(0, len(data) - 1))])
    elif how == "insert-bytes":
        at = draw(st.integers(0, len(data)))
        path.write_bytes(data[:at] + draw(st.binary(min_size=1, max_size=16)) + data[at:])
    else:
        contents = {k: v for k, v in scipy.io.loadmat(path).items() if not k.startswith("__")}
        key = draw(st.sampled_from(sorted(contents)))
        if how == "drop-variable":
            del contents[key]
        else:
            contents[key] = draw(_MAT_VALUES)
        scipy.io.savemat(path, contents)


@pytest.mark.parametrize("loader", LOADERS)
@PROPERTY
@given(data=st.data())
def test_a_damaged_annotation_file_is_named_or_harmless(loader, data, templates,
                                                        tmp_path_factory):
    _, load, files = LOADERS[loader]
    root = tmp_path_factory.mktemp("damaged") / "data"
    shutil.copytree(templates[loader], root)
    relative = data.draw(st.sampled_from(files), label="file")
    path = root / relative
    if path.suffix == ".mat":
        _damage_mat(path, data.draw)
    else:
        path.write_bytes(_damage_text(path.read_bytes(), data.draw))
    try:
        bunch = load(root)
    except FileNotFoundError:
        return  # the damage named a file that is not there; the message names it
    except ValueError as exc:
        assert path.name in str(exc) or path.stem in str(exc), (
            f"{type(exc).__name__} does not name {relative}: {exc}")
        return
    assert np.isinf(bunch.keypoints).sum() == 0
    assert np.isfinite(bunch.boxes).all() and (bunch.boxes[:, 2:] > 0).all()


def test_json_damage_of_types_is_named(tmp_path):
    """SPair values of the wrong JSON type (lists for names, huge ids) name the file."""
    root = tmp_path / "spair"
    _write_spair(root)
    path = root / "PairAnnotation/test/000003-c1-c2:cat.json"
    original = json.loads(path.read_text())
    for key, value in [("category", ["cat"]), ("src_imname", 7), ("kps_ids", [10**9]),
                       ("src_kps", "x"), ("src_bndbox", [1, 2]), ("kps_ids", None)]:
        path.write_text(json.dumps({**original, key: value}))
        with pytest.raises(ValueError, match=r"000003-c1-c2:cat\.json"):
            load_spair71k(root)


def test_a_mat_file_that_crashed_scipy_is_a_named_error(tmp_path):
    """A wrong length in a variable-name tag made scipy.io.loadmat segfault (found here)."""
    root = _write_willow(tmp_path / "willow")
    path = root / "car(G)" / "img1.mat"
    data = bytearray(path.read_bytes())
    name_tag = data.index(b"pts_coord") - 4  # the byte count of the name element
    data[name_tag] = 1
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"img1\.mat.*cannot be read as a MATLAB file"):
        load_pf_willow(root)
