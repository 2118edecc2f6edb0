"""The demo behind ``skcorr demo``: everything runs on embedded data, nothing downloaded.

1. The receptive fields of the default backbone and of AlexNet (the paper's numbers).
2. Keypoint transfer on warped pairs of scikit-image's photographs, whose exact
   correspondences are known: convnet columns against dense SIFT, each by plain
   nearest-column matching (``lam = 0``) and by the flow MRF, scored by PCK.
3. A figure of one aligned pair with its transferred keypoints.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .cli import _markdown, _write_csv, receptive_field_table
from .datasets import make_warped_pairs
from .evaluation import FlowTransfer, transfer_pck_table
from .features import ConvColumnExtractor, DenseSIFT

__all__ = ["run_demo"]

DEMO_LAM = 0.01


def _methods():
    """(name, features) compared in the demo: the same grid stride for both."""
    return [
        ("convnet conv4 (efficientnet_lite0)", ConvColumnExtractor(layer="conv4")),
        ("dense SIFT (radius 20)", DenseSIFT(mode="dense", step=16, bin_size=10)),
    ]


def run_demo(out: Path, *, n_pairs: int = 4, random_state: int = 0) -> int:
    out = Path(out)
    for backbone in ("efficientnet_lite0", "alexnet"):
        print(f"\n## Receptive fields of {backbone}\n")
        print(_markdown(receptive_field_table(backbone)))

    pairs = make_warped_pairs(n_pairs, random_state=random_state)
    print(f"\n## Keypoint transfer on {n_pairs} warped pairs of scikit-image photographs "
          f"({', '.join(pairs.class_names)}), {pairs.keypoints.shape[1]} keypoints each\n")
    rows, transfers = [], {}
    for name, features in _methods():
        for lam in (0.0, DEMO_LAM):
            transfer = FlowTransfer(features, lam=lam).precompute(pairs.images)
            table = transfer_pck_table(pairs, transfer, alphas=(0.05, 0.1))
            mean = table[-1]
            rows.append({"features": name,
                         "matching": "flow MRF" if lam else "nearest column",
                         "lam": lam, "PCK@0.05": mean["PCK@0.05"],
                         "PCK@0.1": mean["PCK@0.1"]})
            transfers[name, lam] = transfer
    print(_markdown(rows))
    _write_csv(rows, out / "transfer_pck.csv")
    (out / "transfer_pck.md").write_text(_markdown(rows) + "\n")
    figure = _plot_pair(pairs, transfers[_methods()[0][0], DEMO_LAM], out / "aligned_pair.png")
    print(f"\nWrote {out / 'transfer_pck.csv'}, {out / 'transfer_pck.md'} and {figure}")
    return 0


def _plot_pair(pairs, transfer, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .flow import align

    s, t = pairs.pairs[0]
    source, target = pairs.images[s], pairs.images[t]
    flow = align(transfer._map(source), transfer._map(target), **transfer.settings)
    predicted = flow.transfer_points(pairs.keypoints[s])
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.2))
    panels = [(source, "source + its keypoints", pairs.keypoints[s], "o"),
              (target, "target: truth (o), transferred (x)", pairs.keypoints[t], "o"),
              (flow.warp_image(target), "target warped into the source frame", None, "")]
    for ax, (image, title, points, marker) in zip(axes, panels, strict=True):
        ax.imshow(image)
        ax.set_title(title, fontsize=10)
        ax.axis("off")
        if points is not None:
            ax.scatter(points[:, 0], points[:, 1], c=np.arange(len(points)), cmap="tab10",
                       marker=marker, s=40, edgecolors="white")
    axes[1].scatter(predicted[:, 0], predicted[:, 1], c=np.arange(len(predicted)),
                    cmap="tab10", marker="x", s=60)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
