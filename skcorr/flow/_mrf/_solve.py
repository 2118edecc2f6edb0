"""Min-sum loopy belief propagation for the flow MRF, flat and coarse-to-fine.

The MRF (Long et al. 2014, Study 2) lives on an ``(H, W)`` grid of nodes with
4-neighbour edges. Node ``p`` picks a label ``l_p`` on an ``(Ly, Lx)`` label grid, which
means the displacement ``w_p = l_p + o_p`` for a per-node integer offset ``o_p``
(see :mod:`skcorr.flow._mrf._costs`). The energy is

``E = sum_p D_p(l_p) + lam * sum_{(p, q)} ||w_p - w_q||^2``

with displacements in label-grid steps (the caller scales ``lam`` for pixel units).
With a truncation ``T`` each axis's term of the smoothness stops growing at ``T`` steps,
``lam (min(dy^2, T^2) + min(dx^2, T^2))``: a robust prior that lets the flow break
where the scene does (an object's edge, a part that moved) instead of smearing the
break over its neighbours. Both solvers take it at no extra cost.

With ``distance="absolute"`` the smoothness is SIFT Flow's instead (Liu et al., TPAMI
2011): ``lam (min(|dy|, T) + min(|dx|, T))`` per edge, truncated L1 (internally
``power=1``; the squared distance is ``power=2``, and the truncation is passed as
``T**power``).

The settings (``lam``, ``truncation``, iteration limits, the solver) are checked once, by
:func:`skcorr.flow.align`; these private functions check only the problem's arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._bp2d import _as_power, bp_iterations
from ._costs import _as_label_vectors, coarsen_costs, shift_label_grid
from ._dual import dual_bp_iterations

__all__ = ["BPResult", "bp_energy", "coarse_to_fine_bp", "dual_layer_bp", "min_sum_bp"]


@dataclass(frozen=True, eq=False)
class BPResult:
    """The labelling found by :func:`min_sum_bp` or :func:`coarse_to_fine_bp`.

    Attributes
    ----------
    labels : ndarray of shape (H, W, 2), int64
        Label index ``(ly, lx)`` of every node.
    displacements : ndarray of shape (H, W, 2), int64
        ``labels + offsets``: the displacement ``(dy, dx)`` of every node.
    data_energy : float
        ``sum_p D_p(l_p)``.
    smoothness_energy : float
        ``lam * sum_{(p, q)} ||w_p - w_q||^2``.
    n_iter : int
        BP iterations run (at the finest level for :func:`coarse_to_fine_bp`).
    """

    labels: np.ndarray
    displacements: np.ndarray
    data_energy: float
    smoothness_energy: float
    n_iter: int

    @property
    def energy(self) -> float:
        """Total energy, ``data_energy + smoothness_energy``."""
        return self.data_energy + self.smoothness_energy


# --------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------
def _check_costs(costs):
    costs = np.asarray(costs)
    if costs.ndim != 4 or 0 in costs.shape:
        raise ValueError(f"costs must be a non-empty (H, W, Ly, Lx) array of data costs; got "
                         f"shape {costs.shape}.")
    if not (np.issubdtype(costs.dtype, np.floating) or np.issubdtype(costs.dtype, np.integer)):
        raise TypeError(f"costs must be real numbers; got dtype {costs.dtype}.")
    dtype = np.float32 if costs.dtype == np.float32 else np.float64
    costs = np.ascontiguousarray(costs, dtype=dtype)
    if np.isnan(costs).any():
        raise ValueError("costs contain NaN; use +inf for labels that are not allowed.")
    if (costs == -np.inf).any():
        raise ValueError("costs contain -inf; data costs must be finite or +inf.")
    dead = ~np.isfinite(costs).any(axis=(2, 3))
    if dead.any():
        i, j = np.argwhere(dead)[0]
        raise ValueError(f"node ({i}, {j}) has no allowed label (all its costs are +inf); "
                         "give every node at least one finite data cost.")
    return costs


def _check_problem(costs, offsets):
    costs = _check_costs(costs)
    return costs, _as_label_vectors(offsets, costs.shape[:2], "offsets")


def _trunc2(truncation, power=2):
    """``T**power`` of a truncation ``T`` (``None``, or beyond any displacement: ``inf``):
    the cap of one axis's distance term, squared (``power=2``) or absolute (1)."""
    if truncation is None or truncation >= _NO_TRUNCATION:
        return np.inf
    return float(truncation) ** 2 if power == 2 else float(truncation)


