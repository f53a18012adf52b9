"""Named regressors and the one factory that builds them: :func:`create_model`.

A *model* is an architecture + weights + the whitening its outputs use. Names:

======== ================ ===== ================================================ =========
name     architecture     width weights (asset path)                             whitening
======== ================ ===== ================================================ =========
mb05     mobilenet_v1     0.5   3DDFA_V2/weights/mb05_120x120.pth                v2
mb1      mobilenet_v1     1.0   3DDFA_V2/weights/mb1_120x120.pth                 v2
3ddfa-v1 mobilenet_v1     1.0   3DDFA/models/phase1_wpdc_vdc.pth.tar             v1
======== ================ ===== ================================================ =========

New backbones register an architecture with :func:`register_architecture`; new weights a
:class:`ModelSpec` with :func:`register_model`. :func:`create_model` also takes a checkpoint
path (3DDFA_V2, 3DDFA v1 or ddfa layout).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch import nn

from ..assets.safe_pickle import load_torch_checkpoint
from ..assets.store import AssetsLike, file_digest, resolve_assets
from ..caching import ContentCache
from ..errors import AssetError, InputError
from ..morphable.params import NUM_PARAMS, Whitening, load_whitening
from ..runtime import BACKENDS, Backend, BaseOptions, resolve_base_options
from .checkpoint import RegressorCheckpoint, normalise_checkpoint, read_ddfa_checkpoint, whitening_from_meta
from .mobilenet_v1 import MobileNetV1, width_from_state_dict

if TYPE_CHECKING:  # pragma: no cover
    from .onnx_backend import OnnxRunner

INPUT_SIZE = 120


# ---------------------------------------------------------------------- architectures
@dataclass(frozen=True, kw_only=True)
class Architecture:
    """A regressor backbone and how to read checkpoints of it.

    Attributes:
        name: registry name (``"mobilenet_v1"``).
        build: ``build(num_outputs=..., **config) -> nn.Module`` mapping (B, 3, 120, 120) to
            (B, num_outputs).
        read_checkpoint: ``read_checkpoint(obj, source) -> RegressorCheckpoint``: the adapter
            from the checkpoint layouts this backbone is published in to plain layer names.
        config_from_state: ``config_from_state(state_dict) -> dict`` of ``build`` keywords that
            the weights determine (e.g. MobileNet's ``width``), for checkpoints that do not say.
    """

    name: str
    build: Callable[..., nn.Module]
    read_checkpoint: Callable[[dict, str], RegressorCheckpoint] = read_ddfa_checkpoint
    config_from_state: Callable[[Mapping[str, torch.Tensor]], dict] = lambda state: {}


ARCHITECTURES: dict[str, Architecture] = {}


def register_architecture(name: str, *, read_checkpoint: Callable[[dict, str], RegressorCheckpoint] | None = None,
                          config_from_state: Callable[[Mapping[str, torch.Tensor]], dict] | None = None):
    """Decorator registering a backbone factory ``build(num_outputs=..., **config) -> nn.Module``.

    Args:
        name: the name models and checkpoints refer to (``ModelSpec.arch``, ``"arch"`` in a
            ddfa checkpoint).
        read_checkpoint: adapter of this backbone's checkpoint layouts (default: ddfa's own
            layout only, see :func:`~ddfa.nets.checkpoint.read_ddfa_checkpoint`).
        config_from_state: infers ``build`` keywords from a state dict (default: none).
    """

    def wrap(build):
        ARCHITECTURES[name] = Architecture(
            name=name, build=build,
            read_checkpoint=read_checkpoint or read_ddfa_checkpoint,
            config_from_state=config_from_state or (lambda state: {}),
        )
        return build

    return wrap


def _architecture(name: str, source: str = "model") -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise InputError(f"{source}: unknown architecture {name!r}; registered: {', '.join(sorted(ARCHITECTURES))}") \
            from None


@register_architecture("mobilenet_v1", read_checkpoint=normalise_checkpoint,
                       config_from_state=lambda state: {"width": width_from_state_dict(state)})
def _mobilenet_v1(width: float = 1.0, num_outputs: int = NUM_PARAMS) -> nn.Module:
    return MobileNetV1(width=width, num_outputs=num_outputs)


def build_network(arch: str, config: Mapping[str, Any], *, num_outputs: int = NUM_PARAMS,
                  state_dict: Mapping[str, torch.Tensor] | None = None, source: str = "model") -> nn.Module:
    """A fresh ``arch`` network built with ``config``, loaded with ``state_dict`` if given (strict).

    Raises:
        InputError: unknown architecture or a config it does not take.
        AssetError: the weights do not fit (wrong layers, shapes or number of outputs).
    """
    architecture = _architecture(arch, source)
    try:
        net = architecture.build(num_outputs=num_outputs, **dict(config))
    except (TypeError, ValueError) as exc:
        raise AssetError(f"{source}: architecture {arch!r} cannot be built with config {dict(config)}: {exc}") \
            from None
    if state_dict is not None:
        try:
            net.load_state_dict(state_dict, strict=True)
        except RuntimeError as exc:
            detail = " ".join(str(exc).split())
            raise AssetError(f"{source}: weights do not fit {arch} {dict(config)} with {num_outputs} outputs: "
                             f"{detail[:400]}") from None
    return net.eval()


# ---------------------------------------------------------------------- named models
@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """A named regressor: architecture and its config, weights and whitening.

    Attributes:
        name: the name given to :func:`create_model` / ``--model``.
        arch: a registered architecture (:func:`register_architecture`).
        weights: the weights file: a path relative to the asset folder (checked against its
            pinned sha256 when known), or an absolute path.
        whitening: ``"v2"`` or ``"v1"``: the whitening of the network's outputs, unless the
            checkpoint stores its own.
        config: ``build`` keywords of the architecture (e.g. ``{"width": 0.5}``); inferred from
            the weights when empty.
        description: one line for ``list_models``.
    """

    name: str
    arch: str = "mobilenet_v1"
    weights: str
    whitening: Literal["v1", "v2"] = "v2"
    config: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    @property
    def width(self) -> float | None:
        """MobileNet width multiplier, if the config has one."""
        width = self.config.get("width")
        return None if width is None else float(width)


MODELS: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    """Make ``spec`` available by name to :func:`create_model`, ``FaceAligner(model=...)`` and
    ``ddfa ... --model``."""
    if not isinstance(spec, ModelSpec):
        raise InputError(f"register_model takes a ModelSpec, got {type(spec).__name__}")
    _architecture(spec.arch, f"model {spec.name!r}")
    MODELS[spec.name] = spec
    return spec


register_model(ModelSpec(name="mb05", weights="3DDFA_V2/weights/mb05_120x120.pth", whitening="v2",
                         config={"width": 0.5}, description="3DDFA_V2 MobileNet-V1 x0.5"))
register_model(ModelSpec(name="mb1", weights="3DDFA_V2/weights/mb1_120x120.pth", whitening="v2",
                         config={"width": 1.0}, description="3DDFA_V2 MobileNet-V1 x1.0"))
register_model(ModelSpec(name="3ddfa-v1", weights="3DDFA/models/phase1_wpdc_vdc.pth.tar", whitening="v1",
                         config={"width": 1.0}, description="3DDFA (TPAMI) MobileNet-V1, WPDC then VDC"))


def list_models() -> list[str]:
    return sorted(MODELS)


# ---------------------------------------------------------------------- checkpoint lookup
@dataclass(frozen=True, kw_only=True)
class LoadedCheckpoint:
    """Regressor weights found by name or path, read and checked (see :func:`load_checkpoint`).

    Attributes:
        name: the model name or the checkpoint path as given.
        path: the weights file.
        sha256: its content digest (the key of every cache derived from it).
        arch: architecture name; ``config`` its build keywords.
        state_dict: tensors under the architecture's plain layer names (read-only by
            convention: :func:`build_network` copies them into a fresh module).
        whitening: the :class:`~ddfa.morphable.params.Whitening` of the network's outputs.
        layout: ``"v2"``, ``"v1"`` or ``"ddfa"`` (see :mod:`ddfa.nets.checkpoint`).
        meta: ddfa metadata of the checkpoint (empty for upstream layouts).
    """

    name: str
    path: Path
    sha256: str
    arch: str
    config: Mapping[str, Any]
    state_dict: Mapping[str, torch.Tensor]
    whitening: Whitening
    layout: str
    meta: Mapping[str, Any]


_CHECKPOINTS: ContentCache[tuple] = ContentCache("regressor checkpoints")


def load_checkpoint(model: str | os.PathLike, assets: AssetsLike = None, *,
                    whitening: str | Whitening | None = None) -> LoadedCheckpoint:
    """The one lookup of regressor weights, by registered name or checkpoint path.

    Names resolve through :func:`register_model` to a file under the asset folder (checked
    against its pinned sha256); paths are read as 3DDFA_V2, 3DDFA v1 or ddfa checkpoints
    (``torch.load(weights_only=True)``). The parsed weights are cached on the file's sha256:
    a file overwritten in place is read again.

    Args:
        model: a name from :func:`list_models` or a checkpoint path.
        assets: asset store, folder or None (``$DDFA_HOME``).
        whitening: override the whitening (``"v1"``, ``"v2"`` or a :class:`Whitening`).

    Raises:
        InputError: neither a registered name nor an existing file.
        AssetError: missing, corrupt or unreadable weights, or weights that do not fit.
    """
    store = resolve_assets(assets)
    name = str(model)
    spec = MODELS.get(name)
    if spec is not None:
        weights = Path(spec.weights).expanduser()
        path = weights if weights.is_absolute() else store.path(spec.weights)
    else:
        path = Path(name).expanduser()
        if not path.is_file():
            raise InputError(f"unknown model {name!r}: expected one of {', '.join(list_models())} "
                             "or a checkpoint file")
    digest = file_digest(path)
    arch_hint = spec.arch if spec is not None else None
    arch, config, ckpt = _CHECKPOINTS.get_or_build(
        (digest, arch_hint), lambda: _read_checkpoint(path, arch_hint, spec.config if spec else None))
    if isinstance(whitening, Whitening):
        white = whitening
    elif whitening is not None:
        white = load_whitening(store, whitening)
    else:
        default = spec.whitening if spec is not None else ("v1" if ckpt.layout == "v1" else "v2")
        white = whitening_from_meta(ckpt.meta) or load_whitening(store, default)
    return LoadedCheckpoint(name=name, path=path, sha256=digest, arch=arch, config=config,
                            state_dict=ckpt.state_dict, whitening=white, layout=ckpt.layout, meta=ckpt.meta)


def _read_checkpoint(path: Path, arch: str | None, config: Mapping[str, Any] | None):
    obj = load_torch_checkpoint(path)
    if not isinstance(obj, dict):
        raise AssetError(f"{path}: not a checkpoint (a {type(obj).__name__}, expected a dict)")
    meta = obj["ddfa"] if isinstance(obj.get("ddfa"), dict) else {}
    if arch is None:
        arch = str(meta.get("arch", "mobilenet_v1"))
    architecture = _architecture(arch, str(path))
    ckpt = architecture.read_checkpoint(obj, str(path))
    if not config:
        config = ckpt.meta.get("config") or architecture.config_from_state(ckpt.state_dict)
        if "width" in ckpt.meta and "width" not in config:
            config = {**config, "width": ckpt.meta["width"]}
    config = dict(config)
    # build once now, so that weights that do not fit fail here, with the file named
    build_network(arch, config, state_dict=ckpt.state_dict, source=str(path))
    return arch, config, ckpt


def preprocess_crops(crops: np.ndarray) -> np.ndarray:
    """(B, 120, 120, 3) uint8 BGR crops -> (B, 3, 120, 120) float32 ``(x - 127.5) / 128``."""
    if crops.ndim != 4 or crops.shape[-1] != 3:
        raise InputError(f"expected (B, H, W, 3) BGR crops, got shape {crops.shape}")
    x = crops.astype(np.float32).transpose(0, 3, 1, 2)
    x -= np.float32(127.5)
    x /= np.float32(128.0)
    return np.ascontiguousarray(x)


class Regressor:
    """A 3DMM parameter regressor: crops in, de-whitened 62-d parameters out.

    Each :func:`create_model` call returns a new Regressor with its own torch module, so that
    changing one (``.net.train()``, fine-tuning) never changes another.

    Attributes:
        name: model name or checkpoint path.
        net: the torch module (always present; also the source of the ONNX export).
        whitening: the :class:`~ddfa.morphable.params.Whitening` of its outputs.
        base_options: the runtime context (assets, device, backend resolved to ``"torch"`` or
            ``"onnxruntime"``, threads).
        weights_sha256: sha256 of the weights file (None if built from a module).
    """

    def __init__(self, name: str, net: nn.Module, whitening: Whitening, *, base_options: BaseOptions,
                 weights_sha256: str | None = None):
        self.name = name
        self.base_options = base_options.replace(backend=choose_backend(base_options.backend, base_options.device))
        self.device = torch.device(self.base_options.device)
        self.net = net.eval().to(self.device)
        self.whitening = whitening
        self.weights_sha256 = weights_sha256
        self._runner: OnnxRunner | None = None
        if self.backend == "onnxruntime":
            self._get_runner()

    @property
    def backend(self) -> str:
        """``"torch"`` or ``"onnxruntime"``."""
        return self.base_options.backend

    def _get_runner(self):
        if self._runner is None:
            from .onnx_backend import cached_onnx_runner

            self._runner = cached_onnx_runner(
                self.net,
                torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE),
                tag=f"regressor-{getattr(self.net, 'width', 'x')}",
                cache_dir=self.base_options.assets.cache_dir,
                output_names=("params",),
                dynamic_axes={"input": {0: "batch"}, "params": {0: "batch"}},
                threads=self.base_options.threads,
            )
        return self._runner

    def predict_whitened(self, crops: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """(B, 120, 120, 3) uint8 BGR crops -> (B, 62) float32 raw (whitened) outputs."""
        if len(crops) == 0:
            return np.zeros((0, NUM_PARAMS), dtype=np.float32)
        outs = []
        for start in range(0, len(crops), batch_size):
            x = preprocess_crops(crops[start : start + batch_size])
            if self.backend == "onnxruntime":
                outs.append(self._get_runner()(x)[0])
            else:
                with torch.inference_mode():
                    y = self.net(torch.from_numpy(x).to(self.device))
                outs.append(y.float().cpu().numpy())
        return np.concatenate(outs).astype(np.float32, copy=False)

    def __call__(self, crops: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """(B, 120, 120, 3) uint8 BGR crops -> (B, 62) float32 de-whitened parameters."""
        return np.asarray(self.whitening.dewhiten(self.predict_whitened(crops, batch_size)))


def choose_backend(backend: str, device: str | torch.device) -> str:
    """Resolve ``"auto"``: onnxruntime on CPU when installed, torch otherwise; check the device.

    Raises:
        InputError: an unknown backend, onnxruntime on a GPU, or a CUDA device that this torch
            build or machine does not have.
    """
    from .onnx_backend import onnxruntime_available

    if backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise InputError(f"unknown device {device!r}; expected 'cpu', 'cuda' or 'cuda:N'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {str(device)!r} is not available: this torch build or machine has no CUDA GPU")
    on_cpu = dev.type == "cpu"
    if backend == "auto":
        return "onnxruntime" if on_cpu and onnxruntime_available() else "torch"
    if backend == "onnxruntime":
        if not on_cpu:
            raise InputError("the onnxruntime backend runs on the CPU only; use backend='torch' on GPUs")
        if not onnxruntime_available():
            raise InputError("backend='onnxruntime' needs the onnxruntime and onnx packages: "
                             "pip install onnxruntime onnx")
    return backend


def create_model(
    model: str | os.PathLike | nn.Module = "mb05",
    *,
    base_options: BaseOptions | None = None,
    assets: AssetsLike = None,
    device: str | None = None,
    backend: Backend | None = None,
    threads: int | None = None,
    whitening: str | Whitening | None = None,
) -> Regressor:
    """Build a regressor by name (:func:`list_models`), checkpoint path, or torch module.

    Args:
        model: ``"mb05"``, ``"mb1"``, ``"3ddfa-v1"``, a registered name, a path to a checkpoint
            (3DDFA_V2, 3DDFA v1 or ddfa layout), or an ``nn.Module`` mapping (B,3,120,120) to (B,62).
        base_options: the runtime context (:class:`~ddfa.BaseOptions`); ``assets``, ``device``,
            ``backend`` and ``threads`` are shorthands that override its fields.
        whitening: override the whitening (``"v1"``, ``"v2"`` or a :class:`Whitening`);
            needed only for bare checkpoints whose layout does not tell.

    Returns:
        A new :class:`Regressor` (its own torch module; parsed weights are cached on the
        weights file's sha256, see :func:`load_checkpoint`).

    Raises:
        AssetError: the weights or whitening files are missing, corrupt or do not fit.
        InputError: unknown model name, backend or device.
    """
    base = resolve_base_options(base_options, assets=assets, device=device, backend=backend, threads=threads)
    choose_backend(base.backend, base.device)  # fail early on a bad device/backend, before reading weights
    if isinstance(model, nn.Module):
        white = whitening if isinstance(whitening, Whitening) else load_whitening(base.assets, whitening or "v2")
        return Regressor("custom", model, white, base_options=base)
    if not isinstance(model, (str, os.PathLike)):
        raise InputError(f"model must be a name, a checkpoint path or an nn.Module, got {type(model).__name__}")
    ckpt = load_checkpoint(model, base.assets, whitening=whitening)
    net = build_network(ckpt.arch, ckpt.config, state_dict=ckpt.state_dict, source=str(ckpt.path))
    return Regressor(ckpt.name, net, ckpt.whitening, base_options=base, weights_sha256=ckpt.sha256)
