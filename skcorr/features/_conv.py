"""Convnet columns: the vector of all channels of a layer at one spatial cell."""

from __future__ import annotations

import contextlib
import copy
import numbers
import os
import threading
from collections import OrderedDict

import numpy as np
import torch
from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from torchvision.models.feature_extraction import create_feature_extractor

from .._array import l2_normalize
from .._geometry import resize_longer_side
from .._image import as_rgb
from ..backbones import get_backbone, load_network
from ..receptive import ReceptiveField, grid_centers
from ._base import IMAGE_SIZE_CONSTRAINT, FeatureMap, FeatureTransformer
from ._cache import carry_weights_digest, weights_digest

__all__ = ["ConvColumnExtractor"]

# Networks fit has built, by backbone, weights file and layers. Building one (the
# modules, reading the weights, tracing the layers' outputs, probing their channels)
# takes about a third of a second, and a grid search fits hundreds of clones; each fit
# gets a copy of its own, so no two extractors share a module.
_NETWORKS: OrderedDict = OrderedDict()
_NETWORKS_LOCK = threading.Lock()
_MAX_NETWORKS = 4

# Traced networks without their weights, by backbone and layers, for unpickling: an
# extractor sent to a dask worker gets a copy with the weights it carries, instead of
# building and tracing the network again each time one arrives.
_SKELETONS: OrderedDict = OrderedDict()


def _copy_module(module, memo: dict):
    """A copy of ``module`` with parameters, buffers, submodules and hooks of its own.

    Its code and traced graph stay shared (they are never edited in place). This takes
    milliseconds where :func:`copy.deepcopy` of a traced network takes a tenth of a
    second and more (it copies and recompiles the graph). A submodule used twice stays
    one module.
    """
    if id(module) in memo:
        return memo[id(module)]
    new = copy.copy(module)
    memo[id(module)] = new
    # Hooks and the other per-module tables are dicts: the copy gets its own.
    new.__dict__.update({name: value.copy() for name, value in vars(module).items()
                         if isinstance(value, dict)})
    new._parameters = {
        name: None if p is None else torch.nn.Parameter(_copy_tensor(p), p.requires_grad)
        for name, p in module._parameters.items()}
    new._buffers = {name: None if b is None else _copy_tensor(b)
                    for name, b in module._buffers.items()}
    new._modules = {name: None if m is None else _copy_module(m, memo)
                    for name, m in module._modules.items()}
    return new


def _copy_tensor(tensor):
    # numpy's copy is one memcpy; torch's clone starts its thread pool for every tensor,
    # which on a busy machine costs more than the copy.
    tensor = tensor.detach()
    if tensor.device.type == "cpu" and tensor.dtype not in (torch.bfloat16,):
        return torch.from_numpy(tensor.numpy().copy())
    return tensor.clone()


