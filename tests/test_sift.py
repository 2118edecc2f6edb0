"""DenseSIFT: agreement with raw cyvlfeat calls, geometry, inputs, errors, sklearn API."""

import pickle

import numpy as np
import pytest
import scipy.io
from cyvlfeat.sift import dsift, sift
from numpy.testing import assert_allclose, assert_array_equal
from PIL import Image
from scipy.ndimage import gaussian_filter
from skimage import data
from skimage.color import rgb2gray
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, GroupKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.svm import LinearSVC
from sklearn.utils._param_validation import InvalidParameterError

from skcorr import DenseSIFT
from skcorr._image import read_image
from skcorr.features import keypoint_samples


@pytest.fixture(scope="module")
def astronaut():
    """A real 256x256 RGB photograph (skimage's astronaut, subsampled)."""
    return np.ascontiguousarray(data.astronaut()[::2, ::2])


@pytest.fixture(scope="module")
def texture():
    """A large smooth random RGB texture to crop shifted windows from."""
    rng = np.random.default_rng(1)
    noise = gaussian_filter(rng.random((260, 300, 3)), sigma=(2.5, 2.5, 0))
    noise = (noise - noise.min()) / (noise.max() - noise.min())
    return np.round(noise * 255).astype(np.uint8)


def _grey(image):
    return np.ascontiguousarray(rgb2gray(image).astype(np.float32))


def _raw_sift(grey, points, radius, first_octave=0):
    """vl_sift's own upright descriptors (float, x512) at (x, y) points, in input order."""
    frames = np.array([[y, x, radius / 6.0, 0.0] for x, y in points], dtype=np.float32)
    out, desc = sift(grey, frames=frames.copy(), first_octave=first_octave,
                     compute_descriptor=True, float_descriptors=True)
    index = [int(np.flatnonzero((out[:, 0] == f[0]) & (out[:, 1] == f[1]))[0]) for f in frames]
    return desc[index]


def _unit(a):
    return a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)


def _cosine(a, b):
    return np.sum(_unit(a) * _unit(b), axis=-1)


INTERIOR = np.array([[100.3, 120.7], [50.0, 60.0], [180.0, 90.5], [128.0, 128.0],
                     [70.6, 170.2]])


# -- (1) keypoint mode = vl_sift ---------------------------------------------------------
@pytest.mark.parametrize(("radius", "first_octave"), [(20, 0), (8, -1)])
def test_keypoint_descriptor_equals_raw_vl_sift(astronaut, radius, first_octave):
    X, _, _ = keypoint_samples([astronaut], INTERIOR[None])
    raw = _raw_sift(_grey(astronaut), INTERIOR, radius, first_octave)
    ext = DenseSIFT(radius=radius, normalize=False).fit(X)
    assert ext.first_octaves_ == (first_octave,)
    assert_array_equal(ext.transform(X), raw)
    assert_allclose(DenseSIFT(radius=radius).fit(X).transform(X), _unit(raw), atol=1e-6)


def test_several_radii_concatenate_in_order(astronaut):
    X, _, _ = keypoint_samples([astronaut], INTERIOR[None])
    grey = _grey(astronaut)
    raw = np.concatenate([_raw_sift(grey, INTERIOR, 8, -1), _raw_sift(grey, INTERIOR, 20, 0)],
                         axis=1)
    ext = DenseSIFT(radius=[8, 20], normalize=False).fit(X)
    assert ext.n_features_out_ == 256
    assert_array_equal(ext.transform(X), raw)
    unit = DenseSIFT(radius=[8, 20]).fit(X).transform(X)
    assert_allclose(np.linalg.norm(unit, axis=1), 1.0, rtol=1e-5)
    assert_allclose(unit[:, :128] * np.sqrt(2), _unit(raw[:, :128]), atol=1e-6)


