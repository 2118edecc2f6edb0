"""Benchmark of the flow MRF solver: dual-layer BP against today's 2-D BP and SIFT Flow's C++.

Run:  .venv/bin/python bench/bp.py [--energies N]    (a few minutes on 2 cores)

1. Per full sweep (every node sends its messages once), on the grids and label windows
   of the issue's table (20x20 and 40x40 nodes, windows of 21x21 = 441 and 31x31 = 961
   labels, 128-d SIFT-like unit features with a known smooth flow): today's kernel
   (``bp_iterations``, 2-D messages by separable distance transforms, float64; kept
   in-tree as the reference) and the new one (``dual_bp_iterations``, dual-layer, float32),
   side by side: milliseconds per sweep and million node-labels per second (wall and
   CPU time: on a machine shared with other jobs the CPU time is what the code costs).
2. End to end through the public ``align`` (data costs included): flat (``levels=0``,
   at most 50 iterations, early stopping) and coarse-to-fine (``levels=2``), next to the
   C++ times of SIFT Flow's belief propagation measured on this machine (issue 10;
   the C++ itself cannot be run here, its numbers are quoted).
3. With ``SKCORR_DATA`` set: the energies that dual-layer and 2-D BP reach through
   ``align`` on the first N PF-WILLOW pairs, with the evaluation's features and settings.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numba
import numpy as np

from skcorr.features import FeatureMap
from skcorr.flow import align
from skcorr.flow._mrf._bp2d import bp_iterations
from skcorr.flow._mrf._costs import data_cost_window, window_offsets

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from flow_reference import synthetic_flow_pair  # noqa: E402  (the tests' brute force)

from skcorr.flow._mrf._dual import dual_bp_iterations, transpose_labels

# Issue 10: SIFT Flow's C++ BP (-O3 -march=native) on this machine, best of 3, seconds:
# (grid side, labels) -> (flat, 50 iterations; coarse-to-fine).
CPP_SECONDS = {(20, 441): (0.025, 0.027), (20, 961): (0.037, 0.041),
               (40, 441): (0.125, 0.134), (40, 961): (0.281, 0.310)}
LAM = 0.2  # the evaluation's weight for dense SIFT


def machine():
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f
                         if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = f", load average {os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else ""
    return (f"{model}, {os.cpu_count()} logical CPUs{load}; numpy {np.__version__}, "
            f"numba {numba.__version__} ({numba.get_num_threads()} threads)")


def best_times(fn, *args, repeat=3, **kwargs):
    """Smallest wall and smallest CPU time of ``repeat`` calls, and the last result.

    The CPU time (this process, all threads) does not count the time other jobs on a
    loaded machine hold the cores; the wall time does.
    """
    wall = cpu = np.inf
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fn(*args, **kwargs)
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return wall, cpu, result


def best_time(fn, *args, repeat=3, **kwargs):
    """Smallest wall time of ``repeat`` calls ``fn(*args, **kwargs)``, and the last result."""
    wall, _, result = best_times(fn, *args, repeat=repeat, **kwargs)
    return wall, result


def sift_like_pair(side, seed=0):
    """Unit 128-d features on a side x side grid and a copy moved by a smooth flow."""
    fs, ft, _ = synthetic_flow_pair((side, side), n_features=128, amplitude=3.0, noise=0.5,
                                    seed=seed)
    fs /= np.linalg.norm(fs, axis=2, keepdims=True)
    ft /= np.linalg.norm(ft, axis=2, keepdims=True)
    return fs, ft


def feature_map(features, stride=8.0):
    rows, cols = features.shape[:2]
    return FeatureMap(features=features, xs=stride / 2 + stride * np.arange(cols),
                      ys=stride / 2 + stride * np.arange(rows), rf_size=2 * stride,
                      image_shape=(int(stride * rows), int(stride * cols)))


def problems():
    for side in (20, 40):
        fs, ft = sift_like_pair(side)
        for radius in (10, 15):
            yield side, radius, fs, ft


def today_sweeps(costs, offsets, n):
    """``n`` sweeps of today's 2-D BP kernel (float64), never stopping early."""
    return bp_iterations(costs, offsets, LAM, np.zeros((4,) + costs.shape), n, -1.0, 0)


def dual_sweeps(costs, offsets, n):
    """``n`` dual-layer sweeps, transposed costs and messages included as in every solve."""
    H, W, Ly, Lx = costs.shape
    mu = np.zeros((4, H, W, Lx), np.float32)
    mv = np.zeros((4, H, W, Ly), np.float32)
    return dual_bp_iterations(costs, transpose_labels(costs), offsets, np.float32(LAM), mu, mv,
                              n, -1.0, 0)


