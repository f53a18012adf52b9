"""Running networks with onnxruntime, exported from the torch modules on first use.

On CPU, onnxruntime runs FaceBoxes and MobileNet-V1 three to five times faster than eager
torch. The ONNX graph is exported from the loaded torch module (so it holds exactly the same
weights) and cached under ``<cache dir>/onnx/`` keyed by the weights' sha256; nothing needs to
be downloaded or built by hand. Outputs equal torch's to float32 rounding (checked in tests).

The cache is not trusted: each ``<name>.onnx`` is written (atomically) with a sidecar
``<name>.onnx.json`` holding the sha256 of the ONNX file and of the weights it was exported
from. Before use, the file's bytes must match that checksum *and* the session must reproduce
the torch module's output on a fixed probe input; a cached file that fails either check (a
replaced or corrupted file, a stale sidecar) is exported again and overwritten, never used.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

_EXPORT_LOCK = threading.Lock()


def onnxruntime_available() -> bool:
    """True when onnxruntime (to run) and onnx (which torch's exporter needs) are importable."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except Exception:
        return False
    return True


def state_dict_digest(module: torch.nn.Module) -> str:
    """sha256 over a module's state dict (names, shapes and bytes), for cache keys."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def export_onnx(
    module: torch.nn.Module,
    example: torch.Tensor,
    path: str | os.PathLike | None,
    *,
    input_name: str = "input",
    output_names: Sequence[str] = ("output",),
    dynamic_axes: dict | None = None,
    opset: int = 17,
) -> bytes:
    """Export ``module`` (in eval mode, on CPU) to ONNX; write it to ``path`` if given.

    Returns the serialised model.
    """
    module = module.eval().cpu()
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example.cpu(),),
            buffer,  # type: ignore[arg-type]  # torch accepts file objects
            input_names=[input_name],
            output_names=list(output_names),
            dynamic_axes=dynamic_axes,
            opset_version=opset,
            dynamo=False,
        )
    data = buffer.getvalue()
    if path is not None:
        from ..io.atomic import atomic_write_bytes, ensure_folder

        path = Path(path)
        ensure_folder(path.parent, "folder of the ONNX file")
        atomic_write_bytes(path, data)  # temporary file beside it, then rename; umask permissions
    return data


class OnnxRunner:
    """An onnxruntime session with the interface ``runner(x: np.ndarray) -> tuple[np.ndarray]``.

    Args:
        model: serialised ONNX bytes or a path.
        threads: intra-op threads (None: onnxruntime's default, all cores).
    """

    def __init__(self, model: bytes | str | os.PathLike, threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = int(threads)
        options.log_severity_level = 3
        # No busy-waiting between runs: ddfa runs two sessions (detector and regressor) in turn,
        # and one session's spinning threads would steal the cores from the other.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        source = model if isinstance(model, bytes) else str(model)
        self.session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        """Run on one input array (of the graph's input dtype)."""
        return self.session.run(None, {self.input_name: np.ascontiguousarray(x)})


def cached_onnx_runner(
    module: torch.nn.Module,
    example: torch.Tensor,
    *,
    tag: str,
    cache_dir: Path | None,
    output_names: Sequence[str],
    dynamic_axes: dict,
    threads: int | None = None,
) -> OnnxRunner:
    """Export (or reuse the verified cached export of) ``module`` and open an onnxruntime session.

    The cache file is ``<cache_dir>/onnx/<tag>-<weights sha256[:16]>-torch<version>.onnx`` with
    its sidecar ``.onnx.json`` (see the module docstring for how it is verified). When the cache
    is not writable the export is kept in memory only.
    """
    source = state_dict_digest(module)
    key = f"{tag}-{source[:16]}-torch{torch.__version__.split('+')[0]}.onnx"
    with _EXPORT_LOCK:
        path = Path(cache_dir) / "onnx" / key if cache_dir is not None else None
        if path is not None and path.is_file():
            runner = _verified_cached_runner(path, source, module, example, threads)
            if runner is not None:
                return runner
        data = export_onnx(module, example, None, output_names=output_names, dynamic_axes=dynamic_axes)
        if path is not None:
            _write_cache(path, data, source)
        return OnnxRunner(data, threads)


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _write_cache(path: Path, data: bytes, source: str) -> None:
    from ..io.atomic import atomic_write_bytes

    meta = {"onnx_sha256": hashlib.sha256(data).hexdigest(), "source_sha256": source,
            "torch": torch.__version__.split("+")[0]}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)
        atomic_write_bytes(_sidecar(path), (json.dumps(meta, indent=1) + "\n").encode())
    except OSError:  # a read-only or full cache: the export is used from memory
        pass


def _verified_cached_runner(path: Path, source: str, module: torch.nn.Module, example: torch.Tensor,
                            threads: int | None) -> OnnxRunner | None:
    """A session of the cached file if its checksum and its behaviour check out, else None."""
    try:
        data = path.read_bytes()  # verify and load the same bytes
        meta = json.loads(_sidecar(path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("source_sha256") != source or \
            meta.get("onnx_sha256") != hashlib.sha256(data).hexdigest():
        return None
    try:
        runner = OnnxRunner(data, threads)
    except Exception:
        return None
    return runner if _same_outputs(module, example, runner) else None


def _same_outputs(module: torch.nn.Module, example: torch.Tensor, runner: OnnxRunner) -> bool:
    """True when the session computes what the torch module computes on a fixed probe input."""
    generator = torch.Generator().manual_seed(12)
    probe = torch.randn(example.shape, generator=generator, dtype=torch.float32)
    module = module.eval()
    device = next(iter(module.parameters()), torch.zeros(0)).device
    with torch.inference_mode():
        expected = module(probe.to(device))
    expected = [expected] if isinstance(expected, torch.Tensor) else list(expected)
    try:
        got = runner(probe.numpy())
    except Exception:
        return False
    if len(got) != len(expected):
        return False
    for want, have in zip(expected, got):
        want = want.float().cpu().numpy()
        if want.shape != np.shape(have):
            return False
        scale = max(1.0, float(np.abs(want).max(initial=0.0)))
        if not np.allclose(have, want, rtol=1e-3, atol=1e-3 * scale):
            return False
    return True
