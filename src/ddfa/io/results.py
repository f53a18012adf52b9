"""Result files: one JSON document per image.

Schema (``ddfa align``)::

    {"image": "<input path>", "width": W, "height": H, "model": "mb05",
     "frame": "image pixels, 0-based, origin at the top-left pixel centre, y down, z towards camera",
     "pose_convention": "AFLW2000-3D: degrees; yaw>0 face turned to image left, pitch>0 chin up, roll>0 clockwise",
     "faces": [{"box": [x1, y1, x2, y2], "score": s, "roi_box": [sx, sy, ex, ey],
                "params": [62 floats], "landmarks_68": [[x, y, z] x 68],
                "pose": {"yaw": .., "pitch": .., "roll": ..}}, ...]}
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError

FRAME_NOTE = "image pixels, 0-based, origin at the top-left pixel centre, x right, y down, z towards the camera"
POSE_NOTE = ("AFLW2000-3D convention, degrees: yaw>0 face turned to the image left, pitch>0 chin up, "
             "roll>0 clockwise in the image")


def image_result(image_path: str, shape: tuple[int, ...], faces: Sequence, model: str, *,
                 dense: bool = False) -> dict[str, Any]:
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


def read_mapping(path: str | os.PathLike, parse: Callable[[str], Any],
                 parse_errors: type[Exception] | tuple[type[Exception], ...], what: str) -> dict:
    """Read a text file that must hold a mapping (JSON, YAML, ...), with one-line errors.

    Args:
        path: the file.
        parse: text -> data (e.g. ``json.loads``).
        parse_errors: the exception(s) ``parse`` raises on malformed text.
        what: what the file is, for messages (``"JSON file"``, ``"training config"``).

    Raises:
        InputError: the file cannot be read, does not parse, or is not a mapping.
    """
    path = Path(path)
    try:
        data = parse(path.read_text())
    except OSError as exc:
        raise InputError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: the {what} is not text") from None
    except parse_errors as exc:
        raise InputError(f"{path}: not a valid {what} ({str(exc).splitlines()[0] if str(exc) else exc!r})") \
            from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: the {what} must be a mapping of keys to values")
    return data


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
