"""
==================================
Keypoints from one annotated image
==================================

One annotated image is enough to start: :func:`skcorr.flow.transfer_files` reads its
keypoints from a CSV file (``image,keypoint,x,y``, one row per visible keypoint), aligns
every new image with it by the flow MRF (:class:`~skcorr.FlowAligner`) and writes the
predicted keypoints in the same format, with a picture per image. ``skcorr transfer
annotations.csv new/ --output out --pictures`` does the same from the command line.
"""

# %%
# One annotated image, four new ones
# ----------------------------------
# :func:`~skcorr.datasets.make_affine_category` makes random affine warps of a cat
# photograph with six named parts; the first image plays the annotated one, the others
# the new images, all saved as PNG files in a temporary folder.
import shutil
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from skcorr.datasets import make_affine_category, read_annotations, write_keypoints_csv
from skcorr.flow import transfer_files
from skcorr.metrics import pck_score

folder = Path(tempfile.mkdtemp())
cats = make_affine_category(5, height=96, random_state=0)
files = [folder / f"cat{i}.png" for i in range(len(cats.images))]
for path, image in zip(files, cats.images, strict=True):
    Image.fromarray(image).save(path)
write_keypoints_csv(folder / "annotations.csv", files[:1], cats.keypoint_names,
                    cats.keypoints[:1])
print((folder / "annotations.csv").read_text())

# %%
# Transfer
# --------
# With one annotated image, its flow to each new image carries every keypoint
# (``n_neighbors`` and ``n_top`` are capped by the number of annotated images).
# ``image_size=160`` keeps the example fast; the default is the ``"best"`` preset's
# 480 px.
result = transfer_files(folder / "annotations.csv", files[1:], folder / "out",
                        image_size=160)
predicted = read_annotations(folder / "out" / "keypoints.csv")
assert np.allclose(predicted.keypoints, result.keypoints, atol=1e-3)
print(f"PCK@0.1 against the true parts: "
      f"{pck_score(cats.keypoints[1:], result.keypoints, alpha=0.1):.2f}")

# %%
# The keypoints drawn
# -------------------
# The annotated image (left), then each new image with its predicted keypoints (x) and
# the true ones (o), in the same colour per part.
fig, axes = plt.subplots(1, len(files), figsize=(3.0 * len(files), 2.6), layout="constrained")
colours = plt.get_cmap("tab10").colors
for i, ax in enumerate(axes):
    ax.imshow(cats.images[i])
    ax.set_title("annotated" if i == 0 else f"new image {i}", fontsize=10)
    ax.axis("off")
    for k in range(len(cats.keypoint_names)):
        x, y = cats.keypoints[i, k]
        ax.scatter([x], [y], s=40, facecolors="none", edgecolors=[colours[k]], linewidths=1.5)
        if i > 0:
            px, py = result.keypoints[i - 1, k]
            ax.scatter([px], [py], s=40, marker="x", color=colours[k])
fig.legend(handles=[plt.Line2D([], [], marker="o", ls="", color=colours[k], label=name)
                    for k, name in enumerate(cats.keypoint_names)],
           loc="outside lower center", ncols=len(cats.keypoint_names), fontsize=9)

shutil.rmtree(folder)