# Displacement differences are bounded by the grids' sizes; a truncation this large is the
# plain quadratic (and squaring it would overflow).
_NO_TRUNCATION = 1e9


# --------------------------------------------------------------------------------------
# Energy and solvers
# --------------------------------------------------------------------------------------
def _deformation(w, trunc2=np.inf, power=2):
    """``sum_{(p, q)} min(dy^2, T^2) + min(dx^2, T^2)`` of displacements ``w`` (H, W, 2);
    ``min(|dy|, T) + min(|dx|, T)`` with ``power=1`` (``trunc2`` is ``T**power``)."""
    def distance(d):
        return d**2 if power == 2 else np.abs(d)

    return float(sum(np.minimum(distance(np.diff(w, axis=axis)), trunc2).sum()
                     for axis in (0, 1)))


def _energy(costs, labels, lam, offsets, trunc2=np.inf, power=2):
    H, W = costs.shape[:2]
    i, j = np.ogrid[:H, :W]
    data = float(costs[i, j, labels[..., 0], labels[..., 1]].sum(dtype=np.float64))
    return data, lam * _deformation(labels + offsets, trunc2, power)


def bp_energy(costs, labels, lam, offsets=None, *, truncation=None, distance="squared"):
    """Data and smoothness energy of a labelling.

    Parameters
    ----------
    costs : array-like of shape (H, W, Ly, Lx)
        Data costs (``+inf`` allowed).
    labels : array-like of int, shape (H, W, 2)
        Label index ``(ly, lx)`` of every node.
    lam : float
        Smoothness weight, ``>= 0``.
    offsets : array-like of int, shape (H, W, 2) or (2,), optional
        Displacement of label ``l`` at node ``p`` is ``l + offsets[p]``; default zero.
    truncation : float or None, default=None
        Per-axis truncation ``T`` of the smoothness, in label-grid steps: an edge costs
        ``lam (min(dy^2, T^2) + min(dx^2, T^2))``. ``None``: the plain quadratic.
    distance : {"squared", "absolute"}, default="squared"
        ``"absolute"``: SIFT Flow's smoothness, ``lam (min(|dy|, T) + min(|dx|, T))``.

    Returns
    -------
    data_energy, smoothness_energy : float
        ``sum_p D_p(l_p)`` (``+inf`` if a label is not allowed) and
        ``lam * sum_{(p, q)} ||w_p - w_q||^2`` over 4-neighbour edges (truncated).
    """
    costs, offsets = _check_problem(costs, offsets)
    labels = _as_label_vectors(labels, costs.shape[:2], "labels")
    if (labels < 0).any() or (labels >= costs.shape[2:]).any():
        raise ValueError(f"labels must lie on the {costs.shape[2:]} label grid.")
    power = _as_power(distance)
    return _energy(costs, labels, float(lam), offsets, _trunc2(truncation, power), power)


def _solve(costs, offsets, lam, max_iter, tol, patience, trunc2=np.inf, power=2):
    """Flat 2-D BP on a validated problem; returns ``(BPResult, messages)``."""
    costs = np.ascontiguousarray(costs, dtype=np.float64)
    H, W, Ly, Lx = costs.shape
    messages = np.zeros((4, H, W, Ly, Lx))
    flat, n_iter = bp_iterations(costs, np.ascontiguousarray(offsets, dtype=np.int64), lam,
                                 messages, max_iter, tol, patience, trunc2, power)
    labels = np.stack(np.divmod(flat, Lx), axis=-1)
    return BPResult(labels, labels + offsets,
                    *_energy(costs, labels, lam, offsets, trunc2, power), n_iter), messages