def test_keypoint_rows_keep_their_order(astronaut):
    """vl_sift reorders frames by scale; every row must still get its own descriptor."""
    rng = np.random.default_rng(0)
    points = rng.uniform(10, 245, size=(40, 2))
    points[7] = points[3]  # a duplicate
    X, _, _ = keypoint_samples([astronaut], points[None])
    ext = DenseSIFT(radius=[20, 8, 12]).fit(X)
    full = ext.transform(X)
    perm = rng.permutation(len(X))
    assert_array_equal(ext.transform(X[perm]), full[perm])
    assert_array_equal(full[7], full[3])
    single = np.stack([ext.transform(X[i:i + 1])[0] for i in (0, 5, 39)])
    assert_array_equal(single, full[[0, 5, 39]])


@pytest.mark.parametrize("radius", [20, 8, [8, 40]])
def test_border_keypoints_see_the_replicated_border(astronaut, radius):
    """On the border, the descriptor is that of the image extended by replicating its
    border pixels (vl_sift alone would return a stale buffer in the last row/column)."""
    h, w = astronaut.shape[:2]
    border = np.array([[w - 0.5, 100.0], [100.0, h - 1.0], [w - 1.0, h - 0.5], [-0.5, -0.5],
                       [3.0, 250.0]])
    points = np.concatenate([INTERIOR[:1], border])
    margin = 80
    extended = np.pad(astronaut, ((margin, margin), (margin, margin), (0, 0)), mode="edge")
    X, _, _ = keypoint_samples([astronaut], points[None])
    X_ext, _, _ = keypoint_samples([extended], (points + margin)[None])
    ext = DenseSIFT(radius=radius).fit()
    out = ext.transform(X)
    assert_allclose(out, ext.transform(X_ext), atol=1e-4)
    assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    assert np.all(_cosine(out[1:], out[0]) < 0.9)


# -- (2) dense mode = vl_dsift -----------------------------------------------------------
@pytest.mark.parametrize("fast", [True, False])
def test_dense_equals_raw_vl_dsift(astronaut, fast):
    image = astronaut[:200]  # not square, to tell rows from columns
    frames, raw = dsift(_grey(image), step=8, size=8, fast=fast, float_descriptors=True)
    fmap = DenseSIFT(mode="dense", fast=fast, smoothing=False, normalize=False).fit().transform(
        [image])[0]
    assert fmap.image_shape == (200, 256)
    assert fmap.rf_size == 32
    assert_array_equal(fmap.ys, np.unique(frames[:, 0]))
    assert_array_equal(fmap.xs, np.unique(frames[:, 1]))
    assert fmap.xs[0] == fmap.ys[0] == 12.0  # 1.5 * bin_size from pixel centre 0
    assert fmap.features.shape == (len(fmap.ys), len(fmap.xs), 128)
    for k in [0, 1, 50, len(frames) - 1]:
        y, x = frames[k]
        i, j = np.flatnonzero(fmap.ys == y)[0], np.flatnonzero(fmap.xs == x)[0]
        assert_array_equal(fmap.features[i, j], raw[k])
    unit = DenseSIFT(mode="dense", fast=fast, smoothing=False).fit().transform([image])[0]
    assert_allclose(unit.features.reshape(-1, 128),
                    _unit(fmap.features.reshape(-1, 128)), atol=1e-6)


def test_dense_smoothing_is_the_documented_gaussian(astronaut):
    bin_size = 6
    sigma = np.sqrt((bin_size / 3) ** 2 - 0.25)
    smoothed = gaussian_filter(_grey(astronaut), sigma, mode="nearest", truncate=4.0)
    frames, raw = dsift(smoothed, step=5, size=bin_size, fast=True, float_descriptors=True)
    fmap = DenseSIFT(mode="dense", step=5, bin_size=bin_size, normalize=False).fit().transform(
        [astronaut])[0]
    assert_allclose(fmap.features.reshape(-1, 128), raw, atol=1e-3)
    assert_array_equal(fmap.centers()[:, ::-1], frames)


def test_global_is_the_mean_of_the_dense_grid(astronaut):
    images = [astronaut, astronaut[:100, :150]]
    out = DenseSIFT(mode="global").fit().transform(images)
    assert out.shape == (2, 128) and out.dtype == np.float32
    dense = DenseSIFT(mode="dense").fit().transform(images)
    for row, fmap in zip(out, dense, strict=True):
        assert_allclose(row, fmap.features.mean(axis=(0, 1)), rtol=1e-6)


