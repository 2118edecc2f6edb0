"""Sub-cell refinement of a labelling: each match moves by up to half a label step per axis.

The energy of node ``p`` at a label is its data cost plus its (truncated) smoothness to
its neighbours' positions; along one axis only that axis's terms change. Through the
energy at the label ``l`` and the two labels beside it, ``l - 1`` and ``l + 1``, passes a
parabola; its vertex, clipped to half a step, is the node's refined position on that
axis (as stereo matchers refine disparities). Where a side label is off the label grid
or not allowed (``+inf``), or the energy is not convex there, the node keeps its label
on that axis. The first sweep measures the smoothness to the neighbours' grid positions,
which pulls every vertex towards the grid; each further sweep (Jacobi: every node from
the previous sweep's positions) measures it to their refined positions instead.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["subcell_offsets"]


def subcell_offsets(costs, labels, offsets, lam, trunc2, sweeps=3, power=2) -> np.ndarray:
    """Per node and axis, the vertex of the parabola through its energy at ``l - 1, l, l + 1``.

    Parameters
    ----------
    costs : ndarray of shape (H, W, Ly, Lx), float32 or float64
        The data costs the labelling was solved on (``+inf``: not allowed).
    labels : ndarray of int, shape (H, W, 2)
        Label index ``(ly, lx)`` of every node (an allowed one).
    offsets : ndarray of int, shape (H, W, 2)
        Label ``l`` of node ``p`` is the displacement ``l + offsets[p]``.
    lam, trunc2 : float
        Smoothness weight and squared per-axis truncation (``inf``: none).
    sweeps : int, default=3
        Jacobi sweeps; the first measures the smoothness to the neighbours' labels.
    power : int, default=2
        The smoothness's distance: squared (2, ``trunc2 = T**2``) or absolute (1, SIFT
        Flow's, ``trunc2 = T``).

    Returns
    -------
    subcell : ndarray of shape (H, W, 2), float64
        The fractional move of every node's match, within ``[-0.5, 0.5]`` per axis.
    """
    costs = np.ascontiguousarray(costs)
    if costs.dtype not in (np.float32, np.float64):
        costs = costs.astype(np.float64)
    out = np.zeros(costs.shape[:2] + (2,))
    _subcell(costs, np.ascontiguousarray(labels, dtype=np.int64),
             np.ascontiguousarray(offsets, dtype=np.int64), float(lam), float(trunc2),
             int(sweeps), int(power), out)
    return out


# Neighbours in the order the energies sum them (down, up, right, left).
_NEIGHBOURS = ((1, 0), (-1, 0), (0, 1), (0, -1))


@njit(cache=True, nogil=True)
def _subcell(costs, labels, offsets, lam, trunc2, sweeps, power, out):
    # No fastmath: the parabola's tests rely on +inf and NaN as IEEE has them.
    H, W, Ly, Lx = costs.shape
    # data[axis, step + 1, i, j]: the data cost one step off the label along axis
    data = np.empty((2, 3, H, W))
    for i in range(H):
        for j in range(W):
            ly = labels[i, j, 0]
            lx = labels[i, j, 1]
            for step in (-1, 0, 1):
                y = ly + step
                data[0, step + 1, i, j] = (np.float64(costs[i, j, y, lx]) if 0 <= y < Ly
                                           else np.inf)
                x = lx + step
                data[1, step + 1, i, j] = (np.float64(costs[i, j, ly, x]) if 0 <= x < Lx
                                           else np.inf)
    w = labels + offsets
    positions = np.empty((H, W))
    energy = np.empty(3)
    for _ in range(sweeps):
        refined = np.zeros((H, W, 2))
        for axis in range(2):
            for i in range(H):
                for j in range(W):
                    positions[i, j] = w[i, j, axis] + out[i, j, axis]
            for i in range(H):
                for j in range(W):
                    for step in (-1, 0, 1):
                        smooth = 0.0
                        for di, dj in _NEIGHBOURS:
                            ii = i + di
                            jj = j + dj
                            if 0 <= ii < H and 0 <= jj < W:
                                d = (w[i, j, axis] + step) - positions[ii, jj]
                                smooth += lam * min(d * d if power == 2 else abs(d), trunc2)
                        energy[step + 1] = data[axis, step + 1, i, j] + smooth
                    below, here, above = energy[0], energy[1], energy[2]
                    curvature = below - 2 * here + above
                    if np.isfinite(below) and np.isfinite(above) and curvature > 0:
                        vertex = 0.5 * (below - above) / curvature
                        refined[i, j, axis] = min(max(vertex, -0.5), 0.5)
        out[:] = refined
