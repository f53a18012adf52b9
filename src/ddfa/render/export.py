"""Per-face mesh export: PLY and OBJ files in the export frame of :mod:`ddfa.io.mesh`
(right-handed ``(x, -y, z)`` in image pixels; triangles written ``(a, c, b)`` so that their
normals point out of the face), with per-vertex
colours sampled from the photo and, for OBJ, an optional UV texture."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..assets.store import AssetsLike
from ..io.mesh import export_triangles, image_to_export_frame, write_obj, write_ply
from .dense import vertex_colors


def _colors_rgb(face: Any, image: np.ndarray | None) -> np.ndarray | None:
    if image is None:
        return None
    return vertex_colors(image, face.vertices)[:, ::-1]  # BGR photo -> RGB file colours


def save_ply(face: Any, path: str | os.PathLike, image: np.ndarray | None = None, *, binary: bool = True) -> Path:
    """Write one face's dense mesh as PLY.

    Args:
        face: a :class:`~ddfa.face.Face`.
        path: the ``.ply`` file.
        image: the BGR photo; when given, each vertex gets the colour under it (bilinear).
        binary: binary little-endian (default) or ASCII PLY.
    """
    return write_ply(path, image_to_export_frame(face.vertices), export_triangles(face.triangles),
                     _colors_rgb(face, image), binary=binary)


def save_obj(face: Any, path: str | os.PathLike, image: np.ndarray | None = None, *, texture: bool = True,
             texture_size: int = 512, assets: AssetsLike = None) -> list[Path]:
    """Write one face's dense mesh as OBJ.

    Args:
        face: a :class:`~ddfa.face.Face`.
        path: the ``.obj`` file.
        image: the BGR photo; when given, vertices get colours (``v x y z r g b``) and, with
            ``texture``, a UV texture of ``texture_size`` pixels is written beside it
            (``<stem>.mtl`` + ``<stem>_texture.png``, see :func:`ddfa.render.uv_texture`).
        texture: include UV coordinates and the texture (needs ``BFM_UV.mat``).
        assets: asset store or folder for the UV layout (default: the face's, see
            :func:`ddfa.render.assets.assets_of`).

    Returns:
        the files written.
    """
    uv = tex = None
    if texture:
        from .assets import assets_of

        uv = assets_of(face, assets).uv_coords(face.model)
        if image is not None:
            from .texture import uv_texture

            tex = uv_texture(image, face, texture_size, assets=assets)
    return write_obj(path, image_to_export_frame(face.vertices), export_triangles(face.triangles),
                     _colors_rgb(face, image), uv, tex)
