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

from ..assets.safe_pickle import load_torch_checkpoint
from ..assets.store import AssetsLike, file_digest, resolve_assets
from ..caching import ContentCache
from ..errors import AssetError, InputError
from ..morphable.params import NUM_PARAMS, Whitening, load_whitening
from ..runtime import Backend, BaseOptions, Precision, resolve_base_options
from .engines import choose_backend, resolve_precision
from .model_cache import ConvertedModel

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

    from .checkpoint import RegressorCheckpoint

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
    read_checkpoint: Callable[[dict, str], RegressorCheckpoint] = field(
        default=lambda obj, source: _read_ddfa(obj, source))
    config_from_state: Callable[[Mapping[str, torch.Tensor]], dict] = lambda state: {}


def _read_ddfa(obj: dict, source: str) -> RegressorCheckpoint:
    from .checkpoint import read_ddfa_checkpoint

    return read_ddfa_checkpoint(obj, source)


def _read_mobilenet(obj: dict, source: str) -> RegressorCheckpoint:
    from .checkpoint import normalise_checkpoint

    return normalise_checkpoint(obj, source)


def _mobilenet_config(state: Mapping[str, torch.Tensor]) -> dict:
    from .mobilenet_v1 import width_from_state_dict

    return {"width": width_from_state_dict(state)}


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
            read_checkpoint=read_checkpoint or _read_ddfa,
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


@register_architecture("mobilenet_v1", read_checkpoint=_read_mobilenet, config_from_state=_mobilenet_config)
def _mobilenet_v1(width: float = 1.0, num_outputs: int = NUM_PARAMS) -> nn.Module:
    from .mobilenet_v1 import MobileNetV1

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
        problems = state_dict_mismatch(net.state_dict(), state_dict)
        if problems:
            raise AssetError(f"{source}: weights do not fit {arch} {dict(config)} with {num_outputs} outputs: "
                             f"{problems}")
        try:
            net.load_state_dict(state_dict, strict=True)
        except RuntimeError as exc:
            detail = " ".join(str(exc).split())
            raise AssetError(f"{source}: weights do not fit {arch} {dict(config)} with {num_outputs} outputs: "
                             f"{detail}") from None
    return net.eval()


def state_dict_mismatch(expected: Mapping[str, torch.Tensor], given: Mapping[str, Any], *, show: int = 3) -> str:
    """A complete one-line summary of how ``given`` differs from ``expected`` ('' if it fits):
    tensors of the wrong shape, missing and unexpected names (the first ``show`` of each, and
    how many more)."""

    def listing(items: list[str], what: str) -> str:
        more = f" and {len(items) - show} more" if len(items) > show else ""
        return f"{what} {', '.join(items[:show])}{more}"

    import torch

    shapes = [f"{k} is {tuple(given[k].shape)} instead of {tuple(v.shape)}" for k, v in expected.items()
              if k in given and isinstance(given[k], torch.Tensor) and tuple(given[k].shape) != tuple(v.shape)]
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    parts = []
    if shapes:
        parts.append(listing(shapes, "wrong shape:"))
    if missing:
        parts.append(listing(missing, "missing:"))
    if unexpected:
        parts.append(listing(unexpected, "unexpected:"))
    return "; ".join(parts)


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


def _weights_file(model: str | os.PathLike, store) -> tuple[str, ModelSpec | None, Path]:
    """(name, spec or None, path) of a model name or checkpoint path; the path is checked
    against its pinned sha256 when the asset registry knows it."""
    name = str(model)
    spec = MODELS.get(name)
    if spec is not None:
        weights = Path(spec.weights).expanduser()
        return name, spec, (weights if weights.is_absolute() else store.path(spec.weights))
    path = Path(name).expanduser()
    if not path.is_file():
        raise InputError(f"unknown model {name!r}: expected one of {', '.join(list_models())} "
                         "or a checkpoint file")
    return name, None, path


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
    from .checkpoint import check_whitening, whitening_from_meta

    store = resolve_assets(assets)
    name, spec, path = _weights_file(model, store)
    digest = file_digest(path)
    arch_hint = spec.arch if spec is not None else None
    arch, config, ckpt = _CHECKPOINTS.get_or_build(
        (digest, arch_hint), lambda: _read_checkpoint(path, arch_hint, spec.config if spec else None))
    if isinstance(whitening, Whitening):
        white = whitening
        check_whitening(white.mean, white.std, "whitening")
    elif whitening is not None:
        white = load_whitening(store, whitening)
    else:
        default = spec.whitening if spec is not None else ("v1" if ckpt.layout == "v1" else "v2")
        white = whitening_from_meta(ckpt.meta, str(path)) or load_whitening(store, default)
    return LoadedCheckpoint(name=name, path=path, sha256=digest, arch=arch, config=config,
                            state_dict=ckpt.state_dict, whitening=white, layout=ckpt.layout, meta=ckpt.meta)


