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
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..assets.safe_pickle import load_torch_checkpoint
from ..assets.store import AssetStore, resolve_assets
from ..errors import AssetError, InputError
from ..morphable.params import NUM_PARAMS, Whitening, load_whitening
from .checkpoint import RegressorCheckpoint, normalise_checkpoint, whitening_from_meta
from .mobilenet_v1 import MobileNetV1, width_from_state_dict

INPUT_SIZE = 120

ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {}


def register_architecture(name: str):
    """Decorator registering ``factory(width=..., num_outputs=...) -> nn.Module`` under ``name``."""

    def wrap(factory):
        ARCHITECTURES[name] = factory
        return factory

    return wrap


@register_architecture("mobilenet_v1")
def _mobilenet_v1(width: float = 1.0, num_outputs: int = NUM_PARAMS) -> nn.Module:
    return MobileNetV1(width=width, num_outputs=num_outputs)


@dataclass(frozen=True)
class ModelSpec:
    """A named regressor: architecture, width, weights asset and whitening."""

    name: str
    arch: str
    width: float
    weights: str | None
    whitening: str
    description: str = ""


MODELS: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    MODELS[spec.name] = spec
    return spec


register_model(ModelSpec("mb05", "mobilenet_v1", 0.5, "3DDFA_V2/weights/mb05_120x120.pth", "v2", "3DDFA_V2 MobileNet-V1 x0.5"))
register_model(ModelSpec("mb1", "mobilenet_v1", 1.0, "3DDFA_V2/weights/mb1_120x120.pth", "v2", "3DDFA_V2 MobileNet-V1 x1.0"))
register_model(ModelSpec("3ddfa-v1", "mobilenet_v1", 1.0, "3DDFA/models/phase1_wpdc_vdc.pth.tar", "v1", "3DDFA (TPAMI) MobileNet-V1, WPDC then VDC"))


