"""``ddfa export``: networks to ONNX, checkpoints to the 3DDFA_V2 layout."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..errors import OutputError, one_line


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "export",
        help="export networks to ONNX or checkpoints to the 3DDFA_V2 layout",
        description="Export the regressor (input (B,3,120,120) float32 normalised BGR crops, output "
        "(B,62) whitened parameters) or the FaceBoxes detector to ONNX, or a checkpoint to 3DDFA_V2's "
        "state-dict layout.",
    )
    parser.add_argument("what", choices=("onnx", "faceboxes-onnx", "v2-checkpoint"),
                        help="onnx: the regressor; faceboxes-onnx: the detector; v2-checkpoint: a .pth "
                        "loadable by 3DDFA_V2")
    parser.add_argument("--output", "-o", required=True, metavar="FILE", help="file to write")
    parser.add_argument("--model", default="mb05", help="regressor name or checkpoint (default: mb05)")
    parser.add_argument("--assets", metavar="DIR", default=None, help="asset directory (default: $DDFA_HOME)")
    parser.set_defaults(func=run)
    return parser


def run(args) -> int:
    import torch

    from ..nets.onnx_backend import export_onnx

    out = _check_output(args.output)
    if args.what == "faceboxes-onnx":
        from ..detect.faceboxes import FaceBoxesDetector

        net = FaceBoxesDetector(assets=args.assets, backend="torch").net
        export_onnx(net, torch.zeros(1, 3, 256, 256), out, output_names=("loc", "logits"),
                    dynamic_axes={"input": {0: "batch", 2: "height", 3: "width"}, "loc": {0: "batch", 1: "priors"},
                                  "logits": {0: "batch", 1: "priors"}})
    else:
        from ..nets.registry import create_model

        regressor = create_model(args.model, assets=args.assets, backend="torch")
        if args.what == "onnx":
            export_onnx(regressor.net, torch.zeros(1, 3, 120, 120), out, output_names=("params",),
                        dynamic_axes={"input": {0: "batch"}, "params": {0: "batch"}})
        else:
            import io

            from ..io.atomic import atomic_write_bytes
            from ..nets.checkpoint import to_v2_state_dict

            buffer = io.BytesIO()
            torch.save(to_v2_state_dict(regressor.net.state_dict()), buffer)
            atomic_write_bytes(out, buffer.getvalue())
    print(one_line(f"wrote {out}"))
    return 0


def _check_output(text: str) -> Path:
    """The output file, refused before any work when it cannot be written.

    Raises:
        OutputError: a folder (or a name ending in a separator), a path under a file, or a
            folder that cannot be created or written.
    """
    from ..io.atomic import ensure_folder

    path = Path(text)
    if text.endswith(("/", os.sep)) or path.is_dir():
        raise OutputError(f"{text}: --output is a folder; give a file name, e.g. {path / 'model.onnx'}")
    ensure_folder(path.parent if str(path.parent) else Path("."), "folder of --output")
    return path
