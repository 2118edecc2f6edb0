"""Receptive-field arithmetic: known networks, and agreement with measured gradients."""

import numpy as np
import pytest
import torch
from torch import fx, nn

from skcorr.backbones import get_backbone
from skcorr.receptive import (
    ReceptiveField,
    grid_centers,
    measure_receptive_field,
    receptive_fields,
)


def _fields(module):
    return receptive_fields(fx.symbolic_trace(module))


def caffenet_features():
    """CaffeNet's convolutional part: its kernels, strides and paddings (LRN omitted)."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 11, stride=4), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(8, 8, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
    )


def test_caffenet_numbers_of_the_paper():
    fields = _fields(caffenet_features())
    expected = {"0": (11, 4), "2": (19, 8), "3": (51, 8), "6": (99, 16), "8": (131, 16),
                "10": (163, 16), "12": (195, 32)}  # conv1, pool1, conv2, conv3..5, pool5
    for node, (size, stride) in expected.items():
        rf = fields[f"_{node}"] if f"_{node}" in fields else fields[node]
        assert rf.size == (size, size) and rf.stride == (stride, stride), node
    # conv1 has no padding: cell (0, 0) sees pixels 0..10, centred on pixel 5.
    assert fields["_0"].offset == (5.0, 5.0)


def test_torchvision_alexnet_numbers():
    alexnet = get_backbone("alexnet")
    table = {"conv1": (11, 4, 3), "pool1": (19, 8, 7), "conv2": (51, 8, 7),
             "conv3": (99, 16, 15), "conv4": (131, 16, 15), "conv5": (163, 16, 15),
             "pool5": (195, 32, 31)}
    for layer, (size, stride, offset) in table.items():
        rf = alexnet.receptive_field(layer)
        assert (rf.size[0], rf.stride[0], rf.offset[0]) == (size, stride, offset), layer
    assert alexnet.receptive_field("fc7") is None


def _positive(module: nn.Module) -> nn.Module:
    """All-positive weights so that no gradient path cancels."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(p.abs() + 0.01)
    return module.eval()


def _random_network(seed: int) -> nn.Sequential:
    gen = np.random.default_rng(seed)
    layers, channels = [], 3
    for _ in range(gen.integers(2, 6)):
        kernel = int(gen.integers(1, 6))
        stride = int(gen.integers(1, 3))
        padding = int(gen.integers(0, kernel // 2 + 1))
        dilation = int(gen.integers(1, 3))
        if gen.random() < 0.3:
            layers.append(nn.AvgPool2d(kernel, stride, padding=min(padding, kernel // 2)))
        else:
            layers.append(nn.Conv2d(channels, 4, kernel, stride, padding, dilation))
            channels = 4
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class _Residual(nn.Module):
    """Two branches of different RF, summed: the union must be reported."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.wide = nn.Conv2d(4, 4, 5, padding=2)
        self.narrow = nn.Conv2d(4, 4, 1)
        self.pool = nn.AvgPool2d(2, 2)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        return self.pool(self.wide(x) + self.narrow(x))


@pytest.mark.parametrize("seed", range(12))
def test_random_networks_agree_with_measured_gradients(seed):
    torch.manual_seed(seed)
    network = _positive(_random_network(seed))
    analytic = list(_fields(network).values())[-1]
    measured = measure_receptive_field(network, (160, 160))
    np.testing.assert_allclose(measured.size, analytic.size)
    np.testing.assert_allclose(measured.stride, analytic.stride)
    np.testing.assert_allclose(measured.offset, analytic.offset)


def test_residual_union_agrees_with_measured_gradients():
    network = _positive(_Residual())
    analytic = list(_fields(network).values())[-1]
    measured = measure_receptive_field(network, (64, 64))
    assert analytic.size == (13.0, 13.0)  # 3 + 4*2 (wide branch) + 1*2 (pool)
    np.testing.assert_allclose(measured.size, analytic.size)
    np.testing.assert_allclose(measured.offset, analytic.offset)


def test_efficientnet_lite0_stage_agrees_with_measured_gradients():
    lite = get_backbone("efficientnet_lite0")
    network = lite.build()
    for _name, module in network.named_modules():  # ReLU6 saturates on all-ones input
        for child_name, child in module.named_children():
            if isinstance(child, nn.ReLU6):
                setattr(module, child_name, nn.Identity())
    from torchvision.models.feature_extraction import create_feature_extractor

    node = lite.resolve_layer("stage3")
    truncated = create_feature_extractor(_positive(network), [node])

    class Out(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = truncated

        def forward(self, x):
            return self.inner(x)[node]

    measured = measure_receptive_field(Out(), (192, 192))
    analytic = lite.receptive_field("stage3")
    assert analytic.stride == (8.0, 8.0)
    np.testing.assert_allclose(measured.size, analytic.size)
    np.testing.assert_allclose(measured.offset, analytic.offset)


def test_scaled_field_maps_centres_back_to_original_pixels():
    rf = ReceptiveField(size=(131.0, 131.0), stride=(16.0, 16.0), offset=(15.0, 15.0))
    half = rf.scaled(0.5)  # the network saw the image at half size
    assert half.stride == (32.0, 32.0) and half.size == (262.0, 262.0)
    # pixel 15 of the half-size image covers original pixels 30 and 31: centre 30.5
    assert half.offset == (30.5, 30.5)
    xs, ys = grid_centers(half, (2, 3))
    np.testing.assert_allclose(xs, [30.5, 62.5, 94.5])
    np.testing.assert_allclose(ys, [30.5, 62.5])


def test_unsupported_module_is_named():
    network = nn.Sequential(nn.Conv2d(3, 3, 3), nn.Upsample(scale_factor=2))
    with pytest.raises(NotImplementedError, match="Upsample"):
        _fields(network)
