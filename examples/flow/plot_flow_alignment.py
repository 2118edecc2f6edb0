"""
==============================================
Flow alignment, keypoint transfer and PCK
==============================================

Study 2 of the paper aligns two images with an MRF on the grid of receptive-field
centres of a layer (SIFT flow with convnet columns in place of SIFT):

.. math::

    E(w) = \\sum_p \\|f_s(p) - f_t(p + w(p))\\|^2
           + \\lambda \\sum_{(p, q)} \\|w(p) - w(q)\\|^2

where ``w(p)`` is the displacement of grid node ``p`` in grid steps and the second sum
runs over 4-neighbour edges. Min-sum belief propagation finds ``w``; the flow then
warps the target into the source frame and transfers keypoints from source to target.

This example aligns a warped pair of scikit-image photographs, whose exact
correspondences are known, with convnet columns and with dense SIFT, scores the
transferred keypoints by PCK, and then tunes ``lam`` of a
:class:`~skcorr.FlowAligner` with :class:`~sklearn.model_selection.GridSearchCV`
and :func:`~skcorr.metrics.pck_scorer`.
"""

# %%
# A warped pair with exact correspondences
# ----------------------------------------
# :func:`~skcorr.datasets.load_sample_pairs` warps four photographs bundled with
# scikit-image by random smooth deformations; keypoints ``q`` of the target and their
# sources ``B(q)`` are exact by construction. Images are interleaved (source, target,
# ...) and ``pairs`` lists the (source, target) indices.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import GridSearchCV, KFold

from skcorr import ConvColumnExtractor, DenseSIFT, FlowAligner
from skcorr.datasets import load_sample_pairs, make_affine_category
from skcorr.flow import align
from skcorr.metrics import pck_score, pck_scorer
from skcorr.visualize import plot_flow

pairs = load_sample_pairs()
print(pairs.DESCR.splitlines()[0])
s, t = pairs.pairs[0]
source, target = pairs.images[s], pairs.images[t]
print("pair", (int(s), int(t)), "of", pairs.class_names[pairs.labels[s]], source.shape,
      "keypoints", pairs.keypoints.shape)

# %%
# Conv features against dense SIFT
# --------------------------------
# Both feature types are computed on grids of the same stride (16 pixels): the
# ``conv4`` role of the default backbone, and dense SIFT with step 16 and bins of 10
# pixels (a descriptor then covers the square of a radius-20 keypoint descriptor). Each
# pair is aligned with ``lam = 0`` (every node takes its nearest target column) and
# with the smoothness term. PCK counts a transferred keypoint as correct when it lies
# within ``alpha * max(h, w)`` of the truth, ``(h, w)`` the size of the *target's* box.
methods = {
    "conv4": ConvColumnExtractor(layer="conv4", mode="dense").fit(),
    "dense SIFT": DenseSIFT(mode="dense", step=16, bin_size=10).fit(),
}
flows = {}
for name, features in methods.items():
    source_map, target_map = features.extract_dense([source, target])
    print(f"{name}: grid {source_map.grid_shape}, {source_map.features.shape[2]} channels")
    for lam in (0.0, 0.01):
        flow = align(source_map, target_map, lam=lam)
        predicted = flow.transfer_points(pairs.keypoints[s])
        scores = [pck_score(pairs.keypoints[t][None], predicted[None], alpha=alpha,
                            bbox=pairs.boxes[t][None]) for alpha in (0.05, 0.1)]
        print(f"  lam={lam:<5g} data energy {flow.data_energy:7.2f}, deformation "
              f"{flow.deformation:6.0f}, PCK@0.05 {scores[0]:.2f}, PCK@0.1 {scores[1]:.2f}")
        flows[name, lam] = flow

# %%
# The flow of conv features with smoothness: the target is warped into the source
# frame (every source pixel reads the target at its interpolated match), and the
# source keypoints (o) are transferred to the target (x) beside the true target
# keypoints (o). :func:`skcorr.visualize.plot_flow` draws the three panels.
fig = plot_flow(source, target, flows["conv4", 0.01], pairs.keypoints[s], pairs.keypoints[t])

# %%
# The displacement field itself, in grid steps, for both feature types:
fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
for ax, name in zip(axes, methods, strict=True):
    flow = flows[name, 0.01]
    ax.imshow(source, alpha=0.6)
    gx, gy = np.meshgrid(flow.source_xs, flow.source_ys)
    matched = flow.matched_points()
    ax.quiver(gx, gy, matched[..., 0] - gx, matched[..., 1] - gy, angles="xy",
              scale_units="xy", scale=1, color="tab:red", width=0.004)
    ax.set_title(f"{name}: matched target positions")
    ax.axis("off")
fig.tight_layout()

# %%
# Warping a single point by hand
# ------------------------------
# :meth:`~skcorr.flow.Flow.transfer_points` maps source points forward (bilinear in
# the flow between grid nodes) and target points backward.
flow = flows["conv4", 0.01]
point = pairs.keypoints[s][:1]
forward = flow.transfer_points(point)
print("source", point.round(1), "-> target", forward.round(1), "(truth",
      pairs.keypoints[t][:1].round(1), ") -> back", flow.transfer_points(
          forward, direction="backward").round(1))

# %%
# Tuning the smoothness weight with GridSearchCV
# ----------------------------------------------
# :class:`~skcorr.FlowAligner` is the estimator of the paper's keypoint transfer:
# ``fit`` keeps annotated images, ``predict`` retrieves the ``n_neighbors`` nearest of
# each new image by a global feature, aligns them to it, keeps the ``n_top`` of
# smallest deformation and predicts the median of their transferred keypoints. Its
# keypoints must mean the same thing in every image, so we use a small category:
# :func:`~skcorr.datasets.make_affine_category`, random affine warps of ``chelsea``
# with six named parts.
# %%
# Each fit of the grid search builds the networks of its transformers anew (they are
# cloned), so to keep this example quick the neighbours are retrieved by the mean of
# the dense SIFT descriptors, which needs no network; the default retrieval feature is
# the ``fc7`` role (``ConvColumnExtractor(layer="fc7", mode="global")``). With only six
# training images per fold, three neighbours are aligned and all three are kept.
# The toy problem is easy, so PCK is taken at the strict tolerance ``alpha = 0.05``.
category = make_affine_category(9, height=128, random_state=0)
cats, cat_keypoints = category.images, category.keypoints
aligner = FlowAligner(features=ConvColumnExtractor(layer="conv4"),
                      retrieval=DenseSIFT(mode="global"),
                      n_neighbors=3, n_top=3)
search = GridSearchCV(aligner, {"lam": [0.0, 0.01, 0.1]}, scoring=pck_scorer(alpha=0.05),
                      cv=KFold(n_splits=3))
search.fit(cats, cat_keypoints)
for lam, score in zip(search.cv_results_["param_lam"], search.cv_results_["mean_test_score"],
                      strict=True):
    print(f"lam={lam:<5g} mean PCK@0.05 over the folds {score:.3f}")
print("best:", search.best_params_)

# %%
# Without boxes, :func:`~skcorr.metrics.pck_scorer` takes each image's threshold from
# the bounding box of its own true keypoints. To score against object boxes instead,
# enable scikit-learn's metadata routing and pass ``bbox`` to ``fit`` (see the
# docstring of :func:`~skcorr.metrics.pck_scorer`).
