"""scikit-learn API conventions for every estimator of skcorr.

skcorr's estimators take images and keypoint samples, not numeric 2-D arrays, so they
say so in their tags (``input_tags.two_d_array = False``), and scikit-learn's
``parametrize_with_checks`` then has no data it can feed them. The checks below are
those of its API checks that need no data: construction, parameters, cloning, repr,
tags. Behaviour on real inputs (fit, transform, pickling, Pipeline, GridSearchCV) is
tested with images in each estimator's own test module; what scikit-learn asks of
every estimator beyond those checks (a user's sub-estimator is cloned, never fitted in
place; nested parameters are validated; 2-D outputs have column names and pandas output
in a Pipeline) is tested here.
"""

import numpy as np
import pytest
import sklearn
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import estimator_checks as checks
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.validation import check_is_fitted

from skcorr import (
    ConvColumnExtractor,
    DenseSIFT,
    FlowAligner,
    GaussianNNPrior,
    KeypointClassifier,
    SlidingKeypointDetector,
    keypoint_samples,
)
from skcorr.columns import ColumnDatabase

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


# -- what the common checks above cannot see ------------------------------------------
def _crops(n=4, size=48, seed=0):
    """n noise crops with two keypoint types each, away from the border."""
    rng = np.random.default_rng(seed)
    crops = [rng.integers(0, 255, (size, size, 3), dtype=np.uint8) for _ in range(n)]
    return crops, rng.uniform(10, size - 10, (n, 2, 2))


def _fit_classifier(features):
    X, y, groups = keypoint_samples(*_crops())
    return KeypointClassifier(features=features, Cs=[1.0], cv=2).fit(X, y, groups=groups)


def _fit_prior(features):
    return GaussianNNPrior(features=features, sigma=5.0).fit(*_crops())


def _fit_detector(features):
    return SlidingKeypointDetector(features=features, box_size=48, cache_size=50,
                                   random_state=0).fit(*_crops())


# (how to fit an estimator around a user's transformer, the transformer's mode)
NESTED = [(_fit_classifier, "keypoints"), (_fit_prior, "global"), (_fit_detector, "dense")]
NESTED_IDS = ["KeypointClassifier", "GaussianNNPrior", "SlidingKeypointDetector"]


@pytest.mark.parametrize(("fit", "mode"), NESTED, ids=NESTED_IDS)
def test_user_features_are_cloned_and_never_fitted(fit, mode):
    features = DenseSIFT(mode=mode, radius=6, step=4, bin_size=4)
    params = features.get_params()
    estimator = fit(features)
    with pytest.raises(NotFittedError):
        check_is_fitted(features)
    assert features.get_params() == params
    assert estimator.features_ is not features
    assert estimator.features_.get_params() == params
    check_is_fitted(estimator.features_)
    # n_features_in_ is what scikit-learn checks X against: these take images or
    # keypoint samples, and do not invent one.
    assert not hasattr(estimator, "n_features_in_")


def test_detector_prior_is_cloned_and_never_fitted():
    prior = GaussianNNPrior(features=DenseSIFT(mode="global", step=4, bin_size=4))
    detector = SlidingKeypointDetector(features=DenseSIFT(mode="dense", step=4, bin_size=4),
                                       prior=prior, beta=0.5, box_size=48, cache_size=50,
                                       random_state=0).fit(*_crops())
    assert detector.prior_ is not prior and detector.prior_.features_ is not prior.features
    for unfitted in (prior, prior.features):
        with pytest.raises(NotFittedError):
            check_is_fitted(unfitted)


@pytest.mark.parametrize(("fit", "mode"), NESTED, ids=NESTED_IDS)
def test_parameters_of_the_nested_features_are_validated(fit, mode):
    """fit validates the user's transformer too (prefer_skip_nested_validation=False)."""
    with pytest.raises(InvalidParameterError, match="'fast' parameter of DenseSIFT"):
        fit(DenseSIFT(mode=mode, radius=6, step=4, bin_size=4, fast="yes"))


def test_column_database_fits_a_clone_of_an_unfitted_extractor(tmp_path):
    extractor = ConvColumnExtractor(layer="stage2", weights=None, mode="dense")
    database = ColumnDatabase.build(extractor, _crops(2, size=64)[0], tmp_path / "db")
    with pytest.raises(NotFittedError):
        check_is_fitted(extractor)
    assert database.n_features == ConvColumnExtractor(layer="stage2", weights=None).fit(
    ).n_features_out_


def test_pipeline_gives_dataframes_with_named_columns():
    pd = pytest.importorskip("pandas")
    crops, keypoints = _crops(size=64)
    X, y, _ = keypoint_samples(crops, keypoints)
    columns = ConvColumnExtractor(layer=["conv4", "conv5"], mode="keypoints")
    pipe = Pipeline([("columns", columns), ("scale", StandardScaler()),
                     ("classify", LogisticRegression())]).set_output(transform="pandas")
    pipe.fit(X, y)
    hypercolumns = pipe.named_steps["columns"].transform(X)
    table = pipe.named_steps["scale"].transform(hypercolumns)
    names = pipe[:-1].get_feature_names_out()
    for frame in (hypercolumns, table):
        assert isinstance(frame, pd.DataFrame) and frame.columns.tolist() == names.tolist()
    # the names say what each column is: channel c of the named layer, in order
    conv4 = ConvColumnExtractor(layer="conv4").fit()
    n_conv4, n_all = conv4.n_features_out_, pipe.named_steps["columns"].n_features_out_
    assert names.tolist() == ([f"conv4_ch{c}" for c in range(n_conv4)]
                              + [f"conv5_ch{c}" for c in range(n_all - n_conv4)])
    np.testing.assert_allclose(hypercolumns.filter(like="conv4_").to_numpy() * np.sqrt(2),
                               conv4.transform(X), atol=1e-5)  # each layer weighs 1/sqrt(2)
    assert pipe.named_steps["classify"].predict(table).shape == (len(X),)


def test_sift_and_global_columns_are_named():
    pytest.importorskip("pandas")
    crops, keypoints = _crops()
    X, _, _ = keypoint_samples(crops, keypoints)
    at_points = DenseSIFT(radius=[6, 12]).set_output(transform="pandas").fit_transform(X)
    assert at_points.shape == (len(X), 256)
    assert at_points.columns[[0, 127, 128, 255]].tolist() == [
        "sift_r6_d0", "sift_r6_d127", "sift_r12_d0", "sift_r12_d127"]
    per_image = DenseSIFT(mode="global", bin_size=4).set_output(transform="pandas")
    assert per_image.fit_transform(crops).columns[-1] == "sift_bin4_d127"
    fc7 = ConvColumnExtractor(layer="fc7", weights=None, mode="global").fit()
    assert fc7.get_feature_names_out()[-1] == f"fc7_ch{fc7.n_features_out_ - 1}"


def test_dense_mode_has_no_table_output():
    crops, _ = _crops(2)
    dense = DenseSIFT(mode="dense", step=4, bin_size=4)
    with pytest.raises(ValueError, match=r"mode='dense'.*no 'pandas' output"):
        dense.set_output(transform="pandas")
    with pytest.raises(ValueError, match="no column names"):
        dense.fit().get_feature_names_out()
    with sklearn.config_context(transform_output="pandas"):  # the global setting too
        with pytest.raises(ValueError, match="set_output\\(transform='default'\\)"):
            dense.transform(crops)
        maps = dense.set_output(transform="default").transform(crops)
    assert len(maps) == 2 and maps[0].features.ndim == 3