def _solve_dual(costs, offsets, lam, max_iter, tol, patience, trunc2=np.inf, power=2):
    """Flat dual-layer BP on a validated problem; returns ``(BPResult, messages)``.

    BP runs in float32; the energies are those of ``costs`` as given.
    """
    costs32 = np.ascontiguousarray(costs, dtype=np.float32)
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    H, W, Ly, Lx = costs.shape
    mu = np.zeros((4, H, W, Lx), np.float32)
    mv = np.zeros((4, H, W, Ly), np.float32)
    labels, n_iter = dual_bp_iterations(costs32, offsets, np.float32(lam), mu, mv, max_iter,
                                        tol, patience, np.float32(trunc2), power)
    return BPResult(labels, labels + offsets,
                    *_energy(costs, labels, lam, offsets, trunc2, power), n_iter), (mu, mv)


_SOLVE = {"2d": _solve, "dual": _solve_dual}


def min_sum_bp(costs, lam, offsets=None, *, max_iter=100, tol=1e-6, patience=5,
               truncation=None, distance="squared", return_messages=False):
    """Min-sum loopy belief propagation on a 4-connected grid.

    Minimises ``sum_p D_p(l_p) + lam * sum_{(p, q)} ||(l_p + o_p) - (l_q + o_q)||^2``
    with Felzenszwalb & Huttenlocher's speed-ups: each message is one separable
    squared-Euclidean distance transform (``O(Ly * Lx)``), nodes are updated in a
    checkerboard (all "black" nodes ``(i + j)`` even send their messages, then all
    "white" ones), and messages are normalised to a minimum of 0. Messages start at 0.

    Parameters
    ----------
    costs : array-like of shape (H, W, Ly, Lx), float32 or float64
        Data costs ``D_p(l)``; ``+inf`` forbids a label (each node needs a finite one).
        NaN and ``-inf`` are errors.
    lam : float
        Smoothness weight, ``>= 0``, per squared label-grid step.
    offsets : array-like of int, shape (H, W, 2) or (2,), optional
        Label ``l`` at node ``p`` is the displacement ``l + offsets[p]``; default zero.
        Use :func:`absolute_offsets` when the labels are target positions and
        :func:`window_offsets` for a window of displacements.
    max_iter : int, default=100
        Iterations at most (one iteration updates both colours).
    tol : float, default=1e-6
        Stop after an iteration whose largest message change is at most ``tol``
        (in energy units).
    patience : int, default=5
        Stop once the labelling has not changed for ``patience`` iterations in a row;
        0 turns this rule off.
    truncation : float or None, default=None
        Per-axis truncation ``T`` of the smoothness, in label-grid steps: an edge costs
        ``lam (min(dy^2, T^2) + min(dx^2, T^2))``. ``None``: the plain quadratic.
    distance : {"squared", "absolute"}, default="squared"
        ``"absolute"``: SIFT Flow's smoothness ``lam (min(|dy|, T) + min(|dx|, T))``,
        its messages by L1 distance transforms (a forward and a backward pass).
    return_messages : bool, default=False
        Also return the final messages.

    Returns
    -------
    result : BPResult
        Labels ``(H, W, 2)`` (each node's lowest-belief label, first in C order on
        ties), displacements, the data and smoothness energy, iterations run.
    messages : ndarray of shape (4, H, W, Ly, Lx), float64
        Only with ``return_messages=True``: ``messages[k, i, j]`` is the message into
        node ``(i, j)`` from its neighbour above (k=0), below (1), left (2), right (3);
        zero for neighbours outside the grid.
    """
    power = _as_power(distance)
    costs, offsets = _check_problem(costs, offsets)
    result, messages = _solve(costs, offsets, float(lam), max_iter, tol, patience,
                              _trunc2(truncation, power), power)
    return (result, messages) if return_messages else result


