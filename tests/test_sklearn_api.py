"""scikit-learn API conventions for every estimator of skcorr.

skcorr's estimators take images and keypoint samples, not numeric 2-D arrays, so they
say so in their tags (``input_tags.two_d_array = False``), and scikit-learn's
``parametrize_with_checks`` then has no data it can feed them. The checks below are
those of its API checks that need no data: construction, parameters, cloning, repr,
tags. Behaviour on real inputs (fit, transform, pickling, Pipeline, GridSearchCV) is
tested with images in each estimator's own test module.
"""

import pytest
from sklearn.utils import estimator_checks as checks

from skcorr import (
    ConvColumnExtractor,
    DenseSIFT,
    FlowAligner,
    GaussianNNPrior,
    KeypointClassifier,
    SlidingKeypointDetector,
)

ESTIMATORS = [
    ConvColumnExtractor(weights=None, layer="stage2"),
    DenseSIFT(),
    FlowAligner(features=DenseSIFT(mode="dense")),
    KeypointClassifier(features=DenseSIFT()),
    SlidingKeypointDetector(features=DenseSIFT(mode="dense"), prior=GaussianNNPrior()),
    GaussianNNPrior(),
]

API_CHECKS = [
    checks.check_estimator_cloneable,
    checks.check_estimator_repr,
    checks.check_no_attributes_set_in_init,
    checks.check_do_not_raise_errors_in_init_or_set_params,
    checks.check_get_params_invariance,
    checks.check_set_params,
    checks.check_parameters_default_constructible,
    checks.check_mixin_order,
    checks.check_valid_tag_types,
    checks.check_estimator_tags_renamed,
]


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("check", API_CHECKS, ids=lambda c: c.__name__)
def test_sklearn_api_conventions(estimator, check):
    check(type(estimator).__name__, estimator)
