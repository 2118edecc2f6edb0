"""The headline cross-validated PF-WILLOW command, this checkout against a baseline.

    SKCORR_DATA=../shared/data .venv/bin/python bench/headline.py --baseline CHECKOUT
        [--n-jobs N] [--repeat R]

Runs ``skcorr evaluate pf-willow --lam cv --lam-grid 0.05 0.1 --layer stage5+stage6
--image-size 400 480 --truncation none 3 --ot-reg none 0.2 --subcell`` (16 candidates,
nested leave-one-category-out CV over 900 pairs: 14,400 distinct flows) in a fresh
process for this checkout and for ``CHECKOUT`` (another git checkout of skcorr, e.g. a
worktree of an older commit, imported from its own folder), taking turns, and prints
the wall and CPU seconds of each and whether their PCK tables agree. Each process starts
with an empty cache (the command's own temporary folder), as a user's first run does.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

COMMAND = ["evaluate", "pf-willow", "--lam", "cv", "--lam-grid", "0.05", "0.1", "--layer",
           "stage5+stage6", "--image-size", "400", "480", "--truncation", "none", "3",
           "--ot-reg", "none", "0.2", "--subcell", "--quiet"]


def run(checkout: Path, n_jobs: int | None) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (user + system, children included) and the table."""
    extra = [] if n_jobs is None else ["--n-jobs", str(n_jobs)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    # -m from the checkout's folder imports that checkout's skcorr.
    done = subprocess.run([sys.executable, "-m", "skcorr", *COMMAND, *extra], cwd=checkout,
                          capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    table = "\n".join(line for line in done.stdout.splitlines() if line.startswith("|"))
    return wall, cpu, table


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", metavar="CHECKOUT", required=True,
                        help="another checkout of skcorr to time beside this one")
    parser.add_argument("--n-jobs", type=int, default=None, help="passed to the command")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each, taking turns")
    args = parser.parse_args()
    if not os.environ.get("SKCORR_DATA"):
        sys.exit("Set SKCORR_DATA to the folder holding PF-WILLOW.")
    here = Path(__file__).resolve().parents[1]
    checkouts = {"this checkout": here, "baseline": Path(args.baseline).resolve()}
    load = os.getloadavg()[0]
    print(f"{os.cpu_count()} logical CPUs, load average {load:.2f}; skcorr {' '.join(COMMAND)}"
          + ("" if args.n_jobs is None else f" --n-jobs {args.n_jobs}"))
    tables = {}
    for turn in range(args.repeat):
        for name, checkout in checkouts.items():
            wall, cpu, tables[name] = run(checkout, args.n_jobs)
            mean = re.search(r"^\| mean .*$", tables[name], re.M)
            print(f"run {turn + 1}, {name:>13}: {wall:6.1f} s wall, {cpu:6.1f} s CPU; "
                  f"{mean.group(0) if mean else 'no mean row'}", flush=True)
    same = tables["this checkout"] == tables["baseline"]
    print(f"PCK tables identical: {same}; load average now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
