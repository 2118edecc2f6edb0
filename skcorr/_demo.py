"""The demo behind ``skcorr demo``: everything runs on embedded data, nothing downloaded.

1. The receptive fields of the default backbone and of AlexNet (the paper's numbers).
2. Keypoint transfer on warped pairs of scikit-image's photographs, whose exact
   correspondences are known: convnet columns against dense SIFT, each by plain
   nearest-column matching (``lam = 0``) and by the flow MRF, scored by PCK.
3. A figure of one aligned pair with its transferred keypoints.
4. The nonparametric reconstruction of a photograph from other photographs' columns
   (Study 1), against the "uniform RF" baseline.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from .datasets import make_warped_pairs
from .evaluation import (
    TUNED_LAM,
    ResultTable,
    flow_features,
    pair_samples,
    receptive_field_table,
    transfer_pck_table,
)
from .features import ConvColumnExtractor
from .flow import PairTransfer

__all__ = ["run_demo"]

# The features compared, both on a stride-16 grid, each with the smoothness weight that
# was best on PF-WILLOW (see RESULTS.md).
# The paper's flow (the estimators' defaults are the "best" preset).
_PAPER = {"truncation": None, "ot_reg": None, "subcell": False}
_METHODS = {"conv": "convnet conv5 role (efficientnet_lite0)", "sift": "dense SIFT (radius 20)"}


def run_demo(out: Path, *, n_pairs: int = 4, random_state: int = 0) -> int:
    """Run the demo, printing its tables and writing them and its figures to ``out``.

    Parameters
    ----------
    out : path
        An existing folder for the tables and figures.
    n_pairs : int, default=4
        Warped sample pairs (at least 2: the reconstruction uses the others' columns).
    random_state : int, default=0
        Seed of the warps.

    Returns
    -------
    int
        The exit status, 0.
    """
    out = Path(out)
    for backbone in ("efficientnet_lite0", "alexnet"):
        table = receptive_field_table(backbone)
        print(f"\n## {table.title}\n")
        print(table.to_markdown())

    pairs = make_warped_pairs(n_pairs, random_state=random_state)
    print(f"\n## Keypoint transfer on {n_pairs} warped pairs of scikit-image photographs "
          f"({', '.join(pairs.class_names)}), {pairs.keypoints.shape[1]} keypoints each\n")
    table = ResultTable()
    with tempfile.TemporaryDirectory() as cache:  # each image's features computed once
        for kind, name in _METHODS.items():
            transfer = PairTransfer(flow_features(kind), **_PAPER, memory=cache).fit(
                pair_samples(pairs)[0])
            for lam in (0.0, TUNED_LAM[kind]):
                mean = transfer_pck_table(pairs, transfer.set_params(lam=lam),
                                          alphas=(0.05, 0.1))[-1]
                table.append({"features": name,
                              "matching": "flow MRF" if lam else "nearest column",
                              "lam": lam, "PCK@0.05": mean["PCK@0.05"],
                              "PCK@0.1": mean["PCK@0.1"]})
            if kind == "conv":
                written = [_plot_pair(pairs, transfer, out / "aligned_pair.png")]
    print(table.to_markdown())
    written[:0] = [table.write(out / "transfer_pck.csv"), table.write(out / "transfer_pck.md")]

    print(f"\n## Nonparametric reconstruction of {pairs.class_names[0]} from the columns "
          "of the other photographs (conv4 role)\n")
    written.append(out / "reconstruction.png")
    print(_reconstruction(pairs, written[-1]).to_markdown())
    print(f"\nWrote {', '.join(map(str, written[:-1]))} and {written[-1]}")
    return 0


def _plot_pair(pairs, transfer, path: Path) -> Path:
    from .visualize import plot_flow

    s, t = pairs.pairs[0]
    source, target = pairs.images[s], pairs.images[t]
    features = transfer.features_
    flow = transfer.align(*features.extract_dense([source, target]))
    layer = features.layer if isinstance(features.layer, str) else "+".join(features.layer)
    size = f" at {features.image_size} px" if features.image_size else ""
    title = f"flow MRF on {features.backbone} {layer}{size}, lam={transfer.lam:g}"
    plot_flow(source, target, flow, pairs.keypoints[s], pairs.keypoints[t], title=title,
              path=path)
    return path


def _reconstruction(pairs, path: Path) -> ResultTable:
    """Rebuild the first source photograph from the columns of the other photographs."""
    from .columns import (
        ColumnDatabase,
        reconstruct,
        reconstruction_error,
        uniform_rf_reconstruction,
    )
    from .visualize import plot_reconstruction

    extractor = ConvColumnExtractor(layer="conv4", mode="dense").fit()
    query = pairs.images[pairs.pairs[0][0]]
    others = [pairs.images[i] for s, t in pairs.pairs[1:] for i in (s, t)]
    with tempfile.TemporaryDirectory() as folder:
        database = ColumnDatabase.build(extractor, others, Path(folder) / "columns",
                                        verbose=True)
        images = {
            "k=1": reconstruct(query, extractor, database, k=1),
            "k=5": reconstruct(query, extractor, database, k=5),
            "uniform RF, k=5": uniform_rf_reconstruction(query, extractor, database, k=5,
                                                         random_state=0),
        }
        n_columns = database.n_columns
    plot_reconstruction(query, images, path=path)
    return ResultTable({"reconstruction": name, "database columns": n_columns,
                        "mean abs. error": reconstruction_error(query, image)}
                       for name, image in images.items())
