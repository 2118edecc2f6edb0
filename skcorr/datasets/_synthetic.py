"""Image pairs with exact ground-truth correspondences, from bundled photographs.

Each pair is a source image and a target image made by warping it with a random
smooth deformation. The deformation is defined as a *backward* map ``B`` from target
pixel coordinates to source coordinates (a similarity close to the identity plus a
smooth displacement field interpolated from a coarse random grid), so the target is
sampled as ``target(q) = source(B(q))``. Ground truth is exact by construction: target
keypoints ``q`` are drawn first and their source keypoints are ``B(q)``.
"""

from __future__ import annotations

import numbers
from itertools import cycle, islice

import numpy as np
from scipy.ndimage import map_coordinates
from sklearn.utils import check_random_state

from .._geometry import rescale_points
from .._image import as_rgb, check_images
from ._base import dataset_bunch

__all__ = ["load_sample_pairs", "make_affine_category", "make_warped_pairs"]

#: Photographs shipped with scikit-image (``skimage.data``), used by default.
SAMPLE_PHOTOS = ("chelsea", "astronaut", "coffee", "rocket")
_GRID = 5  # nodes per side of the random displacement grid

_DESCR = """\
Synthetic warped pairs: each source image is centre-cropped to a square and resized
to image_size; its target is the source warped by a random smooth deformation
(similarity near the identity plus a smooth random displacement field). Images are
interleaved (source, target, source, target, ...) and ``pairs`` lists (source,
target) indices. Keypoints are exact correspondences: the target keypoint q and the
source keypoint B(q), where B maps target to source coordinates. ``boxes`` are the
whole images; ``labels`` index the source photographs in ``class_names``.
"""


def _check_int(value, name: str, low: int) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")
    return int(value)


def _square(image, size: int) -> np.ndarray:
    """Centre-crop ``image`` to a square and resize it to ``size x size`` (uint8 RGB)."""
    from skimage.transform import resize

    image = as_rgb(image)
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = image[top:top + side, left:left + side]
    if side == size:
        return square.copy()
    resized = resize(square, (size, size), order=1, preserve_range=True,
                     anti_aliasing=side > size)  # fmt: skip
    return np.clip(np.round(resized), 0, 255).astype(np.uint8)


def _random_backward_map(size: int, deformation: float, rng: np.random.RandomState):
    """A random smooth map from target ``(x, y)`` points ``(N, 2)`` to source points."""
    angle = rng.uniform(-0.15, 0.15)
    scale = rng.uniform(0.9, 1.1)
    shift = rng.uniform(-0.03, 0.03, size=2) * size
    linear = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    grid = rng.normal(0.0, deformation * size, size=(2, _GRID, _GRID))
    centre = (size - 1) / 2.0

    def backward(points: np.ndarray) -> np.ndarray:
        points = np.asarray(points, dtype=np.float64)
        nodes = points / (size - 1) * (_GRID - 1)  # (x, y) in grid units
        displacement = np.stack(
            [map_coordinates(g, [nodes[:, 1], nodes[:, 0]], order=3, mode="nearest")
             for g in grid], axis=1,
        )  # fmt: skip
        return centre + (points - centre) @ linear.T + shift + displacement

    return backward


def _warp(source: np.ndarray, backward) -> np.ndarray:
    """The target image: ``target(q) = source(B(q))``, bilinear, mirrored at the border."""
    size = source.shape[0]
    rows, cols = np.mgrid[0:size, 0:size]
    xy = backward(np.column_stack([cols.ravel(), rows.ravel()]))
    coords = [xy[:, 1], xy[:, 0]]
    channels = [map_coordinates(source[..., c].astype(np.float64), coords, order=1,
                                mode="mirror") for c in range(source.shape[2])]  # fmt: skip
    target = np.round(np.stack(channels, axis=1)).reshape(source.shape)
    return np.clip(target, 0, 255).astype(np.uint8)


