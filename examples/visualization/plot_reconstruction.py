"""
=========================================================
Nonparametric reconstruction and average receptive fields
=========================================================

Study 1 of the paper asks whether a column knows *where* in its receptive field
things are. Two visualisations answer it:

* **Nonparametric reconstruction**: every column of an image owns the patch around its
  RF centre (side = the layer's stride, so the patches tile the image); each patch is
  replaced by the average of the patches at the RF centres of the column's ``k``
  nearest neighbours (cosine) among the columns of *other* images. The baseline
  ("uniform RF") cuts each neighbour's patch at a random position inside its receptive
  field: what one would get if columns kept no spatial information inside it.
* **RF averages**: the average of the whole receptive fields of a seed column's nearest
  neighbours.

The paper searched more than a million columns of PASCAL VOC images; here the
database holds the columns of a dozen photographs bundled with scikit-image, so the
pictures are much coarser, but every step is the same.
"""

# %%
# A column database
# -----------------
# :class:`~skcorr.columns.ColumnDatabase` stores the columns of one layer from many
# images on disk, with each column's image and RF centre and a copy of the images'
# pixels, and searches it exactly by cosine similarity.
import tempfile

import numpy as np
from skimage import data, transform
from skimage.util import img_as_ubyte

from skcorr import ConvColumnExtractor
from skcorr.columns import (
    ColumnDatabase,
    reconstruct,
    reconstruction_error,
    rf_averages,
    uniform_rf_reconstruction,
)
from skcorr.visualize import plot_reconstruction, plot_rf_averages


def small(image, side=192):
    """An RGB uint8 copy of a scikit-image photograph, longer side ``side`` pixels."""
    image = transform.rescale(image, side / max(image.shape[:2]), anti_aliasing=True,
                              channel_axis=-1 if image.ndim == 3 else None)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return img_as_ubyte(image)


names = ["astronaut", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field",
         "colorwheel", "camera", "coins", "moon", "brick", "grass", "gravel"]
database_images = [small(getattr(data, name)()) for name in names]
database_images += [image[:, ::-1] for image in database_images]  # and their mirrors
query = small(data.chelsea())  # the cat is not in the database

workdir = tempfile.TemporaryDirectory()
extractor = ConvColumnExtractor(layer="stage3", mode="dense").fit()
database = ColumnDatabase.build(extractor, database_images, f"{workdir.name}/stage3")
print(f"{len(database)} columns of {database.n_features} channels from "
      f"{database.n_images} images; RF {database.meta['rf_size'][0]:g} px, "
      f"stride {database.meta['stride'][0]:g} px")

# Like scikit-learn's ``kneighbors``, a search gives (similarities, indices).
query_columns = extractor.extract_dense([query])[0].features.reshape(-1, database.n_features)
similarities, indices = database.search(query_columns, k=5)
print(f"the query's columns: mean cosine {similarities[:, 0].mean():.2f} with their nearest "
      f"neighbours, found in {len(np.unique(database.image_index[indices]))} images")

# %%
# Reconstructions
# ---------------
# ``stage3`` of EfficientNet-Lite0 has stride 8 and a 67-pixel receptive field: each
# 8 x 8 patch of the query is rebuilt from the centres of its neighbours' fields. The
# uniform-RF baseline uses the same neighbours.
rebuilt = {
    "k=1": reconstruct(query, extractor, database, k=1),
    "k=5": reconstruct(query, extractor, database, k=5),
    "uniform RF, k=5": uniform_rf_reconstruction(query, extractor, database, k=5,
                                                 random_state=0),
}
for title, image in rebuilt.items():
    print(f"{title:<16} mean absolute error {reconstruction_error(query, image):.1f}")
fig = plot_reconstruction(query, rebuilt)

# %%
# Average receptive fields
# ------------------------
# For eight random seed columns of the database, the receptive fields of their five
# nearest neighbours (from images other than the seed's) are averaged. Columns that
# are similar see similar things, most sharply at the centre of their fields.
averages = rf_averages(extractor, database, seeds=8, k=5, random_state=0)
print("average RFs:", averages.shape)
fig = plot_rf_averages(averages, n_cols=8)

# %%
# The database lives on disk; :meth:`~skcorr.columns.ColumnDatabase.open` opens it
# again later (memory-mapped), as long as the extractor matches the one it was built
# with. Here we only clean up.
del database
workdir.cleanup()
