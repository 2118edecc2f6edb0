"""PF-WILLOW flows timed apart from the features, with n_jobs 1 and 2 interleaved.

Run:  SKCORR_DATA=../shared/data .venv/bin/python bench/willow_flows.py conv sift

For each feature kind: extract the 100 images' maps once (into a ``memory=`` cache),
then time ``transfer_pck_table`` over the 900 pairs twice with ``n_jobs=1`` and twice with
``n_jobs=2``, printing wall and CPU seconds, the load average and the PCK (which must not
depend on n_jobs).
"""

import os
import sys
import tempfile
import time

from skcorr.datasets import load_pf_willow
from skcorr.evaluation import TUNED_LAM, pair_samples, transfer_pck_table
from skcorr.features import ConvColumnExtractor, DenseSIFT
from skcorr.flow import PairTransfer

dataset = load_pf_willow(os.path.join(os.environ["SKCORR_DATA"], "PF-WILLOW"))
for kind in sys.argv[1:] or ["conv", "sift"]:
    features = (ConvColumnExtractor(layer="conv5", image_size=320) if kind == "conv"
                else DenseSIFT(mode="dense", step=16, bin_size=10, image_size=320))
    cache = tempfile.mkdtemp()  # features cached; each run aligns again (its own folder)
    start = time.perf_counter()
    features.set_params(memory=cache).fit().extract_dense(dataset.images)
    feature_seconds = time.perf_counter() - start
    for n_jobs in (1, 2, 1, 2):
        predict = PairTransfer(features, lam=TUNED_LAM[kind], n_jobs=n_jobs).fit(
            pair_samples(dataset)[0])
        start, cpu = time.perf_counter(), time.process_time()
        mean = transfer_pck_table(dataset, predict)[-1]
        pck = " / ".join(f"{100 * mean[k]:.1f}" for k in ("PCK@0.05", "PCK@0.1", "PCK@0.15"))
        print(f"{kind}: features {feature_seconds:.1f} s; n_jobs={n_jobs}: flows "
              f"{time.perf_counter() - start:.1f} s wall, {time.process_time() - cpu:.1f} s "
              f"CPU, load {os.getloadavg()[0]:.1f}; PCK {pck}", flush=True)
