"""Rendering and export of results: overlays, and the registry of named outputs."""

from .draw import draw_landmarks
from .outputs import OUTPUTS, register_file_output, register_image_output, render_output, write_outputs

__all__ = [
    "OUTPUTS",
    "draw_landmarks",
    "register_file_output",
    "register_image_output",
    "render_output",
    "write_outputs",
]
