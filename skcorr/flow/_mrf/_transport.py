"""Optimal-transport reweighting of the flow's data costs.

Nearest-column matching lets many source nodes pile onto one distinctive target node (a
"hub") while other target nodes go unmatched. Entropic optimal transport between the two
grids, each node carrying equal mass, spreads the matches out: Sinkhorn's iterations find
scalings ``u, v`` with ``P = diag(u) exp(-C / eps) diag(v)`` a transport plan, so that
``-eps log P_pq = C_pq - eps log u_p - eps log v_q``. The first term is the data cost,
the second is constant per source node (it does not change which label a node prefers),
and the third, ``-eps log v_q``, is a price per target node: high for hubs, low for
nodes few others match. The flow keeps its own smoothness and decoding and only adds
that price to its data costs (as SCOT, Liu et al. 2020, takes matches from the plan).

Sinkhorn is run stabilised (Schmitzer 2019): the plan is kept as
``P = diag(u) K diag(v)`` with ``K = exp((f_p + g_q - C_pq) / eps)`` for potentials
``f, g``; whenever a scaling leaves ``[e^-25, e^25]`` it is absorbed into its potential
(``f += eps log u``) and ``K`` is rebuilt, its columns normalised by a log-sum-exp, so
nothing overflows or underflows whatever ``eps``. Entries of ``K`` below ``e^-80`` of
their column's largest are dropped. At an ``eps`` small against the spread of the costs
it starts at a larger ``eps`` and divides it by 4 per stage down to ``eps`` (epsilon
scaling): each stage starts close to its solution, where plain Sinkhorn would take
thousands of iterations. Within a stage, once ten plain iterations have shown how fast
they converge, the scalings are over-relaxed (``u <- u^(1 - w) (a / K v)^w``, Thibault
et al. 2017) with the ``w`` optimal for that rate, back to plain iterations should the
error grow. At the settings the flow uses (costs of unit columns, ``eps`` 0.1-0.5) one
stage of 5-20 iterations converges; at ``eps`` near 1e-3 convergence takes thousands.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._numba import _FASTMATH

__all__ = ["target_prices"]

_LIMIT = 25.0     # absorb a scaling once |log u| or |log v| exceeds this
_DROP = -80.0     # entries of K below exp(_DROP) of their column's largest are 0
_STAGE = 4.0      # epsilon scaling: eps divides by this per stage
_START = 16.0     # ... from the eps at which the costs' spread is at most this many eps
_STAGE_TOL = 1e-2  # stages before the last stop at this column error
_OMEGA = 1.9   # over-relaxation at most this
_PLAIN = 10    # plain iterations before it, to measure their rate

# statuses of _sweeps
_CONVERGED, _ABSORB, _DEAD_ROW, _OUT_OF_ITERATIONS = 0, 1, 2, 3


def target_prices(costs, reg, *, max_iter=1000, tol=1e-4) -> np.ndarray:
    """Price ``-reg log v`` of every target node, from Sinkhorn's scaling of the plan.

    Parameters
    ----------
    costs : array-like of shape (rows, cols, t_rows, t_cols)
        Data cost of matching each source node to each target node (finite). float32
        costs are computed in float32 (the scalings' sums in float64), others in float64.
    reg : float
        Entropic regularisation ``eps > 0``, in units of the costs: small values approach
        the exact transport (strong prices), large ones leave the costs as they are.
    max_iter : int, default=1000
        Sinkhorn iterations at most, over all stages.
    tol : float, default=1e-4
        Stop once every target node's mass is within ``tol`` (relative) of its share.

    Returns
    -------
    prices : ndarray of shape (t_rows, t_cols), float64
        To add to the cost of every match into each target node; the smallest is 0.

    """
    costs = np.asarray(costs)
    if costs.ndim != 4 or 0 in costs.shape:
        raise ValueError(f"costs must be a non-empty (rows, cols, t_rows, t_cols) array; got "
                         f"shape {costs.shape}.")
    dtype = np.float32 if costs.dtype == np.float32 else np.float64
    n = costs.shape[0] * costs.shape[1]
    m = costs.shape[2] * costs.shape[3]
    flat = np.ascontiguousarray(costs.reshape(n, m), dtype=dtype)
    if not np.isfinite(flat).all():
        raise ValueError("costs contain NaN or inf; transport prices need finite costs.")
    reg = float(reg)
    if not (np.isfinite(reg) and reg > 0):
        raise ValueError(f"reg must be a finite number > 0; got {reg!r}.")
    a, b = 1.0 / n, 1.0 / m
    f = flat.min(axis=1).astype(np.float64)
    spread = float(flat.max()) - float(f.min())
    u, v = np.ones(n), np.ones(m)
    left = int(max_iter)
    for eps in _stages(reg, spread):
        last = eps == reg
        kernel, g = _rebuild(flat, f, eps, b)
        u[:], v[:] = 1.0, 1.0
        while True:
            done, status = _sweeps(kernel, u, v, a, b, left, tol if last else max(tol, _STAGE_TOL),
                                   _LIMIT, _OMEGA)
            left -= done
            if status == _DEAD_ROW:  # a row of K dropped out: re-balance the rows in logs
                g += eps * np.log(v)
                f = _row_potential(flat, g, eps, a)
            else:
                f += eps * np.log(u)
                g += eps * np.log(v)
            if status == _CONVERGED or left <= 0:
                break
            kernel, g = _rebuild(flat, f, eps, b)
            u[:], v[:] = 1.0, 1.0
        if left <= 0:
            break
    prices = -g
    if not np.isfinite(prices).all():  # not expected: every step above stays finite
        raise FloatingPointError("Sinkhorn's prices are not finite; raise ot_reg.")
    return (prices - prices.min()).reshape(costs.shape[2:])


def _stages(reg, spread):
    """The eps of each stage: ``reg`` times powers of 4, from about ``spread / 16`` down."""
    stages = [reg]
    while stages[-1] * _START < spread:
        stages.append(stages[-1] * _STAGE)
    return stages[::-1]


def _rebuild(flat, f, eps, b):
    """``K`` and the column potentials ``g`` that make its columns sum to ``b`` exactly.

    ``g_q = eps log b - eps log sum_p exp((f_p - C_pq) / eps)``, taken about each
    column's largest term.
    """
    z = f.astype(flat.dtype)[:, None] - flat
    top = z.max(axis=0)
    z -= top
    z *= flat.dtype.type(1.0 / eps)
    z[z < _DROP] = -np.inf
    np.exp(z, out=z)
    total = z.sum(axis=0, dtype=np.float64)
    z *= (b / total).astype(flat.dtype)
    return z, eps * np.log(b) - top - eps * np.log(total)


def _row_potential(flat, g, eps, a):
    """``f_p = eps log a - eps log sum_q exp((g_q - C_pq) / eps)``: rows sum to ``a``."""
    z = g.astype(flat.dtype)[None, :] - flat
    top = z.max(axis=1)
    z -= top[:, None]
    z *= flat.dtype.type(1.0 / eps)
    np.exp(z, out=z)
    return eps * np.log(a) - top - eps * np.log(z.sum(axis=1, dtype=np.float64))


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _sweeps(kernel, u, v, a, b, max_iter, tol, limit, omega):
    """Sinkhorn iterations on ``K``, one pass over it each; ``(iterations, status)``.

    Each iteration sets ``u = a / (K v)`` row by row while it sums the columns'
    masses ``K^T u``, then checks them (``|mass_q v_q / b - 1| <= tol`` after a plain
    iteration: converged, ``v`` kept) and sets ``v = b / mass`` (both over-relaxed by up
    to ``omega`` after ``_PLAIN`` iterations). Stops early when a scaling leaves
    ``[e^-limit, e^limit]`` (to absorb it) or a row of ``K`` sums to 0.
    """
    n, m = kernel.shape
    mass = np.empty(m)
    high = np.exp(limit)
    low = 1.0 / high
    relax = 1.0
    best = np.inf
    early = np.inf
    for it in range(max_iter):
        mass[:] = 0.0
        for p in range(n):
            row = kernel[p]
            s = 0.0
            for q in range(m):
                s += row[q] * v[q]
            if not s > 0.0:
                return it, _DEAD_ROW
            up = a / s
            if relax != 1.0:
                up = up ** relax * u[p] ** (1.0 - relax)
            u[p] = up
            for q in range(m):
                mass[q] += row[q] * up
        err = 0.0
        for q in range(m):
            err = max(err, abs(mass[q] * v[q] / b - 1.0))
        if err <= tol:
            if relax == 1.0:
                return it + 1, _CONVERGED
            relax = 1.0  # converged with over-relaxation: confirm with a plain iteration
            omega = 1.0
        elif it == _PLAIN // 2:
            early = err
        elif it == _PLAIN and omega > 1.0 and err < early:
            # over-relax by the optimum for the rate of the plain iterations so far
            rate = (err / early) ** (2.0 / _PLAIN)
            relax = min(omega, 2.0 / (1.0 + np.sqrt(1.0 - rate)))
        elif relax != 1.0 and err > 2.0 * best:  # diverging: back to plain Sinkhorn
            relax = 1.0
            omega = 1.0
        best = min(best, err)
        out = False
        for q in range(m):
            vq = b / mass[q]
            if relax != 1.0:
                vq = vq ** relax * v[q] ** (1.0 - relax)
            v[q] = vq
            out |= not (low <= vq <= high)
        for p in range(n):
            out |= not (low <= u[p] <= high)
        if out:
            return it + 1, _ABSORB
    return max_iter, _OUT_OF_ITERATIONS
