"""Scale-out: the feature cache, joblib parallelism (local and dask), the CLI options."""

import socket

import joblib
import numpy as np
import pytest
import torch
from PIL import Image
from search_helpers import ForwardCounter, lam_search
from sklearn.utils import Bunch

from skcorr import ConvColumnExtractor, FlowAligner, KeypointClassifier, SlidingKeypointDetector
from skcorr.cli import main
from skcorr.datasets import crop_to_boxes
from skcorr.evaluation import pair_samples, transfer_pck_table
from skcorr.features import keypoint_samples
from skcorr.flow import PairTransfer


def test_grid_search_extracts_each_image_once_per_feature_kind(tmp_path, weights_file,
                                                               category):
    images, keypoints = category.images, category.keypoints
    with ForwardCounter() as cached:
        search = lam_search(weights_file, tmp_path / "cache").fit(images, keypoints)
    # Two feature kinds (dense stage3 for the flow, global stage2 for retrieval).
    assert cached.images == 2 * len(images)
    assert cached.probes <= 2 * (3 * 3 + 1)  # one per fit of each extractor
    with ForwardCounter() as uncached:
        plain = lam_search(weights_file, None).fit(images, keypoints)
    assert uncached.images > 3 * cached.images  # every candidate and fold recomputes
    np.testing.assert_allclose(search.cv_results_["mean_test_score"],
                               plain.cv_results_["mean_test_score"])


def test_cache_keys_are_image_content_and_weights(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "image.png"
    first, second = (rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(2))
    torch.manual_seed(0)
    cached = ConvColumnExtractor(layer="stage2", weights=None, mode="global",
                                 memory=str(tmp_path / "cache")).fit()
    plain = ConvColumnExtractor(layer="stage2", weights=None, mode="global")
    plain.fit().network_.load_state_dict(cached.network_.state_dict())
    Image.fromarray(first).save(path)
    a = cached.transform([str(path)])
    Image.fromarray(second).save(path)  # same path, new content: new features
    b = cached.transform([str(path)])
    np.testing.assert_array_equal(a, plain.transform([first]))
    np.testing.assert_array_equal(b, plain.transform([second]))
    # Another random initialisation shares nothing with the first.
    other = ConvColumnExtractor(layer="stage2", weights=None, mode="global",
                                memory=str(tmp_path / "cache")).fit()
    uncached = other.set_params(memory=None).transform([second])
    np.testing.assert_array_equal(other.set_params(memory=str(tmp_path / "cache"))
                                  .transform([second]), uncached)
    assert not np.allclose(uncached, b)


def test_features_of_another_kind_of_device_are_not_served(tmp_path, monkeypatch):
    """GPU kernels round differently: entries computed on one are kept apart."""
    from skcorr.features import _conv

    image = np.random.default_rng(1).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    torch.manual_seed(0)
    ext = ConvColumnExtractor(layer="stage2", weights=None, mode="global",
                              memory=str(tmp_path / "cache")).fit()
    on_cpu = ext.transform([image])
    monkeypatch.setattr(_conv, "_device_kind", lambda device: "cuda:Some GPU")
    with ForwardCounter() as counter:
        again = ext.transform([image])
    assert counter.images == 1  # computed, not read from the CPU's entry
    np.testing.assert_array_equal(again, on_cpu)
    monkeypatch.undo()
    with ForwardCounter() as counter:
        ext.transform([image])
    assert counter.images == 0


def test_unwritable_cache_folder_is_one_clear_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    ext = ConvColumnExtractor(layer="stage2", weights=None, memory=str(blocker / "cache"))
    image = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match="cache folder .* is not writable"):
        ext.fit().extract_global([image])
    assert blocker.read_text() == "not a folder"


def _transfer(ext, dataset, n_jobs=None):
    return PairTransfer(ext, lam=0.1, levels=0, n_jobs=n_jobs).fit(pair_samples(dataset)[0])


