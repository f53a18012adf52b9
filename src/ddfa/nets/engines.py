"""Inference engines: which one runs the networks, in which number format, and opening a runner.

ddfa runs its networks (the FaceBoxes detector, the MobileNet regressors) in one of three
engines:

* ``"torch"``: eager torch, the reference path; CPU and GPUs;
* ``"onnxruntime"``: the ONNX graph exported from the torch module, on the CPU, float32;
* ``"openvino"`` (``pip install ddfa[openvino]``): the same ONNX graph compiled by OpenVINO for
  this CPU, in bfloat16 on CPUs that compute it natively (AMX or AVX-512-BF16: Sapphire Rapids
  and later Xeons, AMD Zen 4 and later), float32 elsewhere; the input conversion (uint8 NHWC in, layout, mean and
  scale, optionally the resize) runs inside the compiled graph.

``backend="auto"`` picks OpenVINO on such CPUs when it is installed (its bf16 networks take
0.5-0.8x of onnxruntime's time there, on a Sapphire Rapids Xeon and on a Zen 4 EPYC, measured
by ``benchmarks/bench_pipeline.py``), else onnxruntime (OpenVINO in float32 was no faster than
onnxruntime on the same CPUs), else torch. Nothing here imports an
engine: availability is looked up with :func:`importlib.util.find_spec` (one exception: an
explicit bf16 request on a CPU without native bfloat16 asks OpenVINO whether it computes it).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
from typing import Literal

from ..errors import InputError
from ..runtime import BACKENDS, PRECISIONS

Engine = Literal["torch", "onnxruntime", "openvino"]
ResolvedPrecision = Literal["f32", "bf16", "int8"]

#: environment switch for tests and benchmarks: "1"/"0" forces :func:`cpu_native_bf16`
ENV_BF16 = "DDFA_CPU_BF16"
_CUDA = re.compile(r"cuda(:\d+)?")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def onnxruntime_available() -> bool:
    """True when onnxruntime is installed (not imported)."""
    return _installed("onnxruntime")


def openvino_available() -> bool:
    """True when OpenVINO is installed (not imported)."""
    return _installed("openvino")


@functools.cache
def cpu_native_bf16() -> bool:
    """True when this CPU computes bfloat16 natively (AMX-BF16 or AVX512-BF16 in its flags).

    ``$DDFA_CPU_BF16`` (``1``/``0``) overrides the answer (for tests and comparisons).
    """
    env = os.environ.get(ENV_BF16)
    if env in ("0", "1"):
        return env == "1"
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"amx_bf16", "avx512_bf16"})
    except OSError:
        pass
    return False


def choose_backend(backend: str, device: str = "cpu") -> Engine:
    """Resolve ``backend`` (``"auto"`` included) for ``device``, or raise.

    ``"auto"`` on the CPU: OpenVINO when installed and :func:`cpu_native_bf16`, else
    onnxruntime when installed, else torch; on a GPU: torch. Torch is imported only for GPU
    devices (to check that CUDA is there).

    Raises:
        InputError: an unknown backend, onnxruntime/OpenVINO on a GPU or not installed, or a
            CUDA device that this torch build or machine does not have.
    """
    if backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    device = str(device)
    on_cpu = device == "cpu"
    if not on_cpu:
        try:
            import torch

            dev = torch.device(device)
        except (RuntimeError, TypeError):
            raise InputError(f"unknown device {device!r}; expected 'cpu', 'cuda' or 'cuda:N'") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise InputError(f"device {device!r} is not available: this torch build or machine has no CUDA GPU")
        on_cpu = dev.type == "cpu"
    if backend == "auto":
        if not on_cpu:
            return "torch"
        if openvino_available() and cpu_native_bf16():
            return "openvino"
        return "onnxruntime" if onnxruntime_available() else "torch"
    if backend in ("onnxruntime", "openvino"):
        if not on_cpu:
            raise InputError(f"the {backend} backend runs on the CPU only; use backend='torch' on GPUs")
        if backend == "onnxruntime" and not onnxruntime_available():
            raise InputError("backend='onnxruntime' needs the onnxruntime package: pip install onnxruntime")
        if backend == "openvino" and not openvino_available():
            raise InputError("backend='openvino' needs OpenVINO: pip install 'ddfa[openvino]'")
    return backend  # type: ignore[return-value]


def resolve_precision(precision: str, engine: str, *, int8: bool = False) -> ResolvedPrecision:
    """The number format a network runs in.

    Args:
        precision: ``"auto"``, ``"f32"``, ``"bf16"`` or ``"int8"`` (:class:`~ddfa.BaseOptions`).
        engine: the resolved engine (:func:`choose_backend`).
        int8: whether this network has an int8 variant (the regressor); networks without one
            run ``"int8"`` as ``"auto"``.

    ``"auto"`` is bfloat16 on OpenVINO where :func:`cpu_native_bf16`, float32 otherwise.

    Raises:
        InputError: bf16 on an engine other than OpenVINO or on a CPU where OpenVINO cannot
            compute it (it would run float32 instead), int8 on torch, or an unknown name.
    """
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    if precision == "int8" and not int8:
        precision = "auto"
    if precision == "auto":
        return "bf16" if engine == "openvino" and cpu_native_bf16() else "f32"
    if precision == "bf16" and engine != "openvino":
        raise InputError(f"precision='bf16' needs backend='openvino' (got {engine!r})")
    if precision == "bf16" and not cpu_native_bf16():
        from .openvino_backend import openvino_computes_bf16

        if not openvino_computes_bf16():
            raise InputError("precision='bf16': OpenVINO cannot compute bfloat16 on this CPU (it needs AVX-512 or "
                             "AMX) and would run float32 instead; use precision='f32' or 'auto'")
    if precision == "int8" and engine == "torch":
        raise InputError("precision='int8' needs backend='onnxruntime' or 'openvino'")
    return precision  # type: ignore[return-value]


def open_runner(model, engine: str, *, precision: str, threads: int | None = None,
                uint8_input=None, dynamic: bool = False, static_batches: int = 0,
                static_from_side: int | None = None):
    """A runner ``runner(x) -> list[np.ndarray]`` for a converted model on a CPU engine.

    Args:
        model: a :class:`~ddfa.nets.model_cache.ConvertedModel` (an ONNX graph).
        engine: ``"onnxruntime"`` or ``"openvino"``.
        precision: resolved precision (:func:`resolve_precision`).
        threads: intra-op threads (None: all cores).
        uint8_input: an :class:`~ddfa.nets.openvino_backend.InputConversion`: on OpenVINO the
            runner then takes uint8 NHWC and converts inside the graph (``runner.takes_uint8``);
            onnxruntime always takes the graph's own input.
        dynamic: OpenVINO: one compiled model for all shapes (else one per shape), except
            batches up to ``static_batches``, which get one compiled model per shape, or with
            ``static_from_side`` inputs of at least that longer side.
    """
    if engine == "openvino":
        from .openvino_backend import OpenVinoRunner

        return OpenVinoRunner(model.source(), precision=precision, threads=threads, uint8_input=uint8_input,
                              dynamic=dynamic, static_batches=static_batches,
                              static_from_side=static_from_side,
                              blob_dir=model.directory / "openvino" if model.directory else None)
    if engine == "onnxruntime":
        from .onnx_backend import OnnxRunner

        return OnnxRunner(model.source(), threads)
    raise InputError(f"no ONNX runner for engine {engine!r}")


__all__ = ["Engine", "choose_backend", "open_runner", "cpu_native_bf16", "onnxruntime_available", "openvino_available",
           "resolve_precision"]
