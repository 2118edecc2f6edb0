"""Benchmark of SIFT Flow's energy (``align(..., energy="sift-flow")``) against the L2 one.

Run:  .venv/bin/python bench/sift_flow.py [--pairs N] [--repeat R]
(about a minute on 2 cores; waits while /work/notes/s26/quiet.lock exists, if that
folder is there: someone else is timing)

The same grids aligned with each energy, one after the other in turns (best of
``--repeat``, wall and CPU time of this process):

1. Synthetic SIFT-like grids (unit 128-d features moved by a smooth flow; 20x20 and 40x40
   nodes, label windows of 21x21 and 31x31), as in ``bench/bp.py``: ``align`` flat
   (``levels=0``) and coarse-to-fine (``levels=2``), its data costs included, and the data
   costs alone (BLAS product for L2, numba L1 kernel for SIFT Flow's). SIFT Flow's C++ BP
   (issue 10, quoted from ``bench/bp.py``) minimises the same L1 energy, so its times
   stand beside them.
2. With ``SKCORR_DATA`` set: the first N PF-WILLOW pairs with the evaluation's dense SIFT
   (step 16 px, 320 px images: grids of about 12x19 nodes, every target position a
   label) and the weights cross-validation picks (L2 ``lam=0.2``; SIFT Flow ``lam=2``),
   per-pair ``align`` time.
"""

from __future__ import annotations

import argparse
import os
import time
from functools import partial

import numpy as np
from bp import CPP_SECONDS, feature_map, machine, sift_like_pair

from skcorr.flow import align
from skcorr.flow._mrf._costs import data_cost_window

QUIET_LOCK = "/work/notes/s26/quiet.lock"
ENERGIES = {"l2": dict(energy="l2", lam=0.2), "sift-flow": dict(energy="sift-flow", lam=2.0)}


def wait_for_quiet():
    while os.path.exists(QUIET_LOCK):
        print(f"{QUIET_LOCK} exists: waiting", flush=True)
        time.sleep(30)


def turns(runs, repeat):
    """Smallest wall and CPU seconds of each run (name -> zero-argument callable), the
    runs taking turns so that a change of load hits all of them alike."""
    wall = dict.fromkeys(runs, np.inf)
    cpu = dict.fromkeys(runs, np.inf)
    for fn in runs.values():  # compile
        fn()
    for _ in range(repeat):
        for name, fn in runs.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            wall[name] = min(wall[name], time.perf_counter() - start)
            cpu[name] = min(cpu[name], time.process_time() - start_cpu)
    return wall, cpu


def synthetic(repeat):
    print("\n1. Synthetic SIFT-like grids, label windows; ms wall (CPU), best of "
          f"{repeat}; lam 0.2 (L2) and 2 (SIFT Flow)")
    print(f"{'grid':>6} {'labels':>6} | {'costs L2':>13} {'costs L1':>13} | "
          f"{'flat L2':>13} {'flat SF':>13} {'SF/L2':>5} {'C++ flat':>8} | "
          f"{'c2f L2':>13} {'c2f SF':>13} {'SF/L2':>5} {'C++ c2f':>8}")
    for side in (20, 40):
        fs, ft = sift_like_pair(side)
        source, target = feature_map(fs), feature_map(ft)
        for radius in (10, 15):
            labels = (2 * radius + 1) ** 2
            runs = {"costs l2": partial(data_cost_window, fs, ft, radius),
                    "costs sf": partial(data_cost_window, fs, ft, radius, metric="cityblock")}
            for levels in (0, 2):
                for name, settings in ENERGIES.items():
                    runs[f"{levels} {name}"] = partial(align, source, target, radius=radius,
                                                       levels=levels, **settings)
            wall, cpu = turns(runs, repeat)
            cells = {name: f"{wall[name] * 1e3:6.1f} ({cpu[name] * 1e3:5.1f})" for name in runs}
            flat, c2f = CPP_SECONDS[(side, labels)]
            print(f"{side:>3}x{side:<2} {labels:>6} | {cells['costs l2']} {cells['costs sf']} | "
                  f"{cells['0 l2']} {cells['0 sift-flow']} "
                  f"{wall['0 sift-flow'] / wall['0 l2']:>5.2f} {flat * 1e3:>8.1f} | "
                  f"{cells['2 l2']} {cells['2 sift-flow']} "
                  f"{wall['2 sift-flow'] / wall['2 l2']:>5.2f} {c2f * 1e3:>8.1f}")
    print("align stops early (patience 5); the C++ runs a fixed 50 iterations (flat) and "
          "its own coarse-to-fine, BP only, no data costs.")


def willow(n_pairs, repeat):
    from skcorr.datasets import load_pf_willow
    from skcorr.evaluation import flow_features

    path = os.path.join(os.environ["SKCORR_DATA"], "PF-WILLOW")
    dataset = load_pf_willow(path)
    extractor = flow_features("sift", image_size=320).fit()
    pairs = dataset.pairs[:n_pairs]
    maps = {i: extractor.extract_dense([dataset.images[i]])[0]
            for i in sorted({i for pair in pairs for i in pair})}
    runs = {name: (lambda settings=settings: [align(maps[s], maps[t], **settings)
                                              for s, t in pairs])
            for name, settings in ENERGIES.items()}
    wall, cpu = turns(runs, repeat)
    shape = maps[pairs[0][0]].grid_shape
    print(f"\n2. PF-WILLOW, first {len(pairs)} pairs, dense SIFT at 320 px (first grid "
          f"{shape[0]}x{shape[1]}), every target position a label, levels=2; ms per pair, "
          f"wall (CPU), best of {repeat}")
    for name in runs:
        print(f"  {name:>9}: {wall[name] / len(pairs) * 1e3:6.2f} "
              f"({cpu[name] / len(pairs) * 1e3:6.2f})")
    print(f"  sift-flow / l2: {wall['sift-flow'] / wall['l2']:.2f} (wall), "
          f"{cpu['sift-flow'] / cpu['l2']:.2f} (CPU)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=50, help="PF-WILLOW pairs (0: none)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    wait_for_quiet()
    print(machine())
    synthetic(args.repeat)
    if args.pairs and os.environ.get("SKCORR_DATA"):
        willow(args.pairs, args.repeat)


if __name__ == "__main__":
    main()
