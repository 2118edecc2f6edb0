"""Named configurations of the two-image entry points (:func:`skcorr.match`, ``skcorr match``).

Each preset sets the dense features (backbone, layer, image size) and the flow's
settings (the keyword arguments of :func:`skcorr.flow.align`):

* ``"best"`` (the default): hypercolumns of stage5 and stage6 of EfficientNet-Lite0 at
  480 px, a smoothness truncated at 3 grid steps, optimal-transport prices (0.2) and
  sub-cell matches, with ``lam = 0.05``. Chosen by cross-validation on PF-WILLOW: a grid
  search leaving one object category out at a time, over lam 0.05 | 0.1, 400 | 480 px,
  truncation none | 3 and prices none | 0.2 (sub-cell matches on), picked these
  settings (mean PCK@0.1 of the held-out categories 76.2); the nested version of the
  same search, which never scores a setting on the category it was chosen on, gives
  72.8 against 66.1 for the paper's settings.
* ``"paper"``: Long et al. (2014)'s flow: one layer (conv5), 320 px, the plain quadratic
  smoothness with ``lam = 0.1``, matches on the grid nodes.
"""

from __future__ import annotations

from ._settings import ALIGN_CONSTRAINTS

__all__ = ["PRESETS", "preset_settings"]

#: Preset name -> its settings (feature settings and align() settings together).
PRESETS: dict[str, dict] = {
    "best": dict(backbone="efficientnet_lite0", layer=["stage5", "stage6"], image_size=480,
                 lam=0.05, truncation=3.0, ot_reg=0.2, subcell=True, levels=2, radius=None,
                 max_iter=50),
    "paper": dict(backbone="efficientnet_lite0", layer="conv5", image_size=320, lam=0.1,
                  truncation=None, ot_reg=None, subcell=False, levels=2, radius=None,
                  max_iter=50),
}

#: Settings of the dense features (parameters of ConvColumnExtractor).
FEATURE_SETTINGS = ("backbone", "layer", "image_size")
#: Settings of the flow (keyword arguments of align).
ALIGN_SETTINGS = tuple(ALIGN_CONSTRAINTS)


def preset_settings(preset: str = "best", **settings) -> tuple[dict, dict]:
    """A preset's settings with explicit ones on top, split into features and flow.

    Parameters
    ----------
    preset : {"best", "paper"}, default="best"
        A name of :data:`PRESETS`.
    **settings
        Settings that replace the preset's: ``backbone``, ``layer``, ``image_size`` (of
        :class:`~skcorr.ConvColumnExtractor`) or a keyword argument of
        :func:`~skcorr.flow.align` (``lam``, ``truncation``, ``ot_reg``, ``subcell``,
        ``levels``, ``radius``, ``max_iter``, ``tol``, ``patience``, ``solver``).

    Returns
    -------
    feature_settings : dict
        ``backbone``, ``layer`` and ``image_size``.
    align_settings : dict
        Keyword arguments of :func:`~skcorr.flow.align`.

    Examples
    --------
    >>> from skcorr.flow import preset_settings
    >>> features, flow = preset_settings("paper", lam=0.2)
    >>> features
    {'backbone': 'efficientnet_lite0', 'layer': 'conv5', 'image_size': 320}
    >>> flow["lam"], flow["subcell"]
    (0.2, False)
    """
    if not isinstance(preset, str) or preset not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}.")
    unknown = sorted(set(settings) - set(FEATURE_SETTINGS) - set(ALIGN_SETTINGS))
    if unknown:
        raise ValueError(
            f"Unknown setting(s) {unknown}; the valid ones are "
            f"{', '.join(FEATURE_SETTINGS)} (features) and {', '.join(ALIGN_SETTINGS)} "
            "(the flow, see skcorr.flow.align)."
        )
    merged = {**PRESETS[preset], **settings}
    return ({name: merged[name] for name in FEATURE_SETTINGS if name in merged},
            {name: merged[name] for name in ALIGN_SETTINGS if name in merged})
