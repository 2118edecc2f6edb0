"""Features computed once, work spread over cores and a local dask cluster.

    SKCORR_DATA=../shared/data .venv/bin/python bench/scale.py [--part search|pairs|willow|all]

* ``search``: GridSearchCV of FlowAligner over 4 values of lam with 3 folds on 60 CUB
  crops (160 px), without and with ``memory=`` (a fresh cache folder): wall time and
  images through the network's first convolution (the constant probe image each fit
  runs is counted apart).
* ``pairs``: only the pair loop of that evaluation (features computed first), in one
  process, ``n_jobs=1`` and ``n_jobs=2`` interleaved twice on the first 120 pairs.
* ``willow``: the whole ``skcorr evaluate pf-willow --features conv`` command (a fresh
  process each) with ``--n-jobs 1``, ``--n-jobs 2``, and through a local dask cluster
  of 2 single-threaded worker processes (``--scheduler``).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch


class ForwardCounter:
    """Images through the first convolution (3 input channels) of any network."""

    def __init__(self):
        self.images = self.probes = 0
        self._lock = threading.Lock()  # images run in threads: += is not atomic

    def __call__(self, module, inputs, output):
        if isinstance(module, torch.nn.Conv2d) and module.in_channels == 3:
            constant = inputs[0].flatten(2).std(dim=2).amax(dim=1) == 0
            with self._lock:
                self.probes += int(constant.sum())
                self.images += int((~constant).sum())


def bench_search(root: Path) -> None:
    from sklearn.model_selection import GridSearchCV

    from skcorr import FlowAligner
    from skcorr.datasets import crop_to_boxes, load_cub
    from skcorr.metrics import pck_scorer

    cub = load_cub(root / "CUB_200_2011")
    chosen = np.flatnonzero(cub.split == "train")[:60]
    crops, keypoints, _ = crop_to_boxes([cub.images[i] for i in chosen], cub.keypoints[chosen],
                                        cub.boxes[chosen], size=160, padding=0.1)
    print(f"GridSearchCV(FlowAligner(n_neighbors=5, n_top=2), lam in 4 values, cv=3) on "
          f"{len(crops)} CUB crops; default features (conv5 dense at 320 px, fc7 global "
          "at 224 px)\n")
    print("| run | wall (s) | images through the network | probe passes | best lam |")
    print("|---|---|---|---|---|")
    results = {}
    for name in ("no cache (before)", "memory=folder (after)"):
        memory = tempfile.mkdtemp() if "memory" in name else None
        search = GridSearchCV(FlowAligner(n_neighbors=5, n_top=2, memory=memory),
                              {"lam": [0.0, 0.03, 0.1, 0.3]}, cv=3,
                              scoring=pck_scorer(alpha=0.1))
        counter = ForwardCounter()
        handle = torch.nn.modules.module.register_module_forward_hook(counter)
        start = time.perf_counter()
        search.fit(crops, keypoints)
        seconds = time.perf_counter() - start
        handle.remove()
        results[name] = search.cv_results_["mean_test_score"]
        print(f"| {name} | {seconds:.0f} | {counter.images} | {counter.probes} | "
              f"{search.best_params_['lam']} |", flush=True)
    same = np.allclose(*results.values())
    print(f"\ncross-validated scores equal with and without the cache: {same}\n")


def bench_pairs(root: Path) -> None:
    from skcorr import ConvColumnExtractor
    from skcorr.datasets import load_pf_willow
    from skcorr.evaluation import pair_samples
    from skcorr.flow import PairTransfer

    dataset = load_pf_willow(root / "PF-WILLOW")
    pairs = np.asarray(dataset.pairs)[:120]
    X = pair_samples(dataset, pairs)[0]
    features = ConvColumnExtractor(layer="conv5", image_size=320, memory=tempfile.mkdtemp())
    transfer = PairTransfer(features, lam=0.1).fit(X)
    transfer.predict(X[:4])  # warm-up; the features of every image are cached after it
    transfer.features_.extract_dense([dataset.images[i] for i in np.unique(pairs)])
    print("| pair loop, 120 PF-WILLOW pairs | n_jobs=1 (s) | n_jobs=2 (s) | speed-up | load |")
    print("|---|---|---|---|---|")
    for repeat in range(2):
        times = []
        for n_jobs in (1, 2):
            start = time.perf_counter()
            transfer.set_params(n_jobs=n_jobs).predict(X)
            times.append(time.perf_counter() - start)
        print(f"| repeat {repeat + 1} | {times[0]:.1f} | {times[1]:.1f} | "
              f"{times[0] / times[1]:.2f} | {os.getloadavg()[0]:.1f} |", flush=True)
    print()


def _run(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def bench_willow(root: Path) -> None:
    base = [sys.executable, "-m", "skcorr.cli", "evaluate", "pf-willow", "--features", "conv",
            "--data", str(root / "PF-WILLOW")]
    print("| skcorr evaluate pf-willow --features conv | wall (s) | speed-up |")
    print("|---|---|---|")
    serial = _run(base + ["--n-jobs", "1"])
    print(f"| --n-jobs 1 | {serial:.1f} | 1.00 |", flush=True)
    two = _run(base + ["--n-jobs", "2"])
    print(f"| --n-jobs 2 (threads) | {two:.1f} | {serial / two:.2f} |", flush=True)
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        dask = _run(base + ["--scheduler", cluster.scheduler_address])
    print(f"| --scheduler (local dask cluster, 2 worker processes) | {dask:.1f} | "
          f"{serial / dask:.2f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["search", "pairs", "willow", "all"], default="all")
    args = parser.parse_args()
    root = Path(os.environ.get("SKCORR_DATA", Path(__file__).parents[1] / "../shared/data"))
    load = os.getloadavg()[0]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load average {load:.1f} at start (shared with other jobs); torch threads "
          f"{torch.get_num_threads()}\n")
    if args.part in ("search", "all"):
        bench_search(root)
    if args.part in ("pairs", "all"):
        bench_pairs(root)
    if args.part in ("willow", "all"):
        bench_willow(root)


if __name__ == "__main__":
    main()