def _read_checkpoint(path: Path, arch: str | None, config: Mapping[str, Any] | None):
    import torch

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
    for key, tensor in ckpt.state_dict.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise AssetError(f"{path}: the weights hold NaN or infinite values (tensor {key}); the checkpoint is "
                             "broken (e.g. saved after training diverged)")
    # build once now, so that weights that do not fit fail here, with the file named
    build_network(arch, config, state_dict=ckpt.state_dict, source=str(path))
    return arch, config, ckpt


def _check_crops(crops: np.ndarray) -> None:
    if crops.ndim != 4 or crops.shape[-1] != 3:
        raise InputError(f"expected (B, H, W, 3) BGR crops, got shape {crops.shape}")


def preprocess_crops(crops: np.ndarray) -> np.ndarray:
    """(B, 120, 120, 3) uint8 BGR crops -> (B, 3, 120, 120) float32 ``(x - 127.5) / 128``."""
    _check_crops(crops)
    x = crops.astype(np.float32).transpose(0, 3, 1, 2)
    x -= np.float32(127.5)
    x /= np.float32(128.0)
    return np.ascontiguousarray(x)


#: version of the regressor's ONNX export (bump when the exported graph would change)
REGRESSOR_RECIPE = 1
#: the crops' normalisation, ``(x - 127.5) / 128``, as OpenVINO's in-graph input conversion
CROP_MEAN, CROP_SCALE = 127.5, 128.0


