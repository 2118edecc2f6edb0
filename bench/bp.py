"""Benchmark of the flow MRF solver: dual-layer BP against today's 2-D BP and SIFT Flow's C++.

Run:  .venv/bin/python bench/bp.py [--baseline ../wt/base] [--energies N] [--quick]
(a few minutes on 2 cores)

1. Per full sweep (every node sends its messages once), on the grids and label windows
   of the issue's table (20x20 and 40x40 nodes, windows of 21x21 = 441 and 31x31 = 961
   labels, 128-d SIFT-like unit features with a known smooth flow), three kernels side
   by side: 2-D BP (``bp_iterations``, 2-D messages by separable distance transforms,
   float64; kept in-tree as the reference), the dual-layer kernel before issue 22's
   vector sweep (``skcorr/flow/_dual.py`` of the checkout given as ``--baseline``, e.g.
   commit 20bc60a; a self-contained module, loaded from its file) and today's kernel
   (``dual_bp_iterations``, float32 vector kernels). The two dual kernels run
   interleaved, a fixed number of sweeps (``patience=0, tol=0``), setup and ICM polish
   included; milliseconds per sweep and million node-labels per second (wall and CPU
   time: on a machine shared with other jobs the CPU time is what the code costs), and
   the C++ per sweep (its flat 50-iteration time / 50, issue 10) against today's.
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
import types

import numba
import numpy as np

from skcorr.features import FeatureMap
from skcorr.flow import align
from skcorr.flow._mrf._bp2d import bp_iterations
from skcorr.flow._mrf._costs import data_cost_window, window_offsets
from skcorr.flow._mrf._solve import coarse_to_fine_bp

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from flow_reference import synthetic_flow_pair  # noqa: E402  (the tests' brute force)

from skcorr.flow._mrf._dual import dual_bp_iterations

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
    """``n`` dual-layer sweeps, messages and setup included as in every solve."""
    H, W, Ly, Lx = costs.shape
    mu = np.zeros((4, H, W, Lx), np.float32)
    mv = np.zeros((4, H, W, Ly), np.float32)
    return dual_bp_iterations(costs, offsets, np.float32(LAM), mu, mv, n, -1.0, 0)


def load_baseline(checkout):
    """The dual-layer kernel module of another checkout (before issue 22), or None.

    Compiled afresh: its numba cache on disk belongs to its own module name.
    """
    if checkout is None:
        return None
    path = os.path.join(checkout, "skcorr", "flow", "_dual.py")
    with open(path) as file:
        source = file.read().replace("cache=True", "cache=False")
    module = types.ModuleType("baseline_dual")
    module.__file__ = path
    exec(compile(source, path, "exec"), module.__dict__)
    return module


def baseline_sweeps(module, costs, offsets, n):
    """``n`` sweeps of the baseline's dual-layer kernel (its transposed costs included)."""
    H, W, Ly, Lx = costs.shape
    mu = np.zeros((4, H, W, Lx), np.float32)
    mv = np.zeros((4, H, W, Ly), np.float32)
    return module.dual_bp_iterations(costs, module.transpose_labels(costs), offsets,
                                     np.float32(LAM), mu, mv, n, -1.0, 0)


def interleaved_times(runs, repeat):
    """Smallest wall and CPU time of each of ``runs`` (name -> (fn, args)), the runs
    taking turns ``repeat`` times so that a change of load hits all of them alike."""
    wall = dict.fromkeys(runs, np.inf)
    cpu = dict.fromkeys(runs, np.inf)
    for _ in range(repeat):
        for name, (fn, args) in runs.items():
            w, c, _ = best_times(fn, *args, repeat=1)
            wall[name], cpu[name] = min(wall[name], w), min(cpu[name], c)
    return wall, cpu


