"""Reading and validating images.

One rule for every entry point of skcorr, for arrays and image files alike (see
:func:`as_rgb`):

* an image is an ``(H, W, 3)`` ``uint8`` array, or a path to a file that is read
  when it is needed;
* grey ``(H, W)`` and ``(H, W, 1)`` images are replicated to three channels;
* RGBA ``(H, W, 4)`` images are alpha-composited onto white;
* wider unsigned integers are reduced to 8 bits by their bit depth, keeping the top
  8 bits (``uint16``: ``x >> 8``, as ``skimage.util.img_as_ubyte`` does); boolean
  images become 0 and 255;
* floating point images must lie in ``[0, 1]`` (scikit-image's convention) and are
  scaled by 255 and rounded;
* any other dtype (signed integers, whose range is ambiguous), shape, NaN or infinite
  value is rejected with an error that says how to convert the input.

A file is read as it is displayed: its EXIF orientation (a phone's "rotate 90 degrees
when shown") is applied, so :func:`read_image` and :func:`image_size` see the upright
image, and keypoints live in that frame. A file is then read into the array its samples
hold and follows the same rule: a
16-bit PNG or TIFF (Pillow modes ``I;16``, ``I;16B``) is a ``uint16`` array, a float
TIFF (mode ``F``) a ``float32`` array that must lie in ``[0, 1]``, a 32-bit integer TIFF
(mode ``I``) an ``int32`` array and is rejected. Data of 12 bits stored in a 16-bit
file without being scaled to the full range (values up to 4095) reads dark: read it
yourself and pass ``array << 4``. Pillow's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``)
applies to files.

Coordinates: ``x`` is the column and ``y`` the row, 0-based, and integer coordinates
are pixel *centres*: the pixel in row 0, column 0 covers ``[-0.5, 0.5)`` in both axes.
The 1-based coordinates of MATLAB annotation files map to ours by subtracting 1.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

__all__ = ["as_rgb", "check_images", "image_digest", "image_size", "mean_abs_pixel_error",
           "outside_image", "read_image"]

ImageLike = "np.ndarray | str | os.PathLike"


def _image_file(path) -> Path:
    """``path`` as a Path to an existing file; a clear error for a folder or nothing."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(
            f"Image path {str(path)!r} is a directory, not an image file; pass the path of "
            "an image file (for a folder of images, list its files)."
        )
    if not path.exists():
        raise FileNotFoundError(f"Image file {str(path)!r} does not exist; check the path.")
    return path


@contextmanager
def _pil_errors(path: Path):
    """Turn what Pillow raises for a file into errors that name the file."""
    from PIL import Image, UnidentifiedImageError

    try:
        yield
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # The warning arrives here only where warnings are errors (as under pytest).
        raise ValueError(
            f"Image file {str(path)!r} is larger than Pillow's decompression-bomb limit "
            f"(PIL.Image.MAX_IMAGE_PIXELS = {Image.MAX_IMAGE_PIXELS} pixels): {exc} If you "
            "trust the file, raise PIL.Image.MAX_IMAGE_PIXELS before reading it."
        ) from exc
    except PermissionError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValueError(
            f"Cannot read image file {str(path)!r}: it is corrupt or not an image format "
            f"Pillow understands ({exc}). Re-save it as PNG or JPEG."
        ) from exc


def read_image(path) -> np.ndarray:
    """Read an image file into an ``(H, W, 3)`` uint8 array (see :func:`as_rgb`).

    The file's samples follow the same rule as arrays: 16-bit files keep their top 8
    bits, float files must lie in ``[0, 1]``, signed 32-bit integer files are rejected.
    The EXIF orientation is applied: the array holds the image as it is displayed (a
    phone photo taken upright is upright), and keypoints live in that frame.

    Raises
    ------
    FileNotFoundError, IsADirectoryError
        If ``path`` does not exist or is a folder.
    ValueError
        If the file is corrupt, above Pillow's decompression-bomb limit, or its samples
        break the rule (the message names the file).
    """
    from PIL import Image

    path = _image_file(path)
    with _pil_errors(path), Image.open(path) as im:
        _check_single_frame(im, path)
        orientation = _orientation(im)  # read before the pixels, as image_size reads it
        im.load()
        if orientation != 1:
            from PIL import ImageOps

            ImageOps.exif_transpose(im, in_place=True)
        mode = im.mode
        if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
            array = np.asarray(im.convert("RGBA"))
        elif mode in ("L", "1"):
            array = np.asarray(im.convert("L"))
        elif mode.startswith("I") or mode == "F":  # 16/32-bit integer or float samples
            array = np.asarray(im)
        else:
            array = np.asarray(im.convert("RGB"))
    try:
        return _to_rgb(array, f"image file {str(path)!r} (Pillow mode {mode})")
    except TypeError as exc:
        raise ValueError(f"{exc} Re-save the file as 8- or 16-bit PNG.") from None