@pytest.fixture(scope="module")
def pairs_setup(weights_file, category):
    ext = ConvColumnExtractor(layer="stage3", weights=weights_file, mode="dense")
    dataset = Bunch(images=category.images, keypoints=category.keypoints,
                    boxes=category.boxes, pairs=np.array([(i, (i + 1) % 9) for i in range(9)]))
    reference = transfer_pck_table(dataset, _transfer(ext, dataset, n_jobs=1),
                                   alphas=[0.05, 0.1])
    return ext, dataset, reference


@pytest.mark.parametrize("backend", ["threading", "loky"])
def test_pair_evaluation_is_identical_in_parallel(pairs_setup, backend):
    ext, dataset, reference = pairs_setup
    with joblib.parallel_config(backend=backend):
        table = transfer_pck_table(dataset, _transfer(ext, dataset, n_jobs=2),
                                   alphas=[0.05, 0.1])
    assert table == reference


def test_aligner_detector_and_classifier_are_identical_in_parallel(weights_file, category):
    images, keypoints = category.images, category.keypoints
    aligner = FlowAligner(features=ConvColumnExtractor(layer="stage3", weights=weights_file),
                          retrieval=ConvColumnExtractor(layer="stage2", mode="global",
                                                        weights=weights_file),
                          n_neighbors=3, n_top=2, levels=0).fit(images[:6], keypoints[:6])
    serial = aligner.predict(images[6:])
    np.testing.assert_array_equal(aligner.set_params(n_jobs=2).predict(images[6:]), serial)

    crops, kps, _ = crop_to_boxes(images, keypoints, category.boxes, padding=0.2)
    det = SlidingKeypointDetector(features=ConvColumnExtractor(layer="stage3",
                                                               weights=weights_file),
                                  box_size=64, mining_rounds=1, random_state=0)
    one = det.fit(crops, kps).coef_.copy()
    np.testing.assert_array_equal(det.set_params(n_jobs=2).fit(crops, kps).coef_, one)

    X, y, groups = keypoint_samples(images, keypoints)
    clf = KeypointClassifier(features=ConvColumnExtractor(layer="stage3", weights=weights_file),
                             Cs=[0.1, 1.0], cv=3, random_state=0)
    scores = clf.fit(X, y, groups=groups).decision_function(X)
    np.testing.assert_array_equal(
        clf.set_params(n_jobs=2).fit(X, y, groups=groups).decision_function(X), scores)
    assert scores.shape == (len(X), len(np.unique(y)))


def test_work_spreads_over_a_local_dask_cluster(pairs_setup, weights_file, category):
    distributed = pytest.importorskip("distributed")
    ext, dataset, reference = pairs_setup
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=None)
    try:
        with distributed.Client(cluster) as client, joblib.parallel_config(backend="dask"):
            table = transfer_pck_table(dataset, _transfer(ext, dataset), alphas=[0.05, 0.1])
            X, y, groups = keypoint_samples(category.images, category.keypoints)
            clf = KeypointClassifier(features=ext.set_params(mode="keypoints"), Cs=[0.1, 1.0],
                                     cv=3, random_state=0)
            scores = clf.fit(X, y, groups=groups).decision_function(X)
            executed = client.run(lambda dask_worker: dask_worker.state.executed_count)
        ext.set_params(mode="dense")
    finally:
        cluster.close()
    assert table == reference
    assert len(executed) == 2 and all(count > 0 for count in executed.values())
    local = clf.set_params(n_jobs=1).fit(X, y, groups=groups).decision_function(X)
    np.testing.assert_array_equal(scores, local)


def test_cli_scheduler_that_does_not_answer_is_one_clear_error(capsys, tmp_path):
    with socket.socket() as sock:  # a free port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    status = main(["evaluate", "pf-willow", "--data", str(tmp_path), "--scheduler",
                   f"tcp://127.0.0.1:{port}"])
    err = capsys.readouterr().err
    assert status == 2
    assert f"No dask scheduler answers at 'tcp://127.0.0.1:{port}'" in err
    assert "Traceback" not in err
