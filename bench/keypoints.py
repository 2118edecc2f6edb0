"""Training and prediction cost of the sliding-window part detectors on CUB-200-2011.

    python bench/keypoints.py [--box-size 160] [--n-train 90] [--n-test 40]

Reads the CUB subset under $SKCORR_DATA (default ../shared/data), crops the training
and test images to their ground-truth boxes, and for the convnet (conv5 role of the
default backbone) and dense SIFT (step 8, bin 8) detectors measures, side by side:
the time of ``fit`` (hard negative mining included), the peak of memory allocated by
Python and numpy during ``fit`` (tracemalloc; torch's own buffers are not traced), the
process's peak resident memory, and the prediction time per image.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time
import tracemalloc
from pathlib import Path

import numpy as np

from skcorr import ConvColumnExtractor, DenseSIFT, SlidingKeypointDetector
from skcorr.datasets import crop_to_boxes, load_cub


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--box-size", type=int, default=160)
    parser.add_argument("--n-train", type=int, default=90)
    parser.add_argument("--n-test", type=int, default=40)
    args = parser.parse_args()
    root = Path(os.environ.get("SKCORR_DATA", Path(__file__).parents[1] / "../shared/data"))
    cub = load_cub(root / "CUB_200_2011")
    crops, keypoints, _ = crop_to_boxes(cub.images, cub.keypoints, cub.boxes)
    inside = np.array([[0 <= x < c.shape[1] and 0 <= y < c.shape[0] for x, y in kps]
                       for c, kps in zip(crops, keypoints, strict=True)])
    keypoints[~inside] = np.nan  # parts annotated just outside their box
    train = np.flatnonzero(cub.split == "train")[:args.n_train]
    test = np.flatnonzero(cub.split == "test")[:args.n_test]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"CUB {len(train)} training and {len(test)} test crops, box {args.box_size} px\n")
    print("| detector | fit (s) | traced peak in fit (MB) | process peak RSS (MB) "
          "| predict (s/image) |")
    print("|---|---|---|---|---|")
    for name, features in [
        ("convnet conv5", ConvColumnExtractor(layer="conv5", mode="dense")),
        ("dense SIFT step 8 bin 8", DenseSIFT(mode="dense", step=8, bin_size=8)),
    ]:
        detector = SlidingKeypointDetector(features=features, box_size=args.box_size,
                                           random_state=0)
        tracemalloc.start()
        start = time.perf_counter()
        detector.fit([crops[i] for i in train], keypoints[train])
        fit_seconds = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        start = time.perf_counter()
        detector.predict([crops[i] for i in test])
        per_image = (time.perf_counter() - start) / len(test)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"| {name} | {fit_seconds:.1f} | {peak / 2**20:.0f} | {rss:.0f} "
              f"| {per_image:.3f} |")


if __name__ == "__main__":
    main()
