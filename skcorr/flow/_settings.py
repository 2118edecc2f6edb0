"""The flow's settings and their constraints: checked once, by scikit-learn's validation.

:func:`skcorr.flow.align` validates its keyword arguments against :data:`ALIGN_CONSTRAINTS`;
the estimators wrapping it take the settings in :data:`FLOW_CONSTRAINTS` as parameters of
the same names (validated by ``fit`` and ``predict`` through ``_parameter_constraints``),
and the command line checks its flags with :func:`check_flow_settings`. This module imports
nothing heavy, so the command line can check flags before it loads a network.
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.utils._param_validation import (
    Interval,
    StrOptions,
    validate_parameter_constraints,
)

__all__ = ["ALIGN_CONSTRAINTS", "FLOW_CONSTRAINTS", "check_flow_settings", "flow_settings"]


class _Number(Interval):
    """A scikit-learn ``Interval`` that refuses booleans (``lam=True`` is a mistake, not 1)."""

    def is_satisfied_by(self, val):
        return not isinstance(val, bool | np.bool_) and super().is_satisfied_by(val)


# The settings the estimators share with align, with their constraints.
FLOW_CONSTRAINTS: dict = {
    "lam": [_Number(numbers.Real, 0, None, closed="left")],
    "radius": [_Number(numbers.Integral, 0, None, closed="left"), None],
    "levels": [_Number(numbers.Integral, 0, None, closed="left")],
    "max_iter": [_Number(numbers.Integral, 1, None, closed="left")],
    "truncation": [_Number(numbers.Real, 0, None, closed="neither"), None],
    "ot_reg": [_Number(numbers.Real, 0, None, closed="neither"), None],
    "subcell": ["boolean"],
    "energy": [StrOptions({"l2", "sift-flow"})],
    "eta": [_Number(numbers.Real, 0, None, closed="left")],
    "data_truncation": [_Number(numbers.Real, 0, None, closed="neither"), None],
}

# Every keyword argument of align: the shared settings and the solver's own.
ALIGN_CONSTRAINTS: dict = {
    **FLOW_CONSTRAINTS,
    "tol": [_Number(numbers.Real, 0, None, closed="left")],
    "patience": [_Number(numbers.Integral, 0, None, closed="left")],
    "solver": [StrOptions({"dual", "2d"})],
}


def flow_settings(estimator) -> dict:
    """The keyword arguments of :func:`skcorr.flow.align` held by ``estimator``."""
    return {name: getattr(estimator, name) for name in FLOW_CONSTRAINTS}


def check_flow_settings(caller: str = "align", **settings) -> dict:
    """Check settings of the flow as :func:`skcorr.flow.align` does, without aligning.

    For command lines and configuration files: the same constraints, the same errors.

    Parameters
    ----------
    caller : str, default="align"
        Named in the error (e.g. a command-line flag).
    **settings
        Keyword arguments of :func:`skcorr.flow.align` (``lam``, ``truncation``, ...).

    Returns
    -------
    settings : dict
        The settings, unchanged.

    Raises
    ------
    ValueError
        Naming the first setting that is unknown or out of its range, and its range.

    Examples
    --------
    >>> from skcorr.flow import check_flow_settings
    >>> check_flow_settings(lam=0.05, truncation=3.0)
    {'lam': 0.05, 'truncation': 3.0}
    >>> check_flow_settings(lam=-1)  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    InvalidParameterError: The 'lam' parameter of align must be a float in the range [0.0, inf).
    """
    unknown = sorted(set(settings) - set(ALIGN_CONSTRAINTS))
    if unknown:
        raise ValueError(f"Unknown flow setting(s) {unknown}; the settings are "
                         f"{', '.join(ALIGN_CONSTRAINTS)}.")
    validate_parameter_constraints({name: ALIGN_CONSTRAINTS[name] for name in settings},
                                   settings, caller)
    return settings
