"""
================================
Dense correspondence: two images
================================

:func:`skcorr.match` takes two images, as files or arrays, and returns the
:class:`~skcorr.flow.Flow` from the first to the second with the settings that
cross-validation on PF-WILLOW chose (``preset="best"``). This example matches two photos
saved as JPEG files (stand-ins for your own), then draws the three pictures users of
optical flow expect: the flow's colour wheel, the second image warped onto the first,
and the sparse matches coloured by their confidence.
"""

# %%
# Two image files
# ---------------
# :func:`~skcorr.datasets.load_sample_pairs` holds warped pairs of scikit-image's
# photographs; the first pair is saved as ``a.jpg`` and ``b.jpg`` in a temporary folder.
import shutil
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

import skcorr
from skcorr.datasets import load_sample_pairs
from skcorr.flow import read_flo, write_flo
from skcorr.visualize import flow_to_color, plot_matches

folder = Path(tempfile.mkdtemp())
pairs = load_sample_pairs()
a, b = folder / "a.jpg", folder / "b.jpg"
for path, index in zip([a, b], pairs.pairs[0], strict=True):
    Image.fromarray(pairs.images[index]).save(path)

# %%
# Match them
# ----------
# ``image_size=160`` computes the features at 160 px (the preset's 480 px is slower and
# finer). ``backward=True`` (the default) also aligns ``b`` with ``a``: the flows'
# forward-backward consistency is each match's confidence.
flow = skcorr.match(a, b, image_size=160)
print(flow)

# %%
# A flow at every pixel, the colour wheel and the warp
# ----------------------------------------------------
# :meth:`~skcorr.flow.Flow.pixel_flow` follows the optical-flow convention: pixel ``p``
# of ``a`` matches ``p + field[p]`` in ``b``. :func:`~skcorr.flow.write_flo` writes it as
# a Middlebury ``.flo`` file (OpenCV's ``readOpticalFlow`` reads it too).
# :func:`~skcorr.visualize.flow_to_color` draws it (hue: direction, saturation: length)
# and :meth:`~skcorr.flow.Flow.warp_image` shows ``b`` seen from ``a``: where the flow is
# right, the warp looks like ``a``.
field = flow.pixel_flow()
write_flo(folder / "flow.flo", field)
assert np.array_equal(read_flo(folder / "flow.flo"), field)
print("flow field", field.shape, f"mean length {np.linalg.norm(field, axis=2).mean():.1f} px")

fig, axes = plt.subplots(1, 4, figsize=(12, 3.4), layout="constrained")
panels = [(plt.imread(a), "a.jpg"), (plt.imread(b), "b.jpg"),
          (flow_to_color(field), "flow from a to b"), (flow.warp_image(b), "b warped onto a")]
for ax, (picture, title) in zip(axes, panels, strict=True):
    ax.imshow(picture)
    ax.set_title(title, fontsize=10)
    ax.axis("off")

# %%
# Matches with a confidence
# -------------------------
# :meth:`~skcorr.flow.Flow.matches` lists every grid node and its match;
# ``min_confidence=0.5`` keeps those whose match maps back near them (a cross-check, as
# ``match_descriptors(cross_check=True)`` of scikit-image). The sample pair's true
# correspondences tell how far the matches are from the truth.
points_a, points_b, confidence = flow.matches(min_confidence=0.5)
print(f"{len(confidence)} of {flow.target_index.shape[0] * flow.target_index.shape[1]} "
      "grid nodes kept")
s, t = pairs.pairs[0]
moved = flow.transfer_points(pairs.keypoints[s])
print("keypoint errors (px):", np.round(np.linalg.norm(moved - pairs.keypoints[t], axis=1), 1))
matches_figure = plot_matches(a, b, points_a, points_b, confidence)

shutil.rmtree(folder)
