"""Hypercolumns: several layers concatenated on the finest grid, each layer's RF kept."""

import numpy as np
import pytest
import torch

from skcorr import ConvColumnExtractor
from skcorr._array import l2_normalize


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(3).integers(0, 256, (90, 130, 3), dtype=np.uint8)


def _dense(layer, image, **params):
    torch.manual_seed(0)  # the same random network for every extractor
    extractor = ConvColumnExtractor(layer=layer, weights=None, mode="dense", **params).fit()
    return extractor, extractor.transform([image])[0]


def test_hypercolumn_lives_on_the_finest_grid_with_each_layers_rf(image):
    layers = ["stage4", "stage2", "stage3"]  # not in stride order on purpose
    extractor, hyper = _dense(layers, image)
    alone = {name: _dense(name, image)[1] for name in layers}
    finest = alone["stage2"]
    np.testing.assert_array_equal(hyper.xs, finest.xs)
    np.testing.assert_array_equal(hyper.ys, finest.ys)
    assert hyper.grid_shape == finest.grid_shape
    assert hyper.rf_size == max(m.rf_size for m in alone.values())
    assert list(hyper.receptive_fields) == extractor.layers_
    for name, node in zip(layers, extractor.layers_, strict=True):
        assert hyper.receptive_fields[node] == alone[name].receptive_fields[node]
        assert hyper.receptive_fields[node].stride[0] == alone[name].stride
    widths = [alone[name].features.shape[2] for name in layers]
    assert hyper.features.shape[2] == sum(widths) == extractor.n_features_out_
    np.testing.assert_allclose(np.linalg.norm(hyper.features, axis=2), 1.0, rtol=1e-5)


def test_each_block_is_its_layer_upsampled_normalised_and_weighted(image):
    layers, weights = ["stage2", "stage4"], [1.0, 3.0]
    _, hyper = _dense(layers, image, layer_weights=weights)
    fine, coarse = (_dense(name, image)[1] for name in layers)
    w = np.array(weights) / np.linalg.norm(weights)
    n_fine = fine.features.shape[2]
    np.testing.assert_allclose(hyper.features[..., :n_fine], w[0] * fine.features,
                               rtol=1e-5, atol=1e-6)
    # The coarse layer, bilinearly interpolated at the fine RF centres, then normalised.
    upsampled = l2_normalize(coarse.sample(fine.centers(), "bilinear"))
    np.testing.assert_allclose(hyper.features[..., n_fine:].reshape(-1, upsampled.shape[1]),
                               w[1] * upsampled, rtol=1e-4, atol=1e-6)
    # At a fine centre between coarse ones the block is a blend, not the nearest column.
    nearest = l2_normalize(coarse.sample(fine.centers(), "nearest"))
    assert not np.allclose(upsampled, nearest, atol=1e-3)


def test_hypercolumn_at_keypoints_matches_the_dense_map(image):
    torch.manual_seed(0)
    extractor = ConvColumnExtractor(layer=["stage2", "stage3"], weights=None).fit()
    fmap = extractor.extract_dense([image])[0]
    centres = fmap.centers()[[0, 17, 40]]
    X = np.empty((3, 3), dtype=object)
    for row, (x, y) in enumerate(centres):
        X[row, 0], X[row, 1], X[row, 2] = image, x, y
    np.testing.assert_allclose(extractor.transform(X),
                               fmap.features.reshape(-1, fmap.features.shape[2])[[0, 17, 40]],
                               rtol=1e-6)


@pytest.mark.parametrize(("layer", "weights", "message"), [
    (["stage2", "stage3"], [1.0], "one weight per layer"),
    (["stage2", "stage3"], [1.0, -1.0], ">= 0"),
    (["stage2", "stage3"], [0.0, 0.0], "not all 0"),
    (["stage2", "stage2"], None, "same layer twice"),
])
def test_bad_layer_lists_and_weights_are_rejected(layer, weights, message):
    with pytest.raises(ValueError, match=message):
        ConvColumnExtractor(layer=layer, layer_weights=weights, weights=None).fit()
