"""Running networks with OpenVINO (``pip install ddfa[openvino]``).

The ONNX graphs of :mod:`ddfa.nets.onnx_backend` are read by OpenVINO's own ONNX reader (no
``onnx`` package needed) and compiled for this CPU:

* **precision**: ``INFERENCE_PRECISION_HINT`` bf16 (AMX / AVX-512-BF16 units) or f32; int8
  (quantize-dequantize) graphs are compiled with f32 as the precision of what is not quantised;
* **input conversion in the graph** (OpenVINO's PrePostProcessor): with ``uint8_input`` the
  compiled network takes (N, H, W, 3) uint8 BGR, and converts, subtracts the mean, divides by
  the scale and transposes to NCHW itself (optionally resizes too, see ``resize_to``);
* **compiled models cached per input shape** (an LRU of ``max_shapes``); with
  ``dynamic=True`` one compiled model serves every shape (used for the regressor's batch);
* **no busy-waiting**: OpenVINO's CPU threads sleep when idle (checked by a test), one stream,
  latency mode, ``threads`` honoured (``INFERENCE_NUM_THREADS``);
* **compiled blobs on disk**: the compiled networks are kept in the converted model's cache
  folder and checked before load like the model files (:class:`~ddfa.nets.model_cache.BlobDir`).
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .model_cache import BlobDir


def import_openvino():
    """``import openvino`` without its model-conversion tools (about 0.2 s of imports that ddfa
    never needs); ``openvino.convert_model`` still works, imported on first call."""
    if "openvino" in sys.modules:
        return sys.modules["openvino"]
    blocked = "openvino.tools.ovc" not in sys.modules
    if blocked:
        sys.modules["openvino.tools.ovc"] = None  # type: ignore[assignment]  # makes its import fail fast
    try:
        import openvino as ov
    finally:
        if blocked and sys.modules.get("openvino.tools.ovc", 0) is None:
            del sys.modules["openvino.tools.ovc"]
    if not hasattr(ov, "convert_model"):
        def convert_model(*args, **kwargs):
            from openvino.tools.ovc import convert_model as convert

            return convert(*args, **kwargs)

        ov.convert_model = convert_model
    return ov


@functools.cache
def _core():
    return import_openvino().Core()


@dataclass(frozen=True)
class InputConversion:
    """uint8 (N, H, W, 3) in; ``(x - mean) / scale`` per channel, NCHW float inside the graph."""

    mean: tuple[float, float, float]
    scale: float = 1.0


class OpenVinoRunner:
    """An OpenVINO network with the interface ``runner(x) -> list[np.ndarray]``.

    Args:
        model: a model file (ONNX) or its bytes.
        precision: ``"f32"``, ``"bf16"`` or ``"int8"`` (an int8 QDQ graph; the rest in f32).
        threads: intra-op threads (None: OpenVINO's default, all cores).
        uint8_input: convert uint8 NHWC input inside the graph (None: the input is the
            network's own float32 NCHW tensor).
        dynamic: one compiled model for all input shapes (else one per shape, LRU).
        blob_dir: where OpenVINO keeps compiled blobs (None: not kept).
        max_shapes: compiled shapes kept.
    """

    def __init__(self, model: bytes | str | os.PathLike, *, precision: str = "f32", threads: int | None = None,
                 uint8_input: InputConversion | None = None, dynamic: bool = False,
                 blob_dir: Path | None = None, max_shapes: int = 8):
        ov = import_openvino()
        self._ov = ov
        core = _core()
        if isinstance(model, bytes):  # OpenVINO reads ONNX from files: a private temporary copy
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "model.onnx"
                path.write_bytes(model)
                self._model = core.read_model(str(path))
        else:
            self._model = core.read_model(str(model))
        self.precision = precision
        self.threads = threads
        self.uint8_input = uint8_input
        self.takes_uint8 = uint8_input is not None
        self.dynamic = dynamic
        self.max_shapes = max_shapes
        self._blob_root = Path(blob_dir) if blob_dir is not None else None
        self._compiled: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()
        hint = "f32" if precision in ("f32", "int8") else "bf16"
        self._config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": hint,
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": "1",
            # threads float between cores: on a shared machine a pinned thread waits for its busy
            # core (measured: 15-20% slower with pinning on a loaded 2-core machine)
            "ENABLE_CPU_PINNING": False,
        }
        if threads:
            self._config["INFERENCE_NUM_THREADS"] = int(threads)

    # ------------------------------------------------------------------ compiling
    def _prepared(self, shape: Sequence[int] | None, resize_to: tuple[int, int] | None):
        """The model with a fixed input ``shape`` (None: as exported) and the input conversion."""
        ov = self._ov
        model = self._model.clone()
        conv = self.uint8_input
        if shape is not None:
            if conv is not None:  # shape is the uint8 NHWC tensor's; the network's is NCHW
                n, h, w, c = shape
                if resize_to is not None:
                    h, w = resize_to
                net_shape = [n, c, h, w]
            else:
                net_shape = list(shape)
            model.reshape({model.inputs[0].get_any_name(): ov.PartialShape(net_shape)})
        if conv is None:
            return model
        from openvino.preprocess import PrePostProcessor, ResizeAlgorithm

        ppp = PrePostProcessor(model)
        tensor = ppp.input().tensor()
        tensor.set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
        if resize_to is not None and shape is not None:
            tensor.set_shape(list(shape))
        ppp.input().model().set_layout(ov.Layout("NCHW"))
        steps = ppp.input().preprocess()
        steps.convert_element_type(ov.Type.f32)
        if resize_to is not None:
            steps.resize(ResizeAlgorithm.RESIZE_LINEAR)
        steps.mean(list(conv.mean))
        if conv.scale != 1.0:
            steps.scale(float(conv.scale))
        return ppp.build()

    def _request(self, shape: tuple[int, ...], resize_to: tuple[int, int] | None):
        key = "dynamic" if self.dynamic and resize_to is None else (shape, resize_to)
        entry = self._compiled.get(key)
        if entry is not None:
            self._compiled.move_to_end(key)
            return entry
        model = self._prepared(None if key == "dynamic" else shape, resize_to)
        config = dict(self._config)
        blobs = None
        if self._blob_root is not None:  # one folder per compiled variant: only its blob is checked
            name = "dynamic" if key == "dynamic" else "x".join(map(str, shape)) + (
                f"-to{resize_to[0]}x{resize_to[1]}" if resize_to else "")
            blobs = BlobDir(self._blob_root / f"{self.precision}-t{self.threads or 0}-{name}")
            blobs.verify()
            config["CACHE_DIR"] = str(blobs.directory)
        compiled = _core().compile_model(model, "CPU", config)
        if blobs is not None:
            blobs.record()
        entry = (compiled, compiled.create_infer_request(), len(compiled.outputs))
        self._compiled[key] = entry
        while len(self._compiled) > self.max_shapes:
            self._compiled.popitem(last=False)
        return entry

    def compile_in_background(self) -> None:
        """Start compiling the dynamic-shape model in a thread (OpenVINO releases the GIL while it
        compiles), so that start-up work goes on meanwhile; the first call waits for it."""
        if not self.dynamic:
            return

        def work() -> None:
            with self._lock:
                try:
                    self._request((), None)
                except Exception:  # the first call compiles again and raises where it can be seen
                    pass

        threading.Thread(target=work, name="ddfa-openvino-compile", daemon=True).start()

    # ------------------------------------------------------------------ running
    def __call__(self, x: np.ndarray, resize_to: tuple[int, int] | None = None) -> list[np.ndarray]:
        """Run on one input: (N, H, W, 3) uint8 with ``uint8_input``, else the network's
        float32 tensor. ``resize_to=(h, w)``: resize the uint8 input to h x w in the graph."""
        x = np.ascontiguousarray(x)
        with self._lock:
            _, request, count = self._request(tuple(x.shape), resize_to)
            result = request.infer({0: x}, share_inputs=True)
            return [np.asarray(result[i]) for i in range(count)]

    @property
    def output_names(self) -> list[str]:
        """Names of the network's outputs, in the order :meth:`__call__` returns them."""
        return [output.get_any_name() for output in self._model.outputs]

    @property
    def compiled_shapes(self) -> list:
        """Keys of the compiled models held (input shape and resize target, or ``"dynamic"``)."""
        return list(self._compiled)


__all__ = ["InputConversion", "OpenVinoRunner", "import_openvino"]
