"""Receptive-field arithmetic.

Every spatial layer of a convnet maps cell ``(i, j)`` (row, column) of its output to a
receptive field (RF) in the input image: a square of side ``size`` centred at
``offset + stride * (j, i)`` in input pixel coordinates (x, y; integer = pixel centre,
see :mod:`skcorr._image`). The numbers are computed from the module graph, so they hold
for any network built from convolutions and pools:

* a convolution or pool with kernel ``k``, stride ``s``, padding ``p`` and dilation
  ``d`` (effective kernel ``k' = d (k - 1) + 1``) turns ``(size, stride, offset)`` into
  ``(size + (k' - 1) stride, stride * s, offset + ((k' - 1) / 2 - p) stride)``;
* element-wise operations with several inputs (residual sums, concatenations) take the
  union of their inputs' fields;
* global operations (adaptive pools, flattening, linear layers, reductions) have no
  spatial grid: their RF is the whole image, written ``None``. A global tensor that
  gates a spatial one (squeeze-and-excitation) does not widen the local field: the RF
  reported is the one of the spatial path, as is usual for such networks.

Sizes are the theoretical RF: the pixels path-connected to a cell, padding included.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import numpy as np
import torch
from torch import fx, nn
from torch.nn import functional as F  # noqa: N812

from ._geometry import rescale_points

__all__ = ["ReceptiveField", "grid_centers", "measure_receptive_field", "receptive_fields"]


@dataclass(frozen=True)
class ReceptiveField:
    """Receptive-field geometry of one spatial layer, per axis in ``(x, y)`` order.

    Parameters
    ----------
    size : tuple of float
        Side of the RF in input pixels, ``(x, y)``.
    stride : tuple of float
        Distance in input pixels between the RF centres of neighbouring cells.
    offset : tuple of float
        Input position ``(x, y)`` of the centre of cell ``(0, 0)``'s RF.
    """

    size: tuple[float, float]
    stride: tuple[float, float]
    offset: tuple[float, float]

    @property
    def is_square(self) -> bool:
        """Whether size and stride are the same along x and y."""
        return self.size[0] == self.size[1] and self.stride[0] == self.stride[1]

    def scaled(self, scale_x: float, scale_y: float | None = None) -> ReceptiveField:
        """The same field seen in an image resized by ``scale`` (input px per original px).

        Parameters
        ----------
        scale_x : float
            Resize factor along x: network-input pixels per original-image pixel.
        scale_y : float or None, default=None
            Resize factor along y; ``None`` uses ``scale_x``.

        Returns
        -------
        rf : ReceptiveField
            The field in pixels of the original image (size and stride divided by the
            scale, offset mapped with the pixel-centre convention).
        """
        scale_y = scale_x if scale_y is None else scale_y
        inv = (1.0 / scale_x, 1.0 / scale_y)
        return ReceptiveField(
            size=(self.size[0] * inv[0], self.size[1] * inv[1]),
            stride=(self.stride[0] * inv[0], self.stride[1] * inv[1]),
            offset=tuple(float(v) for v in rescale_points(self.offset, inv)),
        )

    def __str__(self) -> str:
        def fmt(pair):
            return f"{pair[0]:g}" if pair[0] == pair[1] else f"{pair[0]:g}x{pair[1]:g}"

        return f"RF {fmt(self.size)} px, stride {fmt(self.stride)} px, offset {fmt(self.offset)}"


def grid_centers(rf: ReceptiveField, grid_shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """RF centres of a ``(rows, cols)`` grid: ``xs`` of shape (cols,), ``ys`` of shape (rows,).

    Parameters
    ----------
    rf : ReceptiveField
        The layer's receptive field, in input pixels.
    grid_shape : tuple of int
        ``(rows, cols)`` of the layer's output grid.

    Returns
    -------
    xs : ndarray of shape (cols,), float64
        x of each grid column's RF centre, in input pixels.
    ys : ndarray of shape (rows,), float64
        y of each grid row's RF centre, in input pixels.
    """
    rows, cols = grid_shape
    xs = rf.offset[0] + rf.stride[0] * np.arange(cols, dtype=np.float64)
    ys = rf.offset[1] + rf.stride[1] * np.arange(rows, dtype=np.float64)
    return xs, ys


# --- propagation through the graph ------------------------------------------------------
# Internally a field is (size, stride, offset), each a length-2 tuple in (y, x) order as
# torch orders kernel dimensions; ReceptiveField exposes (x, y).

_INPUT = ((1.0, 1.0), (1.0, 1.0), (0.0, 0.0))

_GLOBAL_MODULES = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Linear, nn.Flatten)
_GLOBAL_FUNCTIONS = {torch.flatten, F.adaptive_avg_pool2d, F.adaptive_max_pool2d, F.linear}
_GLOBAL_METHODS = {"flatten", "view", "reshape", "mean", "sum", "amax", "max", "squeeze"}
_SPATIAL_FUNCTIONS = {
    F.conv2d: ("weight", 1),
    F.max_pool2d: ("kernel_size", 1),
    F.avg_pool2d: ("kernel_size", 1),
}


class _Global:
    """Marker for tensors with no spatial grid (RF = whole image)."""


_GLOBAL = _Global()


def _pair(value) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        return (int(value[0]), int(value[-1]))
    return (int(value), int(value))


def _apply(field, kernel, stride, padding, dilation):
    size, jump, start = field
    kernel, stride, dilation = _pair(kernel), _pair(stride), _pair(dilation)
    eff = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True))
    if padding == "same":
        padding = tuple((e - 1) // 2 for e in eff)
    elif padding == "valid":
        padding = (0, 0)
    else:
        padding = _pair(padding)
    return (
        tuple(sz + (e - 1) * j for sz, e, j in zip(size, eff, jump, strict=True)),
        tuple(j * s for j, s in zip(jump, stride, strict=True)),
        tuple(
            st + ((e - 1) / 2 - p) * j
            for st, e, p, j in zip(start, eff, padding, jump, strict=True)
        ),
    )


def _union(fields):
    local = [f for f in fields if f is not None and f is not _GLOBAL]
    if not local:
        return _GLOBAL if any(f is _GLOBAL for f in fields) else None
    jumps = {f[1] for f in local}
    if len(jumps) > 1:
        raise ValueError(
            f"Cannot merge receptive fields with different strides {sorted(jumps)}; "
            "the network combines maps of different resolutions without resampling."
        )
    lo = [min(f[2][a] - f[0][a] / 2 for f in local) for a in (0, 1)]
    hi = [max(f[2][a] + f[0][a] / 2 for f in local) for a in (0, 1)]
    return (
        tuple(h - lo_ for lo_, h in zip(lo, hi, strict=True)),
        local[0][1],
        tuple((lo_ + h) / 2 for lo_, h in zip(lo, hi, strict=True)),
    )


def _module_field(module, field):
    if isinstance(module, nn.Conv2d):
        return _apply(field, module.kernel_size, module.stride, module.padding, module.dilation)
    if isinstance(module, nn.MaxPool2d):
        return _apply(field, module.kernel_size, module.stride, module.padding, module.dilation)
    if isinstance(module, nn.AvgPool2d):
        return _apply(field, module.kernel_size, module.stride, module.padding, 1)
    if isinstance(module, _GLOBAL_MODULES):
        return _GLOBAL
    if isinstance(module, (nn.Upsample, nn.ConvTranspose2d, nn.Unfold, nn.Fold)):
        raise NotImplementedError(
            f"Receptive fields through {type(module).__name__} are not supported."
        )
    return field  # element-wise: activations, normalisation, dropout, identity


def _function_field(node, fields):
    target = node.target
    if target in _GLOBAL_FUNCTIONS:
        return _GLOBAL
    if target in _SPATIAL_FUNCTIONS:
        raise NotImplementedError(
            f"Receptive fields through functional {target.__name__} calls are not supported; "
            "use the nn.Module form (nn.Conv2d, nn.MaxPool2d, ...)."
        )
    if target in (operator.getitem,):
        return fields[0]
    return _union(fields)


def _method_field(node, fields):
    if node.target in _GLOBAL_METHODS:
        dims = node.args[1:] or tuple(node.kwargs.get("dim", ()) or ())
        if node.target in ("view", "reshape", "flatten") or not dims:
            return _GLOBAL
        flat = []
        for d in dims:
            flat.extend(d if isinstance(d, (tuple, list)) else [d])
        if any(isinstance(d, int) and d in (2, 3, -1, -2) for d in flat):
            return _GLOBAL
    return _union(fields)


def receptive_fields(graph_module: fx.GraphModule, node_names: dict | None = None) -> dict:
    """Receptive fields of every node of a traced network.

    Parameters
    ----------
    graph_module : torch.fx.GraphModule
        The traced network (for example by torchvision's ``NodePathTracer``, from
        ``torchvision.models.feature_extraction``); its first placeholder is the image.
    node_names : dict, optional
        Map from fx node to the name to report it under (the tracer's qualified names);
        by default the fx node names.

    Returns
    -------
    dict
        ``name -> ReceptiveField`` for spatial layers, ``name -> None`` for global ones.
    """
    root = graph_module
    fields: dict[fx.Node, object] = {}
    out: dict[str, ReceptiveField | None] = {}
    seen_input = False
    for node in graph_module.graph.nodes:
        inputs = [fields.get(a) for a in node.all_input_nodes]
        if node.op == "placeholder":
            field = None if seen_input else _INPUT
            seen_input = True
        elif node.op == "get_attr":
            field = None
        elif node.op == "call_module":
            module = root.get_submodule(node.target)
            field = inputs[0] if inputs else None
            if field is not None and field is not _GLOBAL:
                field = _module_field(module, field)
            elif isinstance(module, _GLOBAL_MODULES):
                field = _GLOBAL if field is not None else None
        elif node.op == "call_function":
            field = _function_field(node, inputs)
        elif node.op == "call_method":
            field = _method_field(node, inputs)
        else:  # output
            continue
        fields[node] = field
        if field is None or node.op == "placeholder":
            continue
        name = node_names.get(node, node.name) if node_names else node.name
        if field is _GLOBAL:
            out[name] = None
        else:
            size, jump, start = field
            out[name] = ReceptiveField(
                size=(size[1], size[0]), stride=(jump[1], jump[0]), offset=(start[1], start[0])
            )
    return out


def measure_receptive_field(module: nn.Module, input_shape: tuple[int, int]) -> ReceptiveField:
    """Measure a layer's RF empirically from input gradients of single output cells.

    Back-propagates from the central cell of ``module``'s output (and from its diagonal
    neighbour, to measure the stride) for an all-ones input of ``input_shape = (H, W)``,
    and returns the extent and centre of the non-zero input gradient. Used to check the
    analytic numbers on networks whose weights are all positive (so that no path cancels)
    and whose pools average rather than select; the measured size is clipped by the image
    borders, so pick an input large enough.

    Parameters
    ----------
    module : torch.nn.Module
        A network taking ``(1, 3, H, W)`` images to a 4-D ``(1, C, rows, cols)`` output.
    input_shape : tuple of int
        ``(H, W)`` of the all-ones probe input.

    Returns
    -------
    rf : ReceptiveField
        The measured size, stride and offset, in input pixels, ``(x, y)`` order.
    """
    height, width = input_shape

    def extent(cell):
        image = torch.ones(1, 3, height, width, requires_grad=True)
        output = module(image)
        if output.ndim != 4:
            raise ValueError("measure_receptive_field needs a module with a 4-D output.")
        output[0, :, cell[0], cell[1]].sum().backward()
        ys, xs = np.nonzero((image.grad[0].abs().sum(0) > 0).numpy())
        size = (float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1))
        return size, ((xs.max() + xs.min()) / 2.0, (ys.max() + ys.min()) / 2.0), output.shape

    with torch.no_grad():
        rows, cols = module(torch.ones(1, 3, height, width)).shape[2:]
    i, j = rows // 2, cols // 2
    size, centre, _ = extent((i, j))
    _, next_centre, _ = extent((i + 1, j + 1))
    stride = (next_centre[0] - centre[0], next_centre[1] - centre[1])
    offset = (centre[0] - j * stride[0], centre[1] - i * stride[1])
    return ReceptiveField(size=size, stride=stride, offset=offset)
