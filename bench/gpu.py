"""Check and time the CUDA path (a few minutes on one GPU; skips without CUDA).

    SKCORR_DATA=../shared/data .venv/bin/python bench/gpu.py [--skip-evaluate]

1. Correctness: the extractor's columns on CUDA equal those on the CPU (same weights).
2. Throughput, side by side: ConvColumnExtractor.extract_dense against the raw truncated
   network on the same batches (images/s, ratio; target >= 0.8), in fp32, and the raw
   network under ``torch.autocast`` (float16) for reference.
3. Batched extraction of all PF-WILLOW images from their files (conv5 role, 320 px).
4. The whole ``skcorr evaluate pf-willow --features conv`` command (device "auto" picks
   CUDA), its wall time and PCK table.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch


def _sync():
    torch.cuda.synchronize()


def _timed(fn, repeats=3):
    fn()  # warm-up (cuDNN autotuning, allocations)
    _sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-evaluate", action="store_true")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("bench/gpu.py: skipped, torch sees no CUDA device on this machine "
              f"(torch {torch.__version__}, CUDA build {torch.version.cuda}).")
        return 0
    from PIL import Image

    from skcorr import ConvColumnExtractor

    root = Path(os.environ.get("SKCORR_DATA", Path(__file__).parents[1] / "../shared/data"))
    files = sorted(str(p) for p in (root / "PF-WILLOW").glob("*/*.png"))
    print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}; "
          f"{len(files)} PF-WILLOW images\n")

    # Fixed-size inputs so that every batch is full: 64 images at 320 x 240.
    images = [np.asarray(Image.open(f).convert("RGB").resize((320, 240))) for f in files[:64]]
    cpu = ConvColumnExtractor(layer="conv5", mode="dense", device="cpu").fit()
    gpu = ConvColumnExtractor(layer="conv5", mode="dense", device="cuda", batch_size=32).fit()
    a, b = cpu.extract_dense(images[:4]), gpu.extract_dense(images[:4])
    error = max(float(np.abs(x.features - y.features).max()) for x, y in zip(a, b, strict=True))
    print(f"1. CUDA columns against CPU columns: largest difference {error:.1e} "
          f"({'ok' if error < 1e-3 else 'TOO LARGE'})\n")

    batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div(255)
    batch = ((batch - gpu._mean) / gpu._std).cuda()
    network = gpu.network_

    def raw(autocast=False):
        with torch.inference_mode(), torch.autocast("cuda", torch.float16, enabled=autocast):
            for start in range(0, len(batch), 32):
                out = network(batch[start:start + 32])
                [o.float().cpu() for o in out.values()]

    t_raw = _timed(raw)
    t_half = _timed(lambda: raw(autocast=True))
    t_ext = _timed(lambda: gpu.extract_dense(images))
    print("2. | what | s for 64 images | images/s | ratio to raw fp32 |")
    print("   |---|---|---|---|")
    print(f"   | raw network fp32 (batches of 32) | {t_raw:.3f} | {64 / t_raw:.0f} | 1.00 |")
    print(f"   | raw network autocast float16 | {t_half:.3f} | {64 / t_half:.0f} | "
          f"{t_raw / t_half:.2f} |")
    print(f"   | ConvColumnExtractor fp32 (to FeatureMaps) | {t_ext:.3f} | {64 / t_ext:.0f} | "
          f"{t_raw / t_ext:.2f} (target >= 0.8) |\n")

    willow = ConvColumnExtractor(layer="conv5", mode="dense", image_size=320, device="cuda",
                                 batch_size=32).fit()
    seconds = _timed(lambda: willow.extract_dense(files), repeats=1)
    print(f"3. PF-WILLOW: {len(files)} images from their files in {seconds:.2f} s "
          f"({len(files) / seconds:.0f} images/s, reading and resizing included)\n")

    if not args.skip_evaluate:
        command = [sys.executable, "-m", "skcorr.cli", "evaluate", "pf-willow", "--features",
                   "conv", "--data", str(root / "PF-WILLOW")]
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        print(f"4. `skcorr evaluate pf-willow --features conv` on CUDA: {seconds:.1f} s wall, "
              f"exit status {result.returncode}")
        print("\n".join(result.stdout.strip().splitlines()[-4:]))
        if result.returncode:
            print(result.stderr[-2000:])
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
