"""ONNX export of the torch networks, and running them with onnxruntime.

On CPU, onnxruntime runs FaceBoxes and MobileNet-V1 three to five times faster than eager
torch, and OpenVINO (:mod:`ddfa.nets.openvino_backend`) reads the same graphs. The ONNX graph
is exported from the loaded torch module (so it holds exactly the same weights) and cached by
:mod:`ddfa.nets.model_cache`, keyed on the source weights' sha256 and the export recipe, and
verified before each use; nothing needs to be downloaded or built by hand. Outputs equal
torch's to float32 rounding (checked in tests). Only the export imports torch and onnx; running
a cached graph imports neither.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .engines import onnxruntime_available

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["OnnxRunner", "export_onnx", "onnxruntime_available", "state_dict_digest"]


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
    import torch

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
    """An onnxruntime session with the interface ``runner(x: np.ndarray) -> list[np.ndarray]``.

    Args:
        model: serialised ONNX bytes or a path.
        threads: intra-op threads (None: onnxruntime's default, all cores).
    """

    takes_uint8 = False

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

    @property
    def output_names(self) -> list[str]:
        """Names of the network's outputs, in the order :meth:`__call__` returns them."""
        return [output.name for output in self.session.get_outputs()]

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        """Run on one input array (of the graph's input dtype)."""
        return self.session.run(None, {self.input_name: np.ascontiguousarray(x)})
