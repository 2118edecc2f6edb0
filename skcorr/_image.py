"""Reading and validating images.

One rule for every entry point of skcorr (see :func:`as_rgb`):

* an image is an ``(H, W, 3)`` ``uint8`` array, or a path to a file that is read
  when it is needed;
* grey ``(H, W)`` and ``(H, W, 1)`` images are replicated to three channels;
* RGBA ``(H, W, 4)`` images are alpha-composited onto white;
* floating point images must lie in ``[0, 1]`` (scikit-image's convention) and are
  scaled by 255 and rounded;
* any other dtype, shape, NaN or infinite value is rejected with an error that says
  how to convert the input.

Coordinates: ``x`` is the column and ``y`` the row, 0-based, and integer coordinates
are pixel *centres*: the pixel in row 0, column 0 covers ``[-0.5, 0.5)`` in both axes.
The 1-based coordinates of MATLAB annotation files map to ours by subtracting 1.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["as_rgb", "check_images", "image_size", "outside_image", "read_image"]

ImageLike = "np.ndarray | str | os.PathLike"


def read_image(path) -> np.ndarray:
    """Read an image file into an ``(H, W, 3)`` uint8 array (see :func:`as_rgb`)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Image file {str(path)!r} does not exist; check the path.")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
                array = np.asarray(im.convert("RGBA"))
            elif im.mode in ("L", "1"):
                array = np.asarray(im.convert("L"))
            else:
                array = np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValueError(
            f"Cannot read image file {str(path)!r}: it is corrupt or not an image format "
            f"Pillow understands ({exc}). Re-save it as PNG or JPEG."
        ) from exc
    return as_rgb(array, name=str(path))


def as_rgb(image, *, name: str = "image") -> np.ndarray:
    """Return ``image`` as an ``(H, W, 3)`` uint8 array, by the rule of this module.

    Parameters
    ----------
    image : ndarray or path
        The image, or the path of an image file.
    name : str
        How error messages refer to the image.
    """
    if isinstance(image, (str, os.PathLike)):
        return read_image(image)
    if not isinstance(image, np.ndarray):
        raise TypeError(
            f"{name} must be a numpy array of shape (H, W, 3) or a file path, "
            f"got {type(image).__name__}."
        )
    array = image
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ValueError(
            f"{name} has shape {image.shape}; expected (H, W) grey, (H, W, 3) RGB or "
            "(H, W, 4) RGBA."
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {image.shape}).")
    if array.dtype == np.uint8:
        pass
    elif np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{name} contains NaN or infinite values; clean it first.")
        if array.min() < 0 or array.max() > 1:
            raise ValueError(
                f"{name} is a float image with values in [{array.min():g}, {array.max():g}]; "
                "float images must lie in [0, 1]. Pass uint8 data, or divide by 255."
            )
        array = np.round(array * 255.0).astype(np.uint8)
    else:
        raise TypeError(
            f"{name} has dtype {array.dtype}; pass uint8 (0-255) or float in [0, 1], "
            "for example with skimage.util.img_as_ubyte(image)."
        )
    if array.ndim == 2:
        return np.repeat(array[:, :, None], 3, axis=2)
    if array.shape[2] == 4:
        rgb = array[:, :, :3].astype(np.float32)
        alpha = array[:, :, 3:].astype(np.float32) / 255.0
        return np.round(rgb * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    return array


def image_size(image) -> tuple[int, int]:
    """``(height, width)`` of an array or image file, reading only the header of a file."""
    if isinstance(image, (str, os.PathLike)):
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(image) as im:
                return im.height, im.width
        except FileNotFoundError:
            raise FileNotFoundError(
                f"Image file {str(image)!r} does not exist; check the path."
            ) from None
        except (UnidentifiedImageError, OSError) as exc:
            raise ValueError(
                f"Cannot read image file {str(image)!r}: it is corrupt or not an image "
                f"({exc}). Re-save it as PNG or JPEG."
            ) from exc
    return as_rgb(image).shape[:2]


def check_images(images, *, name: str = "images") -> list:
    """Validate a collection of images without reading files; return it as a list.

    A single array of shape ``(H, W, 3)`` or ``(H, W)`` is ambiguous with a batch, so it
    is rejected with a hint; a 4-D array ``(N, H, W, C)`` is accepted as N images.
    """
    if isinstance(images, (str, os.PathLike)):
        raise TypeError(f"{name} must be a sequence of images; wrap a single path in a list.")
    if isinstance(images, np.ndarray):
        if images.ndim == 4 or images.dtype == object:
            images = list(images)
        else:
            raise ValueError(
                f"{name} is a single array of shape {images.shape}; pass a list of images "
                "(or a 4-D array of shape (N, H, W, C))."
            )
    if not isinstance(images, Sequence):
        images = list(images)
    if len(images) == 0:
        raise ValueError(f"{name} is empty; pass at least one image.")
    for i, image in enumerate(images):
        if not isinstance(image, (np.ndarray, str, os.PathLike)):
            raise TypeError(
                f"{name}[{i}] is a {type(image).__name__}; each image must be an array of "
                "shape (H, W, 3) or a file path."
            )
    return list(images)


def outside_image(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Mask of the (x, y) points outside an image of ``shape = (H, W)``.

    Pixel centres are integers, so the image spans ``[-0.5, W - 0.5]`` x
    ``[-0.5, H - 0.5]``; NaN points are not outside.
    """
    height, width = shape
    x, y = points[..., 0], points[..., 1]
    return (x < -0.5) | (x > width - 0.5) | (y < -0.5) | (y > height - 0.5)
