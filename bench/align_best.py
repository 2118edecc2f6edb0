"""``align`` with the best settings, per pair on one thread, with a profile of its stages.

Run (on a quiet machine; the numbers mean nothing while other jobs run):

    SKCORR_DATA=../shared/data .venv/bin/python bench/align_best.py
    SKCORR_DATA=../shared/data .venv/bin/python bench/align_best.py --baseline ../wt/base

Loads ``--pairs`` PF-WILLOW pairs (default 12, spread over the sub-classes), extracts
their feature maps once in this process (EfficientNet-Lite0 stage5+stage6 at 480 px, the
best configuration's 20x30 grids of 600 labels, and conv5 at 320 px for the paper's
settings; cached with ``memory=`` in a temporary folder, ``--cache`` to choose it), then
times ``align`` in a subprocess restricted to one thread (BLAS and OpenMP through
threadpoolctl, ``numba.set_num_threads(1)``):

* best:  ``align(s, t, lam=0.05, truncation=3, ot_reg=0.2, subcell=True)``
* paper: ``align(s, t, lam=0.1)`` on conv5 at 320 px

Each pair is aligned ``--repeat`` times (default 3) and the best time kept. A second
pass, with timers around the functions ``align`` calls, splits the best run of each pair
into data costs, transport prices, label prices, BP (coarse-to-fine, coarsening counted
separately), sub-cell refinement and the rest. ``--baseline PATH`` runs the same
timing on another checkout (``PYTHONPATH=PATH``, same feature maps) and prints both
side by side, e.g. ``/work/wt/base`` at commit 20bc60a for the implementation before
issue 22. Both run in turn, each in its own subprocess, with the first pair aligned once
before timing so that numba's compilation is not counted.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = {
    "best": {"maps": "best", "options": {"lam": 0.05, "truncation": 3, "ot_reg": 0.2,
                                         "subcell": True}},
    "paper": {"maps": "paper", "options": {"lam": 0.1}},
}
FEATURES = {
    "best": {"layer": ["stage5", "stage6"], "image_size": 480},
    "paper": {"layer": "conv5", "image_size": 320},
}
# (stage, names in skcorr.flow._align that it covers, in either implementation)
STAGES = [
    ("data costs", ("data_cost", "data_cost_window", "shift_label_grid")),
    ("prices", ("target_prices",)),
    ("label prices", ("add_label_prices", "_label_prices")),
    ("BP", ("_coarse_to_fine",)),
    ("sub-cell", ("subcell_offsets", "_subcell")),
]
ORDER = ["data costs", "prices", "label prices", "BP", "coarsening", "sub-cell", "other"]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=12, help="PF-WILLOW pairs (default 12)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per pair; the best counts")
    parser.add_argument("--baseline", help="another checkout to time the same way")
    parser.add_argument("--cache", help="feature cache folder (default: a temporary folder)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: maps file to time
    return parser.parse_args()


# --------------------------------------------------------------------------------------
# The parent: features once, then one worker per checkout
# --------------------------------------------------------------------------------------
def extract(args, cache):
    from skcorr.datasets import load_pf_willow
    from skcorr.features import ConvColumnExtractor

    dataset = load_pf_willow(os.path.join(os.environ["SKCORR_DATA"], "PF-WILLOW"))
    step = max(len(dataset.pairs) // args.pairs, 1)
    pairs = dataset.pairs[::step][:args.pairs]
    ids = np.unique(pairs)
    arrays = {"pairs": pairs}
    for name, settings in FEATURES.items():
        extractor = ConvColumnExtractor(**settings, memory=str(cache / "features")).fit()
        maps = extractor.extract_dense([dataset.images[i] for i in ids])
        for i, fmap in zip(ids, maps, strict=True):
            arrays[f"{name}/{i}/features"] = fmap.features
            arrays[f"{name}/{i}/xs"] = fmap.xs
            arrays[f"{name}/{i}/ys"] = fmap.ys
            arrays[f"{name}/{i}/rf_size"] = np.float64(fmap.rf_size)
            arrays[f"{name}/{i}/image_shape"] = np.asarray(fmap.image_shape)
        grid = maps[0].features.shape
        print(f"{name}: {settings}, grids like {grid[0]}x{grid[1]}x{grid[2]}", flush=True)
    path = cache / "maps.npz"
    np.savez(path, **arrays)
    return path, len(pairs)


def run_worker(checkout, maps, repeat):
    env = dict(os.environ, PYTHONPATH=str(checkout), OMP_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", str(maps),
                          "--repeat", str(repeat)], env=env, cwd=checkout,
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        sys.exit(f"timing {checkout} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(results, n_pairs, repeat):
    names = list(results)
    print(f"\nalign per pair, ms, best of {repeat} per pair, one thread, {n_pairs} PF-WILLOW "
          f"pairs, load {os.getloadavg()[0]:.1f}")
    for checkout, result in results.items():
        print(f"  {checkout}: skcorr from {result['skcorr']}")
    header = f"{'':>26}" + "".join(f"{name:>14}" for name in names)
    if len(names) == 2:
        header += f"{'ratio':>8}"
    for config in CONFIGS:
        print(f"\n{config}: {CONFIGS[config]['options']} on {FEATURES[config]}")
        print(header)
        rows = [("mean", "mean"), ("median", "median"), ("max", "max")]
        rows += [(f"  {'(of which) ' if stage == 'coarsening' else ''}{stage}", stage)
                 for stage in ORDER if stage in results[names[0]][config]["profile"]]
        for label, key in rows:
            values = [result[config]["profile"].get(key, np.nan) if key not in
                      ("mean", "median", "max") else result[config][key]
                      for result in results.values()]
            line = f"{label:>26}" + "".join(f"{value:14.2f}" for value in values)
            if len(values) == 2 and values[0] > 0:
                line += f"{values[1] / values[0]:8.2f}"
            print(line)
    if len(names) == 2:
        print(f"\nratio = {names[1]} / {names[0]} (above 1: {names[0]} faster)")


def main():
    args = parse_args()
    if args.worker:
        print(json.dumps(time_align(Path(args.worker), args.repeat)))
        return
    if args.cache:
        cache = Path(args.cache)
        cache.mkdir(parents=True, exist_ok=True)
    else:
        cache = Path(tempfile.gettempdir()) / "skcorr-bench-align-best"
        cache.mkdir(exist_ok=True)
    maps, n_pairs = extract(args, cache)
    checkouts = {"this checkout": ROOT}
    if args.baseline:
        checkouts["baseline"] = Path(args.baseline).resolve()
    results = {name: run_worker(path, maps, args.repeat) for name, path in checkouts.items()}
    report(results, n_pairs, args.repeat)


# --------------------------------------------------------------------------------------
# The worker: one thread, timings and the profile
# --------------------------------------------------------------------------------------
def time_align(maps_path, repeat):
    import numba
    from threadpoolctl import threadpool_limits

    import skcorr
    import skcorr.flow._align as align_module
    from skcorr.features import FeatureMap
    from skcorr.flow import align

    threadpool_limits(1)
    numba.set_num_threads(1)
    data = np.load(maps_path)
    pairs = data["pairs"]

    def fmap(name, i):
        return FeatureMap(features=data[f"{name}/{i}/features"], xs=data[f"{name}/{i}/xs"],
                          ys=data[f"{name}/{i}/ys"], rf_size=float(data[f"{name}/{i}/rf_size"]),
                          image_shape=tuple(int(v) for v in data[f"{name}/{i}/image_shape"]))

    timers = _install_timers(align_module)
    result = {"skcorr": str(Path(skcorr.__file__).parent)}
    for config, spec in CONFIGS.items():
        maps = {i: fmap(spec["maps"], i) for i in np.unique(pairs)}
        options = spec["options"]
        align(maps[pairs[0, 0]], maps[pairs[0, 1]], **options)  # compile outside the timings
        best, profile = [], {}
        for s, t in pairs:
            _set_enabled(timers, False)
            seconds = []
            for _ in range(repeat):
                start = time.perf_counter()
                align(maps[s], maps[t], **options)
                seconds.append(time.perf_counter() - start)
            best.append(min(seconds))
            _set_enabled(timers, True)
            runs = []
            for _ in range(repeat):
                for timer in timers.values():
                    timer.reset()
                start = time.perf_counter()
                align(maps[s], maps[t], **options)
                total = time.perf_counter() - start
                runs.append((total, {stage: timer.seconds for stage, timer in timers.items()}))
            total, split = min(runs, key=lambda run: run[0])
            split["other"] = total - sum(v for k, v in split.items() if k != "coarsening")
            for stage, value in split.items():
                profile[stage] = profile.get(stage, 0.0) + value
        ms = 1000 * np.array(best)
        result[config] = {
            "mean": float(ms.mean()), "median": float(np.median(ms)), "max": float(ms.max()),
            "pairs": ms.tolist(),
            "profile": {stage: 1000 * value / len(pairs) for stage, value in profile.items()},
        }
    return result


class _Timer:
    def __init__(self):
        self.enabled = False
        self.reset()

    def reset(self):
        self.seconds = 0.0
        self.depth = 0

    def wrap(self, function):
        def timed(*args, **kwargs):
            if not self.enabled or self.depth:
                return function(*args, **kwargs)
            self.depth += 1
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
                self.depth -= 1

        return timed


def _install_timers(align_module):
    """Wrap the functions ``align`` calls, by their names in its module, in timers."""
    # coarsening inside BP: _coarsen in the module of the coarse-to-fine solver
    solver_module = sys.modules[align_module._coarse_to_fine.__module__]
    timers = {}
    for stage, names in STAGES:
        timer = timers[stage] = _Timer()
        for name in names:
            if hasattr(align_module, name):
                setattr(align_module, name, timer.wrap(getattr(align_module, name)))
    if hasattr(solver_module, "_coarsen"):
        timer = timers["coarsening"] = _Timer()
        solver_module._coarsen = timer.wrap(solver_module._coarsen)
    return timers


def _set_enabled(timers, enabled):
    for timer in timers.values():
        timer.enabled = enabled


if __name__ == "__main__":
    main()
