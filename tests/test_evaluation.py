"""Evaluation protocols on the real data: flow transfer on PF-WILLOW, transfer on CUB."""

import numpy as np
import pytest

from skcorr import ConvColumnExtractor, DenseSIFT
from skcorr.datasets import load_pf_willow
from skcorr.evaluation import (
    evaluate_cub_transfer,
    identity_transfer,
    pair_samples,
    transfer_pck_table,
)
from skcorr.flow import PairTransfer


@pytest.fixture(scope="module")
def two_subclasses(pf_willow_dir):
    """PF-WILLOW restricted to the pairs of two sub-classes (180 pairs)."""
    data = load_pf_willow(pf_willow_dir)
    keep = np.isin(data.labels[data.pairs[:, 1]], [2, 3])  # car(S), duck(S)
    data.pairs = data.pairs[keep]
    return data


def _pck(data, predict):
    return transfer_pck_table(data, predict, alphas=[0.1])[-1]["PCK@0.1"]


def test_convnet_flow_beats_matching_sift_and_identity(two_subclasses, tmp_path):
    X = pair_samples(two_subclasses)[0]
    conv = ConvColumnExtractor(layer="conv5", image_size=320)
    flow = PairTransfer(conv, lam=0.1, memory=tmp_path).fit(X)
    sift = PairTransfer(DenseSIFT(mode="dense", step=16, bin_size=10, image_size=320),
                        lam=0.2).fit(X)
    scores = {name: _pck(two_subclasses, predict) for name, predict in
              [("flow", flow), ("sift", sift), ("identity", identity_transfer)]}
    # The same feature maps (from the cache), without the MRF.
    scores["matching"] = _pck(two_subclasses, flow.set_params(lam=0.0))
    assert scores["flow"] > scores["matching"] + 0.05
    assert scores["flow"] > scores["sift"] + 0.1
    assert scores["flow"] > scores["identity"] + 0.2
    assert scores["flow"] >= 0.7  # 81.5 when measured (car(S) 83.0, duck(S) 80.0)


def test_feature_maps_are_computed_once_per_image(two_subclasses, monkeypatch):
    transfer = PairTransfer(DenseSIFT(mode="dense", step=16, bin_size=10, image_size=160))
    calls = []
    original = transfer.fit(pair_samples(two_subclasses)[0]).features_.extract_dense
    monkeypatch.setattr(transfer.features_, "extract_dense",
                        lambda images: calls.append(len(images)) or original(images))
    transfer_pck_table(two_subclasses, transfer, alphas=[0.1])
    assert sum(calls) == 20  # the 20 images of the two sub-classes, each once


def test_cub_transfer_beats_the_mean_position(cub_dir):
    table = evaluate_cub_transfer(cub_dir, ConvColumnExtractor(layer="conv5"), n_neighbors=5,
                                  n_top=3, crop_size=112)
    assert [row["part"] for row in table][-1] == "mean" and len(table) == 16
    assert table[-1]["n"] == 1618  # visible parts of the 143 test images
    # The same crops with every part at its mean training position in the crop.
    from skcorr.datasets import crop_to_boxes, load_cub, uncrop_keypoints
    from skcorr.metrics import pck_score

    cub = load_cub(cub_dir)
    _, crop_keypoints, transforms = crop_to_boxes(cub.images, cub.keypoints, cub.boxes,
                                                  size=112, padding=0.1)
    train, test = cub.split == "train", cub.split == "test"
    mean = np.nanmean(crop_keypoints[train], axis=0)
    baseline = pck_score(cub.keypoints[test],
                         uncrop_keypoints(np.broadcast_to(mean, crop_keypoints[test].shape),
                                          transforms[test]),
                         alpha=0.1, bbox=cub.boxes[test])
    assert table[-1]["PCK@0.1"] > baseline + 0.1


# --- without data: the transfer's estimator hygiene and the one result table ------------

