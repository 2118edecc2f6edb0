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
"""

from __future__ import annotations

import numpy as np

__all__ = ["target_prices"]


def target_prices(costs, reg, *, max_iter=100, tol=1e-4) -> np.ndarray:
    """Price ``-reg log v`` of every target node, from Sinkhorn's scaling of the plan.

    Parameters
    ----------
    costs : array-like of shape (rows, cols, t_rows, t_cols)
        Data cost of matching each source node to each target node (finite).
    reg : float
        Entropic regularisation ``eps > 0``, in units of the costs: small values approach
        the exact transport (strong prices), large ones leave the costs as they are.
    max_iter : int, default=100
        Sinkhorn iterations at most.
    tol : float, default=1e-4
        Stop once every target node's mass is within ``tol`` (relative) of its share.

    Returns
    -------
    prices : ndarray of shape (t_rows, t_cols)
        To add to the cost of every match into each target node; the smallest is 0.

    """
    reg = float(reg)
    costs = np.asarray(costs, dtype=np.float64)
    n = costs.shape[0] * costs.shape[1]
    m = costs.shape[2] * costs.shape[3]
    flat = costs.reshape(n, m)
    # exp(-C / eps), each row scaled to a largest entry of 1 (a per-source-node constant,
    # absorbed by u): no row underflows to zero.
    kernel = np.exp(-(flat - flat.min(axis=1, keepdims=True)) / reg)
    tiny = np.finfo(np.float64).tiny
    v = np.ones(m)
    for _ in range(max_iter):
        u = (1.0 / n) / (kernel @ v)
        mass = kernel.T @ u
        if np.abs(mass * v * m - 1.0).max() <= tol:
            break
        v = (1.0 / m) / np.maximum(mass, tiny)
    prices = -reg * np.log(v)
    return (prices - prices.min()).reshape(costs.shape[2:])
