"""ConvColumnExtractor: columns at keypoints, dense grids, global vectors, sklearn API."""

import copy
import os
import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.svm import LinearSVC
from torchvision.models.feature_extraction import create_feature_extractor

from skcorr import ConvColumnExtractor, keypoint_samples
from skcorr.backbones import get_backbone, load_network


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(1).integers(0, 256, (100, 140, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def random_stage2():
    torch.manual_seed(0)
    return ConvColumnExtractor(layer="stage2", weights=None, normalize=False).fit()


def _raw_layer(extractor, image):
    """The layer's output computed independently of the extractor: (h, w, C)."""
    spec = get_backbone(extractor.backbone)
    network = create_feature_extractor(load_network(spec, None), [extractor.layers_[0]])
    network.load_state_dict(extractor.network_.state_dict())
    x = torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float() / 255.0
    x = (x - torch.tensor(spec.mean).view(1, 3, 1, 1)) / torch.tensor(spec.std).view(1, 3, 1, 1)
    with torch.inference_mode():
        return network.eval()(x)[extractor.layers_[0]][0].permute(1, 2, 0).numpy()


def test_keypoint_column_is_the_one_with_the_nearest_rf_centre(random_stage2, image):
    points = np.array([[0.0, 0.0], [13.2, 57.9], [139.0, 99.0], [70.4, 42.6]])
    X, _, _ = keypoint_samples([image], points[None])
    columns = random_stage2.transform(X)
    raw = _raw_layer(random_stage2, image)
    rf = random_stage2.receptive_fields_[random_stage2.layers_[0]]
    assert rf.stride == (4.0, 4.0)
    for point, column in zip(points, columns, strict=True):
        xs = rf.offset[0] + rf.stride[0] * np.arange(raw.shape[1])
        ys = rf.offset[1] + rf.stride[1] * np.arange(raw.shape[0])
        j, i = np.argmin(abs(xs - point[0])), np.argmin(abs(ys - point[1]))
        np.testing.assert_allclose(column, raw[i, j], rtol=1e-5, atol=1e-6)


def test_dense_map_holds_every_column_and_its_centre(random_stage2, image):
    (fmap,) = random_stage2.set_params(mode="dense").transform([image])
    random_stage2.set_params(mode="keypoints")
    raw = _raw_layer(random_stage2, image)
    np.testing.assert_allclose(fmap.features, raw, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fmap.xs, 4.0 * np.arange(raw.shape[1]))  # offset 0, stride 4
    assert fmap.rf_size == 19.0 and fmap.image_shape == (100, 140)
    assert fmap.bin_size is None  # convnet columns have no spatial bins


def test_layer_outputs_are_the_raw_network_outputs(random_stage2, image):
    (outputs,) = random_stage2.layer_outputs([image])
    np.testing.assert_allclose(outputs[0].transpose(1, 2, 0), _raw_layer(random_stage2, image),
                               rtol=1e-5, atol=1e-6)
    resized = clone(random_stage2).set_params(image_size=64).fit()
    resized.network_.load_state_dict(random_stage2.network_.state_dict())
    # image_size does not apply: the image is fed as it is.
    assert resized.layer_outputs([image])[0][0].shape == outputs[0].shape


def test_snaps_to_grid_follows_interpolation():
    assert ConvColumnExtractor().snaps_to_grid
    assert not ConvColumnExtractor(interpolation="bilinear").snaps_to_grid


def test_feature_map_is_computed_once_per_image(image, monkeypatch):
    extractor = ConvColumnExtractor(layer="stage2", weights=None, batch_size=1).fit()
    other = image[::-1].copy()
    X, _, _ = keypoint_samples([image, other], np.full((2, 6, 2), 20.0))
    calls = []
    original = extractor._forward
    monkeypatch.setattr(extractor, "_forward", lambda imgs: calls.append(len(imgs))
                        or original(imgs))
    out = extractor.transform(X)
    assert calls == [1, 1] and out.shape == (12, 24)


def test_bilinear_interpolation_between_centres(random_stage2, image):
    ext = clone(random_stage2).set_params(interpolation="bilinear").fit()
    (fmap,) = ext.extract_dense([image])
    X, _, _ = keypoint_samples([image], [[[8.0, 12.0], [10.0, 12.0]]])  # a centre; midway
    at_centre, midway = ext.transform(X)
    np.testing.assert_allclose(at_centre, fmap.features[3, 2], rtol=1e-5)
    np.testing.assert_allclose(midway, (fmap.features[3, 2] + fmap.features[3, 3]) / 2,
                               rtol=1e-5)


def test_multi_layer_columns_are_concatenated_on_the_finest_grid(image):
    ext = ConvColumnExtractor(layer=["stage3", "stage2"], weights=None, mode="dense").fit()
    (fmap,) = ext.transform([image])
    assert ext.n_features_out_ == 40 + 24 == fmap.features.shape[2]
    assert fmap.grid_shape == (25, 35)  # stage2's stride-4 grid
    np.testing.assert_allclose(np.linalg.norm(fmap.features, axis=2), 1.0, rtol=1e-5)


def test_global_mode():
    images = [np.full((64, 80, 3), v, np.uint8) for v in (10, 200)]
    fc7 = ConvColumnExtractor(layer="fc7", mode="global", weights=None).fit()
    vectors = fc7.transform(images)
    assert vectors.shape == (2, 1280)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    conv = ConvColumnExtractor(layer="stage2", mode="global", weights=None).fit()
    (fmap,) = conv.extract_dense(images[:1])
    np.testing.assert_allclose(conv.transform(images[:1])[0], fmap.features.mean(axis=(0, 1)))


def test_image_size_keeps_coordinates_in_original_pixels(image):
    ext = ConvColumnExtractor(layer="stage2", weights=None, image_size=280, mode="dense").fit()
    (fmap,) = ext.transform([image])
    assert fmap.image_shape == (100, 140)
    assert fmap.grid_shape == (50, 70)  # the network saw 280x200
    np.testing.assert_allclose(fmap.xs[[0, 1]], [-0.25, 1.75])  # stride 4 at scale 2
    assert fmap.stride == pytest.approx(2.0)


def test_grey_and_rgba_images_are_converted(random_stage2):
    grey = np.random.default_rng(2).integers(0, 256, (60, 60), dtype=np.uint8)
    rgba = np.dstack([np.repeat(grey[:, :, None], 3, 2), np.full_like(grey, 255)])
    X, _, _ = keypoint_samples([grey, rgba], np.full((2, 1, 2), 30.0))
    a, b = random_stage2.transform(X)
    np.testing.assert_allclose(a, b)


def test_clone_pickle_and_cpu_reload(random_stage2, image):
    X, _, _ = keypoint_samples([image], [[[30.0, 40.0]]])
    restored = pickle.loads(pickle.dumps(random_stage2))
    np.testing.assert_allclose(restored.transform(X), random_stage2.transform(X))
    assert restored.device_ == "cpu"
    assert clone(random_stage2).get_params() == random_stage2.get_params()


def test_unpickled_extractors_build_the_network_once_and_own_their_weights(
        random_stage2, image, monkeypatch):
    """A dask worker unpickles every extractor sent to it: the traced network is built
    once per process, each copy gets weights of its own."""
    from skcorr.features import _conv

    built = []
    original = _conv.load_network
    monkeypatch.setattr(_conv, "load_network",
                        lambda *a, **k: built.append(a) or original(*a, **k))
    monkeypatch.setattr(_conv, "_SKELETONS", type(_conv._SKELETONS)())
    payload = pickle.dumps(random_stage2)
    first, second = pickle.loads(payload), pickle.loads(payload)
    assert len(built) == 1
    expected = random_stage2.extract_dense([image])[0].features
    np.testing.assert_array_equal(first.extract_dense([image])[0].features, expected)
    with torch.no_grad():
        for parameter in first.network_.parameters():
            parameter.mul_(2.0)
    np.testing.assert_array_equal(second.extract_dense([image])[0].features, expected)
    assert not np.array_equal(first.extract_dense([image])[0].features, expected)


def test_a_shallow_copy_shares_the_network_and_keeps_its_own_parameters(random_stage2):
    copied = copy.copy(random_stage2)
    assert copied.network_ is random_stage2.network_
    copied.memory = "elsewhere"
    assert random_stage2.memory is None
    assert copy.deepcopy(random_stage2).network_ is not random_stage2.network_


def _marked_images(n, rng):
    """Grey noise with bright squares at type-0 points and dark squares at type-1."""
    images, keypoints = [], []
    for _ in range(n):
        img = rng.integers(90, 160, (96, 96, 3), dtype=np.uint8)
        pts = rng.uniform(16, 80, (2, 2))
        for (x, y), value in zip(pts, (255, 0), strict=True):
            img[int(y) - 6:int(y) + 7, int(x) - 6:int(x) + 7] = value
        images.append(img)
        keypoints.append(np.round(pts))
    return images, np.array(keypoints)


def test_pipeline_and_grid_search_classify_keypoints(rng):
    images, keypoints = _marked_images(10, rng)
    X, y, groups = keypoint_samples(images, keypoints)
    torch.manual_seed(0)
    pipe = make_pipeline(ConvColumnExtractor(layer="stage2", weights=None), LinearSVC())
    search = GridSearchCV(pipe, {"linearsvc__C": [0.01, 1.0]}, cv=GroupKFold(n_splits=5))
    search.fit(X, y, groups=groups)
    assert search.best_score_ >= 0.9
    assert "convcolumnextractor__layer" in pipe.get_params()


@pytest.mark.parametrize(
    ("kwargs", "X_kind", "error", "match"),
    [
        ({"backbone": "alexnett"}, None, ValueError, "Unknown backbone"),
        ({"layer": "conv9"}, None, ValueError, "Unknown layer 'conv9'"),
        ({"layer": "fc7"}, None, ValueError, "no spatial grid.*mode='global'"),
        ({"layer": []}, None, ValueError, "empty"),
        ({"mode": "columns"}, None, ValueError, "mode"),
        ({"device": "cuda:0"}, None, ValueError, "CUDA is not available"),
        ({"device": "tpu"}, None, ValueError, "Unknown device"),
        ({}, "outside", ValueError, "outside image"),
        ({}, "nan", ValueError, "NaN or infinite"),
        ({}, "empty", ValueError, "No keypoint samples"),
        ({}, "shape", ValueError, "shape \\(n_samples, 3\\)"),
        ({}, "tiny", ValueError, "smaller than the stride"),
        ({}, "dtype", TypeError, "dtype int32"),
        ({}, "float255", ValueError, "must lie in \\[0, 1\\]"),
        ({}, "corrupt", ValueError, "corrupt"),
        ({}, "missing", FileNotFoundError, "does not exist"),
    ],
)
def test_bad_input_is_rejected_clearly(kwargs, X_kind, error, match, image, tmp_path):
    if torch.cuda.is_available() and kwargs.get("device") == "cuda:0":
        pytest.skip("CUDA is available here")
    params = {"weights": None, "layer": "stage2", **kwargs}
    if X_kind is None:
        with pytest.raises(error, match=match):
            ConvColumnExtractor(**params).fit()
        return
    corrupt = tmp_path / "broken.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    def sample(img, x=1.0, y=1.0):  # by hand: keypoint_samples itself rejects these
        return np.array([[img, x, y]], dtype=object)

    X = {
        "outside": lambda: sample(image, 140.6, 10.0),
        "nan": lambda: np.array([[image, np.nan, 3.0]], dtype=object),
        "empty": lambda: np.empty((0, 3), dtype=object),
        "shape": lambda: np.array([[image, 3.0]], dtype=object),
        "tiny": lambda: keypoint_samples([image[:3, :3]], [[[1.0, 1.0]]])[0],
        "dtype": lambda: sample(image.astype(np.int32)),
        "float255": lambda: sample(image.astype(float)),
        "corrupt": lambda: sample(str(corrupt)),
        "missing": lambda: sample(str(tmp_path / "no.png")),
    }[X_kind]()
    extractor = ConvColumnExtractor(**params).fit()
    with pytest.raises(error, match=match):
        extractor.transform(X)


def test_keypoint_samples_validation(image):
    with pytest.raises(ValueError, match="1 rows but there are 2 images"):
        keypoint_samples([image, image], np.zeros((1, 2, 2)))
    with pytest.raises(ValueError, match="n_keypoints, 2"):
        keypoint_samples([image], np.zeros((1, 2)))
    with pytest.raises(ValueError, match="empty"):
        keypoint_samples([], np.zeros((0, 2, 2)))


def test_image_files_are_read_lazily_and_match_arrays(random_stage2, image, tmp_path):
    from PIL import Image

    path = tmp_path / "img.png"
    Image.fromarray(image).save(path)
    X_file, _, _ = keypoint_samples([str(path)], [[[50.0, 50.0]]])
    X_array, _, _ = keypoint_samples([image], [[[50.0, 50.0]]])
    np.testing.assert_allclose(random_stage2.transform(X_file), random_stage2.transform(X_array))


def test_fits_build_a_network_once_but_never_share_it(image, tmp_path, monkeypatch):
    """Fitting clones of one extractor builds its network once per process; each fit
    gets its own copy (editing one leaves the others alone), and a rewritten weights
    file is read again."""
    from skcorr.features import _conv

    path = tmp_path / "weights.pth"
    torch.manual_seed(1)
    torch.save(load_network("efficientnet_lite0", None).state_dict(), path)
    built = []
    original = _conv.load_network
    monkeypatch.setattr(_conv, "load_network",
                        lambda *a, **k: built.append(a) or original(*a, **k))
    extractor = ConvColumnExtractor(layer="stage2", weights=str(path), mode="dense")
    first, second = clone(extractor).fit(), clone(extractor).fit()
    assert len(built) == 1
    assert first.network_ is not second.network_
    before = second.extract_dense([image])[0].features
    seen = []
    for module in first.network_.modules():
        module.register_forward_hook(lambda *args: seen.append(1))
    second.extract_dense([image])
    assert not seen  # hooks are per copy too
    with torch.no_grad():
        for parameter in first.network_.parameters():
            parameter.mul_(2.0)
    np.testing.assert_array_equal(second.extract_dense([image])[0].features, before)
    assert first._cache_identity() != second._cache_identity()

    torch.manual_seed(2)
    torch.save(load_network("efficientnet_lite0", None).state_dict(), path)
    os.utime(path, ns=(1, 1))  # a new stamp, as a rewrite gives
    third = clone(extractor).fit()
    assert len(built) == 2
    assert not np.array_equal(third.extract_dense([image])[0].features, before)