def dual_layer_bp(costs, lam, offsets=None, *, max_iter=100, tol=1e-6, patience=5,
                  truncation=None, distance="squared", return_messages=False):
    """Dual-layer min-sum BP (SIFT Flow's decomposition) on a 4-connected grid.

    Minimises the same energy as :func:`min_sum_bp`,
    ``sum_p D_p(l_p) + lam * sum_{(p, q)} ||(l_p + o_p) - (l_q + o_q)||^2``, on its
    exact factorisation into a layer of row labels and a layer of column labels joined by
    the data term (the smoothness is separable). A message then costs ``O(Ly + Lx)``
    floats and a node update ``O(Ly * Lx)``, against ``O(Ly * Lx)`` per message of 2-D
    BP: tens of times faster for the same number of iterations. Loopy BP on the two
    factor graphs is not the same algorithm, so labellings can differ; the returned one
    is the lowest-energy labelling decoded after any iteration (or each node's cheapest
    label, if lower), polished by iterated conditional modes. Runs in float32, one
    thread, checkerboard schedule.

    Parameters
    ----------
    costs : array-like of shape (H, W, Ly, Lx)
        Data costs ``D_p(l)``; ``+inf`` forbids a label (each node needs a finite one).
        NaN and ``-inf`` are errors. Computed in float32.
    lam : float
        Smoothness weight, ``>= 0``, per squared label-grid step.
    offsets : array-like of int, shape (H, W, 2) or (2,), optional
        Label ``l`` at node ``p`` is the displacement ``l + offsets[p]``; default zero.
    max_iter : int, default=100
        Iterations at most (one iteration: every node sends its messages once).
    tol : float, default=1e-6
        Stop after an iteration whose largest message change is at most ``tol``.
    patience : int, default=5
        Stop once ``patience`` iterations in a row have found no labelling of lower
        energy than the best so far; 0 turns this rule off.
    truncation : float or None, default=None
        Per-axis truncation ``T`` of the smoothness, in label-grid steps: an edge costs
        ``lam (min(dy^2, T^2) + min(dx^2, T^2))``. ``None``: the plain quadratic.
    distance : {"squared", "absolute"}, default="squared"
        ``"absolute"``: SIFT Flow's smoothness ``lam (min(|dy|, T) + min(|dx|, T))``
        (the same sweep, its messages the L1 transform).
    return_messages : bool, default=False
        Also return the final messages.

    Returns
    -------
    result : BPResult
        Labels ``(H, W, 2)``, displacements, the data and smoothness energy (float64
        sums of the float32 costs), iterations run.
    messages : tuple of ndarray
        Only with ``return_messages=True``: ``(mu, mv)`` of shapes ``(4, H, W, Lx)`` and
        ``(4, H, W, Ly)``, the column-layer and row-layer messages into every node from
        its neighbour above (k=0), below (1), left (2), right (3).

    """
    power = _as_power(distance)
    costs, offsets = _check_problem(costs, offsets)
    result, messages = _solve_dual(costs, offsets, float(lam), max_iter, tol, patience,
                                   _trunc2(truncation, power), power)
    return (result, messages) if return_messages else result


def _coarsen(costs, offsets, slack):
    """Problem on 2x2 blocks of nodes that share one displacement, up to ``slack``."""
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    return coarsen_costs(costs, offsets, slack), offsets[::2, ::2]


