"""Throughput of the feature transformers against the raw library calls they wrap.

    python bench/features.py [--n-images 32] [--size 320] [--repeats 3]

Reads real images from PF-WILLOW under $SKCORR_DATA (default ../shared/data), resized
once so that the longer side is --size. Measures, side by side in one run:

* ConvColumnExtractor (dense mode, conv4 role of the default backbone) against the raw
  torch forward pass of the same truncated network on the same images;
* DenseSIFT (dense mode, step 8, bin 8) against cyvlfeat's dsift on the same grey images,
  once with the options that give dsift's exact output and once with the defaults
  (Gaussian pre-smoothing and L2 normalisation, extra work the raw call does not do);
* on a GPU, when one is present, the extractor's CUDA throughput.

Ratios are raw time / our time (1.0 = no overhead; target at least 0.9).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from skcorr import ConvColumnExtractor, DenseSIFT


def load_images(n: int, size: int) -> list[np.ndarray]:
    root = Path(os.environ.get("SKCORR_DATA", Path(__file__).parents[1] / "../shared/data"))
    paths = sorted((root / "PF-WILLOW").glob("*/*.png"))[:n]
    if len(paths) < n:
        raise SystemExit(f"need {n} PF-WILLOW images under {root}; set SKCORR_DATA")
    images = []
    for path in paths:
        im = Image.open(path).convert("RGB")
        scale = size / max(im.size)
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.BILINEAR)
        images.append(np.array(im))
    return images


def best_time(fn, repeats: int) -> float:
    fn()  # warm-up: lazy initialisation, allocator, caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_conv(images, repeats, device="cpu"):
    ext = ConvColumnExtractor(layer="conv4", mode="dense", device=device, batch_size=8).fit()
    network, mean, std = ext.network_, ext._mean.to(device), ext._std.to(device)
    node = ext.layers_[0]
    # The same batches the extractor forms: images of equal size, at most 8 at a time.
    by_shape: dict = {}
    for im in images:
        by_shape.setdefault(im.shape, []).append(im)
    batches = [torch.from_numpy(np.stack(group[i:i + 8])).permute(0, 3, 1, 2).float().div(255)
               for group in by_shape.values() for i in range(0, len(group), 8)]

    def raw():
        with torch.inference_mode():
            for batch in batches:
                network((batch.to(device) - mean) / std)[node].cpu()

    def ours():
        ext.extract_dense(images)

    return best_time(raw, repeats), best_time(ours, repeats)


def bench_sift(images, repeats, **options):
    from cyvlfeat.sift import dsift
    from skimage.color import rgb2gray

    sift = DenseSIFT(mode="dense", step=8, bin_size=8, **options).fit()

    def raw():
        for im in images:
            dsift(rgb2gray(im).astype(np.float32), step=8, size=8, fast=True,
                  float_descriptors=True)

    def ours():
        sift.extract_dense(images)

    return best_time(raw, repeats), best_time(ours, repeats)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=32)
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    images = load_images(args.n_images, args.size)
    cpu = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    print(f"machine: {cpu}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{len(images)} PF-WILLOW images, longer side {args.size} px, best of {args.repeats}\n")
    rows = [("ConvColumnExtractor conv4 (cpu)", *bench_conv(images, args.repeats))]
    rows.append(("DenseSIFT step 8 bin 8, same output as dsift",
                 *bench_sift(images, args.repeats, smoothing=False, normalize=False)))
    rows.append(("DenseSIFT step 8 bin 8, defaults (pre-smoothing, L2)",
                 *bench_sift(images, args.repeats)))
    if torch.cuda.is_available():
        rows.append(("ConvColumnExtractor conv4 (cuda)",
                     *bench_conv(images, args.repeats, device="cuda")))
    print("| what | raw call (s) | skcorr (s) | images/s (skcorr) | ratio raw/skcorr |")
    print("|---|---|---|---|---|")
    for name, raw, ours in rows:
        print(f"| {name} | {raw:.3f} | {ours:.3f} | {len(images) / ours:.1f} | {raw / ours:.2f} |")


if __name__ == "__main__":
    main()
