"""The runtime context every ddfa component runs in: one value, passed as a whole.

:class:`BaseOptions` (named after MediaPipe's) holds *where the model files are* (``assets``),
*where tensors live* (``device``), *which inference engine runs the networks* (``backend``) and
*how many CPU threads it may use* (``threads``). :class:`~ddfa.FaceAligner`,
:func:`~ddfa.create_model` and every detector factory take it as ``base_options=``; their
``assets=``, ``device=``, ``backend=`` and ``threads=`` keywords are shorthands that build one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Literal, get_args

from .assets.store import AssetsLike, AssetStore, resolve_assets
from .errors import InputError

Backend = Literal["auto", "torch", "onnxruntime"]
BACKENDS: tuple[str, ...] = get_args(Backend)
_DEVICE = re.compile(r"cpu|cuda(:\d+)?|mps|xpu(:\d+)?")


@dataclass(frozen=True, kw_only=True)
class BaseOptions:
    """Runtime context: assets, device, inference engine and threads.

    Attributes:
        assets: the asset folder (an :class:`~ddfa.assets.AssetStore`; a path or None is
            resolved on construction, None meaning ``$DDFA_HOME`` or the default folder).
        device: torch device string, ``"cpu"`` or ``"cuda"``/``"cuda:N"``.
        backend: ``"auto"`` (onnxruntime on CPU when installed, torch otherwise),
            ``"torch"`` or ``"onnxruntime"`` (CPU only).
        threads: intra-op CPU threads of the inference engine (None: all cores).
    """

    assets: AssetStore = field(default_factory=lambda: resolve_assets(None))
    device: str = "cpu"
    backend: Backend = "auto"
    threads: int | None = None

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

    def replace(self, **changes) -> BaseOptions:
        """A copy with some fields changed."""
        return replace(self, **changes)


def resolve_base_options(
    base_options: BaseOptions | None = None,
    *,
    assets: AssetsLike = None,
    device: str | None = None,
    backend: Backend | None = None,
    threads: int | None = None,
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
    if base_options is None:
        return BaseOptions(**changes)
    if not isinstance(base_options, BaseOptions):
        raise InputError(f"base_options must be a ddfa.BaseOptions, got {type(base_options).__name__}")
    return replace(base_options, **changes) if changes else base_options


__all__ = ["BACKENDS", "Backend", "BaseOptions", "resolve_base_options"]