def _network_key(backbone: str, weights, layers) -> tuple | None:
    """The memo key of a network, or None when it must be built anew (random weights,
    a weights file that cannot be read)."""
    if weights is None:
        return None
    if isinstance(weights, str) and weights == "default":
        identity = "default"
    else:
        try:  # a file is known by its path and stamp: a rewritten file is read again
            path = os.path.realpath(os.fspath(weights))
            stat = os.stat(path)
        except OSError:
            return None
        identity = (path, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    return backbone, identity, tuple(layers)


class ConvColumnExtractor(FeatureTransformer):
    """Columns of a convnet layer at keypoints, on the dense grid, or per image.

    A column is the vector of all channels of one layer at one spatial cell; it is
    attached to the centre of that cell's receptive field (RF) in the input image. In
    ``"keypoints"`` mode each keypoint gets the column whose RF centre is nearest (or the
    bilinear interpolation of the four around it), computing each image's feature map
    once however many of its keypoints are asked for.

    Parameters
    ----------
    backbone : str, default="efficientnet_lite0"
        A name from :func:`skcorr.backbones.list_backbones` or any torchvision
        classification model name.
    weights : "default", None or path, default="default"
        Pretrained ImageNet weights, random initialisation, or a local state-dict file.
    layer : str or list of str, default="conv4"
        Layer name, or the paper's role names ``conv4``, ``conv5``, ``pool5``, ``fc7``
        (see :mod:`skcorr.backbones`). A list makes hypercolumns: the columns of the
        layers concatenated on the grid of the layer with the smallest stride, the
        coarser layers upsampled bilinearly between their RF centres (clamped at the
        outermost ones); the :class:`~skcorr.FeatureMap` keeps every layer's
        receptive field.
    layer_weights : list of float or None, default=None
        With several layers, the weight of each layer's (normalised) columns in the
        concatenation; ``None`` weighs them equally.
    mode : {"keypoints", "dense", "global"}, default="keypoints"
        What :meth:`transform` returns: columns at keypoint samples, a
        :class:`~skcorr.FeatureMap` per image, or one vector per image (a
        global layer's output, or the spatial mean of a convolutional one).
    image_size : int or None, default=None
        Resize each image so that its longer side is this many pixels (16 to 4096) before the
        forward pass; ``None`` keeps the size. Coordinates in and out are always in pixels
        of the original image.
    normalize : bool, default=True
        L2-normalise each layer's columns (then, after weighting, divide a concatenation
        by the norm of the weights, so that it has unit norm).
    interpolation : {"nearest", "bilinear"}, default="nearest"
        How a keypoint between RF centres gets its column.
    device : {"auto", "cpu", "cuda"} or str, default="auto"
        Torch device; ``"auto"`` uses CUDA when available.
    batch_size : int, default=8
        Images per forward pass (images of equal size are batched together).
    dtype : {"float32", "float64"}, default="float32"
        Output dtype.
    memory : None, str or joblib.Memory, default=None
        Cache of features (as ``Pipeline(memory=...)``): a folder or a
        :class:`joblib.Memory`. Features are keyed by the image's pixels, the weights'
        content, the kind of device that computed them (the CPU, or the model of GPU:
        their kernels round differently) and every parameter that changes them (not
        ``batch_size``), so clones in a grid search share them.
    verbose : bool, default=False
        Show a progress bar over the images on stderr while features are computed, once
        they take more than two seconds.

    Attributes
    ----------
    layers_ : list of str
        Resolved torchvision node names of the layers.
    receptive_fields_ : dict
        Layer name -> :class:`~skcorr.receptive.ReceptiveField` (``None`` for global
        layers), in pixels of the network input.
    n_features_out_ : int
        Length of a column.
    device_ : str
        The device in use.

    References
    ----------
    .. [1] J. Long, N. Zhang, T. Darrell. Do Convnets Learn Correspondence? NIPS 2014.
       https://arxiv.org/abs/1411.1091

    Examples
    --------
    >>> import numpy as np
    >>> from skcorr import ConvColumnExtractor
    >>> from skcorr.features import keypoint_samples
    >>> image = np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    >>> X, y, groups = keypoint_samples([image], [[[20.0, 30.0], [100.0, 50.0]]])
    >>> ext = ConvColumnExtractor(layer="stage3", weights=None).fit(X)
    >>> ext.transform(X).shape
    (2, 40)
    """

    _parameter_constraints: dict = {
        **FeatureTransformer._parameter_constraints,
        "backbone": [str],
        "weights": [StrOptions({"default"}), None, str, os.PathLike],
        "layer": [str, list, tuple],
        "layer_weights": [list, tuple, np.ndarray, None],
        "image_size": IMAGE_SIZE_CONSTRAINT,
        "normalize": ["boolean"],
        "interpolation": [StrOptions({"nearest", "bilinear"})],
        "device": [str],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "dtype": [StrOptions({"float32", "float64"})],
    }
    # The weights are known by their content (_cache_identity); columns at points are
    # sampled from cached dense maps, whatever the interpolation.
    _cache_ignored = FeatureTransformer._cache_ignored | {"weights", "interpolation"}

    def __init__(self, *, backbone="efficientnet_lite0", weights="default", layer="conv4",
                 layer_weights=None, mode="keypoints", image_size=None, normalize=True,
                 interpolation="nearest", device="auto", batch_size=8, dtype="float32",
                 memory=None, verbose=False):
        self.backbone = backbone
        self.weights = weights
        self.layer = layer
        self.layer_weights = layer_weights
        self.mode = mode
        self.image_size = image_size
        self.normalize = normalize
        self.interpolation = interpolation
        self.device = device
        self.batch_size = batch_size
        self.dtype = dtype
        self.memory = memory
        self.verbose = verbose

    def _cache_identity(self):
        return weights_digest(self.network_), _device_kind(self.device_)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X=None, y=None):
        """Build the truncated network. The weights are pretrained: ``X`` is not used.

        Parameters
        ----------
        X : object, default=None
            Ignored; present for API consistency.
        y : object, default=None
            Ignored; present for API consistency.

        Returns
        -------
        self : ConvColumnExtractor
            The fitted transformer.
        """
        spec = get_backbone(self.backbone)
        names = [self.layer] if isinstance(self.layer, str) else list(self.layer)
        if not names:
            raise ValueError("layer is an empty list; name at least one layer.")
        self.layers_ = [spec.resolve_layer(name) for name in names]
        if len(set(self.layers_)) < len(self.layers_):
            raise ValueError(f"layer {names} names the same layer twice; list each once.")
        self.layer_weights_ = _check_layer_weights(self.layer_weights, len(names))
        self.receptive_fields_ = {n: spec.receptive_field(n) for n in self.layers_}
        spatial = [n for n in self.layers_ if self.receptive_fields_[n] is not None]
        if self.mode != "global" and len(spatial) < len(self.layers_):
            flat = [name for name, node in zip(names, self.layers_, strict=True)
                    if node not in spatial]
            raise ValueError(
                f"Layer(s) {flat} of {self.backbone!r} have no spatial grid (global layers); "
                f"use mode='global', or a convolutional layer for mode={self.mode!r}."
            )
        if spatial and len(spatial) < len(self.layers_):
            raise ValueError("Do not mix global and convolutional layers in one extractor.")
        self.device_ = _resolve_device(self.device)
        self._mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
        self._std = torch.tensor(spec.std).view(1, 3, 1, 1)
        key = _network_key(spec.name, self.weights, self.layers_)
        with _NETWORKS_LOCK:
            built = _NETWORKS.get(key) if key is not None else None
            if built is not None:
                _NETWORKS.move_to_end(key)
        if built is None:
            network = create_feature_extractor(load_network(spec, self.weights),
                                               return_nodes=self.layers_).eval()
            if key is None:  # random weights: this fit's own, never memoised
                self.network_ = network.to(self.device_)
                self._channels = self._probe_channels()
            else:
                digest = weights_digest(network)
                self._use_copy(network, digest)
                self._channels = self._probe_channels()
                with _NETWORKS_LOCK:
                    _NETWORKS[key] = (network, list(self._channels), digest)
                    while len(_NETWORKS) > _MAX_NETWORKS:
                        _NETWORKS.popitem(last=False)
        else:
            network, channels, digest = built
            self._use_copy(network, digest)
            self._channels = list(channels)
        self.n_features_out_ = sum(self._channels)
        return self

    def _use_copy(self, network, digest: str) -> None:
        """Make a copy of ``network`` (whose weights digest is ``digest``) this fit's own."""
        self.network_ = _copy_module(network, {}).to(self.device_).eval()
        carry_weights_digest(self.network_, digest)

    def _probe_channels(self) -> list[int]:
        """Channels of each layer, from a forward pass of the smallest probe image that works."""
        for side in (64, 224):  # 64 px suffices for most networks and is 12x cheaper
            try:
                outputs = self._forward([np.zeros((side, side, 3), np.uint8)])[0]
            except ValueError:
                continue
            return [int(o.shape[0]) for o in outputs]
        raise ValueError(f"Layers {self.layers_} of {self.backbone!r} give no output for a "
                         "224x224 image.")

    # -- forward pass -----------------------------------------------------------------
    def _prepare(self, image: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
        """Resize by the image_size policy; returns the array and (scale_x, scale_y)."""
        return resize_longer_side(image, self.image_size)

    def _check_size(self, image: np.ndarray, original_shape) -> None:
        height, width = image.shape[:2]
        resized = f", resized to {width}x{height}" if self.image_size else ""
        for name, rf in self.receptive_fields_.items():
            if rf is not None and (width < rf.stride[0] or height < rf.stride[1]):
                raise ValueError(
                    f"An image of {original_shape[1]}x{original_shape[0]} px (width x height"
                    f"{resized}) "
                    f"is smaller than the stride ({rf.stride[0]:g} px) of layer {name!r}; "
                    "use larger images, a larger image_size, or an earlier layer."
                )

    def layer_outputs(self, images) -> list[list[np.ndarray]]:
        """The raw output of each layer for images fed to the network as they are.

        Unlike :meth:`extract_dense`, images are not resized by ``image_size`` and the
        outputs are neither normalised nor mapped to pixel coordinates: this is what
        the network computes, for example to tell two sets of weights apart by their
        response to a probe image.

        Parameters
        ----------
        images : sequence of ndarray or path
            Images as ``(H, W, 3)`` uint8 arrays or file paths.

        Returns
        -------
        outputs : list of list of ndarray
            Per image, per layer of ``layers_``: a ``(channels, height, width)``
            float32 array (a ``(channels,)`` one for global layers).
        """
        check_is_fitted(self)
        return self._forward([as_rgb(image, name=f"images[{i}]")
                              for i, image in enumerate(images)])

    def _on_cpu(self) -> bool:
        return torch.device(self.device_).type == "cpu"

    def _image_threads(self) -> int:
        # Each forward pass runs on one thread (see _forward); the images keep the
        # cores that torch would have used busy instead.
        return max(1, torch.get_num_threads()) if self._on_cpu() else 1

    def _start_image_thread(self) -> None:
        torch.set_num_threads(1)  # for good: no switching back and forth per batch

    def _end_image_threads(self) -> None:
        # The threads' setting also became the default of new threads: restore it.
        torch.set_num_threads(torch.get_num_threads())

    def _forward(self, images: list[np.ndarray]) -> list[list[np.ndarray]]:
        """Per image, the outputs of each layer as (C, h, w) or (C,) float32 arrays.

        On the CPU the network runs on one thread: torch's kernels split their sums
        differently on different numbers of threads, which changes the columns by
        about 1e-7, so features computed on a one-thread dask worker and on a laptop
        would differ, and so would anything the cache serves to either.
        """
        with _one_thread() if self._on_cpu() else contextlib.nullcontext():
            return self._forward_batches(images)

    def _forward_batches(self, images: list[np.ndarray]) -> list[list[np.ndarray]]:
        outputs: list = [None] * len(images)
        by_shape: dict = {}
        for i, image in enumerate(images):
            by_shape.setdefault(image.shape, []).append(i)
        for indices in by_shape.values():
            batch = torch.from_numpy(np.stack([images[i] for i in indices]))
            batch = batch.permute(0, 3, 1, 2).float().div_(255.0)
            batch = ((batch - self._mean) / self._std).to(self.device_)
            try:
                with torch.inference_mode():
                    result = self.network_(batch)
            except RuntimeError as exc:
                if "size" not in str(exc).lower():
                    raise
                raise ValueError(
                    f"An image of {images[indices[0]].shape[1]}x{images[indices[0]].shape[0]} "
                    f"px is too small for layers {self.layers_} of {self.backbone!r} "
                    f"({exc}); use larger images or set image_size."
                ) from exc
            maps = [result[name].float().cpu().numpy() for name in self.layers_]
            for j, i in enumerate(indices):
                outputs[i] = [m[j] for m in maps]
        return outputs

    # -- the three modes --------------------------------------------------------------
    def _dense_batch(self, images):
        prepared = [self._prepare(image) for image in images]
        for (resized, _), image in zip(prepared, images, strict=True):
            self._check_size(resized, image.shape)
        outputs = self._forward([resized for resized, _ in prepared])
        return [self._feature_map(out, image.shape[:2], scale)
                for out, image, (_, scale) in zip(outputs, images, prepared, strict=True)]

    def _feature_map(self, layer_outputs, image_shape, scale) -> FeatureMap:
        fields = [self.receptive_fields_[n].scaled(*scale) for n in self.layers_]
        maps = [self._layer_map(out, rf, image_shape) for out, rf
                in zip(layer_outputs, fields, strict=True)]
        if len(maps) == 1:
            base = maps[0]
        else:  # hypercolumns on the finest grid; coarser layers upsampled bilinearly
            finest = maps[int(np.argmin([rf.stride[0] for rf in fields]))]
            weights = self.layer_weights_
            if self.normalize:
                weights = weights / np.linalg.norm(weights)
            centres = finest.centers()
            columns = [m.sample(centres, "bilinear") for m in maps]
            if self.normalize:  # interpolation shortens unit vectors: normalise again
                columns = [l2_normalize(c) for c in columns]
            columns = [w * c for w, c in zip(weights, columns, strict=True)]
            rows, cols = finest.grid_shape
            base = FeatureMap(features=np.concatenate(columns, axis=1).reshape(rows, cols, -1),
                              xs=finest.xs, ys=finest.ys,
                              rf_size=max(m.rf_size for m in maps), image_shape=finest.image_shape)
        base.receptive_fields = dict(zip(self.layers_, fields, strict=True))
        base.features = base.features.astype(self.dtype, copy=False)
        return base

    def _layer_map(self, output: np.ndarray, rf: ReceptiveField, image_shape) -> FeatureMap:
        features = np.ascontiguousarray(output.transpose(1, 2, 0))
        if self.normalize:
            features = l2_normalize(features)
        xs, ys = grid_centers(rf, features.shape[:2])
        return FeatureMap(features=features, xs=xs, ys=ys, rf_size=float(max(rf.size)),
                          image_shape=tuple(image_shape))

    def _global_batch(self, images):
        if self.receptive_fields_[self.layers_[0]] is not None:
            return [fmap.features.mean(axis=(0, 1)) for fmap in self._dense_batch(images)]
        outputs = self._forward([self._prepare(image)[0] for image in images])
        vectors = []
        for layer_outputs in outputs:
            parts = [l2_normalize(o.reshape(-1)) if self.normalize else o.reshape(-1)
                     for o in layer_outputs]
            vector = np.concatenate(parts) / (np.sqrt(len(parts)) if self.normalize else 1.0)
            vectors.append(vector.astype(self.dtype, copy=False))
        return vectors

    def _feature_names(self) -> list[str]:
        """``"<layer>_ch<channel>"``, layers named as in ``layer``, in the order of a column."""
        names = [self.layer] if isinstance(self.layer, str) else list(self.layer)
        return [f"{name}_ch{c}" for name, n in zip(names, self._channels, strict=True)
                for c in range(n)]

    # -- pickling: the network travels as a CPU state dict ----------------------------
    def __getstate__(self):
        state = super().__getstate__()
        if "network_" in state:
            state = dict(state)
            network = state.pop("network_")
            state["_network_state"] = {k: v.detach().cpu() for k, v in
                                       network.state_dict().items()}
        return state

    def __setstate__(self, state):
        network_state = state.pop("_network_state", None)
        super().__setstate__(state)
        if network_state is not None:
            network = _skeleton(get_backbone(self.backbone), self.layers_)
            network.load_state_dict(network_state)
            self.device_ = _resolve_device(self.device, fallback=True)
            self.network_ = network.to(self.device_).eval()


def _skeleton(spec, layers) -> torch.nn.Module:
    """A network of ``spec`` truncated at ``layers``, with weights of its own to overwrite."""
    key = (spec.name, tuple(layers))
    with _NETWORKS_LOCK:
        skeleton = _SKELETONS.get(key)
        if skeleton is not None:
            _SKELETONS.move_to_end(key)
    if skeleton is None:
        skeleton = create_feature_extractor(load_network(spec, None), return_nodes=list(layers))
        with _NETWORKS_LOCK:
            _SKELETONS[key] = skeleton
            while len(_SKELETONS) > _MAX_NETWORKS:
                _SKELETONS.popitem(last=False)
    return _copy_module(skeleton, {})


@contextlib.contextmanager
def _one_thread():
    """torch's intra-op threads of the calling thread set to one inside the block.

    The setting is per thread (OpenMP's), so other threads are not affected; a thread
    already on one thread (a dask worker, skcorr's image threads) switches nothing.
    """
    saved = torch.get_num_threads()
    if saved == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def _check_layer_weights(weights, n_layers: int) -> np.ndarray:
    """The layer weights as a float array of length ``n_layers`` (ones for ``None``)."""
    if weights is None:
        return np.ones(n_layers)
    array = np.asarray(weights, dtype=np.float64).ravel()
    if len(array) != n_layers:
        raise ValueError(f"layer_weights has {len(array)} values for {n_layers} layers; give "
                         "one weight per layer.")
    if not np.all(np.isfinite(array)) or np.any(array < 0) or not np.any(array > 0):
        raise ValueError(f"layer_weights must be finite, >= 0 and not all 0, got {weights!r}.")
    return array


def _device_kind(device: str) -> str:
    """``"cpu"``, or the model of GPU: features computed on different kinds differ by
    rounding, so the cache keeps them apart."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return device.type


def _resolve_device(device: str, fallback: bool = False) -> str:
    """'auto' -> CUDA when available; with ``fallback`` (unpickling) CUDA -> CPU if absent."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(device).type
    except RuntimeError as exc:
        raise ValueError(f"Unknown device {device!r}; use 'auto', 'cpu' or 'cuda'.") from exc
    if kind == "cuda" and not torch.cuda.is_available():
        if fallback:
            return "cpu"
        raise ValueError(
            f"device={device!r} but CUDA is not available here; use device='cpu' or 'auto'."
        )
    return device
