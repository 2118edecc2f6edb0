"""Pairwise alignment: the flow MRF on a grid of RF centres, warping and point transfer.

A flow maps every node ``p`` of the source feature grid to a node ``p + w(p)`` of the
target grid (Long et al. 2014, Study 2). Its energy is

``E(w) = sum_p ||f_s(p) - f_t(p + w(p))||^2 + lam * sum_{(p, q)} ||w(p) - w(q)||^2``

with displacements ``w`` counted in grid steps (so ``lam`` does not depend on the layer's
stride), minimised by min-sum belief propagation (:mod:`skcorr.flow._mrf`); with a
``truncation`` ``T`` each axis's smoothness term stops growing at ``T`` steps.

``energy="sift-flow"`` minimises SIFT Flow's energy (Liu et al., TPAMI 2011) with the
same solvers instead: L1 distances of the features as the data term and
``lam (min(|du|, T) + min(|dv|, T))`` per edge as the smoothness. Its data truncation
(``data_truncation``: ``min(D, t)``) and small-displacement term (``eta (|u| + |v|)``,
added to every label's data cost) are settings of their own, and apply to either energy.

The labelling is discrete: each node matches a target node. With ``subcell=True`` each
match then moves by up to half a step along each axis, to the vertex of the parabola
through the node's energy (its data cost plus its smoothness to its neighbours' matches)
at its label and the two labels beside it on that axis, as stereo matchers refine
disparities; three sweeps let the neighbours' refined matches enter the smoothness.

Between grid nodes a flow is interpolated: a source point gets the bilinear
interpolation of the target positions of the four nodes around it; outside the outermost
RF centres (the image border, less than half a stride wide) the nearest border position
is used and the remaining offset is carried over, scaled by the ratio of the strides.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import RectBivariateSpline
from scipy.ndimage import map_coordinates
from sklearn.utils._param_validation import validate_params

from .._geometry import grid_coordinate, node_grid, sample_grid
from .._image import as_rgb
from ..features import FeatureMap
from ._mrf._costs import (
    absolute_offsets,
    add_displacement_costs,
    add_label_prices,
    data_cost,
    data_cost_window,
    shift_label_grid,
    truncate_costs,
    window_offsets,
)
from ._mrf._refine import subcell_offsets
from ._mrf._solve import _SOLVE, _coarse_to_fine, _deformation, _trunc2
from ._mrf._transport import target_prices
from ._settings import ALIGN_CONSTRAINTS

__all__ = ["Flow", "align"]


@dataclass
class Flow:
    """Dense correspondence from a source image's feature grid to a target image's.

    Usually built by :func:`align`.

    Parameters
    ----------
    target_index : ndarray of shape (rows, cols, 2), int
        For every source node, the (row, col) of its match on the target grid.
    source_xs, source_ys : ndarray of shape (cols,) and (rows,)
        RF centres of the source grid's columns (x) and rows (y), in source pixels.
    target_xs, target_ys : ndarray
        RF centres of the target grid's columns (x) and rows (y), in target pixels.
    source_shape, target_shape : tuple of int
        (height, width) of the two images.
    data_energy : float
        ``sum_p ||f_s(p) - f_t(p + w(p))||^2`` (plus the target nodes' transport prices
        when aligned with ``ot_reg``); with ``energy="sift-flow"`` the L1 distances, and
        with ``data_truncation`` or ``eta`` the truncated distances plus the
        small-displacement term.
    deformation : float
        ``sum_{(p, q)} ||w(p) - w(q)||^2`` over 4-neighbour edges, in squared grid
        steps, each axis's term truncated as the flow's smoothness was (the smoothness
        energy without ``lam``; the paper orders neighbours by it); with
        ``energy="sift-flow"``, ``sum_{(p, q)} min(|du|, T) + min(|dv|, T)``.
    lam : float
        The smoothness weight the flow was solved with.
    n_iter : int
        Belief-propagation iterations.
    subcell : ndarray of shape (rows, cols, 2) or None, default=None
        Fractional correction of each match, in target grid steps within ``[-0.5, 0.5]``
        (row, col), added to ``target_index`` by :meth:`matched_points`; ``None`` for
        matches on the grid nodes (``align(..., subcell=False)``).
    confidence : ndarray of shape (rows, cols) or None, default=None
        How far each node's match is trusted, in ``(0, 1]``: the forward-backward
        consistency of this flow and the flow from the target back to the source,
        ``exp(-d**2 / (2 sigma**2))`` with ``d`` the distance, in source grid steps,
        between the node and where its match maps back (:func:`consistency`; set by
        :meth:`with_backward` and :func:`skcorr.match`). ``None`` when no backward flow
        was computed.

    Examples
    --------
    A feature grid aligned with itself gives the identity flow:

    >>> import numpy as np
    >>> from skcorr.features import FeatureMap
    >>> from skcorr.flow import align
    >>> rng = np.random.default_rng(0)
    >>> columns = rng.normal(size=(4, 5, 8))
    >>> columns /= np.linalg.norm(columns, axis=2, keepdims=True)
    >>> grid = FeatureMap(features=columns, xs=8.0 + 16 * np.arange(5),
    ...                   ys=8.0 + 16 * np.arange(4), rf_size=32.0, image_shape=(64, 80))
    >>> flow = align(grid, grid, lam=0.1)
    >>> round(float(flow.data_energy), 9), float(flow.deformation), flow.target_index.shape
    (0.0, 0.0, (4, 5, 2))
    >>> flow.transfer_points(np.array([[20.0, 30.0]])).tolist()
    [[20.0, 30.0]]
    """

    target_index: np.ndarray
    source_xs: np.ndarray
    source_ys: np.ndarray
    target_xs: np.ndarray
    target_ys: np.ndarray
    source_shape: tuple[int, int]
    target_shape: tuple[int, int]
    data_energy: float
    deformation: float
    lam: float
    n_iter: int
    subcell: np.ndarray | None = None
    confidence: np.ndarray | None = None

    def __repr__(self) -> str:
        rows, cols = self.target_index.shape[:2]
        extras = [name for name in ("subcell", "confidence") if getattr(self, name) is not None]
        (hs, ws), (ht, wt) = self.source_shape, self.target_shape
        return (f"Flow({rows}x{cols} grid, source {ws}x{hs} px -> target {wt}x{ht} px, "
                f"energy={self.energy:.6g}, lam={self.lam:g}"
                + "".join(f", {name}" for name in extras) + ")")

    @property
    def energy(self) -> float:
        """The MRF energy, ``data_energy + lam * deformation``."""
        return self.data_energy + self.lam * self.deformation

    @property
    def displacement(self) -> np.ndarray:
        """``w`` in grid steps, (rows, cols, 2) as (drow, dcol)."""
        return self.target_index - node_grid(self.target_index.shape[:2])

    def matched_points(self) -> np.ndarray:
        """Target pixel position (x, y) matched to every source node: (rows, cols, 2).

        Returns
        -------
        points : ndarray of shape (rows, cols, 2)
            For each source grid node, the ``(x, y)`` RF centre of its matched target
            node, in target pixels (moved by ``subcell`` between the RF centres, when
            set).
        """
        if self.subcell is None:
            return np.stack([self.target_xs[self.target_index[..., 1]],
                             self.target_ys[self.target_index[..., 0]]], axis=-1)
        index = self.target_index + self.subcell
        return np.stack([np.interp(index[..., 1], np.arange(len(self.target_xs)), self.target_xs),
                         np.interp(index[..., 0], np.arange(len(self.target_ys)), self.target_ys)],
                        axis=-1)

    def _stride_ratio(self) -> np.ndarray:
        def step(a):
            return np.diff(a).mean() if len(a) > 1 else 1.0

        return np.array([step(self.target_xs) / step(self.source_xs),
                         step(self.target_ys) / step(self.source_ys)])

    def transfer_points(self, points, direction: str = "forward") -> np.ndarray:
        """Map points between the two images.

        Parameters
        ----------
        points : array-like of shape (n, 2)
            (x, y) pixels; NaN rows stay NaN.
        direction : {"forward", "backward"}
            ``"forward"`` maps source points into the target (interpolating the flow as
            the module says); ``"backward"`` maps target points into the source through
            the source node whose match lies closest, plus the remaining offset scaled by
            the ratio of the strides.

        Returns
        -------
        ndarray of shape (n, 2)
            The mapped ``(x, y)`` pixels in the other image; NaN where the input is NaN.
        """
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        out = np.full_like(points, np.nan)
        ok = ~np.isnan(points).any(axis=1)
        ratio = self._stride_ratio()
        matched = self.matched_points()
        if direction == "forward":
            fx = grid_coordinate(self.source_xs, points[ok, 0])
            fy = grid_coordinate(self.source_ys, points[ok, 1])
            anchor = np.stack([np.interp(fx, np.arange(len(self.source_xs)), self.source_xs),
                               np.interp(fy, np.arange(len(self.source_ys)), self.source_ys)], 1)
            moved = sample_grid(matched, self.source_xs, self.source_ys, points[ok], "bilinear")
            out[ok] = moved + (points[ok] - anchor) * ratio
        elif direction == "backward":
            flat = matched.reshape(-1, 2)
            nearest = np.argmin(((points[ok, None, :] - flat[None]) ** 2).sum(-1), axis=1)
            rows, cols = np.divmod(nearest, len(self.source_xs))
            centre = np.stack([self.source_xs[cols], self.source_ys[rows]], axis=1)
            out[ok] = centre + (points[ok] - flat[nearest]) / ratio
        else:
            raise ValueError(f"direction must be 'forward' or 'backward', got {direction!r}.")
        return out

    def warp_image(self, target_image, *, degree: int = 1, order: int = 1) -> np.ndarray:
        """The target image resampled into the source frame (source's height and width).

        The target position of every source pixel comes from a bivariate spline of the
        given ``degree`` (scipy's ``RectBivariateSpline``) through the matched points of
        the grid nodes; pixels are then sampled with ``map_coordinates`` of the given
        ``order``, clamping at the target's border. Degree 1 (bilinear, the default)
        follows the flow's discontinuities without the ringing of a cubic spline.

        Parameters
        ----------
        target_image : ndarray of shape (H_t, W_t, 3) or path
            The target image the flow was computed for (its size must be
            ``target_shape``).
        degree : int, default=1
            Degree of the spline interpolating the flow between grid nodes (reduced
            where the grid has too few nodes).
        order : int, default=1
            Spline order of the pixel resampling (0 = nearest, 1 = bilinear).

        Returns
        -------
        warped : ndarray of shape (H_s, W_s, 3), dtype uint8
            The target image seen through the flow, in the source's frame.
        """
        image = as_rgb(target_image, name="target_image")
        if image.shape[:2] != tuple(self.target_shape):
            raise ValueError(
                f"target_image is {image.shape[1]}x{image.shape[0]} but the flow was computed "
                f"for a {self.target_shape[1]}x{self.target_shape[0]} target."
            )
        height, width = self.source_shape
        matched = self.matched_points()
        ys, xs = np.arange(height, dtype=float), np.arange(width, dtype=float)
        grid_y = np.clip(ys, self.source_ys[0], self.source_ys[-1])
        grid_x = np.clip(xs, self.source_xs[0], self.source_xs[-1])
        ratio = self._stride_ratio()
        coords = []
        for axis in (0, 1):  # x then y of the target position
            deg_rows = min(degree, len(self.source_ys) - 1)
            deg_cols = min(degree, len(self.source_xs) - 1)
            if deg_rows == 0 or deg_cols == 0:
                values = np.full((height, width), matched[..., axis].mean())
            else:
                spline = RectBivariateSpline(self.source_ys, self.source_xs, matched[..., axis],
                                             kx=deg_rows, ky=deg_cols)
                values = spline(grid_y, grid_x)
            residual = (xs - grid_x)[None, :] if axis == 0 else (ys - grid_y)[:, None]
            coords.append(values + residual * ratio[axis])
        tx, ty = coords
        warped = np.stack([map_coordinates(image[..., c].astype(np.float32), [ty, tx],
                                           order=order, mode="nearest")
                           for c in range(3)], axis=-1)
        return np.clip(np.rint(warped), 0, 255).astype(np.uint8)

    def pixel_flow(self) -> np.ndarray:
        """The flow at every source pixel, in pixels (the optical-flow convention).

        Source pixel ``(x, y)`` matches target point ``(x, y) + field[y, x]``, the point
        :meth:`transfer_points` maps it to (the same interpolation between the grid
        nodes and at the border; sub-cell matches included).

        Returns
        -------
        field : ndarray of shape (H_s, W_s, 2), float32
            ``(u, v)`` = (dx, dy) from each source pixel to its match, in pixels, for
            :func:`~skcorr.flow.write_flo` or :func:`~skcorr.visualize.flow_to_color`.

        Examples
        --------
        >>> import numpy as np
        >>> from skcorr.features import FeatureMap
        >>> from skcorr.flow import align
        >>> columns = np.random.default_rng(0).normal(size=(4, 5, 8))
        >>> grid = FeatureMap(features=columns, xs=8.0 + 16 * np.arange(5),
        ...                   ys=8.0 + 16 * np.arange(4), rf_size=32.0, image_shape=(64, 80))
        >>> field = align(grid, grid).pixel_flow()
        >>> field.shape, field.dtype, float(abs(field).max())
        ((64, 80, 2), dtype('float32'), 0.0)
        """
        from ._fields import grid_to_pixels

        height, width = self.source_shape
        moved = grid_to_pixels(self.matched_points(), self.source_xs, self.source_ys,
                               (height, width))
        xs, ys = np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64)
        # beyond the outermost centres the offset to the border node is carried over
        ratio = self._stride_ratio()
        rest_x = (xs - np.clip(xs, self.source_xs[0], self.source_xs[-1])) * ratio[0]
        rest_y = (ys - np.clip(ys, self.source_ys[0], self.source_ys[-1])) * ratio[1]
        moved[..., 0] += rest_x[None, :] - xs[None, :]
        moved[..., 1] += rest_y[:, None] - ys[:, None]
        return moved.astype(np.float32)

    def pixel_confidence(self) -> np.ndarray:
        """:attr:`confidence` at every source pixel (bilinear between the grid nodes).

        Returns
        -------
        confidence : ndarray of shape (H_s, W_s), float32
            In ``(0, 1]``, interpolated as :meth:`pixel_flow` is.
        """
        from ._fields import grid_to_pixels

        if self.confidence is None:
            raise ValueError(
                "This flow has no confidence: it was computed in one direction only. Set it "
                "with flow.with_backward(backward_flow), or use skcorr.match(..., "
                "backward=True)."
            )
        return grid_to_pixels(np.asarray(self.confidence, dtype=np.float64), self.source_xs,
                              self.source_ys, self.source_shape).astype(np.float32)

    def with_backward(self, backward: Flow, *, sigma: float = 1.0) -> Flow:
        """A copy of this flow whose :attr:`confidence` is its consistency with ``backward``.

        Parameters
        ----------
        backward : Flow
            The flow from this flow's target back to its source.
        sigma : float, default=1.0
            Scale of the confidence in source grid steps (see :func:`consistency`).

        Returns
        -------
        Flow
            This flow with ``confidence`` set.
        """
        from dataclasses import replace

        from ._fields import consistency

        return replace(self, confidence=consistency(self, backward, sigma=sigma)[1])

    def matches(self, min_confidence: float = 0.0):
        """Sparse point pairs: every source grid node and its match, with their scores.

        With a :attr:`confidence` (a flow from :meth:`with_backward` or
        :func:`skcorr.match`), ``min_confidence`` keeps the cross-checked matches, the
        nodes whose match maps back near them (as ``match_descriptors(cross_check=True)``
        of scikit-image keeps mutual nearest neighbours): ``exp(-1/2) ~ 0.61`` keeps
        round trips within one grid step.

        Parameters
        ----------
        min_confidence : float in [0, 1], default=0.0
            Keep the matches whose confidence is at least this; above 0 it needs a
            confidence.

        Returns
        -------
        source_points : ndarray of shape (n, 2)
            ``(x, y)`` of the kept source nodes (RF centres), in source pixels, row-major.
        target_points : ndarray of shape (n, 2)
            ``(x, y)`` of their matches, in target pixels.
        scores : ndarray of shape (n,)
            Their confidence; NaN when the flow has none.
        """
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence must lie in [0, 1], got {min_confidence!r}.")
        gx, gy = np.meshgrid(self.source_xs, self.source_ys)
        source = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float64)
        target = self.matched_points().reshape(-1, 2).astype(np.float64)
        if self.confidence is None:
            if min_confidence > 0:
                raise ValueError(
                    f"min_confidence={min_confidence!r} needs the flow's confidence, which it "
                    "has not; set it with flow.with_backward(backward_flow) or use "
                    "skcorr.match(..., backward=True), or pass min_confidence=0."
                )
            return source, target, np.full(len(source), np.nan)
        scores = np.asarray(self.confidence, dtype=np.float64).ravel()
        keep = scores >= min_confidence
        return source[keep], target[keep], scores[keep]


@validate_params({"source": [FeatureMap], "target": [FeatureMap], **ALIGN_CONSTRAINTS},
                 prefer_skip_nested_validation=True)
def align(source: FeatureMap, target: FeatureMap, *, lam: float = 0.1, radius=None,
          levels: int = 2, max_iter: int = 50, tol: float = 1e-6, patience: int = 5,
          solver: str = "dual", truncation: float | None = None, ot_reg: float | None = None,
          subcell: bool = False, energy: str = "l2", eta: float = 0.0,
          data_truncation: float | None = None) -> Flow:
    """Align two feature grids by min-sum belief propagation.

    Parameters
    ----------
    source, target : FeatureMap
        Dense features of the two images (from ``extract_dense`` of a ConvColumnExtractor
        or DenseSIFT); the flow lives on the source grid.
    lam : float, default=0.1
        Smoothness weight per squared grid step (data costs are squared distances of
        the features, in [0, 4] for L2-normalised ones). 0 is plain nearest-column
        matching: every node takes its cheapest label, whatever ``levels``. With
        ``energy="sift-flow"``, per grid step (SIFT Flow's ``alpha``).
    radius : int or None, default=None
        ``None``: every target grid position is a label. An integer ``R``: the labels of
        node ``p`` are the ``(2R + 1)^2`` target nodes around ``p``'s position scaled
        into the target grid.
    levels : int, default=2
        Coarse-to-fine levels (0 = flat BP). Besides being faster, coarse-to-fine
        found flows of lower energy than flat loopy BP on real image pairs.
    max_iter, tol, patience : int, float, int
        BP iteration limit, stopping tolerance (largest message change) and the number
        of iterations without progress after which BP stops (0: never): without a
        lower-energy labelling for ``"dual"``, without a label change for ``"2d"``. The
        iterations run are ``Flow.n_iter``.
    solver : {"dual", "2d"}, default="dual"
        ``"dual"``: dual-layer BP (SIFT Flow's decomposition of the same energy [2]_;
        tens of times faster). ``"2d"``: BP with 2-D messages and distance transforms
        (Felzenszwalb and Huttenlocher [3]_).
    truncation : float or None, default=None
        Per-axis truncation of the smoothness, in grid steps: an edge costs
        ``lam (min(dy^2, T^2) + min(dx^2, T^2))``, so the flow may break (between an
        object and its background, or at a part that moved) for a bounded price.
        ``None``: the paper's plain quadratic. With ``energy="sift-flow"`` an edge costs
        ``lam (min(|dy|, T) + min(|dx|, T))``.
    ot_reg : float or None, default=None
        Add to every match the price of its target node from entropic optimal transport
        between the two grids with this regularisation (in units of the data costs,
        Sinkhorn's scaling of the plan [4]_): target nodes that many source
        nodes prefer cost more, so matches spread over the target. ``None``: no prices.
    subcell : bool, default=False
        Refine each match between the target's grid nodes (half a step at most per axis)
        by a parabola through its energy at the neighbouring labels (``Flow.subcell``).
    energy : {"l2", "sift-flow"}, default="l2"
        ``"l2"``: the energy above (squared distances of the features and of the
        displacements). ``"sift-flow"``: SIFT Flow's energy [2]_,

        ``E(w) = sum_p min(||f_s(p) - f_t(p + w(p))||_1, t) + eta (|u(p)| + |v(p)|)
        + sum_{(p, q)} lam (min(|u(p) - u(q)|, T) + min(|v(p) - v(q)|, T))``,

        so ``lam`` is SIFT Flow's ``alpha`` per grid step, ``truncation`` its ``d /
        alpha`` in grid steps, ``data_truncation`` its ``t`` and ``eta`` its ``eta``
        (``gamma`` in its MATLAB code). The solvers, coarse-to-fine, ``radius``,
        ``ot_reg`` and ``subcell`` work as for ``"l2"``.
    eta : float, default=0.0
        Weight of SIFT Flow's small-displacement term, per grid step: every match costs
        ``eta (|dy| + |dx|)`` more, ``(dy, dx)`` its displacement from the node's
        position scaled into the target grid (from the node itself when the two grids
        have the same shape). Added to the data costs with either ``energy``.
    data_truncation : float or None, default=None
        Truncate every data cost at this value (in the data costs' units: L1 distances
        of the features for ``"sift-flow"``, squared distances for ``"l2"``), so an
        occluded node pays a bounded price. ``None``: no truncation.

    Returns
    -------
    Flow
        The flow on the source grid, with its energies.

    References
    ----------
    .. [1] J. Long, N. Zhang, T. Darrell. Do Convnets Learn Correspondence? NIPS 2014.
       https://arxiv.org/abs/1411.1091
    .. [2] C. Liu, J. Yuen, A. Torralba. SIFT Flow: Dense Correspondence across Scenes and
       its Applications. IEEE TPAMI 33(5), 2011. https://doi.org/10.1109/TPAMI.2010.147
    .. [3] P. Felzenszwalb, D. Huttenlocher. Efficient Belief Propagation for Early Vision.
       IJCV 70(1), 2006. https://doi.org/10.1007/s11263-006-7899-4
    .. [4] M. Cuturi. Sinkhorn Distances: Lightspeed Computation of Optimal Transport.
       NIPS 2013. https://arxiv.org/abs/1306.0895

    Examples
    --------
    >>> from skcorr import ConvColumnExtractor
    >>> from skcorr.datasets import load_sample_pairs
    >>> from skcorr.flow import align
    >>> pairs = load_sample_pairs()
    >>> s, t = pairs.pairs[0]
    >>> features = ConvColumnExtractor(layer="conv5", mode="dense").fit()
    >>> source_map, target_map = features.transform([pairs.images[s], pairs.images[t]])
    >>> flow = align(source_map, target_map, lam=0.1)
    >>> flow.target_index.shape  # a match on the target grid for each source node
    (15, 15, 2)
    >>> flow.transfer_points(pairs.keypoints[s]).shape  # the source keypoints, moved
    (10, 2)
    >>> flow.warp_image(pairs.images[t]).shape  # the target in the source frame
    (240, 240, 3)
    """
    if source.features.shape[2] != target.features.shape[2]:
        raise ValueError(
            f"source and target features have {source.features.shape[2]} and "
            f"{target.features.shape[2]} channels; extract both with the same transformer."
        )
    for name, fmap in (("source", source), ("target", target)):
        if min(fmap.grid_shape) < 2:
            raise ValueError(
                f"The {name} feature grid is {fmap.grid_shape[0]}x{fmap.grid_shape[1]} cells; "
                "the flow needs at least 2x2. Use larger images, a larger image_size, or an "
                "earlier layer."
            )
    power, metric = (1, "cityblock") if energy == "sift-flow" else (2, "sqeuclidean")
    trunc2 = _trunc2(truncation, power)
    iteration = (max_iter, tol, patience)
    rows, cols = source.grid_shape
    centers = _scaled_positions((rows, cols), target.grid_shape)
    full = None
    if radius is None or ot_reg is not None:
        full = data_cost(source.features, target.features, metric)
        if data_truncation is not None:
            full = truncate_costs(full, data_truncation)
    if radius is None:
        costs = full
        offsets = absolute_offsets((rows, cols))
    else:
        offsets = window_offsets((rows, cols), radius, centers)
        if full is None:
            costs = data_cost_window(source.features, target.features, radius, centers,
                                     metric)
            if data_truncation is not None:
                costs = truncate_costs(costs, data_truncation)
        else:  # the window of the full costs (target node = node + offset + label)
            size = (2 * radius + 1,) * 2
            costs = shift_label_grid(full, node_grid((rows, cols)) + offsets, size)
    if ot_reg is not None:
        costs = add_label_prices(costs, target_prices(full, ot_reg), offsets)
    if eta > 0:
        costs = add_displacement_costs(costs, offsets, eta, centers)
    # The costs are finite (or +inf off the target grid, with a finite label per node).
    if lam == 0:  # independent nodes: one pass gives each node its best label exactly
        result = _SOLVE[solver](costs, offsets, 0.0, 1, tol, patience)[0]
    else:
        result = _coarse_to_fine(costs, offsets, float(lam), int(levels), 2, iteration, solver,
                                 trunc2, power)
    target_index = node_grid((rows, cols)) + result.displacements
    return Flow(target_index=target_index, source_xs=source.xs, source_ys=source.ys,
                target_xs=target.xs, target_ys=target.ys,
                source_shape=tuple(source.image_shape), target_shape=tuple(target.image_shape),
                data_energy=float(result.data_energy),
                deformation=_deformation(result.displacements, trunc2, power),
                lam=float(lam), n_iter=int(result.n_iter),
                subcell=(subcell_offsets(costs, result.labels, offsets, float(lam), trunc2,
                                         power=power) if subcell else None))


def _scaled_positions(source_grid, target_grid) -> np.ndarray:
    """Displacement taking each source node to its proportional target node."""
    scale = [(t - 1) / max(s - 1, 1) for s, t in zip(source_grid, target_grid, strict=True)]
    grid = node_grid(source_grid)
    return np.rint(grid * np.array(scale)).astype(np.int64) - grid


# align without its checks of the settings, for the estimators, which validate the same
# settings with the same constraints once per fit or predict (not once per pair).
_align_unchecked = align.__wrapped__