# -- (3) keypoint mode and dense mode agree ------------------------------------------------
def test_keypoint_and_dense_agree_at_grid_centres(astronaut):
    """radius = 2 * bin_size covers the same 4x4 bins. With the documented pre-smoothing and
    the Gaussian window (fast=False) dsift reproduces vl_sift up to vl_sift's quantised scale
    levels; fast=True (flat window) only lowers the agreement a little."""
    fmap = DenseSIFT(mode="dense", bin_size=8, fast=False).fit().transform([astronaut])[0]
    inner = (slice(2, -2), slice(2, -2))  # windows clear of the border
    centres = np.stack(np.meshgrid(fmap.xs[inner[1]], fmap.ys[inner[0]]), -1).reshape(-1, 2)
    dense = fmap.features[inner].reshape(-1, 128)
    X, _, _ = keypoint_samples([astronaut], centres[None])
    at_points = DenseSIFT(radius=16).fit(X).transform(X)
    cos = _cosine(at_points, dense)
    assert np.median(cos) > 0.99 and cos.mean() > 0.97
    assert _cosine(at_points, np.roll(dense, 7, axis=0)).mean() < 0.6
    fast = DenseSIFT(mode="dense", bin_size=8).fit().transform([astronaut])[0]
    assert _cosine(at_points, fast.features[inner].reshape(-1, 128)).mean() > 0.95


# -- (4) translation covariance -------------------------------------------------------------
@pytest.mark.parametrize("radius", [20, 8, 40])
def test_keypoint_descriptor_is_translation_covariant(texture, radius):
    dx, dy = (6, 4) if radius == 40 else (7, 5)  # even shifts keep octave 1's pixel grid
    a = texture[20:220, 30:270]
    b = texture[20 - dy:220 - dy, 30 - dx:270 - dx]  # content of a moved by (+dx, +dy)
    points = np.array([[120.0, 100.0], [90.4, 110.6], [150.0, 80.0]])
    Xa, _, _ = keypoint_samples([a], points[None])
    Xb, _, _ = keypoint_samples([b], (points + [dx, dy])[None])
    ext = DenseSIFT(radius=radius).fit()
    assert_allclose(ext.transform(Xb), ext.transform(Xa), atol=1e-5)


def test_dense_grid_is_translation_covariant(texture):
    a = texture[40:200, 40:240]
    b = texture[24:184, 32:232]  # content moved by (+8, +16): one and two grid steps
    ext = DenseSIFT(mode="dense").fit()
    fa, fb = ext.transform([a, b])
    assert_array_equal(fb.xs[1:] - 8, fa.xs[:-1])
    assert_allclose(fb.features[4:-2, 3:-2], fa.features[2:-4, 2:-3], atol=1e-5)


# -- (5) image_size keeps coordinates in original pixels -----------------------------------
def test_image_size_keeps_original_coordinates(astronaut):
    small = astronaut[:192]  # 256 wide x 192 high
    big = np.asarray(Image.fromarray(small).resize((512, 384), Image.BILINEAR))
    ref = DenseSIFT(mode="dense").fit().transform([small])[0]
    fmap = DenseSIFT(mode="dense", image_size=256).fit().transform([big])[0]
    assert fmap.image_shape == (384, 512)
    assert_allclose(fmap.xs, (ref.xs + 0.5) * 2 - 0.5)
    assert_allclose(fmap.ys, (ref.ys + 0.5) * 2 - 0.5)
    assert fmap.rf_size == 64
    assert (ref.bin_size, fmap.bin_size) == (8.0, 16.0)  # bins in pixels of the original
    # Keypoint descriptors are computed at the point, not read off a grid cell.
    assert not DenseSIFT().snaps_to_grid and not DenseSIFT(mode="dense").snaps_to_grid
    assert 0 < fmap.xs[0] and fmap.xs[-1] < 512 and fmap.ys[-1] < 384
    assert np.median(_cosine(fmap.features, ref.features)) > 0.9

    points = np.array([[100.0, 80.0], [60.5, 120.0], [200.0, 50.0]])
    Xs, _, _ = keypoint_samples([small], points[None])
    Xb, _, _ = keypoint_samples([big], ((points + 0.5) * 2 - 0.5)[None])
    at_small = DenseSIFT().fit().transform(Xs)
    at_big = DenseSIFT(image_size=256).fit().transform(Xb)
    assert np.all(_cosine(at_big, at_small) > 0.9)
    assert np.all(_cosine(at_big, np.roll(at_small, 1, axis=0)) < 0.8)


