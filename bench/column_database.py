"""Scale of the column database behind the reconstructions (Study 1).

    python bench/column_database.py [--layer stage3] [--image-size 480] [--out DIR]
    python bench/column_database.py --synthetic 1000000 10000000 [--out DIR]

Real mode: builds a memory-mapped ColumnDatabase from every real image under
$SKCORR_DATA (PF-WILLOW and the CUB subset; default ../shared/data) and measures, side
by side: the build (time, disk, peak resident memory), and exact top-5 cosine search of
one image's columns (256 of them) through the database's faiss search against a
brute-force search that loads every column into memory and takes one matrix product.

Synthetic mode: databases of N random columns of the real shape and dtype (40-d
float16, as stage3), drawn around 4096 random centres so that they have neighbours as
real columns do, written in blocks of one million; each gets an approximate index
(IVF4096,PQ20, trained on 200,000 columns). Measures write and index time, disk, peak
RSS, per-query time of the exact and the approximate search (100 queries near stored
columns, k=5), and recall@5 of the approximate search against the exact one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from skcorr import ConvColumnExtractor
from skcorr.columns import ColumnDatabase


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.iterdir())


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_synthetic(path: Path, n: int, d: int = 40, block: int = 1_000_000,
                    per_image: int = 1000) -> ColumnDatabase:
    """A valid database folder of n random unit columns (float16), written block by block."""
    from skcorr.columns._store import FORMAT_VERSION, MARKER, NpyAppender

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4096, d)).astype(np.float32)
    path.mkdir(parents=True)
    (path / MARKER).write_text("synthetic\n")
    columns = NpyAppender(path / "columns.npy", np.float16, (d,))
    for start in range(0, n, block):
        m = min(block, n - start)
        rows = centres[rng.integers(0, len(centres), m)] + 0.6 * rng.normal(size=(m, d))
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        columns.append(rows.astype(np.float16))
    columns.close()
    n_images = -(-n // per_image)
    np.save(path / "image_index.npy", (np.arange(n) // per_image).astype(np.int32))
    np.save(path / "centers.npy", np.zeros((n, 2), np.float32))
    images = np.zeros((n_images, 5))
    images[:, 0] = 3 * np.arange(n_images)  # 1 x 1 pixel images: no patches needed here
    images[:, 1:] = 1
    np.save(path / "images.npy", images)
    np.save(path / "pixels.npy", np.zeros(3 * n_images, np.uint8))
    np.save(path / "rf_sizes.npy", np.ones(n_images))
    np.save(path / "fingerprint.npy", np.ones(4, np.float32))
    meta = {"format_version": FORMAT_VERSION, "backbone": "synthetic", "weights": None,
            "layers": ["random"], "n_features": d, "normalize": True, "image_size": None,
            "dtype": "float16", "rf_size": [1.0, 1.0], "stride": [1.0, 1.0],
            "n_columns": n, "n_images": n_images, "build_id": "synthetic"}
    (path / "meta.json").write_text(json.dumps(meta))
    return ColumnDatabase.open(path)


def synthetic(sizes, out) -> None:
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f} (shared with other jobs)\n")
    print("| columns | write (s) | index (s) | disk (MB) | index (MB) | peak RSS (MB) | "
          "exact ms/query | approx. ms/query (nprobe 16 / 64) | recall@5 (16 / 64) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in sizes:
        folder = Path(out or tempfile.mkdtemp()) / f"synthetic-{n}"
        shutil.rmtree(folder, ignore_errors=True)
        start = time.perf_counter()
        db = write_synthetic(folder, n)
        written = time.perf_counter() - start
        start = time.perf_counter()
        db.build_index("IVF4096,PQ20", nprobe=16, train_size=200_000)
        indexed = time.perf_counter() - start
        rng = np.random.default_rng(1)
        queries = np.asarray(db.columns[rng.integers(0, n, 100)], np.float32)
        queries += 0.1 * rng.normal(size=queries.shape).astype(np.float32)
        start = time.perf_counter()
        _, exact = db.search(queries, k=5)
        exact_ms = 1000 * (time.perf_counter() - start) / len(queries)
        timings, recalls = [], []
        for nprobe in (16, 64):
            start = time.perf_counter()
            _, approx = db.search(queries, k=5, approximate=True, nprobe=nprobe)
            timings.append(1000 * (time.perf_counter() - start) / len(queries))
            recalls.append(np.mean([len(set(a) & set(e)) / 5
                                    for a, e in zip(approx, exact, strict=True)]))
        disk = folder_size(folder) / 2**20
        index_mb = (folder / "index.faiss").stat().st_size / 2**20
        print(f"| {n:,} | {written:.0f} | {indexed:.0f} | {disk:.0f} | {index_mb:.0f} | "
              f"{peak_rss_mb():.0f} | {exact_ms:.1f} | {timings[0]:.2f} / {timings[1]:.2f} | "
              f"{recalls[0]:.2f} / {recalls[1]:.2f} |", flush=True)
        if out is None:
            shutil.rmtree(folder.parent)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layer", default="stage3")
    parser.add_argument("--image-size", type=int, default=480)
    parser.add_argument("--out", default=None, help="database folder (default: a temp dir)")
    parser.add_argument("--synthetic", type=int, nargs="+", metavar="N",
                        help="benchmark random databases of N columns instead")
    args = parser.parse_args()
    if args.synthetic:
        return synthetic(args.synthetic, args.out)
    root = Path(os.environ.get("SKCORR_DATA", Path(__file__).parents[1] / "../shared/data"))
    images = sorted(str(p) for p in (root / "PF-WILLOW").glob("*/*.png"))
    images += sorted(str(p) for p in (root / "CUB_200_2011" / "images").glob("*/*.jpg"))
    extractor = ConvColumnExtractor(layer=args.layer, mode="dense",
                                    image_size=args.image_size).fit()
    folder = Path(args.out or tempfile.mkdtemp()) / "columns"
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"{len(images)} images at {args.image_size} px, layer {args.layer} "
          f"({extractor.n_features_out_} channels)\n")
    start = time.perf_counter()
    database = ColumnDatabase.build(extractor, images, folder, overwrite=True)
    build = time.perf_counter() - start
    rss = peak_rss_mb()
    print(f"build: {database.n_columns:,} columns in {build:.0f} s, "
          f"{folder_size(folder) / 2**20:.0f} MB on disk "
          f"(columns {database.columns.nbytes / 2**20:.0f} MB), peak RSS {rss:.0f} MB\n")

    # 256 columns of one image: the brute force holds queries x columns similarities.
    queries = extractor.extract_dense([images[0]])[0].features.reshape(
        -1, database.n_features)[:256]
    start = time.perf_counter()
    ours, _ = database.search(queries, k=5)
    chunked = time.perf_counter() - start
    start = time.perf_counter()
    columns = np.asarray(database.columns, dtype=np.float32)  # everything in memory
    unit = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    similarity = unit @ columns.T
    top = np.argpartition(-similarity, 5, axis=1)[:, :5]
    brute = -np.sort(-np.take_along_axis(similarity, top, axis=1), axis=1)
    in_memory = time.perf_counter() - start
    # Compare the similarities, not the indices: duplicate images tie exactly.
    error = np.abs(np.sort(ours, axis=1)[:, ::-1] - brute).max()
    print("| exact search, k=5 | queries | seconds | ratio |")
    print("|---|---|---|---|")
    print(f"| brute force, all columns in memory | {len(queries)} | {in_memory:.2f} | 1.00 |")
    print(f"| ColumnDatabase.search (faiss flat, memmap blocks) | {len(queries)} | {chunked:.2f} | "
          f"{in_memory / chunked:.2f} |")
    print(f"\nlargest difference between the two top-5 similarity lists: {error:.1e}")
    if args.out is None:
        shutil.rmtree(folder.parent)


if __name__ == "__main__":
    main()