def _check_single_frame(im, path) -> None:
    """Refuse an animation or a multi-page file: which frame is meant is not known."""
    n_frames = getattr(im, "n_frames", 1)
    if n_frames > 1:
        raise ValueError(
            f"image file {str(path)!r} has {n_frames} frames; skcorr reads single images: "
            "extract the frame you want (e.g. PIL.Image.open(path).seek(i)) and save or "
            "pass it as an array."
        )


def as_rgb(image, *, name: str = "image") -> np.ndarray:
    """Return ``image`` as an ``(H, W, 3)`` uint8 array, by the rule of this module.

    Parameters
    ----------
    image : ndarray or path
        The image, or the path of an image file.
    name : str
        How error messages refer to the image.

    Returns
    -------
    ndarray of shape (H, W, 3), uint8
    """
    if isinstance(image, (str, os.PathLike)):
        return read_image(image)
    if not isinstance(image, np.ndarray):
        raise TypeError(
            f"{name} must be a numpy array of shape (H, W, 3) or a file path, "
            f"got {type(image).__name__}."
        )
    return _to_rgb(image, name)


def _to_rgb(image: np.ndarray, name: str) -> np.ndarray:
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
    array = _to_uint8(array, name)
    if array.ndim == 2:
        return np.repeat(array[:, :, None], 3, axis=2)
    if array.shape[2] == 4:
        rgb = array[:, :, :3].astype(np.float32)
        alpha = array[:, :, 3:].astype(np.float32) / 255.0
        return np.round(rgb * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    return array


def _to_uint8(array: np.ndarray, name: str) -> np.ndarray:
    """The samples as uint8, by dtype (see the module's rule)."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * np.uint8(255)
    if np.issubdtype(array.dtype, np.unsignedinteger):
        shift = 8 * array.dtype.itemsize - 8
        return (array >> shift).astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{name} contains NaN or infinite values; clean it first.")
        low, high = float(array.min()), float(array.max())
        if low < 0 or high > 1:
            raise ValueError(
                f"{name} is a float image with values in [{low:g}, {high:g}]; float images "
                "must lie in [0, 1]. Pass uint8 data, or divide by 255."
            )
        return np.round(array * 255.0).astype(np.uint8)
    raise TypeError(
        f"{name} has dtype {array.dtype}; pass uint8 (0-255), uint16 (0-65535) or float "
        "in [0, 1], for example with skimage.util.img_as_ubyte(image)."
    )


def image_size(image) -> tuple[int, int]:
    """``(height, width)`` of an array or image file, reading only the header of a file.

    The size of a file is its displayed size, the shape of :func:`read_image`'s array:
    EXIF orientations 5 to 8 (a quarter turn) swap the stored width and height. A file
    raises the errors of :func:`read_image` for a missing path, a folder, a corrupt file
    or one above Pillow's decompression-bomb limit.
    """
    if isinstance(image, (str, os.PathLike)):
        from PIL import Image

        path = _image_file(image)
        with _pil_errors(path), Image.open(path) as im:
            if _orientation(im) >= 5:
                return im.width, im.height
            return im.height, im.width
    return as_rgb(image).shape[:2]


def _orientation(im) -> int:
    """The EXIF orientation (1 to 8; 1 is upright) of an opened file, read from its header.

    A PNG's ``eXIf`` chunk counts only where it precedes the image data (reading one
    after it would decode the pixels); a damaged EXIF block or an unknown value counts
    as upright rather than making a readable image unreadable.
    """
    if im.format == "PNG" and "exif" not in im.info:
        return 1
    try:
        value = im.getexif().get(0x0112, 1)
    except Exception:  # Pillow raises many kinds for malformed EXIF
        return 1
    return value if value in range(1, 9) else 1


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


def image_digest(image: np.ndarray) -> str:
    """Digest of an RGB array's shape and pixels."""
    image = np.ascontiguousarray(image)
    digest = hashlib.blake2b(str((image.shape, image.dtype.str)).encode(), digest_size=20)
    digest.update(memoryview(image).cast("B"))
    return digest.hexdigest()


def mean_abs_pixel_error(original, other, *, names=("original", "reconstruction")) -> float:
    """Mean absolute difference (0-255 scale) of two images of the same shape.

    ``names`` say how error messages refer to the two images.
    """
    a = as_rgb(original, name=names[0]).astype(np.float64)
    b = as_rgb(other, name=names[1]).astype(np.float64)
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} has shape {a.shape} but {names[1]} {b.shape}.")
    return float(np.abs(a - b).mean())
