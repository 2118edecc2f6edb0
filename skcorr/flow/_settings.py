"""The flow's settings and their constraints: checked once, by scikit-learn's validation.

:func:`skcorr.flow.align` validates its keyword arguments against :data:`ALIGN_CONSTRAINTS`;
the estimators wrapping it take the settings in :data:`FLOW_CONSTRAINTS` as parameters of
the same names (validated by ``fit`` and ``predict`` through ``_parameter_constraints``),
and the command line checks its flags with :func:`check_setting`. This module imports
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

__all__ = ["ALIGN_CONSTRAINTS", "FLOW_CONSTRAINTS", "check_setting", "flow_settings"]


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


def check_setting(name: str, value, caller: str):
    """``value`` if it satisfies the constraint of setting ``name``; else the error of align.

    Raises
    ------
    sklearn.utils._param_validation.InvalidParameterError
        A ``ValueError`` naming the setting, ``caller`` and the allowed values.
    """
    validate_parameter_constraints({name: ALIGN_CONSTRAINTS[name]}, {name: value}, caller)
    return value
