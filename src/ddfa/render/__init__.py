"""Rendering and export of results: overlays, the rasteriser and dense outputs, and the
registry of named outputs (``ddfa align --outputs``)."""

from .draw import draw_dense, draw_landmarks, draw_pose
from .raster import Raster, rasterize
from .outputs import OUTPUTS, register_file_output, register_image_output, render_output, write_outputs
from .dense import render_depth, render_pncc, render_shaded, sample_image, vertex_colors, vertex_normals
from .texture import uv_texture
from .paf import draw_paf, paf_anchors, paf_features
from .export import save_obj, save_ply
from .assets import render_assets

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
