"""PCK of keypoints transferred by skcorr.match (default settings) on PF-WILLOW's 900 pairs,
against evaluate_pf_willow with the same settings: the entry point and the evaluation agree.

Run:  SKCORR_DATA=../shared/data .venv/bin/python scripts/match_agrees_with_evaluation.py CACHE
(CACHE: a folder for the feature and alignment cache; about 2 minutes on 2 cores)
"""

import os
import sys
import time

import skcorr
from skcorr.datasets import load_pf_willow
from skcorr.evaluation import evaluate_pf_willow, transfer_pck_table
from skcorr.flow import preset_settings

cache = sys.argv[1]
path = os.path.join(os.environ["SKCORR_DATA"], "PF-WILLOW")
ds = load_pf_willow(path)
t = time.time()
via_match = transfer_pck_table(
    ds, lambda s, tg, k: skcorr.match(s, tg, memory=cache, backward=False).transfer_points(k))
print(via_match, f"\nvia skcorr.match: {time.time() - t:.0f} s", flush=True)
features, flow = preset_settings("best")
t = time.time()
table = evaluate_pf_willow(path, layers=(features["layer"],), image_sizes=(features["image_size"],),
                           lam=flow["lam"], truncations=(flow["truncation"],),
                           ot_regs=(flow["ot_reg"],), subcell=flow["subcell"], memory=cache)
print(table, f"\nvia evaluate_pf_willow: {time.time() - t:.0f} s")
columns = [key for key in table[0] if key.startswith("PCK")]
same = all(r[c] == q[c] for r, q in zip(via_match, table, strict=True) for c in columns)
print(f"identical per class: {same}; PCK@0.1 {100 * via_match[-1]['PCK@0.1']:.1f}")
