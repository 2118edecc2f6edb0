"""Scale of the column database behind the reconstructions (Study 1).

    python bench/column_database.py [--layer stage3] [--image-size 480] [--out DIR]

Builds a memory-mapped ColumnDatabase from every real image under $SKCORR_DATA
(PF-WILLOW and the CUB subset; default ../shared/data) and measures, side by side:
the build (time, disk, peak resident memory), and exact top-5 cosine search of one
image's columns (256 of them) through the database's chunked search against a
brute-force search that loads every column into memory and takes one matrix product.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from skcorr import ConvColumnExtractor
from skcorr.visualize import ColumnDatabase


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.iterdir())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layer", default="stage3")
    parser.add_argument("--image-size", type=int, default=480)
    parser.add_argument("--out", default=None, help="database folder (default: a temp dir)")
    args = parser.parse_args()
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
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"build: {database.n_columns:,} columns in {build:.0f} s, "
          f"{folder_size(folder) / 2**20:.0f} MB on disk "
          f"(columns {database.columns.nbytes / 2**20:.0f} MB), peak RSS {rss:.0f} MB\n")

    # 256 columns of one image: the brute force holds queries x columns similarities.
    queries = extractor.extract_dense([images[0]])[0].features.reshape(
        -1, database.n_features)[:256]
    start = time.perf_counter()
    _, ours = database.search(queries, k=5)
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
    print(f"| ColumnDatabase.search (memmap, chunked) | {len(queries)} | {chunked:.2f} | "
          f"{in_memory / chunked:.2f} |")
    print(f"\nlargest difference between the two top-5 similarity lists: {error:.1e}")
    if args.out is None:
        shutil.rmtree(folder.parent)


if __name__ == "__main__":
    main()
