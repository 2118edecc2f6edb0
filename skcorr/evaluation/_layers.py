"""The receptive fields of a backbone's layers, as a table."""

from __future__ import annotations

from ._table import ResultTable

__all__ = ["receptive_field_table"]


def receptive_field_table(backbone: str = "efficientnet_lite0") -> ResultTable:
    """One row per named layer of a backbone: RF size, stride, offset and role.

    Parameters
    ----------
    backbone : str, default="efficientnet_lite0"
        A registered backbone or a torchvision classifier name; only its architecture
        is built (no weights are loaded).

    Returns
    -------
    table : ResultTable
        ``"layer"``, ``"node"`` (torchvision's), ``"rf_size"``, ``"stride"``, ``"offset"``
        (network input pixels) and ``"role"`` (the paper's names it plays).

    Examples
    --------
    >>> from skcorr.evaluation import receptive_field_table
    >>> row = receptive_field_table("alexnet")[5]
    >>> row["layer"], row["rf_size"], row["stride"], row["role"]
    ('conv4', '131', '16', 'conv4')
    """
    from ..backbones import get_backbone

    spec = get_backbone(backbone)
    roles = {}
    for role, layer in spec.roles.items():
        roles.setdefault(spec.resolve_layer(layer), []).append(role)
    table = ResultTable(title=f"Receptive fields of {backbone} (pixels of the network input)",
                        name=f"layers-{backbone}")
    for layer in spec.layers or spec.layer_names():
        node = spec.resolve_layer(layer)
        rf = spec.receptive_field(layer)
        table.append({
            "layer": layer, "node": node,
            "rf_size": "global" if rf is None else f"{rf.size[0]:g}",
            "stride": "-" if rf is None else f"{rf.stride[0]:g}",
            "offset": "-" if rf is None else f"{rf.offset[0]:g}",
            "role": ", ".join(roles.get(node, [])),
        })
    return table