class Regressor:
    """A 3DMM parameter regressor: crops in, de-whitened 62-d parameters out.

    Each :func:`create_model` call returns a new Regressor with its own torch module, so that
    changing one (``.net.train()``, fine-tuning) never changes another. On onnxruntime and
    OpenVINO the torch module is built only when :attr:`net` is first read: a regressor whose
    converted graph is in the cache runs without importing torch.

    Attributes:
        name: model name or checkpoint path.
        net: the torch module (built on first access when the engine does not need it).
        whitening: the :class:`~ddfa.morphable.params.Whitening` of its outputs.
        base_options: the runtime context (assets, device, backend resolved to ``"torch"``,
            ``"onnxruntime"`` or ``"openvino"``, threads, precision).
        precision: the number format it runs in (``"f32"``, ``"bf16"`` or ``"int8"``).
        weights_sha256: sha256 of the weights file (None if built from a module).
    """

    def __init__(self, name: str, net: nn.Module | None, whitening: Whitening, *, base_options: BaseOptions,
                 weights_sha256: str | None = None, net_factory: Callable[[], nn.Module] | None = None,
                 converted: ConvertedModel | None = None, export_meta: Mapping[str, Any] | None = None):
        if net is None and net_factory is None:
            raise InputError("Regressor needs a network or a way to build one")
        engine = choose_backend(base_options.backend, base_options.device)
        self.name = name
        self.base_options = base_options.replace(backend=engine)
        self.precision = resolve_precision(base_options.precision, engine, int8=True)
        self.whitening = whitening
        self.weights_sha256 = weights_sha256
        self._net = net
        self._net_factory = net_factory
        self._converted = converted
        self._export_meta = dict(export_meta or {})
        self._runner: Any = None
        if net is not None:
            self._place(net)
        if self.backend != "torch":
            self._get_runner()

    @property
    def backend(self) -> str:
        """``"torch"``, ``"onnxruntime"`` or ``"openvino"``."""
        return self.base_options.backend

    @property
    def device(self) -> torch.device:
        import torch

        return torch.device(self.base_options.device)

    @property
    def net(self) -> nn.Module:
        if self._net is None:
            assert self._net_factory is not None
            self._place(self._net_factory())
        assert self._net is not None
        return self._net

    def _place(self, net: nn.Module) -> None:
        self._net = net.eval()
        if self.backend == "torch":
            self._net.to(self.device)

    def converted(self) -> ConvertedModel:
        """The float32 ONNX graph of this regressor (exported and cached on first use)."""
        if self._converted is None:
            from .model_cache import converted_model
            from .onnx_backend import export_onnx, state_dict_digest

            def build() -> tuple[bytes, dict]:
                import torch

                data = export_onnx(self.net, torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE), None,
                                   output_names=("params",),
                                   dynamic_axes={"input": {0: "batch"}, "params": {0: "batch"}})
                return data, self._export_meta

            source = self.weights_sha256 or state_dict_digest(self.net)
            self._converted = converted_model(
                "regressor", source_sha256=source, recipe=REGRESSOR_RECIPE,
                cache_dir=self.base_options.assets.cache_dir, build=build,
                describe=f"regressor {self.name!r} to ONNX")
        return self._converted

    def _get_runner(self):
        if self._runner is None:
            from .engines import open_runner
            from .openvino_backend import InputConversion

            model = self.converted()
            if self.precision == "int8":
                from .quantize import int8_regressor

                model = int8_regressor(model, assets=self.base_options.assets)
            self._runner = open_runner(model, self.backend, precision=self.precision,
                                       threads=self.base_options.threads,
                                       uint8_input=InputConversion((CROP_MEAN,) * 3, CROP_SCALE), dynamic=True)
            if self.backend == "openvino":
                self._runner.compile_in_background()  # the detector and the 3DMM load meanwhile
        return self._runner

    def predict_whitened(self, crops: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """(B, 120, 120, 3) uint8 BGR crops -> (B, 62) float32 raw (whitened) outputs."""
        crops = np.asarray(crops)
        if len(crops) == 0:
            return np.zeros((0, NUM_PARAMS), dtype=np.float32)
        _check_crops(crops)
        outs = []
        runner = None if self.backend == "torch" else self._get_runner()
        for start in range(0, len(crops), batch_size):
            chunk = crops[start : start + batch_size]
            if runner is not None:
                uint8 = runner.takes_uint8 and chunk.dtype == np.uint8
                outs.append(runner(chunk if uint8 else preprocess_crops(chunk))[0])
            else:
                import torch

                with torch.inference_mode():
                    y = self.net(torch.from_numpy(preprocess_crops(chunk)).to(self.device))
                outs.append(y.float().cpu().numpy())
        return np.concatenate(outs).astype(np.float32, copy=False)

    def __call__(self, crops: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """(B, 120, 120, 3) uint8 BGR crops -> (B, 62) float32 de-whitened parameters."""
        return np.asarray(self.whitening.dewhiten(self.predict_whitened(crops, batch_size)))


def _export_meta(ckpt: LoadedCheckpoint) -> dict:
    """What a converted regressor records about its checkpoint, so that a later start can use
    the converted graph without reading the checkpoint (or importing torch): architecture,
    config, layout, and the whitening the checkpoint implies (whatever a caller overrode)."""
    from .checkpoint import whitening_from_meta

    meta: dict[str, Any] = {"arch": ckpt.arch, "config": dict(ckpt.config), "layout": ckpt.layout}
    own = whitening_from_meta(dict(ckpt.meta))
    if own is not None:
        meta["whitening"] = {"name": own.name, "mean": [float(v) for v in own.mean],
                             "std": [float(v) for v in own.std]}
    else:  # read from the asset folder (a pinned file) by name
        spec = MODELS.get(ckpt.name)
        meta["whitening"] = {"name": spec.whitening if spec is not None else ("v1" if ckpt.layout == "v1" else "v2")}
    return meta


def _whitening_from_export(meta: Mapping[str, Any], store) -> Whitening | None:
    white = meta.get("whitening")
    if not isinstance(white, Mapping) or "name" not in white:
        return None
    if "mean" in white:
        return Whitening(mean=np.asarray(white["mean"], np.float32), std=np.asarray(white["std"], np.float32),
                         name=str(white["name"]))
    return load_whitening(store, str(white["name"]))


def _cached_regressor(model: str | os.PathLike, base: BaseOptions, whitening: str | Whitening | None,
                      engine: str) -> Regressor | None:
    """A regressor from its verified converted graph alone (no checkpoint read, no torch), or
    None when the cache does not hold it."""
    from .model_cache import entry_dir, verified

    name, _, path = _weights_file(model, base.assets)
    digest = file_digest(path)
    found = verified(entry_dir(base.assets.cache_dir, "regressor", digest, REGRESSOR_RECIPE), "regressor",
                     digest, REGRESSOR_RECIPE)
    if found is None:
        return None
    if isinstance(whitening, Whitening):
        white: Whitening | None = whitening
    elif whitening is not None:
        white = load_whitening(base.assets, whitening)
    else:
        white = _whitening_from_export(found.meta, base.assets)
    if white is None:
        return None

    def build_net() -> nn.Module:
        ckpt = load_checkpoint(model, base.assets, whitening=whitening)
        return build_network(ckpt.arch, ckpt.config, state_dict=ckpt.state_dict, source=str(ckpt.path))

    return Regressor(name, None, white, base_options=base, weights_sha256=digest, net_factory=build_net,
                     converted=found, export_meta=found.meta)


def create_model(
    model: str | os.PathLike | nn.Module = "mb05",
    *,
    base_options: BaseOptions | None = None,
    assets: AssetsLike = None,
    device: str | None = None,
    backend: Backend | None = None,
    threads: int | None = None,
    precision: Precision | None = None,
    whitening: str | Whitening | None = None,
) -> Regressor:
    """Build a regressor by name (:func:`list_models`), checkpoint path, or torch module.

    Args:
        model: ``"mb05"``, ``"mb1"``, ``"3ddfa-v1"``, a registered name, a path to a checkpoint
            (3DDFA_V2, 3DDFA v1 or ddfa layout), or an ``nn.Module`` mapping (B,3,120,120) to (B,62).
        base_options: the runtime context (:class:`~ddfa.BaseOptions`); ``assets``, ``device``,
            ``backend``, ``threads`` and ``precision`` are shorthands that override its fields.
        whitening: override the whitening (``"v1"``, ``"v2"`` or a :class:`Whitening`);
            needed only for bare checkpoints whose layout does not tell.

    Returns:
        A new :class:`Regressor` (its own torch module; parsed weights are cached on the
        weights file's sha256, see :func:`load_checkpoint`; converted graphs on disk, see
        :mod:`ddfa.nets.model_cache`).

    Raises:
        AssetError: the weights or whitening files are missing, corrupt or do not fit.
        InputError: unknown model name, backend, precision or device.
    """
    import sys

    base = resolve_base_options(base_options, assets=assets, device=device, backend=backend, threads=threads,
                                precision=precision)
    engine = choose_backend(base.backend, base.device)  # fail early on a bad device/backend
    resolve_precision(base.precision, engine, int8=True)
    torch_mod = sys.modules.get("torch")  # a torch module can only be given if torch is imported
    if torch_mod is not None and isinstance(model, torch_mod.nn.Module):
        white = whitening if isinstance(whitening, Whitening) else load_whitening(base.assets, whitening or "v2")
        return Regressor("custom", model, white, base_options=base)
    if not isinstance(model, (str, os.PathLike)):
        raise InputError(f"model must be a name, a checkpoint path or an nn.Module, got {type(model).__name__}")
    if engine != "torch":
        cached = _cached_regressor(model, base, whitening, engine)
        if cached is not None:
            return cached
    ckpt = load_checkpoint(model, base.assets, whitening=whitening)
    net = build_network(ckpt.arch, ckpt.config, state_dict=ckpt.state_dict, source=str(ckpt.path))
    return Regressor(ckpt.name, net, ckpt.whitening, base_options=base, weights_sha256=ckpt.sha256,
                     export_meta=_export_meta(ckpt))