def _correspondences(backward, size: int, n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """``n`` target points and their source points, both away from the image border."""
    margin = 0.1 * size
    sources, targets = [], []
    for _ in range(100):
        target = rng.uniform(margin, size - 1 - margin, size=(4 * n, 2))
        source = backward(target)
        inside = ((source >= margin / 2) & (source <= size - 1 - margin / 2)).all(axis=1)
        sources.extend(source[inside])
        targets.extend(target[inside])
        if len(sources) >= n:
            return np.array(sources[:n]), np.array(targets[:n])
    raise ValueError("the deformation moves too many points out of the image; lower it.")


def make_warped_pairs(n_pairs=4, *, image_size=240, n_keypoints=10, deformation=0.04,
                      images=None, random_state=None):  # fmt: skip
    """Make image pairs related by random smooth warps, with exact correspondences.

    Parameters
    ----------
    n_pairs : int, default=4
        Number of pairs.
    image_size : int, default=240
        Side of the square images.
    n_keypoints : int, default=10
        Keypoints per pair, drawn uniformly away from the border.
    deformation : float, default=0.04
        Standard deviation of the random displacement field, as a fraction of
        ``image_size`` (on top of a random rotation of up to 0.15 rad, scaling by
        0.9-1.1 and shift of up to 3%). 0 leaves only the similarity.
    images : list of images, default=None
        Source images (arrays or paths), used in turn. ``None``: the photographs
        ``chelsea``, ``astronaut``, ``coffee`` and ``rocket`` bundled with
        scikit-image (:mod:`skimage.data`; nothing is downloaded).
        Each is centre-cropped to a square and resized to ``image_size``.
    random_state : int, RandomState instance or None, default=None
        Seed of the warps and keypoints; an int makes the result reproducible.

    Returns
    -------
    data : sklearn.utils.Bunch
        ``images`` (list of ``2 * n_pairs`` uint8 arrays: source, target, source, ...),
        ``keypoints`` ``(2 * n_pairs, n_keypoints, 2)``, ``keypoint_names``, ``boxes``
        (whole images), ``pairs`` ``[[0, 1], [2, 3], ...]``, ``labels`` and
        ``class_names`` (the source photograph), and ``DESCR``.

    Examples
    --------
    >>> from skcorr.datasets import make_warped_pairs
    >>> data = make_warped_pairs(2, image_size=64, n_keypoints=5, random_state=0)
    >>> len(data.images), data.keypoints.shape, data.pairs.tolist()
    (4, (4, 5, 2), [[0, 1], [2, 3]])
    """
    n_pairs = _check_int(n_pairs, "n_pairs", 1)
    size = _check_int(image_size, "image_size", 16)
    n_keypoints = _check_int(n_keypoints, "n_keypoints", 1)
    if not isinstance(deformation, numbers.Real) or not 0 <= deformation <= 0.1:
        raise ValueError(f"deformation must be a number in [0, 0.1], got {deformation!r}.")
    if images is None:
        import skimage.data

        names = list(SAMPLE_PHOTOS)
        images = [getattr(skimage.data, name)() for name in names]
    else:
        images = check_images(images)
        names = [f"image{i}" for i in range(len(images))]
    rng = check_random_state(random_state)

    squares = {}
    out_images, keypoints, labels = [], [], []
    for label in islice(cycle(range(len(images))), n_pairs):
        if label not in squares:
            squares[label] = _square(images[label], size)
        backward = _random_backward_map(size, float(deformation), rng)
        source_points, target_points = _correspondences(backward, size, n_keypoints, rng)
        out_images += [squares[label], _warp(squares[label], backward)]
        keypoints += [source_points, target_points]
        labels += [label, label]
    n = 2 * n_pairs
    return dataset_bunch(
        images=out_images,
        keypoints=np.stack(keypoints),
        keypoint_names=[f"point{k}" for k in range(n_keypoints)],
        boxes=np.tile([0.0, 0.0, size, size], (n, 1)),
        descr=_DESCR,
        pairs=np.arange(n).reshape(-1, 2),
        labels=np.array(labels, dtype=np.intp),
        class_names=names,
    )


def load_sample_pairs():
    """Four fixed warped pairs of the photographs bundled with scikit-image.

    The same as ``make_warped_pairs(4, random_state=0)``: 240 x 240 images, 10 exact
    correspondences per pair, nothing downloaded. Use it for examples and smoke tests.

    Returns
    -------
    data : sklearn.utils.Bunch
        See :func:`make_warped_pairs`.

    Examples
    --------
    >>> from skcorr.datasets import load_sample_pairs
    >>> load_sample_pairs().class_names
    ['chelsea', 'astronaut', 'coffee', 'rocket']
    """
    return make_warped_pairs(4, random_state=0)


#: Six parts of the cat in scikit-image's ``chelsea`` photograph (451 x 300 pixels).
CHELSEA_PARTS = {
    "left eye": (172.0, 115.0),
    "right eye": (313.0, 135.0),
    "nose": (262.0, 237.0),
    "forehead": (240.0, 50.0),
    "left cheek": (120.0, 200.0),
    "right cheek": (350.0, 195.0),
}


def make_affine_category(n_images=12, *, height=160, random_state=None):
    """A toy object category: random affine warps of the cat in ``chelsea``.

    Unlike :func:`make_warped_pairs`, whose keypoints are random points, every image
    here has the same six named parts (:data:`CHELSEA_PARTS`: eyes, nose, forehead,
    cheeks), so the images can train and test part classifiers and detectors. The
    photograph is resized to ``height`` rows, then each image is warped by a random
    affine map about the image centre (scale 0.85-1.15, rotation up to 0.25 rad, shear
    up to 0.15, shift up to 6% of the size); the parts move exactly with it.

    Parameters
    ----------
    n_images : int, default=12
    height : int, default=160
        Rows of every image (the width keeps the photograph's aspect ratio).
    random_state : int, RandomState instance or None
        Makes the warps reproducible.

    Returns
    -------
    data : sklearn.utils.Bunch
        ``images`` (list of uint8 arrays), ``keypoints`` ``(n_images, 6, 2)``,
        ``keypoint_names``, ``boxes`` (the parts' bounding box per image) and ``DESCR``.

    Examples
    --------
    >>> from skcorr.datasets import make_affine_category
    >>> cats = make_affine_category(3, height=64, random_state=0)
    >>> cats.keypoints.shape, cats.keypoint_names[2]
    ((3, 6, 2), 'nose')
    """
    from skimage import data, transform

    n_images = _check_int(n_images, "n_images", 1)
    height = _check_int(height, "height", 16)
    rng = check_random_state(random_state)
    photo = data.chelsea()
    width = round(photo.shape[1] * height / photo.shape[0])
    base = np.asarray(transform.resize(photo, (height, width), anti_aliasing=True))
    scale = np.array([width / photo.shape[1], height / photo.shape[0]])
    points = rescale_points(list(CHELSEA_PARTS.values()), scale)
    centre = np.array([width - 1, height - 1]) / 2.0
    images, keypoints = [], []
    for _ in range(n_images):
        warp = (transform.AffineTransform(translation=-centre)
                + transform.AffineTransform(scale=rng.uniform(0.85, 1.15),
                                            rotation=rng.uniform(-0.25, 0.25),
                                            shear=rng.uniform(-0.15, 0.15))
                + transform.AffineTransform(
                    translation=centre + rng.uniform(-0.06, 0.06, 2) * [width, height]))
        warped = transform.warp(base, warp.inverse, mode="edge")
        images.append(np.clip(np.rint(warped * 255), 0, 255).astype(np.uint8))
        keypoints.append(warp(points))
    keypoints = np.stack(keypoints)
    low, high = keypoints.min(axis=1), keypoints.max(axis=1)
    return dataset_bunch(
        images=images, keypoints=keypoints, keypoint_names=list(CHELSEA_PARTS),
        boxes=np.column_stack([low, high - low]),
        descr="Random affine warps of scikit-image's chelsea with six named parts.",
    )
