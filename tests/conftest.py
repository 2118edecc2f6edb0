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
