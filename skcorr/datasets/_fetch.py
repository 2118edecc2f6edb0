"""Fetch public data sets once into a local data folder, with pooch.

The data folder is ``data_home`` when given, else the environment variable
``SKCORR_DATA``, else ``~/skcorr_data``. A data set whose folder already exists there
is returned as it is, without network access: skcorr never overwrites or re-downloads
files a user put there. A download goes into a hidden staging folder next to it and
is moved into place only once complete.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pooch

__all__ = ["get_data_home", "fetch_pf_willow", "fetch_cub"]

PF_WILLOW_URL = "https://www.di.ens.fr/willow/research/proposalflow/dataset/PF-dataset.zip"
#: The authors publish no checksum of PF-dataset.zip, so none is checked (pooch logs
#: the SHA256 of what it downloaded). Replace with "sha256:..." once one is known.
PF_WILLOW_HASH_UNPUBLISHED = None

CUB_URL = "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz?download=1"
#: MD5 of CUB_200_2011.tgz, as checked by the common loaders of the official archive.
CUB_HASH = "md5:97eceeb196236b17998738112f37df78"


def get_data_home(data_home=None) -> Path:
    """The folder holding skcorr's data sets.

    Parameters
    ----------
    data_home : str or os.PathLike, default=None
        The folder to use. ``None``: the environment variable ``SKCORR_DATA`` when set,
        else ``~/skcorr_data``.

    Returns
    -------
    path : pathlib.Path
        The folder (not created).

    Examples
    --------
    >>> from skcorr.datasets import get_data_home
    >>> str(get_data_home("/data/skcorr"))
    '/data/skcorr'
    """
    if data_home is None:
        data_home = os.environ.get("SKCORR_DATA") or "~/skcorr_data"
    return Path(data_home).expanduser()


def _fetch(*, name: str, folder: str, url: str, known_hash, archive: str, marker: str,
           data_home) -> Path:  # fmt: skip
    """Return ``data_home/folder``, downloading and unpacking ``url`` if it is absent.

    ``marker`` is a file or folder name found at the top of the data set inside the
    archive; the folder holding it becomes ``data_home/folder``.
    """
    home = get_data_home(data_home)
    target = home / folder
    if target.exists():
        return target
    staging = home / f".{folder}.download"
    by_hand = (
        f"Download {url} by hand and unpack it so that {target} is the folder holding "
        f"{marker!r} (or pass the folder where you unpacked it to the loader)."
    )
    extractor = pooch.Unzip if archive.endswith(".zip") else pooch.Untar
    try:
        staging.mkdir(parents=True, exist_ok=True)
        pooch.retrieve(
            url, known_hash, fname=archive, path=staging,
            processor=extractor(extract_dir="unpacked"),
        )  # fmt: skip
    except Exception as exc:  # network, HTTP, checksum and archive errors alike
        raise OSError(
            f"Could not download {name} from {url} ({type(exc).__name__}: {exc}). {by_hand}"
        ) from exc
    found = sorted((staging / "unpacked").rglob(marker), key=lambda p: len(p.parts))
    if not found:
        raise OSError(f"The archive of {name} holds no {marker!r}; it changed. {by_hand}")
    found[0].parent.rename(target)
    shutil.rmtree(staging)
    return target


def fetch_pf_willow(data_home=None) -> Path:
    """Return the PF-WILLOW folder, downloading ``PF-dataset.zip`` if needed.

    Parameters
    ----------
    data_home : str or os.PathLike, default=None
        Data folder, see :func:`get_data_home`. If ``data_home/PF-WILLOW`` exists it
        is returned without network access.

    Returns
    -------
    path : pathlib.Path
        ``data_home/PF-WILLOW``, the folder of the sub-class folders, for
        :func:`load_pf_willow`.

    Raises
    ------
    OSError
        If the download fails; the message names the address to download by hand and
        where to unpack it.

    Examples
    --------
    >>> from skcorr.datasets import fetch_pf_willow, load_pf_willow
    >>> data = load_pf_willow(fetch_pf_willow())  # doctest: +SKIP
    """
    return _fetch(
        name="PF-WILLOW", folder="PF-WILLOW", url=PF_WILLOW_URL,
        known_hash=PF_WILLOW_HASH_UNPUBLISHED, archive="PF-dataset.zip", marker="car(G)",
        data_home=data_home,
    )  # fmt: skip


def fetch_cub(data_home=None) -> Path:
    """Return the CUB-200-2011 folder, downloading ``CUB_200_2011.tgz`` (1.1 GB) if needed.

    Parameters
    ----------
    data_home : str or os.PathLike, default=None
        Data folder, see :func:`get_data_home`. If ``data_home/CUB_200_2011`` exists
        it is returned without network access.

    Returns
    -------
    path : pathlib.Path
        ``data_home/CUB_200_2011`` (holding ``images.txt``), for :func:`load_cub`.

    Raises
    ------
    OSError
        If the download fails or its checksum differs; the message names the address
        to download by hand and where to unpack it.

    Examples
    --------
    >>> from skcorr.datasets import fetch_cub, load_cub
    >>> birds = load_cub(fetch_cub())  # doctest: +SKIP
    """
    return _fetch(
        name="CUB-200-2011", folder="CUB_200_2011", url=CUB_URL, known_hash=CUB_HASH,
        archive="CUB_200_2011.tgz", marker="images.txt", data_home=data_home,
    )  # fmt: skip