def per_sweep():
    print("\n1. One full sweep (every node sends its messages once), window labels, "
          f"lam = {LAM}, best of 3 wall (and CPU) times")
    print(f"{'grid':>6} {'labels':>7} | {'today ms':>16} {'M nl/s':>7} | {'dual ms':>14} "
          f"{'M nl/s':>7} {'(CPU)':>6} | {'speed-up':>8}")
    for side, radius, fs, ft in problems():
        costs = data_cost_window(fs, ft, radius)
        offsets = window_offsets((side, side), radius)
        H, W, Ly, Lx = costs.shape
        node_labels = H * W * Ly * Lx
        costs64 = costs.astype(np.float64)
        today_sweeps(costs64, offsets, 1), dual_sweeps(costs, offsets, 1)
        n_today, n_dual = (2, 20) if side == 20 else (1, 10)
        t_today, c_today, _ = best_times(today_sweeps, costs64, offsets, n_today)
        t_dual, c_dual, _ = best_times(dual_sweeps, costs, offsets, n_dual)
        t_today, c_today, t_dual, c_dual = (t_today / n_today, c_today / n_today,
                                            t_dual / n_dual, c_dual / n_dual)
        print(f"{side:>3}x{side:<2} {Ly * Lx:>7} | {t_today * 1e3:>7.1f} ({c_today * 1e3:>6.1f}) "
              f"{node_labels / t_today / 1e6:>7.1f} | {t_dual * 1e3:>5.2f} ({c_dual * 1e3:>5.2f}) "
              f"{node_labels / t_dual / 1e6:>7.0f} {node_labels / c_dual / 1e6:>6.0f} | "
              f"{t_today / t_dual:>7.0f}x")


def end_to_end():
    print(f"\n2. align() end to end (data costs included), lam = {LAM}, max_iter 50, "
          "default early stopping; best of 3 wall (and CPU) seconds; C++: SIFT Flow's BP, "
          "from issue 10")
    print(f"{'grid':>6} {'labels':>7} | {'C++ flat':>8} {'align(levels=0)':>17} {'ratio':>5} "
          f"{'iters':>5} | {'C++ c2f':>7} {'align()':>17} {'ratio':>5} | {'2-D align()':>11}")
    for side, radius, fs, ft in problems():
        source, target = feature_map(fs), feature_map(ft)
        cpp_flat, cpp_c2f = CPP_SECONDS[(side, (2 * radius + 1) ** 2)]
        align(source, target, lam=LAM, radius=radius, levels=0)
        flat, flat_cpu, flow = best_times(align, source, target, lam=LAM, radius=radius,
                                          levels=0)
        c2f, c2f_cpu, _ = best_times(align, source, target, lam=LAM, radius=radius)
        old = best_time(align, source, target, lam=LAM, radius=radius, solver="2d",
                        repeat=1)[0]
        print(f"{side:>3}x{side:<2} {(2 * radius + 1) ** 2:>7} | {cpp_flat:>8.3f} "
              f"{flat:>8.4f} ({flat_cpu:.4f}) {cpp_flat / flat:>5.2f} {flow.n_iter:>5} | "
              f"{cpp_c2f:>7.3f} {c2f:>8.4f} ({c2f_cpu:.4f}) {cpp_c2f / c2f:>5.2f} | "
              f"{old:>11.3f}")
    print("ratio = C++ time / skcorr wall time (above 1: skcorr faster). '2-D align()': "
          "solver='2d', coarse-to-fine, one run.")


def energies(n_pairs):
    from skcorr.datasets import load_pf_willow
    from skcorr.evaluation import TUNED_LAM
    from skcorr.features import ConvColumnExtractor, DenseSIFT

    dataset = load_pf_willow(os.path.join(os.environ["SKCORR_DATA"], "PF-WILLOW"))
    pairs = dataset.pairs[:n_pairs].tolist()
    print(f"\n3. Energies reached through align() on the first {len(pairs)} PF-WILLOW pairs, "
          "the evaluation's features and lam (coarse-to-fine, all target positions)")
    print(f"{'features':>9} {'levels':>6} | {'2-D mean E':>11} {'dual mean E':>11} "
          f"{'dual/2-D':>8} {'dual lower':>10} {'dual higher':>11} | {'2-D s':>7} "
          f"{'dual s':>7}")
    extractors = {"sift": DenseSIFT(mode="dense", step=16, bin_size=10, image_size=320),
                  "conv": ConvColumnExtractor(layer="conv5", image_size=320)}
    for name, extractor in extractors.items():
        used = sorted({index for pair in pairs for index in pair})
        maps = dict(zip(used, extractor.fit().extract_dense([dataset.images[i] for i in used]),
                        strict=True))
        for levels in (2, 0):
            result = {}
            for solver in ("2d", "dual"):
                start = time.perf_counter()
                result[solver] = np.array([
                    align(maps[a], maps[b], lam=TUNED_LAM[name], levels=levels,
                          solver=solver).energy for a, b in pairs])
                result[solver + " s"] = time.perf_counter() - start
            e2, ed = result["2d"], result["dual"]
            print(f"{name:>9} {levels:>6} | {e2.mean():>11.2f} {ed.mean():>11.2f} "
                  f"{ed.mean() / e2.mean():>8.4f} {(ed < e2 - 1e-6).sum():>10} "
                  f"{(ed > e2 + 1e-6).sum():>11} | {result['2d s']:>7.2f} "
                  f"{result['dual s']:>7.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--energies", type=int, default=30,
                        help="PF-WILLOW pairs for part 3 (needs SKCORR_DATA; 0 skips it)")
    args = parser.parse_args()
    print("Machine:", machine())
    start = time.perf_counter()
    per_sweep()
    end_to_end()
    if args.energies and os.environ.get("SKCORR_DATA"):
        energies(args.energies)
    print(f"\nBenchmark time {time.perf_counter() - start:.0f} s; numba threading layer "
          f"{numba.threading_layer()}.")
