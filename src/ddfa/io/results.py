"""Result files: one JSON document per image.

Schema (``ddfa align``)::

    {"image": "<input path>", "width": W, "height": H, "model": "mb05",
     "frame": "image pixels, 0-based, origin at the top-left pixel centre, y down, z towards camera",
     "pose_convention": "AFLW2000-3D: degrees; yaw>0 face turned to image left, pitch>0 chin up, roll>0 clockwise",
     "faces": [{"box": [x1, y1, x2, y2], "score": s, "roi_box": [sx, sy, ex, ey],
                "params": [62 floats], "landmarks_68": [[x, y, z] x 68],
                "pose": {"yaw": .., "pitch": .., "roll": ..},
                "landmarks_visible": [68 booleans],
                "uncertainty": u, "confidence": c}, ...]}   # the last two with --refine flip|full
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

FRAME_NOTE = "image pixels, 0-based, origin at the top-left pixel centre, x right, y down, z towards the camera"
POSE_NOTE = "AFLW2000-3D convention, degrees: yaw>0 face turned to the image left, pitch>0 chin up, roll>0 clockwise in the image"


def image_result(image_path: str, shape: tuple[int, ...], faces: Sequence, model: str, *, dense: bool = False) -> dict[str, Any]:
    """The JSON-ready record of one image's faces."""
    return {
        "image": str(image_path),
        "width": int(shape[1]),
        "height": int(shape[0]),
        "model": model,
        "frame": FRAME_NOTE,
        "pose_convention": POSE_NOTE,
        "faces": [face.to_dict(dense=dense) for face in faces],
    }


#: version of the layout of every JSON document ddfa writes (``"schema_version"`` key);
#: bumped whenever a key is renamed, removed or changes meaning.
SCHEMA_VERSION = "1.0"


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write JSON atomically (temporary file, then rename); creates the folder.

    A dict gets ``"schema_version": SCHEMA_VERSION`` as its first key (every JSON document
    ddfa writes goes through here).
    """
    if isinstance(data, dict):
        data = {"schema_version": SCHEMA_VERSION, **{k: v for k, v in data.items() if k != "schema_version"}}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".part")
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=1)
        handle.write("\n")
    os.replace(tmp, path)
    return path
