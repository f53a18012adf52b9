"""Result files: one JSON document per image.

Schema (``ddfa align``)::

    {"image": "<input path>", "width": W, "height": H, "model": "mb05",
     "frame": "image pixels, 0-based, origin at the top-left pixel centre, y down, z towards camera",
     "pose_convention": "AFLW2000-3D: degrees; yaw>0 face turned to image left, pitch>0 chin up, roll>0 clockwise",
     "faces": [{"box": [x1, y1, x2, y2], "score": s, "roi_box": [sx, sy, ex, ey],
                "params": [62 floats], "landmarks_68": [[x, y, z] x 68],
                "pose": {"yaw": .., "pitch": .., "roll": ..},
                "keypoints_5": [[x, y] x 5],
                "landmarks_visible": [68 booleans],
                "uncertainty": u, "confidence": c}, ...]}

``keypoints_5`` (schema 1.1) is written when the detector gives 5 facial points (YuNet,
CenterFace): the person's right eye, left eye, nose tip, right and left mouth corners.
``landmarks_visible`` (schema 1.2) says for each of the 68 landmarks whether it is visible in the
photo (:mod:`ddfa.render.visibility`); ``uncertainty`` and ``confidence`` (schema 1.2) are written
with test-time refinement only (``--refine flip|full``; :mod:`ddfa.pipeline.refine`).

JSON has no NaN: a number that is not finite is written as ``null`` (:func:`write_json`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .atomic import atomic_open, output_error

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
#: bumped whenever a key is renamed, removed or changes meaning (the minor number when a key
#: is added: 1.1 added ``keypoints_5``, 1.2 ``landmarks_visible``, ``uncertainty`` and
#: ``confidence``, 1.3 ``backend`` and ``precision`` to ``ddfa align``'s run summary).
SCHEMA_VERSION = "1.3"


def json_ready(data: Any) -> Any:
    """``data`` with numpy scalars and arrays as plain Python values and every non-finite float
    (NaN, +-inf) as None, so that it serialises as valid JSON (which has no NaN)."""
    if isinstance(data, dict):
        return {str(k): json_ready(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [json_ready(v) for v in data]
    if isinstance(data, np.ndarray):
        return json_ready(data.tolist())
    if isinstance(data, np.generic):
        data = data.item()
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, os.PathLike):
        return os.fspath(data)
    return data


def dumps(data: Any, **kwargs: Any) -> str:
    """Serialise ``data`` as strict JSON: non-finite numbers become ``null`` (see :func:`json_ready`).

    Plain Python values, all finite (what ``to_dict`` methods give), go to the json module's
    encoder as they are; only data it refuses (a NaN or infinity, numpy values, paths) is made
    JSON-ready first, a walk over every value that took ~1.5 ms for a face's record.
    """
    try:
        return json.dumps(data, allow_nan=False, **kwargs)
    except (ValueError, TypeError):
        return json.dumps(json_ready(data), allow_nan=False, **kwargs)


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write JSON atomically (temporary file in the same folder, then rename); creates the folder.

    A dict gets ``"schema_version": SCHEMA_VERSION`` as its first key (every JSON document
    ddfa writes goes through here). Numbers that are not finite (NaN, infinity, e.g. from a
    broken model) are written as ``null``: the file is always valid JSON. The file gets the
    umask's permissions (0644 under the usual umask), like every other output.

    Raises:
        OutputError: the file cannot be written (folder not writable, disk full, ...); no
            partial file is left behind.
    """
    if isinstance(data, dict):
        data = {"schema_version": SCHEMA_VERSION, **{k: v for k, v in data.items() if k != "schema_version"}}
    text = dumps(data, indent=1) + "\n"
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(exc, path.parent, "cannot create the folder") from None
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path