@pytest.mark.parametrize("axis", [1, 2])
def test_image_size_keypoints_land_on_the_dense_centres(astronaut, axis):
    """Keypoint descriptors of a resized image agree best with its dense grid exactly at
    the grid's centres (in original pixels), not half a pixel to either side."""
    big = np.asarray(Image.fromarray(astronaut[:192]).resize((512, 384), Image.BILINEAR))
    fmap = DenseSIFT(mode="dense", image_size=256, fast=False).fit().transform([big])[0]
    inner = (slice(2, -2), slice(2, -2))
    centres = np.stack(np.meshgrid(fmap.xs[inner[1]], fmap.ys[inner[0]]), -1).reshape(-1, 2)
    dense = fmap.features[inner].reshape(-1, 128)
    X, _, _ = keypoint_samples([big], centres[None])
    ext = DenseSIFT(radius=16, image_size=256).fit()
    agreement = {}
    for offset in (-0.5, 0.0, 0.5):
        moved = X.copy()
        moved[:, axis] = moved[:, axis].astype(float) + offset
        agreement[offset] = _cosine(ext.transform(moved), dense).mean()
    assert agreement[0.0] > max(agreement[-0.5], agreement[0.5])
    assert agreement[0.0] > 0.999


# -- (6) grey and RGBA inputs ---------------------------------------------------------------
def test_grey_rgba_and_float_inputs_follow_the_image_rule(astronaut):
    grey = (rgb2gray(astronaut) * 255).round().astype(np.uint8)
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 128, np.uint8)])
    on_white = np.round(astronaut * (128 / 255) + 255 * (1 - 128 / 255)).astype(np.uint8)
    ext = DenseSIFT(mode="dense").fit()

    def dense(image):
        return ext.transform([image])[0].features

    assert_array_equal(dense(grey), dense(np.dstack([grey] * 3)))
    assert_array_equal(dense(grey[:, :, None]), dense(grey))
    assert_array_equal(dense(rgba), dense(on_white))
    assert_array_equal(dense(astronaut / 255.0), dense(astronaut))
    points = np.array([[40.0, 50.0], [200.0, 180.0]])
    for image, same in [(grey, np.dstack([grey] * 3)), (rgba, on_white)]:
        X1, _, _ = keypoint_samples([image], points[None])
        X2, _, _ = keypoint_samples([same], points[None])
        assert_array_equal(DenseSIFT().fit().transform(X1), DenseSIFT().fit().transform(X2))


# -- errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("params", "match"), [
    ({"radius": 0}, "radius"),
    ({"radius": -5.0}, "radius"),
    ({"radius": [20, 0]}, "radius must be a positive"),
    ({"radius": [20, float("nan")]}, "radius must be a positive"),
    ({"radius": []}, "empty"),
    ({"step": 0}, "step"),
    ({"bin_size": 0}, "bin_size"),
    ({"bin_size": 2.5}, "bin_size"),
    ({"mode": "sparse"}, "mode"),
])
def test_bad_parameters(params, match):
    with pytest.raises((ValueError, InvalidParameterError), match=match):
        DenseSIFT(**params).fit()


