"""Running networks with onnxruntime, exported from the torch modules on first use.

On CPU, onnxruntime runs FaceBoxes and MobileNet-V1 three to five times faster than eager
torch. The ONNX graph is exported from the loaded torch module (so it holds exactly the same
weights) and cached under ``<cache dir>/onnx/`` keyed by the weights' sha256; nothing needs to
be downloaded or built by hand. Outputs equal torch's to float32 rounding (checked in tests).
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
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
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
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
    """Export (or reuse the cached export of) ``module`` and open an onnxruntime session.

    The cache file is ``<cache_dir>/onnx/<tag>-<weights sha256[:16]>-torch<version>.onnx``. When
    the cache is not writable the export is kept in memory only.
    """
    key = f"{tag}-{state_dict_digest(module)[:16]}-torch{torch.__version__.split('+')[0]}.onnx"
    with _EXPORT_LOCK:
        path = Path(cache_dir) / "onnx" / key if cache_dir is not None else None
        if path is not None and path.is_file():
            try:
                return OnnxRunner(path, threads)
            except Exception:
                path.unlink(missing_ok=True)  # a broken cache entry: export again
        try:
            data = export_onnx(
                module, example, path, output_names=output_names, dynamic_axes=dynamic_axes
            )
        except OSError:
            data = export_onnx(module, example, None, output_names=output_names, dynamic_axes=dynamic_axes)
        return OnnxRunner(data, threads)