def test_pair_transfer_fits_a_clone_and_evaluation_uses_its_public_predict():
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    from skcorr.datasets import load_sample_pairs

    pairs = load_sample_pairs()
    sift = DenseSIFT(mode="dense", radius=8, step=8, bin_size=4)
    transfer = PairTransfer(sift, lam=0.1)
    with pytest.raises(NotFittedError):
        transfer_pck_table(pairs, transfer)  # evaluation takes a fitted estimator
    X, y = pair_samples(pairs)
    predicted = transfer.fit(X).predict(X)
    with pytest.raises(NotFittedError):
        check_is_fitted(sift)  # what the user handed over is left as it was
    assert transfer.features is sift and transfer.features_ is not sift
    table = transfer_pck_table(pairs, transfer, alphas=[0.1])
    expected = transfer_pck_table(pairs, lambda s, t, k: predicted[
        next(i for i, row in enumerate(X) if row[0] is s and row[1] is t)], alphas=[0.1])
    assert table == expected
    with pytest.raises(TypeError, match="fitted pair estimator or a function"):
        transfer_pck_table(pairs, "flow")


def test_result_table_prints_and_writes_one_style(tmp_path):
    from skcorr.evaluation import ResultTable

    table = ResultTable([{"features": "sift", "layer": None, "C": 0.1, "test accuracy": 0.3712,
                          "cv PCK@0.1": 0.5},
                         {"features": "conv", "layer": "stage5", "C": 10.0,
                          "test accuracy": 0.469, "cv PCK@0.1": None}],
                        title="Two rows", notes=["1.5 s"], name="demo-table")
    lines = str(table).splitlines()
    assert lines[0] == "Two rows" and lines[-1] == "1.5 s"
    assert lines[2] == "| features | layer | C | test accuracy (%) | cv PCK@0.1 (%) |"
    assert lines[3] == "|---|---|---|---:|---:|"
    assert lines[4] == "| sift | - | 0.1 | 37.1 | 50.0 |"
    assert lines[5] == "| conv | stage5 | 10 | 46.9 | - |"
    assert table.write(tmp_path / "t.csv").read_text().splitlines() == [
        "features,layer,C,test accuracy,cv PCK@0.1", "sift,,0.1,0.3712,0.5",
        "conv,stage5,10.0,0.469,"]
    assert (tmp_path / "t.md").exists() is False
    assert table.write(tmp_path / "t.md").read_text() == str(table) + "\n"
    (tmp_path / "t.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"name it \.csv or \.md"):
        table.write(tmp_path / "t.txt")
    assert (tmp_path / "t.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv", "t.md", "t.txt"]
    assert ResultTable().to_markdown() == "(empty)"


def test_names_that_left_keypoints_say_where_they_went():
    import skcorr.keypoints

    for name, home in [("evaluate_cub_classification", "skcorr.evaluation"),
                       ("evaluate_cub_detection", "skcorr.evaluation"),
                       ("plot_localization_histogram", "skcorr.visualize")]:
        with pytest.raises(AttributeError, match=f"import it from {home}"):
            getattr(skcorr.keypoints, name)
        assert callable(getattr(__import__(home, fromlist=[name]), name))


def test_rows_reach_the_output_as_they_finish_and_survive_a_kill(tmp_path):
    """Under ResultTable.rows_to (skcorr evaluate --output), a protocol's table is written
    whole after every finished row: a run killed with no chance to clean up keeps them."""
    import signal
    import subprocess
    import sys

    code = f"""
import os, signal
from skcorr.evaluation import ResultTable
with ResultTable.rows_to({str(tmp_path)!r}):
    table = ResultTable(name="study")
    with table.keep_on_interrupt():
        table.append({{"setting": "a", "PCK@0.1": 0.5}})
        table.append({{"setting": "b", "PCK@0.1": 0.25}})
        os.kill(os.getpid(), signal.SIGKILL)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == -signal.SIGKILL
    assert (tmp_path / "study.csv").read_text().splitlines() == [
        "setting,PCK@0.1", "a,0.5", "b,0.25"]
    assert "| b |" in (tmp_path / "study.md").read_text()
    # Outside rows_to, or outside keep_on_interrupt, nothing is written.
    from skcorr.evaluation import ResultTable

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    table = ResultTable(name="quiet")
    with table.keep_on_interrupt():
        table.append({"setting": "a"})
    with ResultTable.rows_to(elsewhere):
        ResultTable([{"setting": "a"}], name="built").append({"setting": "b"})
    assert list(elsewhere.iterdir()) == []
