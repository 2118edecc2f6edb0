"""Backbones: real default weights, layer names, weights sources and their errors."""

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from skcorr.backbones import (
    WeightsUnavailableError,
    get_backbone,
    list_backbones,
    load_network,
)


def _classify(backbone, image):
    spec = get_backbone(backbone)
    network = load_network(spec)
    x = np.array(Image.fromarray(image).resize((224, 224), Image.BILINEAR))
    x = torch.from_numpy(x).permute(2, 0, 1)[None].float() / 255.0
    x = (x - torch.tensor(spec.mean).view(1, 3, 1, 1)) / torch.tensor(spec.std).view(1, 3, 1, 1)
    with torch.inference_mode():
        return int(network(x).argmax())


def test_default_backbone_has_real_imagenet_weights():
    # chelsea is a tabby cat: ImageNet's cat classes are 281 to 285; coffee is espresso.
    assert 281 <= _classify("efficientnet_lite0", data.chelsea()) <= 285
    assert _classify("efficientnet_lite0", data.coffee()) == 967


def test_registered_backbones_and_roles():
    assert list_backbones()[:4] == ["efficientnet_lite0", "alexnet", "vgg16", "resnet50"]
    for name in list_backbones():
        spec = get_backbone(name)
        assert set(spec.roles) == {"conv4", "conv5", "pool5", "fc7"}
        for role in ("conv4", "conv5", "pool5"):
            assert spec.receptive_field(role) is not None, (name, role)
        assert spec.receptive_field("fc7") is None
        # conv4 and conv5 play the paper's roles: finer than pool5
        assert spec.receptive_field("conv5").stride <= spec.receptive_field("pool5").stride


def test_layer_names_resolve_to_nodes_and_modules():
    lite = get_backbone("efficientnet_lite0")
    assert lite.resolve_layer("conv4") == lite.resolve_layer("stage4") == "_blocks.7.add"
    assert lite.resolve_layer("_blocks.7") == "_blocks.7.add"  # a module: its last node
    assert "_blocks.3._depthwise_conv" in lite.layer_names()
    assert get_backbone("alexnet").resolve_layer("conv4") == "features.9"


def test_any_torchvision_classifier_by_name():
    spec = get_backbone("mobilenet_v2")
    rf = spec.receptive_field("features.7")
    assert rf.stride == (16.0, 16.0)


def test_unknown_names_are_rejected_with_the_choices():
    with pytest.raises(ValueError, match="Unknown backbone 'alexnett'.*alexnet"):
        get_backbone("alexnett")
    with pytest.raises(ValueError, match="Unknown layer 'conv9'.*stage4"):
        get_backbone("efficientnet_lite0").resolve_layer("conv9")


def test_weights_from_a_local_file_and_random(tmp_path):
    spec = get_backbone("efficientnet_lite0")
    pretrained = load_network(spec)
    path = tmp_path / "lite0.pth"
    torch.save({"state_dict": pretrained.state_dict()}, path)
    from_file = load_network(spec, path)
    random = load_network(spec, None)
    w = "_conv_stem.weight"
    assert torch.equal(from_file.state_dict()[w], pretrained.state_dict()[w])
    assert not torch.equal(random.state_dict()[w], pretrained.state_dict()[w])


def test_missing_and_corrupt_weights_files(tmp_path):
    with pytest.raises(WeightsUnavailableError, match="does not exist"):
        load_network("efficientnet_lite0", tmp_path / "nope.pth")
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="Cannot read weights file"):
        load_network("efficientnet_lite0", corrupt)


def test_torchvision_weights_offline_say_which_file_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    from torchvision.models import AlexNet_Weights

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(AlexNet_Weights.IMAGENET1K_V1.__class__, "get_state_dict", offline)
    with pytest.raises(WeightsUnavailableError) as info:
        load_network("alexnet")
    message = str(info.value)
    assert "alexnet-owt-7be5be79.pth" in message and str(tmp_path) in message
    assert "weights=" in message


def test_alexnet_pretrained_when_cached():
    try:
        network = load_network("alexnet")
    except WeightsUnavailableError as exc:
        pytest.skip(f"AlexNet ImageNet weights not available offline: {exc}")
    assert network.features[0].weight.shape == (64, 3, 11, 11)
    assert 281 <= _classify("alexnet", data.chelsea()) <= 285