def _coarse_to_fine(costs, offsets, lam, levels, window, iteration, solver="dual",
                    trunc2=np.inf, power=2):
    solve = _SOLVE[solver]
    H, W = costs.shape[:2]
    if levels == 0 or H * W == 1:
        return solve(costs, offsets, lam, *iteration, trunc2, power)[0]
    coarse_costs, coarse_offsets = _coarsen(costs, offsets, min(window, 1))
    if not np.isfinite(coarse_costs).any(axis=(2, 3)).all():  # some block has no common label
        return solve(costs, offsets, lam, *iteration, trunc2, power)[0]
    # A coarse edge stands for (up to) two fine edges between blocks of equal displacement
    # (the labels, and so the truncation, stay in fine grid steps; either distance is a
    # sum over edges, so doubling the weight holds for both).
    coarse = _coarse_to_fine(coarse_costs, coarse_offsets, 2 * lam, levels - 1, window,
                             iteration, solver, trunc2, power)
    centers = coarse.displacements.repeat(2, axis=0).repeat(2, axis=1)[:H, :W]
    size = (2 * window + 1,) * 2
    window_costs = shift_label_grid(costs, centers - window - offsets, size)
    lost = ~np.isfinite(window_costs).any(axis=(2, 3))
    if lost.any():  # no allowed label near the coarse solution: centre on the node's best
        best = np.stack(np.unravel_index(costs.reshape(H, W, -1).argmin(-1), costs.shape[2:]),
                        axis=-1)
        centers[lost] = (best + offsets)[lost]
        window_costs = shift_label_grid(costs, centers - window - offsets, size)
    fine = solve(window_costs, centers - window, lam, *iteration, trunc2, power)[0]
    labels = fine.displacements - offsets
    candidates = [BPResult(labels, fine.displacements, fine.data_energy,
                           fine.smoothness_energy, fine.n_iter)]
    if np.isfinite(window_costs[:, :, window, window]).all():  # the upsampled coarse flow
        upsampled = centers - offsets
        candidates.append(BPResult(upsampled, centers,
                                   *_energy(costs, upsampled, lam, offsets, trunc2, power),
                                   fine.n_iter))
    return min(candidates, key=lambda r: r.energy)


def coarse_to_fine_bp(costs, lam, offsets=None, *, levels=2, window=2, max_iter=100,
                      tol=1e-6, patience=5, truncation=None, solver="dual",
                      distance="squared"):
    """Coarse-to-fine min-sum BP: solve on blocks of nodes, refine in a window around it.

    One coarsening groups the node grid into 2x2 blocks that share a displacement up to
    one label step: the block's cost of a displacement ``w`` is the sum over its nodes of
    their cheapest cost within one step of ``w``, and the smoothness weight doubles (a
    block edge stands for two node edges). That problem is coarsened again, ``levels``
    times in all; the coarsest one is solved with flat BP over the full label grid
    (:func:`dual_layer_bp`, or :func:`min_sum_bp` with ``solver="2d"``).
    Each finer level then runs BP over a window of ``(2 window + 1)**2``
    displacements centred on its block's coarse displacement (a node with no allowed
    label in that window is centred on its own cheapest label instead).

    Only the coarsest level sees every label, so this is much faster than flat BP when
    the label grid is large (see ``bench/bp.py``). It is a heuristic: the labelling may
    differ from flat BP (on smooth problems it agrees, and it can reach a lower energy
    when flat BP does not converge), but its energy is never above that of the
    upsampled coarse flow.

    Parameters
    ----------
    costs, lam, offsets, max_iter, tol, patience, truncation, distance
        As in :func:`min_sum_bp`; the iteration limits apply at every level, the
        truncation (in fine label-grid steps) and the distance too.
    levels : int, default=2
        Number of coarsenings; ``0`` is flat BP.
    window : int, default=2
        Half-width of the refinement window, in label-grid steps (``>= 1`` advised).
    solver : {"dual", "2d"}, default="dual"
        The BP at every level: :func:`dual_layer_bp` or :func:`min_sum_bp`.

    Returns
    -------
    result : BPResult
        Labels on the input label grid, displacements, the energy of the input
        problem, and the iterations run at the finest level.
    """
    power = _as_power(distance)
    costs, offsets = _check_problem(costs, offsets)
    return _coarse_to_fine(costs, offsets, float(lam), levels, window,
                           (max_iter, tol, patience), solver, _trunc2(truncation, power), power)
