"""The cost of the flow's options beyond the paper, each against the plain flow, interleaved.

Run:  SKCORR_DATA=../shared/data .venv/bin/python bench/flow_options.py [n_pairs]

Extracts PF-WILLOW's feature maps once (EfficientNet-Lite0 stage5+stage6 at 400 px, the
best configuration's grids: about 25 x 19 nodes), then aligns the first ``n_pairs`` pairs
(default 300) with each setting in turn, round-robin over three rounds so that the
shared machine's load falls on every setting alike. Prints the median over rounds of the
milliseconds per pair and each setting's PCK@0.1 on those pairs.
"""

import os
import sys
import time

import numpy as np

from skcorr.datasets import load_pf_willow
from skcorr.features import ConvColumnExtractor
from skcorr.flow import align
from skcorr.metrics import pck_score

SETTINGS = {
    "plain (paper)": {},
    "truncation=3": {"truncation": 3},
    "ot_reg=0.2": {"ot_reg": 0.2},
    "subcell": {"subcell": True},
    "all three": {"truncation": 3, "ot_reg": 0.2, "subcell": True},
}

n_pairs = int(sys.argv[1]) if len(sys.argv) > 1 else 300
dataset = load_pf_willow(os.path.join(os.environ["SKCORR_DATA"], "PF-WILLOW"))
pairs = dataset.pairs[:n_pairs]
extractor = ConvColumnExtractor(layer=["stage5", "stage6"], image_size=400).fit()
maps = dict(zip(np.unique(pairs), extractor.extract_dense(
    [dataset.images[i] for i in np.unique(pairs)]), strict=True))
align(maps[pairs[0, 0]], maps[pairs[0, 1]], lam=0.05, truncation=3, ot_reg=0.2,
      subcell=True)  # compile the kernels outside the timings
seconds = {name: [] for name in SETTINGS}
predicted = {}
for _ in range(3):
    for name, options in SETTINGS.items():
        start = time.perf_counter()
        predicted[name] = [align(maps[s], maps[t], lam=0.05, **options)
                           .transfer_points(dataset.keypoints[s]) for s, t in pairs]
        seconds[name].append(time.perf_counter() - start)
print(f"{len(pairs)} PF-WILLOW pairs, Lite0 stage5+stage6 at 400 px, lam 0.05, "
      f"load {os.getloadavg()[0]:.1f}")
for name in SETTINGS:
    pck = pck_score(dataset.keypoints[pairs[:, 1]], np.stack(predicted[name]), alpha=0.1)
    print(f"{name:>14}: {1000 * np.median(seconds[name]) / len(pairs):6.1f} ms per pair, "
          f"PCK@0.1 {100 * pck:.1f}")
