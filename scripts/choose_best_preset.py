"""How the "best" preset (the defaults of skcorr.match and the flow estimators) was chosen.

A grid search on all of PF-WILLOW's 900 pairs, leaving one object category out at a time
(the refit step of the nested protocol of ``skcorr evaluate pf-willow --lam cv``), over
the candidates of that protocol's headline run. Prints every candidate's mean held-out
PCK@0.1, best first.

Run:  SKCORR_DATA=../shared/data .venv/bin/python scripts/choose_best_preset.py
(about 20 minutes on a 2-core machine)
"""

import os
import tempfile

from sklearn.model_selection import GridSearchCV, LeaveOneGroupOut

from skcorr import ConvColumnExtractor, PairTransfer
from skcorr.datasets import load_pf_willow
from skcorr.evaluation import pair_categories, pair_samples
from skcorr.metrics import pck_scorer

dataset = load_pf_willow(os.path.join(os.environ["SKCORR_DATA"], "PF-WILLOW"))
X, y = pair_samples(dataset)
grid = {"lam": [0.05, 0.1], "features__image_size": [400, 480], "truncation": [None, 3.0],
        "ot_reg": [None, 0.2]}
with tempfile.TemporaryDirectory() as cache:
    estimator = PairTransfer(ConvColumnExtractor(layer=["stage5", "stage6"]), subcell=True,
                             memory=cache)
    search = GridSearchCV(estimator, grid, scoring=pck_scorer(alpha=0.1),
                          cv=LeaveOneGroupOut(), refit=False, error_score="raise")
    search.fit(X, y, groups=pair_categories(dataset))
results = sorted(zip(search.cv_results_["mean_test_score"], search.cv_results_["params"],
                     strict=True),
                 key=lambda r: -r[0])
for score, params in results:
    print(f"{100 * score:.2f}  {params}")
print("chosen:", search.best_params_)