def test_bad_inputs(astronaut):
    ext = DenseSIFT().fit()
    X, _, _ = keypoint_samples([astronaut], [[[10.0, 10.0], [20.0, 30.0]]])
    with pytest.raises(NotFittedError):
        DenseSIFT().transform(X)
    outside = X.copy()
    outside[1, 1] = 256.0
    with pytest.raises(ValueError, match=r"outside image of size 256x256.*Drop it or clip"):
        ext.transform(outside)
    nan = X.copy()
    nan[0, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite coordinate"):
        ext.transform(nan)
    with pytest.raises(ValueError, match=r"shape \(n_samples, 3\)"):
        ext.transform(X[:, :2])
    with pytest.raises(ValueError, match="No keypoint samples"):
        ext.transform(X[:0])
    with pytest.raises(ValueError, match="images is empty"):
        DenseSIFT(mode="dense").fit().transform([])
    with pytest.raises(ValueError, match=r"24x40 px.*at least 25 px \(3 \* bin_size \+ 1\)"):
        DenseSIFT(mode="dense").fit().transform([astronaut[:40, :24]])
    with pytest.raises(ValueError, match="resized to 25x"):
        DenseSIFT(mode="dense", bin_size=9, image_size=25).fit().transform([astronaut])
    assert DenseSIFT(mode="dense").fit().transform([astronaut[:25, :25]])[0].grid_shape == (1, 1)


# -- sklearn API ----------------------------------------------------------------------------
def _corner_images(n_images, seed=0):
    """Bright squares on noise: type 0 = top-left corner, type 1 = bottom-right corner."""
    rng = np.random.default_rng(seed)
    images, keypoints = [], []
    for _ in range(n_images):
        image = rng.integers(0, 40, (80, 80, 3)).astype(np.uint8)
        x0, y0 = rng.integers(10, 30, 2)
        side = int(rng.integers(25, 35))
        image[y0:y0 + side, x0:x0 + side] = 220
        images.append(image)
        keypoints.append([[x0, y0], [x0 + side - 1, y0 + side - 1]])
    return images, np.asarray(keypoints, dtype=float)


def test_pipeline_cross_validation_and_grid_search():
    images, keypoints = _corner_images(6)
    X, y, groups = keypoint_samples(images, keypoints)
    clf = make_pipeline(DenseSIFT(radius=12), LinearSVC())
    scores = cross_val_score(clf, X, y, groups=groups, cv=GroupKFold(n_splits=3))
    assert scores.mean() == 1.0
    search = GridSearchCV(clf, {"densesift__radius": [8, [8, 16]]}, cv=GroupKFold(n_splits=3))
    search.fit(X, y, groups=groups)
    assert search.best_score_ == 1.0
    assert search.best_estimator_[0].n_features_out_ in (128, 256)


def test_clone_pickle_and_params(astronaut):
    X, _, _ = keypoint_samples([astronaut], INTERIOR[None])
    ext = DenseSIFT(radius=[8, 20], image_size=200, dtype="float64").fit(X)
    assert ext.n_features_out_ == 256
    out = ext.transform(X)
    assert out.dtype == np.float64 and out.shape == (5, 256)
    assert_array_equal(pickle.loads(pickle.dumps(ext)).transform(X), out)
    copy = clone(ext)
    assert copy.get_params() == ext.get_params()
    assert not hasattr(copy, "radii_")
    assert DenseSIFT(mode="dense").fit().n_features_out_ == 128
    dense = DenseSIFT(mode="dense").fit()
    assert dense.extract_at(X).shape == (5, 128)  # keypoint descriptors whatever the mode


# -- (7) real data --------------------------------------------------------------------------
@pytest.mark.realdata
@pytest.mark.parametrize("category", ["car(S)", "winebottle(M)"])
def test_pf_willow_corresponding_keypoints_are_closer(pf_willow_dir, category):
    mats = sorted((pf_willow_dir / category).glob("*.mat"))[:5]
    images = [read_image(m.with_suffix(".png")) for m in mats]
    # pts_coord is 2 x 10, rows x and y, 1-based (MATLAB) -> 0-based.
    keypoints = np.stack([scipy.io.loadmat(m)["pts_coord"].T - 1.0 for m in mats])
    X, _, _ = keypoint_samples(images, keypoints)
    descriptors = DenseSIFT(radius=20).fit().transform(X).reshape(len(images), 10, 128)
    matched, other = [], []
    for a in range(len(images)):
        for b in range(a + 1, len(images)):
            dist = np.linalg.norm(descriptors[a][:, None] - descriptors[b][None], axis=2)
            matched.append(np.diag(dist).mean())
            other.append(dist[~np.eye(10, dtype=bool)].mean())
    assert np.mean(matched) < 0.9 * np.mean(other)
    assert np.mean(np.array(matched) < np.array(other)) >= 0.8
