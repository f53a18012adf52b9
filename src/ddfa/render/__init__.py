"""Rendering and export of results: overlays, the rasteriser and dense outputs, and the
registry of named outputs (``ddfa align --outputs``).

Every rendering takes the photo (or its shape) first and the faces second, like OpenCV's
drawing calls: ``render_shaded(image, faces)``, ``render_depth(image_or_shape, faces)``,
``draw_pose(image, faces)``, ``uv_texture(image, face)``.

The names below are imported on first use (PEP 562): importing :mod:`ddfa.render` or
:mod:`ddfa.render.outputs` does not load numba; the rasteriser and shading kernels are
loaded (and JIT-compiled or read from numba's cache) by the first rendering.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .assets import render_assets
    from .dense import render_depth, render_pncc, render_shaded, sample_image, vertex_colors, vertex_normals
    from .draw import draw_dense, draw_landmarks, draw_pose
    from .export import save_obj, save_ply
    from .outputs import OUTPUTS, register_file_output, register_image_output, render_output, write_outputs
    from .paf import draw_paf, paf_anchors, paf_features
    from .raster import Raster, rasterize
    from .texture import uv_texture

#: public name -> submodule that defines it
_HOMES = {
    "OUTPUTS": "outputs",
    "Raster": "raster",
    "draw_dense": "draw",
    "draw_landmarks": "draw",
    "draw_paf": "paf",
    "draw_pose": "draw",
    "paf_anchors": "paf",
    "paf_features": "paf",
    "rasterize": "raster",
    "register_file_output": "outputs",
    "register_image_output": "outputs",
    "render_assets": "assets",
    "render_depth": "dense",
    "render_output": "outputs",
    "render_pncc": "dense",
    "render_shaded": "dense",
    "sample_image": "dense",
    "save_obj": "export",
    "save_ply": "export",
    "uv_texture": "texture",
    "vertex_colors": "dense",
    "vertex_normals": "dense",
    "write_outputs": "outputs",
}

__all__ = [
    "OUTPUTS",
    "Raster",
    "draw_dense",
    "draw_landmarks",
    "draw_paf",
    "draw_pose",
    "paf_anchors",
    "paf_features",
    "rasterize",
    "register_file_output",
    "register_image_output",
    "render_assets",
    "render_depth",
    "render_output",
    "render_pncc",
    "render_shaded",
    "sample_image",
    "save_obj",
    "save_ply",
    "uv_texture",
    "vertex_colors",
    "vertex_normals",
    "write_outputs",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))
