"""A grid search over lam with FlowAligner and its cache, this checkout against another.

Run (on a quiet machine):

    SKCORR_DATA=../shared/data .venv/bin/python bench/search.py --baseline ../wt/base

``GridSearchCV(FlowAligner(n_neighbors=10, n_top=3, memory=folder), {"lam": [0.05, 0.1,
0.2, 0.4]}, cv=KFold(3))`` on the first 60 CUB training crops (160 px), with the paper's
features and flow (conv5 role at 320 px, fc7 for retrieval; no truncation, prices or
sub-cell matches) so that both checkouts run the same problem. Each checkout runs in its
own subprocess (``PYTHONPATH``), with a fresh cache folder, twice in turn (A B A B); the
table gives the wall seconds of each run and the best lam with its score, which must be
the same for both.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, os, sys, tempfile, time
import numpy as np
from sklearn.model_selection import GridSearchCV, KFold
from skcorr import ConvColumnExtractor, FlowAligner
from skcorr.datasets import crop_to_boxes, load_cub
from skcorr.metrics import pck_scorer

cub = load_cub(os.path.join(os.environ["SKCORR_DATA"], "CUB_200_2011"))
chosen = np.flatnonzero(cub.split == "train")[:60]
crops, keypoints, _ = crop_to_boxes([cub.images[i] for i in chosen], cub.keypoints[chosen],
                                    cub.boxes[chosen], size=160, padding=0.1)
paper = {"truncation": None, "ot_reg": None, "subcell": False}
start = time.perf_counter()
with tempfile.TemporaryDirectory() as folder:
    aligner = FlowAligner(features=ConvColumnExtractor(layer="conv5", image_size=320),
                          n_neighbors=10, n_top=3, memory=folder, **paper)
    search = GridSearchCV(aligner, {"lam": [0.05, 0.1, 0.2, 0.4]}, cv=KFold(3),
                          scoring=pck_scorer(alpha=0.1), refit=False).fit(crops, keypoints)
print(json.dumps({"seconds": time.perf_counter() - start, "lam": search.best_params_["lam"],
                  "score": search.best_score_}))
"""


def run(path: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(path)}
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True,
                         text=True, check=True, cwd=tempfile.gettempdir())
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="another checkout to compare with")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    trees = {"this checkout": ROOT}
    if args.baseline:
        trees["baseline"] = args.baseline.resolve()
    print(f"load average at the start: {os.getloadavg()[0]:.1f}\n")
    print("| checkout | run | wall (s) | best lam | CV PCK@0.1 |")
    print("|---|---|---|---|---|")
    for repeat in range(args.repeat):
        for name, path in trees.items():
            result = run(path)
            print(f"| {name} | {repeat + 1} | {result['seconds']:.1f} | {result['lam']} | "
                  f"{result['score']:.4f} |", flush=True)


if __name__ == "__main__":
    main()
