"""Benchmark of the flow MRF solver: distance-transform BP against brute-force BP.

Run:  .venv/bin/python bench/bp.py     (about a minute on 2 cores)

Part 1 runs our min-sum BP (numba, one distance transform per message, O(L)) and the
plain-numpy reference (explicit O(L^2) minimum per message) on the same problem with the
same schedule, checks that their messages and labels agree, and prints the time per
iteration and the speed-up for label grids from 10x10 to 45x45 on a 20x15 node grid.
The reference runs 3 iterations (1 at 45x45); its time for a 10-iteration run is that
per-iteration time times 10.

Part 2 times one image pair at the size a PF-WILLOW evaluation uses: conv4-like features
(384 channels) on the 20x20 grid of a 320-pixel image at stride 16, a known smooth
displacement, labels = every target position (400) or a window of displacements.
"""

from __future__ import annotations

import os
import platform
import time

import numba
import numpy as np

from skcorr.flow._bp import absolute_offsets, coarse_to_fine_bp, min_sum_bp, window_offsets
from skcorr.flow._kernels import data_cost, data_cost_window
from skcorr.flow._reference import min_sum_bp_reference, synthetic_flow_pair


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
            f"numba {numba.__version__}")


def best_time(fn, *args, repeat=3, **kwargs):
    """Smallest wall time of ``repeat`` calls ``fn(*args, **kwargs)``, and the last result."""
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        best = min(best, time.perf_counter() - start)
    return best, result


def against_reference(node_grid=(20, 15), label_sides=(10, 20, 32, 45), n_run=10):
    print(f"\n1. Min-sum BP, node grid {node_grid[0]}x{node_grid[1]}, labels = all positions "
          f"of a target grid, random 32-d features, lam = 1")
    print(f"{'labels':>12} {'ours ms/it':>11} {'ref ms/it':>11} {'speed-up':>9} "
          f"{'ours 10 it s':>13} {'ref 10 it s':>12} {'ref its':>8} {'max |dm|':>9} "
          f"{'labels equal':>13}")
    rng = np.random.default_rng(0)
    for side in label_sides:
        fs = rng.standard_normal(node_grid + (32,))
        ft = rng.standard_normal((side, side, 32))
        costs = data_cost(fs, ft)
        offsets = absolute_offsets(node_grid)
        fixed = {"tol": 0.0, "patience": 0}
        min_sum_bp(costs, 1.0, offsets, max_iter=1)  # load the compiled kernel
        ours, result = best_time(min_sum_bp, costs, 1.0, offsets, max_iter=n_run, **fixed)
        ours /= result.n_iter
        n_ref = 3 if side * side <= 1100 else 1
        ours_result, messages = min_sum_bp(costs, 1.0, offsets, max_iter=n_ref,
                                           return_messages=True, **fixed)
        start = time.perf_counter()
        ref_labels, ref_messages = min_sum_bp_reference(costs, 1.0, offsets, ours_result.n_iter)
        ref = (time.perf_counter() - start) / ours_result.n_iter
        err = np.abs(messages - ref_messages).max()
        same = bool((ours_result.labels == ref_labels).all())
        assert err < 1e-5 and same, "BP and the brute-force reference disagree"
        print(f"{side:>5}x{side:<3}{side * side:>4} {ours * 1e3:>11.2f} {ref * 1e3:>11.1f} "
              f"{ref / ours:>8.0f}x {ours * n_run:>13.3f} {ref * n_run:>12.2f} "
              f"{ours_result.n_iter:>8} {err:>9.1e} {str(same):>13}")


def pf_willow_pair(grid=(20, 20), n_features=384, noise=6.0):
    fs, ft, flow = synthetic_flow_pair(grid, n_features=n_features, amplitude=3.0, noise=noise,
                                       seed=0)
    full = data_cost(fs, ft)
    offsets = absolute_offsets(grid)
    lam = float(np.median(full)) / 30
    data_only = full.reshape(grid + (-1,)).argmin(-1)
    data_only = np.stack(np.unravel_index(data_only, grid), axis=-1) + offsets
    print(f"\n2. One pair at PF-WILLOW size: {grid[0]}x{grid[1]} nodes (320 px, stride 16), "
          f"{n_features}-d features, known smooth flow (|w| <= 3), noise such that the data "
          f"term alone gets {(data_only == flow).all(-1).mean():.0%} of the nodes right; "
          f"lam = median cost / 30 = {lam:.0f}; default stopping (tol 1e-6, patience 5, "
          f"max_iter 100)")
    print(f"{'label set':>22} {'labels':>7} {'solver':>15} {'cost s':>8} {'BP s':>8} "
          f"{'total s':>8} {'iters':>6} {'energy':>10} {'exact':>6} {'<=1':>6}")
    problems = [("every target position", data_cost, (fs, ft), offsets)]
    for radius in (4, 8):
        problems.append((f"window R={radius}", data_cost_window, (fs, ft, radius),
                         window_offsets(grid, radius)))
    for name, make_costs, args, offsets in problems:
        cost_time, costs = best_time(make_costs, *args)
        for solver_name, solver in [("flat BP", min_sum_bp),
                                    ("coarse-to-fine", coarse_to_fine_bp)]:
            solver(costs, lam, offsets, max_iter=1)
            bp_time, result = best_time(solver, costs, lam, offsets)
            exact = (result.displacements == flow).all(-1).mean()
            near = (np.abs(result.displacements - flow).max(-1) <= 1).mean()
            print(f"{name:>22} {costs.shape[2] * costs.shape[3]:>7} {solver_name:>15} "
                  f"{cost_time:>8.4f} {bp_time:>8.4f} {cost_time + bp_time:>8.4f} "
                  f"{result.n_iter:>6} {result.energy:>10.0f} {exact:>6.1%} {near:>6.1%}")


if __name__ == "__main__":
    print("Machine:", machine())
    start = time.perf_counter()
    against_reference()
    pf_willow_pair()
    print(f"\nBenchmark time {time.perf_counter() - start:.0f} s. Times are the best of 3 wall "
          "times, except the reference (one run). coarse-to-fine: levels=2, radius=2.")