def list_models() -> list[str]:
    return sorted(MODELS)


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

    Attributes:
        name: model name or checkpoint path.
        net: the torch module (always present; also the source of the ONNX export).
        whitening: the :class:`~ddfa.morphable.params.Whitening` of its outputs.
        backend: ``"torch"`` or ``"onnxruntime"``.
        device: torch device of ``net``.
        weights_sha256: sha256 of the weights file (None if built from a module).
    """

    def __init__(self, name, net, whitening, *, device="cpu", backend="torch", cache_dir=None,
                 weights_sha256=None, threads=None):
        self.name = name
        self.net = net.eval().to(device)
        self.whitening = whitening
        self.device = torch.device(device)
        self.weights_sha256 = weights_sha256
        self.backend = backend
        self._runner = None
        self._threads = threads
        self._cache_dir = cache_dir
        if backend == "onnxruntime":
            self._get_runner()

    def _get_runner(self):
        if self._runner is None:
            from .onnx_backend import cached_onnx_runner

            self._runner = cached_onnx_runner(
                self.net,
                torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE),
                tag=f"regressor-{getattr(self.net, 'width', 'x')}",
                cache_dir=self._cache_dir,
                output_names=("params",),
                dynamic_axes={"input": {0: "batch"}, "params": {0: "batch"}},
                threads=self._threads,
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
        return self.whitening.dewhiten(self.predict_whitened(crops, batch_size))


def choose_backend(backend: str, device) -> str:
    """Resolve ``"auto"``: onnxruntime on CPU when installed, torch otherwise."""
    from .onnx_backend import onnxruntime_available

    if backend not in ("auto", "torch", "onnxruntime"):
        raise InputError(f"unknown backend {backend!r}; expected 'auto', 'torch' or 'onnxruntime'")
    on_cpu = torch.device(device).type == "cpu"
    if backend == "auto":
        return "onnxruntime" if on_cpu and onnxruntime_available() else "torch"
    if backend == "onnxruntime":
        if not on_cpu:
            raise InputError("the onnxruntime backend runs on the CPU only; use backend='torch' on GPUs")
        if not onnxruntime_available():
            raise InputError("backend='onnxruntime' needs the onnxruntime and onnx packages: "
                             "pip install onnxruntime onnx")
    return backend


_CACHE: dict[tuple, Regressor] = {}
_CACHE_LOCK = threading.Lock()


def create_model(
    model: str | os.PathLike | nn.Module = "mb05",
    *,
    assets: AssetStore | str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    backend: str = "auto",
    whitening: str | Whitening | None = None,
    threads: int | None = None,
) -> Regressor:
    """Build a regressor by name (:func:`list_models`), checkpoint path, or torch module.

    Args:
        model: ``"mb05"``, ``"mb1"``, ``"3ddfa-v1"``, a path to a checkpoint (3DDFA_V2,
            3DDFA v1 or ddfa layout), or an ``nn.Module`` mapping (B,3,120,120) to (B,62).
        assets: asset directory or store (None: ``$DDFA_HOME`` / default).
        device: torch device for the torch backend.
        backend: ``"auto"`` (onnxruntime on CPU if installed, else torch), ``"torch"`` or
            ``"onnxruntime"``.
        whitening: override the whitening (``"v1"``, ``"v2"`` or a :class:`Whitening`);
            needed only for bare checkpoints whose layout does not tell.
        threads: CPU threads for onnxruntime (None: all cores).

    Raises:
        AssetError: the weights or whitening files are missing or corrupt.
        InputError: unknown model name or backend.
    """
    store = resolve_assets(assets)
    backend = choose_backend(backend, device)
    if isinstance(model, nn.Module):
        white = whitening if isinstance(whitening, Whitening) else load_whitening(store, whitening or "v2")
        return Regressor("custom", model, white, device=device, backend=backend,
                         cache_dir=store.cache_dir, threads=threads)
    key = (str(store.root), str(model), str(device), backend,
           whitening if isinstance(whitening, (str, type(None))) else id(whitening), threads)
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
    name = str(model)
    if name in MODELS:
        spec = MODELS[name]
        path = store.path(spec.weights)
        ckpt = normalise_checkpoint(load_torch_checkpoint(path), str(path))
        arch, width, white_name = spec.arch, spec.width, spec.whitening
    elif Path(name).expanduser().is_file():
        path = Path(name).expanduser()
        ckpt = normalise_checkpoint(load_torch_checkpoint(path), str(path))
        arch = ckpt.meta.get("arch", "mobilenet_v1")
        width = float(ckpt.meta.get("width", width_from_state_dict(ckpt.state_dict)))
        white_name = "v1" if ckpt.layout == "v1" else "v2"
    else:
        raise InputError(
            f"unknown model {name!r}: expected one of {', '.join(list_models())} or a checkpoint file"
        )
    if isinstance(whitening, Whitening):
        white = whitening
    elif whitening is not None:
        white = load_whitening(store, whitening)
    else:
        white = whitening_from_meta(ckpt.meta) or load_whitening(store, white_name)
    net = _build(arch, width, ckpt, str(path))
    from ..assets.store import sha256_file

    regressor = Regressor(name, net, white, device=device, backend=backend, cache_dir=store.cache_dir,
                          weights_sha256=sha256_file(path), threads=threads)
    with _CACHE_LOCK:
        _CACHE[key] = regressor
    return regressor


def _build(arch: str, width: float, ckpt: RegressorCheckpoint, source: str) -> nn.Module:
    try:
        factory = ARCHITECTURES[arch]
    except KeyError:
        raise AssetError(f"{source}: unknown architecture {arch!r}") from None
    num_outputs = ckpt.state_dict["fc.weight"].shape[0]
    net = factory(width=width, num_outputs=num_outputs)
    try:
        net.load_state_dict(ckpt.state_dict, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise AssetError(f"{source}: weights do not fit {arch} x{width}: {first}") from None
    return net.eval()
