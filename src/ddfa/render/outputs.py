"""The named outputs of ``ddfa align --outputs`` (and ``ddfa video``), as a registry.

Two kinds:

* **image outputs** ``fn(image, faces) -> (H, W, 3) uint8 BGR``: overlays and renderings of
  all faces of one photo (e.g. ``2d_sparse``); saved as ``<stem>_<name>.png``.
* **file outputs** ``fn(image, faces, out_dir, stem) -> list[Path]``: anything else (meshes,
  raw arrays), written by the function itself.

Register new outputs with :func:`register_image_output` / :func:`register_file_output`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..errors import InputError
from ..io.image import write_image
from .draw import draw_landmarks


@dataclass(frozen=True)
class OutputSpec:
    name: str
    kind: str  # "image" or "file"
    function: Callable
    description: str


OUTPUTS: dict[str, OutputSpec] = {}


def register_image_output(name: str, description: str):
    """Decorator: ``fn(image, faces) -> image`` becomes the image output ``name``."""

    def wrap(fn):
        OUTPUTS[name] = OutputSpec(name, "image", fn, description)
        return fn

    return wrap


def register_file_output(name: str, description: str):
    """Decorator: ``fn(image, faces, out_dir, stem) -> list[Path]`` becomes the file output ``name``."""

    def wrap(fn):
        OUTPUTS[name] = OutputSpec(name, "file", fn, description)
        return fn

    return wrap


def image_output_names() -> list[str]:
    return [name for name, spec in OUTPUTS.items() if spec.kind == "image"]


def check_output_names(names: Sequence[str], *, images_only: bool = False) -> list[str]:
    """Validate output names (raises :class:`InputError` naming the unknown ones)."""
    allowed = image_output_names() if images_only else list(OUTPUTS)
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise InputError(f"unknown output(s) {', '.join(unknown)}; choose from {', '.join(allowed)}")
    return list(dict.fromkeys(names))


def render_output(name: str, image: np.ndarray, faces: Sequence) -> np.ndarray:
    """Render the image output ``name`` of ``faces`` on ``image`` (BGR uint8)."""
    spec = OUTPUTS.get(name)
    if spec is None or spec.kind != "image":
        raise InputError(f"{name!r} is not an image output; choose from {', '.join(image_output_names())}")
    return spec.function(image, faces)


def write_outputs(names: Sequence[str], image: np.ndarray, faces: Sequence, out_dir: Path, stem: str) -> list[Path]:
    """Write every requested output of one photo into ``out_dir``; returns the files written."""
    out_dir = Path(out_dir)
    written: list[Path] = []
    for name in check_output_names(names):
        spec = OUTPUTS[name]
        if spec.kind == "image":
            path = out_dir / f"{stem}_{name}.png"
            write_image(path, spec.function(image, faces))
            written.append(path)
        else:
            written.extend(spec.function(image, faces, out_dir, stem))
    return written


@register_image_output("2d_sparse", "68 landmarks and boxes drawn on the photo")
def _sparse(image, faces):
    return draw_landmarks(image, faces)
