"""Running networks with OpenVINO (``pip install ddfa[openvino]``).

The ONNX graphs of :mod:`ddfa.nets.onnx_backend` are read by OpenVINO's own ONNX reader (no
``onnx`` package needed) and compiled for this CPU:

* **precision**: ``INFERENCE_PRECISION_HINT`` bf16 (AMX / AVX-512-BF16 units) or f32; int8
  (quantize-dequantize) graphs are compiled with f32 as the precision of what is not quantised;
* **input conversion in the graph** (OpenVINO's PrePostProcessor): with ``uint8_input`` the
  compiled network takes (N, H, W, 3) uint8 BGR, and converts, subtracts the mean, divides by
  the scale and transposes to NCHW itself (optionally resizes too, see ``resize_to``);
* **compiled models cached per input shape** (an LRU of ``max_shapes``); with
  ``dynamic=True`` one compiled model serves every shape but those that get their own: the
  regressor's small batches (``static_batches``), or, with ``static_from_side`` (YuNet),
  inputs of at least that longer side (photos down-scaled to the detector's working
  resolution, and tiles: a few shapes), not those of smaller photos, whose sizes are
  arbitrary (FaceBoxes, whose every input has one side of any length, runs all on the
  dynamic model). Compiling a shape takes 0.2-0.3 s (importing its blob 0.08-0.1 s) and saves
  ~15% per call; a new shape on the dynamic model costs 7-40 ms once. Which model runs an
  input depends on its shape only, so a photo's results never depend on what ran before.
  Models are prepared side by side, a thread each (:meth:`OpenVinoRunner.compile_in_background`),
  and a call waits only for its own;
* **no busy-waiting**: OpenVINO's CPU threads sleep when idle (checked by a test), one stream,
  latency mode, ``threads`` honoured (``INFERENCE_NUM_THREADS``);
* **compiled blobs on disk**: each compiled network is exported to the converted model's cache
  folder (one folder per shape, input conversion, settings, OpenVINO version and CPU) and
  imported from there on later starts without reading or converting the ONNX graph, checked
  before import like the model files (:class:`~ddfa.nets.model_cache.BlobDir`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .model_cache import BlobDir, entry_lock

#: file name of an exported compiled network in its :class:`BlobDir`
BLOB = "compiled.blob"
#: the network's output names, beside the blob (an imported network may name its outputs otherwise)
NAMES = "outputs.json"


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
def _cpu_identity() -> str:
    """The CPU model and flags (a compiled blob is only imported on the kind of CPU it was
    compiled for)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            lines = [line for line in handle if line.startswith(("model name", "flags"))][:2]
        return hashlib.sha256("".join(lines).encode()).hexdigest()[:16]
    except OSError:
        import platform

        return platform.processor() or platform.machine()


_CORE_LOCK = threading.Lock()


@functools.cache
def _core_unlocked():
    return import_openvino().Core()


def _core():
    """The process's one OpenVINO ``Core`` (models are prepared in several threads at once)."""
    with _CORE_LOCK:
        return _core_unlocked()


def openvino_computes_bf16() -> bool:
    """True when OpenVINO's CPU plugin computes bfloat16 on this CPU: natively (AMX,
    AVX-512-BF16), or emulated on AVX-512 CPUs without it (slower than float32). Elsewhere it
    would take a bf16 request and silently compute float32."""
    return "BF16" in _core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


