"""A dask cluster that pays (issue 24): PF-WILLOW on a cluster of separate processes.

    PYTHONPATH=. SKCORR_DATA=../shared/data .venv/bin/python bench/dask.py [--part ...]

(``--part features``, ``willow``, ``aligner`` or ``all``; PYTHONPATH=. runs this
checkout's skcorr.)

* ``features``: extraction of PF-WILLOW images in one process, the issue-24 way (each
  forward pass on one thread, the images over the cores in threads; features the same
  whatever the thread count) against the former way (one image batch at a time, torch's
  threads inside each pass), interleaved twice, no cache.
* ``willow``: the whole ``skcorr evaluate pf-willow --features conv`` command, a fresh
  process and a fresh (cold) ``--memory`` folder each, with ``--n-jobs 1`` and
  ``--n-jobs 2`` locally and with ``--scheduler`` on a scheduler and two
  single-threaded worker processes started as separate processes on 127.0.0.1 (no
  dashboard), as a user with several machines starts them: once on workers just started,
  then three turns of the three (medians reported: the machine is shared), then once on
  workers started with ``--preload skcorr.features``. For the last cluster run: the
  bytes the client sent (every TCP write of its dask connections) against the size of
  the feature maps, the seconds of each kind of task on the workers (dask's task
  stream), and from those a projection of SPair-71k's 12,234 test pairs on 1, 8 and 64
  workers. The CSV tables must be byte-identical.
* ``aligner``: FlowAligner fit on 40 and predict on 40 PF-WILLOW images and a
  GridSearchCV over lam, locally (n_jobs 1 and 2) and on the warm cluster, three turns;
  identical outputs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# This file's name is dask's: its folder must not shadow the dask package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

SPAIR_TEST_PAIRS = 12_234
SPAIR_IMAGES = 1_800  # every SPair-71k image: an upper bound on those its test pairs use


def bench_features(root: Path, n_images: int = 40) -> None:
    import torch
    from PIL import Image

    from skcorr.datasets import load_pf_willow
    from skcorr.evaluation import flow_features

    paths = load_pf_willow(root / "PF-WILLOW").images[:n_images]
    images = [np.asarray(Image.open(path).convert("RGB")) for path in paths]
    print(f"Dense conv5 features (the evaluation's) of {len(images)} PF-WILLOW images, one "
          f"process, torch threads {torch.get_num_threads()}, no cache\n")
    print("| run | one forward pass per thread, images in threads (s) | "
          "torch threads inside each pass, one batch at a time (former) (s) | ratio |")
    print("|---|---|---|---|")
    new = flow_features("conv").set_params(mode="dense").fit()
    old = flow_features("conv").set_params(mode="dense").fit()
    old._forward = old._forward_batches  # the former forward: torch's own threads
    old._image_threads = lambda: 1
    for repeat in range(2):
        times = []
        for ext in (new, old):
            start = time.perf_counter()
            ext.extract_dense(images)
            times.append(time.perf_counter() - start)
        print(f"| repeat {repeat + 1} | {times[0]:.1f} | {times[1]:.1f} | "
              f"{times[0] / times[1]:.2f} |", flush=True)
    print()


@contextlib.contextmanager
def separate_cluster(n_workers: int = 2, preload: tuple = ()):
    """``dask scheduler`` and ``dask worker --nworkers N --nthreads 1`` as processes of
    their own on 127.0.0.1, without dashboards (the workers importing the ``preload``
    modules as they start); killed at the end."""
    from distributed import Client

    folder = Path(tempfile.mkdtemp(prefix="skcorr-bench-dask-"))
    info = folder / "scheduler.json"
    processes = []
    logs = [open(folder / name, "w") for name in ("scheduler.log", "workers.log")]
    try:
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
             "--port", "0", "--no-dashboard", "--dashboard-address", "127.0.0.1:0",
             "--scheduler-file", str(info)],
            stdout=logs[0], stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 120
        while not info.exists() or not info.read_text().strip():
            if time.monotonic() > deadline:
                raise RuntimeError("the scheduler did not start within 120 s")
            time.sleep(0.2)
        time.sleep(0.5)
        address = json.loads(info.read_text())["address"]
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", "--nworkers",
             str(n_workers), "--nthreads", "1", "--no-dashboard", "--dashboard-address",
             "127.0.0.1:0", "--host", "127.0.0.1", "--scheduler-file", str(info),
             *[arg for module in preload for arg in ("--preload", module)]],
            stdout=logs[1], stderr=subprocess.STDOUT))
        with Client(address, timeout="30s") as client:
            client.wait_for_workers(n_workers, timeout=120)
        yield address
    finally:
        for process in processes:
            process.kill()
            process.wait(30)
        for log in logs:
            log.close()


def _run(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def bench_willow(root: Path, repeats: int = 3) -> None:
    from distributed import Client, get_task_stream

    from skcorr.datasets import load_pf_willow

    out = Path(tempfile.mkdtemp(prefix="skcorr-bench-willow-"))
    base = [sys.executable, str(Path(__file__).resolve()), "--cli", "evaluate", "pf-willow",
            "--features", "conv", "--data", str(root / "PF-WILLOW"), "--quiet"]
    walls: dict = {}
    sent_file = out / "sent.json"
    start = time.perf_counter()
    with separate_cluster(2) as address:
        started = time.perf_counter() - start
        # First on workers just started (their first task imports torch and skcorr and
        # builds the network); then, in turns, --n-jobs 1, --n-jobs 2 and the same
        # workers again, each with a cold cache (the machine is shared: medians of the turns).
        walls["dask-fresh"] = [_run(base + ["--scheduler", address, "--output",
                                            str(out / "dask-fresh")])]
        for turn in range(repeats):
            for name in ("n1", "n2"):
                walls.setdefault(name, []).append(_run(
                    base + ["--n-jobs", name[1], "--output", str(out / f"{name}-{turn}")]))
            with Client(address, timeout="30s") as watcher, \
                    get_task_stream(client=watcher) as ts:
                walls.setdefault("dask", []).append(_run(
                    base + ["--scheduler", address, "--output", str(out / f"dask-{turn}"),
                            "--bytes-to", str(sent_file)]))
                stream = ts.data
    # The recipe's workers: torch and skcorr imported as they start, not in the first run.
    start = time.perf_counter()
    with separate_cluster(2, preload=("skcorr.features",)) as address:
        preloaded = time.perf_counter() - start
        walls["dask-preload"] = [_run(base + ["--scheduler", address, "--output",
                                              str(out / "dask-preload")])]
    rows = {
        "n1": "--n-jobs 1 (local)",
        "n2": "--n-jobs 2 (local)",
        "dask-fresh": f"--scheduler, 2 one-thread worker processes just started (their "
                      f"start: {started:.1f} s)",
        "dask": "--scheduler, the same workers again",
        "dask-preload": f"--scheduler, workers just started with --preload skcorr.features "
                        f"(their start: {preloaded:.1f} s)",
    }
    median = {name: float(np.median(values)) for name, values in walls.items()}
    print("| skcorr evaluate pf-willow --features conv, cold cache | wall (s), median | "
          "each run (s) | / --n-jobs 1 | / --n-jobs 2 |")
    print("|---|---:|---|---:|---:|")
    for name, label in rows.items():
        print(f"| {label} | {median[name]:.1f} | {' '.join(f'{w:.1f}' for w in walls[name])} "
              f"| {median[name] / median['n1']:.2f} | {median[name] / median['n2']:.2f} |")
    print()
    tables = {folder.name: b"".join(path.read_bytes() for path in sorted(folder.glob("*.csv")))
              for folder in out.iterdir() if folder.is_dir()}
    print(f"CSV tables byte-identical: {len(set(tables.values())) == 1} ({len(tables)} "
          "runs)\n")
    print("The last run on the same workers:\n")

    dataset = load_pf_willow(root / "PF-WILLOW")
    sent = json.loads(sent_file.read_text())
    print(f"bytes the client sent to the cluster: {sent['sent'] / 1e6:.1f} MB; received: "
          f"{sent['received'] / 1e6:.1f} MB; the {sent['maps']} dense feature maps the "
          f"client got: {sent['map_bytes'] / 1e6:.1f} MB; sent / maps = "
          f"{sent['sent'] / sent['map_bytes']:.2f}\n")

    # Per-task costs from the task stream: seconds of compute on the workers.
    kinds: dict = {}
    for task in stream:
        seconds = sum(s["stop"] - s["start"] for s in task.get("startstops", ())
                      if s.get("action") == "compute")
        prefix = task["key"].split("-")[0] if isinstance(task["key"], str) else str(task["key"])
        kind = "features" if prefix.startswith("_remote") else "alignments"
        kinds[kind] = kinds.get(kind, 0.0) + seconds
    n_images, n_pairs = len(dataset.images), len(dataset.pairs)
    busy = sum(kinds.values())
    client_side = walls["dask"][-1] - busy / 2
    per_image = kinds.get("features", 0.0) / n_images
    per_pair = kinds.get("alignments", 0.0) / n_pairs
    print("| task kind | worker-seconds | per item (s) |")
    print("|---|---|---|")
    print(f"| features ({n_images} images) | {kinds.get('features', 0.0):.1f} | "
          f"{per_image:.3f} |")
    print(f"| alignments ({n_pairs} pairs) | {kinds.get('alignments', 0.0):.1f} | "
          f"{per_pair:.4f} |")
    print(f"\nwall {walls['dask'][-1]:.1f} s = {busy / 2:.1f} s of work over 2 workers + "
          f"{client_side:.1f} s on the client and in transit (start-up, loading the data "
          "set, sending the network, collecting the maps)\n")
    print(f"Projection, SPair-71k test ({SPAIR_TEST_PAIRS} pairs, at most {SPAIR_IMAGES} "
          "images), at PF-WILLOW's per-item costs and the same client-side seconds:\n")
    print("| workers | projected wall (s) |")
    print("|---|---|")
    work = SPAIR_IMAGES * per_image + SPAIR_TEST_PAIRS * per_pair
    for workers in (1, 8, 64):
        print(f"| {workers} | {client_side + work / workers:.0f} |")
    print()


def bench_aligner(root: Path, n_train: int = 40, n_test: int = 40, repeats: int = 3) -> None:
    """FlowAligner fit on 40 and predict on 40 PF-WILLOW images, then a GridSearchCV over
    lam on the 40: locally with n_jobs 1 and 2, and on the separate cluster (warmed
    first), in turns, each with a fresh memory folder; the outputs must be identical."""
    from sklearn.model_selection import GridSearchCV

    from skcorr import FlowAligner
    from skcorr._parallel import dask_backend
    from skcorr.datasets import load_pf_willow
    from skcorr.metrics import pck_scorer

    data = load_pf_willow(root / "PF-WILLOW")
    order = np.random.default_rng(0).permutation(len(data.images))
    train, test = order[:n_train], order[n_train:n_train + n_test]
    images = list(data.images)
    print(f"FlowAligner(n_neighbors=5, n_top=2) fit on {n_train} and predict on {n_test} "
          "PF-WILLOW images, then GridSearchCV over lam in (0.05, 0.2), cv=2, on the "
          "training images; default features; a fresh memory folder each\n")

    def run(n_jobs):
        memory = tempfile.mkdtemp(prefix="skcorr-bench-aligner-")
        start = time.perf_counter()
        aligner = FlowAligner(n_neighbors=5, n_top=2, memory=memory, n_jobs=n_jobs)
        predicted = aligner.fit([images[i] for i in train], data.keypoints[train]).predict(
            [images[i] for i in test])
        middle = time.perf_counter()
        search = GridSearchCV(FlowAligner(n_neighbors=5, n_top=2, memory=memory,
                                          n_jobs=n_jobs), {"lam": [0.05, 0.2]}, cv=2,
                              scoring=pck_scorer(alpha=0.1))
        search.fit([images[i] for i in train], data.keypoints[train])
        end = time.perf_counter()
        return middle - start, end - middle, predicted, search.cv_results_["mean_test_score"]

    results: dict = {}
    with separate_cluster(2) as address:
        with dask_backend(address, timeout=30):
            FlowAligner(n_neighbors=1, n_top=1).fit(images[:2], data.keypoints[:2]).predict(
                images[2:4])  # warm the workers: imports, extractors, compiled kernels
        # In turns (the machine is shared: medians of the turns).
        for _ in range(repeats):
            for name, n_jobs in (("--n-jobs 1 (local)", 1), ("--n-jobs 2 (local)", 2),
                                 ("dask cluster, 2 one-thread workers (warm)", None)):
                with (dask_backend(address, timeout=30) if n_jobs is None
                      else contextlib.nullcontext()):
                    results.setdefault(name, []).append(run(n_jobs))
    print("| run | fit + predict (s), median | each | search (s), median | each |")
    print("|---|---:|---|---:|---|")
    for name, runs in results.items():
        cells = []
        for column in (0, 1):
            values = [r[column] for r in runs]
            cells += [f"{np.median(values):.1f}", " ".join(f"{v:.1f}" for v in values)]
        print(f"| {name} | {' | '.join(cells)} |")
    every = [r for runs in results.values() for r in runs]
    same = all(np.array_equal(r[2], every[0][2]) and np.array_equal(r[3], every[0][3])
               for r in every)
    print(f"\npredictions and cross-validated scores identical: {same}\n")


def run_cli(argv: list[str]) -> int:
    """The skcorr command, counting the bytes of every dask TCP write and read (with
    ``--bytes-to FILE``) and the dense feature maps the client gets."""
    counts = {"sent": 0, "received": 0}
    bytes_to = None
    if "--bytes-to" in argv:
        at = argv.index("--bytes-to")
        bytes_to = Path(argv[at + 1])
        del argv[at:at + 2]
        from distributed.comm import tcp

        write, read_bytes = tcp.TCP.write, tcp.read_bytes_rw

        async def counted_write(self, msg, serializers=None, on_error="message"):
            n = await write(self, msg, serializers=serializers, on_error=on_error)
            counts["sent"] += int(n or 0)
            return n

        async def counted_read_bytes(stream, n):
            counts["received"] += int(n)
            return await read_bytes(stream, n)

        tcp.TCP.write = counted_write
        tcp.read_bytes_rw = counted_read_bytes
    from skcorr.cli import main as skcorr_main
    from skcorr.features import _base

    maps: dict = {}
    extract_dense = _base.FeatureTransformer.extract_dense

    def counted_extract_dense(self, images):
        result = extract_dense(self, images)
        # keyed by identity; the map is kept, so that its id is not reused
        maps.update((id(m), (m, m.features.nbytes + m.xs.nbytes + m.ys.nbytes))
                    for m in result)
        return result

    _base.FeatureTransformer.extract_dense = counted_extract_dense
    status = skcorr_main(argv)
    counts.update(maps=len(maps), map_bytes=sum(size for _, size in maps.values()))
    if bytes_to is not None:
        bytes_to.write_text(json.dumps(counts))
    return status


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--cli":
        sys.exit(run_cli(sys.argv[2:]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["features", "willow", "aligner", "all"],
                        default="all")
    args = parser.parse_args()
    root = Path(os.environ.get("SKCORR_DATA", Path(__file__).parents[1] / "../shared/data"))
    import torch

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f} at start; torch threads "
          f"{torch.get_num_threads()}\n")
    if args.part in ("features", "all"):
        bench_features(root)
    if args.part in ("willow", "all"):
        bench_willow(root)
    if args.part in ("aligner", "all"):
        bench_aligner(root)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
