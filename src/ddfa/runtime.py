"""The runtime context every ddfa component runs in: one value, passed as a whole.

:class:`BaseOptions` (named after MediaPipe's) holds *where the model files are* (``assets``),
*where tensors live* (``device``), *which inference engine runs the networks* (``backend``),
*how many CPU threads it may use* (``threads``) and *in which number format* (``precision``).
:class:`~ddfa.FaceAligner`, :func:`~ddfa.create_model` and every detector factory take it as
``base_options=``; their ``assets=``, ``device=``, ``backend=``, ``threads=`` and ``precision=``
keywords are shorthands that build one.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from typing import Literal, get_args

from .assets.store import AssetsLike, AssetStore, resolve_assets
from .errors import InputError

Backend = Literal["auto", "torch", "onnxruntime", "openvino"]
BACKENDS: tuple[str, ...] = get_args(Backend)
Precision = Literal["auto", "f32", "bf16", "int8"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
_DEVICE = re.compile(r"cpu|cuda(:\d+)?|mps|xpu(:\d+)?")


@dataclass(frozen=True, kw_only=True)
class BaseOptions:
    """Runtime context: assets, device, inference engine and threads.

    Attributes:
        assets: the asset folder (an :class:`~ddfa.assets.AssetStore`; a path or None is
            resolved on construction, None meaning ``$DDFA_HOME`` or the default folder).
        device: torch device string, ``"cpu"`` or ``"cuda"``/``"cuda:N"``.
        backend: ``"auto"`` (on CPU: OpenVINO when installed and the CPU computes bfloat16
            natively (AMX or AVX-512-BF16), else onnxruntime when installed; torch otherwise),
            ``"torch"``, ``"onnxruntime"`` or ``"openvino"`` (both CPU only). See
            :mod:`ddfa.nets.engines`.
        threads: intra-op CPU threads of the inference engine (None: all cores). Default:
            ``$DDFA_THREADS`` when set (e.g. one thread per process when several processes
            share the cores), else None.
        precision: number format of the networks: ``"auto"`` (bfloat16 on OpenVINO where the
            CPU computes it natively, float32 elsewhere), ``"f32"`` (the reference results),
            ``"bf16"`` (OpenVINO only) or ``"int8"`` (the regressor statically quantised,
            onnxruntime or OpenVINO; the detector then runs as under ``"auto"``).
    """

    assets: AssetStore = field(default_factory=lambda: resolve_assets(None))
    device: str = "cpu"
    backend: Backend = "auto"
    threads: int | None = field(default_factory=lambda: threads_from_environment())
    precision: Precision = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "assets", resolve_assets(self.assets))
        device = str(self.device)
        if not _DEVICE.fullmatch(device):
            raise InputError(f"unknown device {device!r}; expected 'cpu', 'cuda' or 'cuda:N'")
        object.__setattr__(self, "device", device)
        if self.backend not in BACKENDS:
            raise InputError(f"unknown backend {self.backend!r}; expected one of {', '.join(BACKENDS)}")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise InputError(f"threads must be a positive integer or None, got {self.threads!r}")
        if self.precision not in PRECISIONS:
            raise InputError(f"unknown precision {self.precision!r}; expected one of {', '.join(PRECISIONS)}")

    def replace(self, **changes) -> BaseOptions:
        """A copy with some fields changed."""
        return replace(self, **changes)


ENV_THREADS = "DDFA_THREADS"


def threads_from_environment() -> int | None:
    """``$DDFA_THREADS`` as a positive integer (None when unset or empty).

    Raises:
        InputError: a value that is not a positive integer.
    """
    value = os.environ.get(ENV_THREADS, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise InputError(f"${ENV_THREADS} must be a positive integer, got {value!r}")
    return int(value)


def resolve_base_options(
    base_options: BaseOptions | None = None,
    *,
    assets: AssetsLike = None,
    device: str | None = None,
    backend: Backend | None = None,
    threads: int | None = None,
    precision: Precision | None = None,
) -> BaseOptions:
    """One :class:`BaseOptions` from ``base_options`` and/or the shorthand keywords.

    A keyword that is given (not None) overrides the same field of ``base_options``.
    """
    changes: dict = {}
    if assets is not None:
        changes["assets"] = resolve_assets(assets)
    if device is not None:
        changes["device"] = str(device)
    if backend is not None:
        changes["backend"] = backend
    if threads is not None:
        changes["threads"] = threads
    if precision is not None:
        changes["precision"] = precision
    if base_options is None:
        return BaseOptions(**changes)
    if not isinstance(base_options, BaseOptions):
        raise InputError(f"base_options must be a ddfa.BaseOptions, got {type(base_options).__name__}")
    return replace(base_options, **changes) if changes else base_options


__all__ = ["BACKENDS", "ENV_THREADS", "PRECISIONS", "Backend", "BaseOptions", "Precision", "resolve_base_options",
           "threads_from_environment"]
