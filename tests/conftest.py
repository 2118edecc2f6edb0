"""Shared fixtures. Real data sets are found through SKCORR_DATA (set by .ci/run)."""

import os
from pathlib import Path

import numpy as np
import pytest


def _data_root() -> Path | None:
    root = os.environ.get("SKCORR_DATA")
    return Path(root) if root else None


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The folder holding the real data sets; skips the test when SKCORR_DATA is unset."""
    root = _data_root()
    if root is None:
        pytest.skip("real data not available: set SKCORR_DATA to the folder holding PF-WILLOW "
                    "and CUB_200_2011 (.ci/run sets it to ../shared/data)")
    if not root.is_dir():
        pytest.fail(f"SKCORR_DATA={root} is not a folder")
    return root


@pytest.fixture(scope="session")
def pf_willow_dir(data_root) -> Path:
    path = data_root / "PF-WILLOW"
    if not path.is_dir():
        pytest.skip(f"PF-WILLOW not found under SKCORR_DATA ({path})")
    return path


@pytest.fixture(scope="session")
def cub_dir(data_root) -> Path:
    path = data_root / "CUB_200_2011"
    if not path.is_dir():
        pytest.skip(f"CUB_200_2011 not found under SKCORR_DATA ({path})")
    return path


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """A random EfficientNet-Lite0 saved to a file, so that every fit loads the same net."""
    import torch

    from skcorr.backbones import load_network

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "random-lite0.pt"
    torch.save(load_network("efficientnet_lite0", None).state_dict(), path)
    return str(path)


@pytest.fixture(scope="module")
def category():
    """Nine small images of one affine-warped category, with keypoints."""
    from skcorr.datasets import make_affine_category

    return make_affine_category(9, height=64, random_state=0)
