"""What the cache and cluster tests share: a count of the images through any network, and
a small lam search with FlowAligner. For tests only."""

from __future__ import annotations

import threading

import torch
from sklearn.model_selection import GridSearchCV

from skcorr import ConvColumnExtractor, FlowAligner
from skcorr.metrics import pck_scorer


class ForwardCounter:
    """Counts images through the first convolution (3 input channels) of any network in
    this process.

    The extractor's fit runs a constant probe image to learn the column width; it is
    counted apart (``probes``).
    """

    def __init__(self):
        self.images = self.probes = 0
        self._lock = threading.Lock()  # images run in threads: += is not atomic

    def __call__(self, module, inputs, output):
        if isinstance(module, torch.nn.Conv2d) and module.in_channels == 3:
            x = inputs[0]
            constant = x.flatten(2).std(dim=2).amax(dim=1) == 0
            with self._lock:
                self.probes += int(constant.sum())
                self.images += int((~constant).sum())

    def __enter__(self):
        self._handle = torch.nn.modules.module.register_module_forward_hook(self)
        return self

    def __exit__(self, *exc):
        self._handle.remove()


def lam_search(weights, memory):
    """GridSearchCV over lam (3 candidates, 3 folds) of a FlowAligner on small layers."""
    aligner = FlowAligner(
        features=ConvColumnExtractor(layer="stage3", weights=weights, mode="dense"),
        retrieval=ConvColumnExtractor(layer="stage2", weights=weights, mode="global"),
        n_neighbors=2, n_top=1, levels=0, max_iter=5, memory=memory)
    return GridSearchCV(aligner, {"lam": [0.0, 0.1, 1.0]}, cv=3,
                        scoring=pck_scorer(alpha=0.1))
