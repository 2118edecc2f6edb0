"""SIFT descriptors (VLFeat, through cyvlfeat) at keypoints, on a dense grid, or per image.

The paper's baseline: SIFT at the same locations as the convnet columns. Keypoint
descriptors come from ``vl_sift`` with user-given frames (upright, orientation 0); the
dense grid comes from ``vl_dsift``.

Geometry
--------
A SIFT descriptor is a 4x4 grid of spatial bins, each an 8-bin orientation histogram.

* ``radius`` (keypoint mode) is the half-side of the square covered by the 4x4 bins:
  bins of side ``radius / 2`` span ``[-radius, radius]`` around the keypoint in both
  axes (bin centres at ``±radius/4`` and ``±3 radius/4``). With VLFeat's magnification
  factor ``m = 3`` (bin side = ``m * scale``) the keypoint scale is
  ``sigma = radius / 6``. Bilinear spatial interpolation lets gradients up to
  ``1.25 * radius`` away contribute, weighted by VLFeat's Gaussian window of standard
  deviation 2 bins (= ``radius``).
* ``bin_size`` (dense mode) is the bin side of ``vl_dsift``; a dense descriptor with
  ``bin_size = b`` covers the same square as a keypoint descriptor with
  ``radius = 2 b``, and its extent (``FeatureMap.rf_size``) is ``4 b``.

Coordinates follow :mod:`skcorr._image`: ``x`` column, ``y`` row, 0-based, integer =
pixel centre. VLFeat uses the same convention (pixel ``(0, 0)`` at coordinate 0), and
cyvlfeat orders frames ``(y, x)``; the conversion happens here only.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
from scipy.ndimage import gaussian_filter
from skimage.color import rgb2gray
from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions

from .._array import l2_normalize
from .._geometry import rescale_points, resize_longer_side
from ._base import IMAGE_SIZE_CONSTRAINT, MAX_IMAGE_SIZE, FeatureMap, FeatureTransformer

__all__ = ["DenseSIFT"]

# cyvlfeat is the optional `sift` extra: skcorr imports without it, and DenseSIFT says
# how to install it when it is used.
try:
    from cyvlfeat.sift import dsift, sift
except ImportError:
    dsift = sift = None


def _require_cyvlfeat() -> None:
    if sift is None:
        raise ImportError(
            "DenseSIFT needs cyvlfeat (VLFeat's SIFT), which is not installed. Install "
            "skcorr's `sift` extra with `pip install skcorr[sift]` (or `pip install "
            "'.[sift]'` in a clone); cyvlfeat builds against VLFeat, so install VLFeat's "
            "headers first (Debian/Ubuntu: `apt-get install libvlfeat-dev`), or install "
            "cyvlfeat from conda-forge. The convnet features do not need it."
        )

# VLFeat's SIFT constants (vl_sift_new with its defaults, as cyvlfeat calls it).
_MAGNIF = 3  # bin side = magnification * keypoint scale
_LEVELS = 3  # S: levels per octave
_S_MIN = -1  # first level index of an octave
_SIGMA0 = 1.6 * 2.0 ** (1.0 / _LEVELS)  # scale of level 0 of octave 0
_N_BINS = 4  # spatial bins per side of a descriptor
_N_DIMS = 128  # 4 x 4 spatial bins x 8 orientations


class DenseSIFT(FeatureTransformer):
    """SIFT descriptors at keypoints, on a dense grid, or averaged per image.

    The SIFT baseline of the paper, computed with VLFeat through cyvlfeat, with the
    same three modes and output conventions as
    :class:`~skcorr.ConvColumnExtractor`.

    * ``"keypoints"``: one upright SIFT descriptor (orientation 0) per keypoint sample,
      centred exactly at its ``(x, y)``, from ``vl_sift`` with the frame given (no
      detection), at each radius of ``radius`` (concatenated).
    * ``"dense"``: ``vl_dsift`` on a grid of step ``step`` and bins of side
      ``bin_size`` (the paper's detection baseline: step 8, bin 8); one
      :class:`~skcorr.FeatureMap` per image whose ``xs``/``ys`` are the exact
      descriptor centres.
    * ``"global"``: the mean of the dense grid's descriptors (not re-normalised).

    :meth:`extract_at` always gives keypoint descriptors (``radius``) and
    :meth:`extract_dense` always the dense grid (``step``, ``bin_size``), whatever the
    mode.

    Images are converted to grey ``float32`` in ``[0, 1]`` after the rule of
    :mod:`skcorr._image` (grey replicated, RGBA composited onto white), by
    :func:`skimage.color.rgb2gray`: ``0.2125 R + 0.7154 G + 0.0721 B`` (Rec. 709 /
    sRGB luminance weights).

    Parameters
    ----------
    mode : {"keypoints", "dense", "global"}, default="keypoints"
        What :meth:`transform` returns: descriptors at keypoint samples (X from
        :func:`~skcorr.keypoint_samples`), a
        :class:`~skcorr.FeatureMap` per image, or one vector per image.
    radius : float or list of float, default=20
        Keypoint mode: half-side, in pixels, of the square covered by the 4x4 spatial
        bins (bin side ``radius / 2``, VLFeat keypoint scale ``radius / 6``). The paper
        uses 20 for alignment and five radii for classification; a list gives the
        concatenation of the descriptors at each radius, in the order given.
    step : int, default=8
        Dense mode: distance between neighbouring descriptor centres, in pixels.
    bin_size : int, default=8
        Dense mode: side of a spatial bin in pixels; a descriptor covers
        ``4 * bin_size`` pixels and the first centre lies ``1.5 * bin_size`` from the
        top-left pixel centre (``vl_dsift``'s geometry). Images need at least
        ``3 * bin_size + 1`` pixels on each side.
    smoothing : bool, default=True
        Dense mode: Gaussian pre-smoothing before ``vl_dsift``, as VLFeat prescribes
        for dense SIFT to match SIFT at the same scale (``vl_phow``): standard
        deviation ``sqrt((bin_size / 3) ** 2 - 1 / 4)`` (the image is assumed to carry
        a nominal blur of 0.5), border pixels replicated. ``False`` runs ``vl_dsift``
        on the raw grey image, as a plain ``dsift`` call does. Keypoint mode always
        uses ``vl_sift``'s own Gaussian scale space, which smooths the image to about
        the keypoint scale ``radius / 6`` (the nearest level of 3 per octave, at least
        about 1 pixel; see ``first_octaves_``).
    fast : bool, default=True
        Dense mode: ``vl_dsift``'s fast variant (flat instead of Gaussian spatial
        window; not strictly SIFT but much faster). ``False`` gives the Gaussian window
        of ``vl_sift``.
    normalize : bool, default=True
        VLFeat already L2-normalises each descriptor, clips it at 0.2 and renormalises;
        cyvlfeat then scales it by 512 (clipped at 255). With ``normalize=True`` each
        descriptor is divided by its L2 norm again (unit length; a descriptor of a flat
        region stays zero) and a concatenation over several radii is divided by the
        square root of their number, so that it has unit norm. ``False`` returns
        cyvlfeat's float values (``512 *`` the unit descriptor).
    image_size : int or None, default=None
        Resize each image (bilinear, on the grey image) so that its longer side is this
        many pixels (16 to 4096) before computing descriptors; ``radius``, ``step`` and
        ``bin_size`` are then in pixels of the resized image. ``None`` keeps the size.
        Coordinates in and out are always in pixels of the original image.
    dtype : {"float32", "float64"}, default="float32"
        Output dtype.
    memory : None, str or joblib.Memory, default=None
        Cache of descriptors (as ``Pipeline(memory=...)``): a folder or a
        :class:`joblib.Memory`, keyed by the image's pixels and the parameters (in
        keypoint mode also by the points asked for).
    verbose : bool, default=False
        Show a progress bar over the images on stderr while features are computed, once
        they take more than two seconds.

    Attributes
    ----------
    radii_ : tuple of float
        The radii of keypoint mode, in order.
    first_octaves_ : tuple of int
        Per radius, the first octave of the ``vl_sift`` scale space it is computed in:
        0, or -1 (image upsampled twice) for radii below about 10.8 pixels, whose scale
        lies below octave 0. Radii of different first octaves use separate scale
        spaces, so that a radius's descriptor does not depend on the other radii.
    n_features_out_ : int
        Length of a row of :meth:`transform` (``128 * len(radii_)`` in keypoint mode,
        128 otherwise).

    See Also
    --------
    ConvColumnExtractor : Convnet columns with the same three modes.

    Notes
    -----
    Keypoint descriptors see the image extended beyond its border by replicating its
    border pixels (the extension VLFeat's smoothing assumes), so that keypoints on or
    near the border get a full descriptor: ``vl_sift`` alone ignores gradients outside
    the image and, for keypoints in the last pixel row or column of an octave,
    silently returns a stale buffer. Away from the border (more than about
    ``1.25 * radius`` plus the smoothing kernel) the descriptor is exactly
    ``vl_sift``'s on the unpadded image.

    References
    ----------
    .. [1] D. G. Lowe. Distinctive Image Features from Scale-Invariant Keypoints. IJCV
       60(2), 2004. https://doi.org/10.1023/B:VISI.0000029664.99615.94
    .. [2] A. Vedaldi, B. Fulkerson. VLFeat: An Open and Portable Library of Computer
       Vision Algorithms. ACM Multimedia 2010. https://doi.org/10.1145/1873951.1874249

    Examples
    --------
    >>> import numpy as np
    >>> from skcorr import DenseSIFT, keypoint_samples
    >>> image = np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    >>> X, y, groups = keypoint_samples([image], [[[40.0, 30.0], [100.0, 50.0]]])
    >>> DenseSIFT(radius=[8, 16]).fit(X).transform(X).shape
    (2, 256)
    >>> fmap = DenseSIFT(mode="dense").fit_transform([image])[0]
    >>> fmap.features.shape, fmap.xs[:3].tolist(), fmap.ys[:3].tolist()
    ((9, 13, 128), [12.0, 20.0, 28.0], [12.0, 20.0, 28.0])
    """

    _parameter_constraints: dict = {
        **FeatureTransformer._parameter_constraints,
        "radius": [Interval(numbers.Real, 0, None, closed="neither"), list, tuple],
        "step": [Interval(numbers.Integral, 1, None, closed="left")],
        "bin_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "smoothing": ["boolean"],
        "fast": ["boolean"],
        "normalize": ["boolean"],
        "image_size": IMAGE_SIZE_CONSTRAINT,
        "dtype": [StrOptions({"float32", "float64"})],
    }

    def __init__(self, *, mode="keypoints", radius=20, step=8, bin_size=8, smoothing=True,
                 fast=True, normalize=True, image_size=None, dtype="float32", memory=None,
                 verbose=False):
        self.mode = mode
        self.radius = radius
        self.step = step
        self.bin_size = bin_size
        self.smoothing = smoothing
        self.fast = fast
        self.normalize = normalize
        self.image_size = image_size
        self.dtype = dtype
        self.memory = memory
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X=None, y=None):
        """Validate the parameters. SIFT learns nothing: ``X`` and ``y`` are not used.

        Parameters
        ----------
        X : object, default=None
            Ignored; present for API consistency.
        y : object, default=None
            Ignored; present for API consistency.

        Returns
        -------
        self : DenseSIFT
            The fitted transformer.
        """
        _require_cyvlfeat()
        self.radii_ = _check_radii(self.radius)
        self.first_octaves_ = tuple(-1 if _octave(r / (2 * _MAGNIF)) < 0 else 0
                                    for r in self.radii_)
        self.n_features_out_ = (_N_DIMS * len(self.radii_) if self.mode == "keypoints"
                                else _N_DIMS)
        return self

    def _feature_names(self) -> list[str]:
        """``"sift_r<radius>_d<i>"`` (keypoints) or ``"sift_bin<bin_size>_d<i>"`` (grid)."""
        scales = ([f"r{r:g}" for r in self.radii_] if self.mode == "keypoints"
                  else [f"bin{self.bin_size}"])
        return [f"sift_{scale}_d{i}" for scale in scales for i in range(_N_DIMS)]

    # -- image preparation ------------------------------------------------------------
    def _grey(self, image: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
        """Grey float32 in [0, 1], resized by image_size; returns it and (scale_x, scale_y)."""
        _require_cyvlfeat()  # a fitted DenseSIFT unpickled where cyvlfeat is absent
        grey = rgb2gray(image).astype(np.float32)
        if self.image_size is None:
            return np.ascontiguousarray(grey), (1.0, 1.0)
        resized, scales = resize_longer_side(grey, self.image_size)
        grey = np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)
        return np.ascontiguousarray(grey), scales

    # -- keypoint mode ----------------------------------------------------------------
    def _at_points_batch(self, images, points):
        return [self._at_points(image, p) for image, p in zip(images, points, strict=True)]

    def _at_points(self, image: np.ndarray, points: np.ndarray) -> np.ndarray:
        grey, (sx, sy) = self._grey(image)
        # Original pixel centres -> pixel centres of the (resized) grey image.
        u, v = rescale_points(points, (sx, sy)).T
        n, k = len(points), len(self.radii_)
        descriptors = np.empty((n, k, _N_DIMS), dtype=np.float32)
        # One vl_sift scale space per first octave, so that the descriptor at a radius
        # does not depend on the other radii asked for.
        for o_min in sorted(set(self.first_octaves_)):
            which = [i for i, o in enumerate(self.first_octaves_) if o == o_min]
            sigmas = np.array([self.radii_[i] for i in which]) / (2 * _MAGNIF)
            descriptors[:, which] = _sift_at(grey, u, v, sigmas, o_min)
        if self.normalize:
            descriptors = l2_normalize(descriptors) / np.sqrt(k)
        return descriptors.reshape(n, k * _N_DIMS).astype(self.dtype, copy=False)

    # -- dense mode -------------------------------------------------------------------
    def _dense(self, image: np.ndarray) -> FeatureMap:
        grey, (sx, sy) = self._grey(image)
        height, width = grey.shape
        need = 3 * self.bin_size + 1
        if height < need or width < need:
            resized = f", resized to {width}x{height}" if self.image_size else ""
            raise ValueError(
                f"An image of {image.shape[1]}x{image.shape[0]} px (width x height{resized}) "
                f"is smaller than one dense SIFT descriptor: bin_size={self.bin_size} needs "
                f"at least {need} px (3 * bin_size + 1) on each side. Use larger images, a "
                "larger image_size, or a smaller bin_size."
            )
        if self.smoothing:
            sigma2 = (self.bin_size / _MAGNIF) ** 2 - 0.25
            if sigma2 > 0:
                grey = gaussian_filter(grey, math.sqrt(sigma2), mode="nearest", truncate=4.0)
        frames, descriptors = dsift(grey, step=self.step, size=self.bin_size, fast=self.fast,
                                    float_descriptors=True)
        # frames are (y, x) centres; sort row-major (y, then x) and check the grid.
        ys, xs = np.unique(frames[:, 0]), np.unique(frames[:, 1])
        order = np.lexsort((frames[:, 1], frames[:, 0]))
        grid_y, grid_x = np.meshgrid(ys, xs, indexing="ij")
        if len(frames) != ys.size * xs.size or not (
                np.array_equal(frames[order, 0], grid_y.ravel())
                and np.array_equal(frames[order, 1], grid_x.ravel())):
            raise RuntimeError("vl_dsift returned frames that do not form a regular grid.")
        features = descriptors[order].reshape(ys.size, xs.size, _N_DIMS)
        if self.normalize:
            features = l2_normalize(features)
        return FeatureMap(
            features=features.astype(self.dtype, copy=False),
            xs=rescale_points(xs, sx, inverse=True),
            ys=rescale_points(ys, sy, inverse=True),
            rf_size=float(_N_BINS * self.bin_size / min(sx, sy)),
            image_shape=tuple(image.shape[:2]),
            bin_size=float(self.bin_size / min(sx, sy)),
        )


def _sift_at(grey: np.ndarray, u: np.ndarray, v: np.ndarray, sigmas: np.ndarray,
             o_min: int) -> np.ndarray:
    """Upright vl_sift descriptors (n, len(sigmas), 128) at pixel centres (u, v) of grey."""
    height, width = grey.shape
    # vl_sift_new's default number of octaves for the unpadded image, cut after the
    # coarsest octave the frames need (later octaves would be computed but never used).
    n_octaves = max(int(math.floor(math.log2(min(width, height)))) - o_min - 3, 1)
    octaves = [min(max(_octave(s), o_min), o_min + n_octaves - 1) for s in sigmas]
    n_octaves = max(octaves) - o_min + 1
    # Replicate the border pixels far enough to hold the whole support of an upright
    # descriptor (1.25 radius, plus the gradient's pixel) of any in-image point, and at
    # least enough to keep such points inside vl_sift's bounds in every octave used. A
    # multiple of the coarsest subsampling factor keeps the octaves' pixel grids aligned
    # with those of the unpadded image.
    factor = 2 ** max(max(octaves), 0)
    support = 1.25 * 2 * _MAGNIF * float(np.max(sigmas)) + 2
    pad = factor * max(math.ceil(support / factor), 4)
    padded = np.pad(grey, pad, mode="edge")
    n, k = len(u), len(sigmas)
    frames = np.empty((n * k, 4), dtype=np.float32)
    frames[:, 0] = np.repeat(v + pad, k)
    frames[:, 1] = np.repeat(u + pad, k)
    frames[:, 2] = np.tile(sigmas, n)
    frames[:, 3] = 0.0
    # cyvlfeat sorts the frames in place by scale (not stably) and returns them in that
    # order: pass a copy and match its output back by (y, x, scale).
    out_frames, descriptors = sift(
        padded, frames=frames.copy(), n_octaves=n_octaves, first_octave=o_min,
        compute_descriptor=True, float_descriptors=True,
    )
    return _match_frames(frames, out_frames, descriptors).reshape(n, k, _N_DIMS)


def _octave(sigma: float) -> int:
    """The octave ``vl_sift_keypoint_init`` assigns to scale ``sigma`` (before clamping)."""
    phi = math.log2(sigma / _SIGMA0)
    return int(math.floor(phi - (_S_MIN + 0.5) / _LEVELS))


def _check_radii(radius) -> tuple[float, ...]:
    values = [radius] if isinstance(radius, numbers.Real) else list(radius)
    if not values:
        raise ValueError("radius is an empty list; give at least one radius in pixels.")
    for value in values:
        if (isinstance(value, bool) or not isinstance(value, numbers.Real)
                or not math.isfinite(value) or not 0 < value <= MAX_IMAGE_SIZE):
            raise ValueError(
                f"radius must be a positive number of pixels up to {MAX_IMAGE_SIZE} or a list "
                f"of them, got {value!r} in radius={radius!r}."
            )
    return tuple(float(value) for value in values)


def _match_frames(frames: np.ndarray, out_frames: np.ndarray,
                  descriptors: np.ndarray) -> np.ndarray:
    """Descriptors in the order of ``frames``, given vl_sift's reordered output."""
    if len(out_frames) != len(frames):
        raise RuntimeError(
            f"vl_sift returned {len(out_frames)} descriptors for {len(frames)} frames."
        )
    key_in = np.lexsort((frames[:, 1], frames[:, 0], frames[:, 2]))
    key_out = np.lexsort((out_frames[:, 1], out_frames[:, 0], out_frames[:, 2]))
    if not np.array_equal(frames[key_in, :3], out_frames[key_out, :3]):
        raise RuntimeError("vl_sift returned frames other than those it was given.")
    result = np.empty_like(descriptors)
    result[key_in] = descriptors[key_out]
    return result