def per_sweep(baseline, repeat=5):
    print("\n1. One full sweep (every node sends its messages once), window labels, "
          f"lam = {LAM}; ms per sweep wall (CPU), best of {repeat}; M nl/s = million "
          "node-labels per second, wall (CPU)")
    print(f"{'grid':>6} {'labels':>6} | {'2-D ms':>13} {'M nl/s':>6} | {'dual before ms':>14} "
          f"{'M nl/s':>11} | {'dual today ms':>13} {'M nl/s':>11} | {'today/before':>12} "
          f"{'C++ ms':>6} {'C++/today':>9}")
    for side, radius, fs, ft in problems():
        costs = data_cost_window(fs, ft, radius)
        offsets = window_offsets((side, side), radius)
        H, W, Ly, Lx = costs.shape
        node_labels = H * W * Ly * Lx
        costs64 = costs.astype(np.float64)
        n_today, n_dual = (2, 20) if side == 20 else (1, 10)
        runs = {"2d": (today_sweeps, (costs64, offsets, n_today)),
                "today": (dual_sweeps, (costs, offsets, n_dual))}
        if baseline is not None:
            runs["before"] = (lambda *a: baseline_sweeps(baseline, *a), (costs, offsets, n_dual))
        for fn, (costs_, offsets_, _) in runs.values():
            fn(costs_, offsets_, 1)
        wall, cpu = interleaved_times({name: runs[name] for name in ("before", "today")
                                       if name in runs}, repeat)
        if baseline is None:  # no column to compare with: show it empty
            wall["before"] = cpu["before"] = np.nan
        fn2, args2 = runs["2d"]
        w2, c2, _ = best_times(fn2, *args2, repeat=max(1, repeat // 2))
        ms = {name: (wall[name] / n_dual * 1e3, cpu[name] / n_dual * 1e3) for name in wall}
        ms["2d"] = (w2 / n_today * 1e3, c2 / n_today * 1e3)
        rate = {name: (node_labels / w / 1e3, node_labels / c / 1e3) for name, (w, c) in ms.items()}
        cpp = CPP_SECONDS[(side, Ly * Lx)][0] / 50 * 1e3
        print(f"{side:>3}x{side:<2} {Ly * Lx:>6} | {ms['2d'][0]:>6.1f} ({ms['2d'][1]:>5.1f}) "
              f"{rate['2d'][0]:>6.0f} | {ms['before'][0]:>5.2f} ({ms['before'][1]:>5.2f}) "
              f"{rate['before'][0]:>5.0f} ({rate['before'][1]:>4.0f}) | "
              f"{ms['today'][0]:>5.2f} ({ms['today'][1]:>5.2f}) "
              f"{rate['today'][0]:>5.0f} ({rate['today'][1]:>4.0f}) | "
              f"{ms['before'][0] / ms['today'][0]:>5.2f} ({ms['before'][1] / ms['today'][1]:.2f}) "
              f"{cpp:>6.2f} {cpp / ms['today'][0]:>9.2f}")
    print("A dual run is a fixed number of sweeps with its setup and ICM polish (about a "
          "sweep's worth), so ms per sweep is slightly pessimistic. C++ ms: SIFT Flow's "
          "flat 50-iteration time / 50 (issue 10, setup included).")


def fixed_coarse_to_fine(fs, ft, radius, n_iter=50):
    """Coarse-to-fine as align(levels=2) runs it, data costs included, but ``n_iter``
    sweeps at every level, never stopping early (``patience=0, tol=0``), like the C++."""
    costs = data_cost_window(fs, ft, radius)
    offsets = window_offsets(fs.shape[:2], radius)
    return coarse_to_fine_bp(costs, LAM, offsets, levels=2, max_iter=n_iter, tol=0.0,
                             patience=0)


def end_to_end(repeat=3):
    print(f"\n2. align() end to end (data costs included), lam = {LAM}, max_iter 50, "
          f"default early stopping; best of {repeat} wall (and CPU) seconds; C++: SIFT Flow's BP, "
          "from issue 10; 'c2f fixed': coarse-to-fine with 50 sweeps at every level")
    print(f"{'grid':>6} {'labels':>7} | {'C++ flat':>8} {'align(levels=0)':>17} {'ratio':>5} "
          f"{'iters':>5} | {'C++ c2f':>7} {'align()':>17} {'ratio':>5} | "
          f"{'c2f fixed':>17} {'ratio':>5} | {'2-D align()':>11}")
    fixed_ratios = []
    for side, radius, fs, ft in problems():
        source, target = feature_map(fs), feature_map(ft)
        cpp_flat, cpp_c2f = CPP_SECONDS[(side, (2 * radius + 1) ** 2)]
        align(source, target, lam=LAM, radius=radius, levels=0)
        flat, flat_cpu, flow = best_times(align, source, target, lam=LAM, radius=radius,
                                          levels=0, repeat=repeat)
        c2f, c2f_cpu, _ = best_times(align, source, target, lam=LAM, radius=radius,
                                     repeat=repeat)
        fixed_coarse_to_fine(fs, ft, radius)
        fixed, fixed_cpu, _ = best_times(fixed_coarse_to_fine, fs, ft, radius, repeat=repeat)
        fixed_ratios.append(cpp_c2f / fixed)
        old = best_time(align, source, target, lam=LAM, radius=radius, solver="2d",
                        repeat=1)[0]
        print(f"{side:>3}x{side:<2} {(2 * radius + 1) ** 2:>7} | {cpp_flat:>8.3f} "
              f"{flat:>8.4f} ({flat_cpu:.4f}) {cpp_flat / flat:>5.2f} {flow.n_iter:>5} | "
              f"{cpp_c2f:>7.3f} {c2f:>8.4f} ({c2f_cpu:.4f}) {cpp_c2f / c2f:>5.2f} | "
              f"{fixed:>8.4f} ({fixed_cpu:.4f}) {cpp_c2f / fixed:>5.2f} | {old:>11.3f}")
    print("ratio = C++ time / skcorr wall time (above 1: skcorr faster). '2-D align()': "
          "solver='2d', coarse-to-fine, one run. Geometric mean of the 'c2f fixed' ratios: "
          f"{np.exp(np.mean(np.log(fixed_ratios))):.2f}.")


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
    parser.add_argument("--baseline", metavar="CHECKOUT",
                        help="a checkout before issue 22 (e.g. commit 20bc60a), whose "
                             "dual-layer kernel is timed beside today's")
    parser.add_argument("--quick", action="store_true",
                        help="one timing of each (a check that the benchmark runs, not "
                             "numbers to quote)")
    args = parser.parse_args()
    print("Machine:", machine())
    start = time.perf_counter()
    per_sweep(load_baseline(args.baseline), repeat=1 if args.quick else 5)
    end_to_end(repeat=1 if args.quick else 3)
    if args.energies and os.environ.get("SKCORR_DATA"):
        energies(args.energies)
    print(f"\nBenchmark time {time.perf_counter() - start:.0f} s; numba threading layer "
          f"{numba.threading_layer()}.")