@dataclass(frozen=True)
class _Compiled:
    """One compiled model, its infer request (one call at a time: ``lock``) and output count."""

    compiled: Any
    request: Any
    count: int
    lock: threading.Lock = field(default_factory=threading.Lock)


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
        dynamic: one compiled model for the input shapes of batches above ``static_batches``
            (else one per shape, LRU).
        static_batches: with ``dynamic``, batches up to this size get their own compiled model.
        static_from_side: with ``dynamic``, instead of ``static_batches``: inputs whose longer
            spatial side is at least this get their own compiled model, smaller ones the
            dynamic-shape model. (f32 results are the same either way; bf16 ones differ in
            rounding, ~1e-3 of a detector's outputs.)
        blob_dir: where OpenVINO keeps compiled blobs (None: not kept).
        max_shapes: compiled shapes kept.
    """

    def __init__(self, model: bytes | str | os.PathLike, *, precision: str = "f32", threads: int | None = None,
                 uint8_input: InputConversion | None = None, dynamic: bool = False,
                 blob_dir: Path | None = None, max_shapes: int = 8, static_batches: int = 0,
                 static_from_side: int | None = None):
        self._ov = import_openvino()
        self._source = model
        self._read: Any = None
        self._names: list[str] | None = None  # output names (kept beside a compiled blob: the graph's own)
        self.precision = precision
        self.threads = threads
        self.uint8_input = uint8_input
        self.takes_uint8 = uint8_input is not None
        self.dynamic = dynamic
        self.static_batches = static_batches
        self.static_from_side = static_from_side
        self.max_shapes = max(max_shapes, static_batches + 1)
        self._blob_root = Path(blob_dir) if blob_dir is not None else None
        self._compiled: OrderedDict[Any, _Compiled] = OrderedDict()
        self._preparing: dict[Any, threading.Event] = {}  # keys a thread is importing or compiling
        self._lock = threading.Lock()  # guards the two dicts (held briefly: never while preparing)
        self._read_lock = threading.RLock()  # the graph as read, and its clones (one thread at a time)
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

    @property
    def _model(self):
        """The network as read from its ONNX graph (read on first need: a start-up whose compiled
        networks are all in the cache reads no graph)."""
        with self._read_lock:
            if self._read is None:
                core, model = _core(), self._source
                if isinstance(model, bytes):  # OpenVINO reads ONNX from files: a private temporary copy
                    with tempfile.TemporaryDirectory() as tmp:
                        path = Path(tmp) / "model.onnx"
                        path.write_bytes(model)
                        self._read = core.read_model(str(path))
                else:
                    self._read = core.read_model(str(model))
            return self._read

    # ------------------------------------------------------------------ compiling
    def _prepared(self, shape: Sequence[int] | None, resize_to: tuple[int, int] | None):
        """The model with a fixed input ``shape`` (None: as exported) and the input conversion."""
        ov = self._ov
        with self._read_lock:
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

    def _variant(self, key, resize_to: tuple[int, int] | None) -> str:
        """Folder name of one compiled variant: readable, plus a digest of everything the blob
        depends on (shape, input conversion, settings, OpenVINO version, CPU model and flags)."""
        name = "dynamic" if key == "dynamic" else "x".join(map(str, key[0])) + (
            f"-to{resize_to[0]}x{resize_to[1]}" if resize_to else "")
        recipe = repr((key, self.uint8_input, sorted(self._config.items()), self._ov.get_version(), _cpu_identity()))
        return f"{self.precision}-t{self.threads or 0}-{name}-{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"

    def _key(self, shape: tuple[int, ...], resize_to: tuple[int, int] | None):
        """Which compiled model runs an input of ``shape``: ``"dynamic"`` or ``(shape, resize_to)``."""
        return "dynamic" if self._dynamic_for(shape) and resize_to is None else (shape, resize_to)

    def _request(self, shape: tuple[int, ...], resize_to: tuple[int, int] | None) -> _Compiled:
        """The compiled model for inputs of ``shape``: held, being prepared by another thread
        (waited for), or imported or compiled now. Different shapes are prepared at the same
        time in different threads (an import keeps one core busy for 0.05-0.15 s)."""
        key = self._key(shape, resize_to)
        while True:
            with self._lock:
                entry = self._compiled.get(key)
                if entry is not None:
                    self._compiled.move_to_end(key)
                    return entry
                other = self._preparing.get(key)
                if other is None:
                    done = self._preparing[key] = threading.Event()
            if other is not None:
                other.wait()  # then held, or that thread failed: try here, where it can be seen
                continue
            try:
                compiled = self._load(key, shape, resize_to)
                entry = _Compiled(compiled, compiled.create_infer_request(), len(compiled.outputs))
                with self._lock:
                    self._compiled[key] = entry
                    while len(self._compiled) > self.max_shapes:
                        self._compiled.popitem(last=False)
                return entry
            finally:
                with self._lock:
                    del self._preparing[key]
                done.set()

    def _load(self, key, shape: tuple[int, ...], resize_to: tuple[int, int] | None):
        """Import the compiled model of ``key`` from its blob, or compile (and export) it."""
        if self._blob_root is None:
            compiled = self._compile(shape if key != "dynamic" else None, resize_to)
        else:  # one folder per compiled variant, its blob checked before import
            blobs = BlobDir(self._blob_root / self._variant(key, resize_to))
            compiled = self._import(blobs)
            if compiled is None:
                with entry_lock(blobs.directory):  # other processes wanting it wait, then import it
                    compiled = self._import(blobs)
                    if compiled is None:
                        compiled = self._compile(shape if key != "dynamic" else None, resize_to)
                        exported = compiled.export_model()  # bytes, or a BytesIO in some OpenVINO versions
                        blobs.write(BLOB, exported.getvalue() if hasattr(exported, "getvalue") else bytes(exported))
                        blobs.write(NAMES, json.dumps(self._names).encode())
        return compiled

    def _import(self, blobs: BlobDir):
        """The compiled model in ``blobs`` (checked first), or None when absent or unreadable
        (e.g. written by another OpenVINO build: then it is compiled again)."""
        data, names = blobs.read(BLOB), blobs.read(NAMES)
        if data is None or names is None:
            return None
        try:
            compiled = _core().import_model(data, "CPU", dict(self._config))
        except Exception:
            return None
        self._names = [str(name) for name in json.loads(names)]
        return compiled

    def _compile(self, shape: tuple[int, ...] | None, resize_to: tuple[int, int] | None):
        """Compile the graph for input ``shape`` (None: dynamic)."""
        compiled = _core().compile_model(self._prepared(shape, resize_to), "CPU", dict(self._config))
        self._names = self._graph_output_names()
        return compiled

    def _graph_output_names(self) -> list[str]:
        with self._read_lock:
            return [output.get_any_name() for output in self._model.outputs]

    def _dynamic_for(self, shape: tuple[int, ...]) -> bool:
        """Whether an input of ``shape`` runs on the dynamic-shape model: with ``dynamic``, batches
        above ``static_batches`` (smaller ones get a model compiled for their shape: ~20% faster),
        or with ``static_from_side`` inputs whose longer spatial side is below it."""
        if not self.dynamic or not shape:
            return self.dynamic
        if self.static_from_side is None:
            return shape[0] > self.static_batches
        spatial = shape[1:3] if self.takes_uint8 else shape[2:4]  # NHWC uint8, else NCHW
        return max(spatial) < self.static_from_side

    def compile_in_background(self, *shapes: tuple[int, ...]) -> None:
        """Start compiling (or importing from the cache) the models for inputs of these shapes
        (none, or ``()``: the dynamic-shape one), a thread per compiled model (OpenVINO releases
        the GIL meanwhile), so that start-up work goes on; a call waits only for the model it
        runs on. Importing a cached blob still takes 0.05-0.15 s per network (the plugin
        generates its kernels); a shape that the dynamic-shape model runs is also run once on
        zeros, since its first call at a new shape prepares that shape (7-40 ms)."""
        wanted = [tuple(shape) for shape in shapes] or [()]
        by_model: dict[Any, list[tuple[int, ...]]] = {}
        for shape in wanted:
            if shape or self.dynamic:
                by_model.setdefault(self._key(shape, None), []).append(shape)

        def work(shapes: list[tuple[int, ...]]) -> None:
            try:
                entry = self._request(shapes[0], None)
                for shape in shapes:
                    if shape and self._dynamic_for(shape):
                        with entry.lock:
                            entry.request.infer({0: np.zeros(shape, np.uint8 if self.takes_uint8 else np.float32)})
            except Exception:  # the first call compiles again and raises where it can be seen
                pass

        # not daemons: the interpreter waits for them at exit (killing a thread inside OpenVINO's
        # compiler aborts the process: "terminate called without an active exception")
        for shapes_of_model in by_model.values():
            threading.Thread(target=work, args=(shapes_of_model,), name="ddfa-openvino-compile", daemon=False).start()

    # ------------------------------------------------------------------ running
    def __call__(self, x: np.ndarray, resize_to: tuple[int, int] | None = None) -> list[np.ndarray]:
        """Run on one input: (N, H, W, 3) uint8 with ``uint8_input``, else the network's
        float32 tensor. ``resize_to=(h, w)``: resize the uint8 input to h x w in the graph."""
        x = np.ascontiguousarray(x)
        entry = self._request(tuple(x.shape), resize_to)
        with entry.lock:
            result = entry.request.infer({0: x}, share_inputs=True)
            return [np.asarray(result[i]) for i in range(entry.count)]

    @property
    def output_names(self) -> list[str]:
        """Names of the network's outputs, in the order :meth:`__call__` returns them."""
        if self._names is None:
            self._names = self._graph_output_names()
        return list(self._names)

    @property
    def compiled_shapes(self) -> list:
        """Keys of the compiled models held (input shape and resize target, or ``"dynamic"``), least
        recently used first."""
        with self._lock:
            return list(self._compiled)


__all__ = ["InputConversion", "OpenVinoRunner", "import_openvino", "openvino_computes_bf16"]
