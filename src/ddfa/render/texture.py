"""UV texture maps: the photo unwrapped onto the face's UV layout (``BFM_UV.mat``).

The UV layout gives every vertex of the 53,215-vertex model a ``(u, v)`` in [0, 1] (v up,
as in OBJ files); a texture of ``size x size`` pixels puts ``(u, v)`` at column
``u·(size-1)``, row ``(1-v)·(size-1)``. Each texel is filled by rasterising the mesh in UV
space, interpolating the image-frame position of the surface point it shows, and sampling
the photo there (bilinear): sharper than interpolating per-vertex colours.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..assets.store import AssetsLike
from ..errors import InputError
from .assets import assets_of
from .dense import sample_image, vertex_normals
from .raster import rasterize


def uv_layout(face: Any, size: int, *, assets: AssetsLike = None) -> np.ndarray:
    """(N, 2) float32 texel positions ``(col, row)`` of the face's vertices in a size x size map
    (``assets``: as :func:`uv_texture`)."""
    uv = assets_of(face, assets).uv_coords(face.model)
    return np.stack([uv[:, 0] * (size - 1), (1.0 - uv[:, 1]) * (size - 1)], axis=1).astype(np.float32)


def uv_texture(image: np.ndarray, face: Any, size: int = 256, *, assets: AssetsLike = None,
               visible_only: bool = True, background: Sequence[int] = (0, 0, 0)) -> np.ndarray:
    """The UV texture of one face.

    Args:
        image: (H, W, 3) uint8 BGR photo the face was found in.
        face: a :class:`~ddfa.face.Face`.
        size: texture width and height in pixels.
        assets: asset store or folder for ``BFM_UV.mat`` (default: the face's, see
            :func:`ddfa.render.assets.assets_of`).
        visible_only: leave texels whose surface point is hidden in the photo (by the face
            itself, e.g. the far cheek of a turned head) at ``background`` instead of copying
            the colour of whatever hides it. Texels whose point lies outside the photo are
            always left at ``background``.
        background: BGR colour of texels outside the layout (and hidden ones).

    Returns:
        (size, size, 3) uint8 BGR texture.
    """
    size = int(size)
    if size < 2:
        raise InputError(f"texture size must be at least 2 pixels, got {size}")
    image = np.asarray(image)
    out = np.empty((size * size, 3), np.uint8)
    out[:] = np.asarray(background, np.uint8)
    layout = uv_layout(face, size, assets=assets)
    flat_uv = np.concatenate([layout, np.zeros((len(layout), 1), np.float32)], axis=1)
    texels = rasterize(flat_uv, face.triangles, size, size)
    if len(texels.pixels) == 0:
        return out.reshape(size, size, 3)
    vertices = np.asarray(face.vertices, dtype=np.float32)
    points = texels.interpolate_pixels(vertices, face.triangles)  # (P, 3) image-frame points
    height, width = image.shape[:2]
    keep = (points[:, 0] > -0.5) & (points[:, 0] < width - 0.5) & (points[:, 1] > -0.5) & (points[:, 1] < height - 0.5)
    if visible_only:
        seen = rasterize(vertices, face.triangles, height, width).depth
        col = np.clip(np.rint(points[:, 0]).astype(np.int64), 0, width - 1)
        row = np.clip(np.rint(points[:, 1]).astype(np.int64), 0, height - 1)
        # the depth test compares with the nearest pixel centre, up to 0.7 px away: allow the
        # depth change over that distance on steep surfaces; surfaces facing away are hidden
        facing = texels.interpolate_pixels(vertex_normals(vertices, face.triangles)[:, 2], face.triangles)[:, 0]
        slope = np.sqrt(np.clip(1 - facing**2, 0, 1)) / np.maximum(facing, 0.1)
        roi = np.asarray(face.roi_box, dtype=np.float64)
        tolerance = 0.005 * float(roi[2] - roi[0]) + 0.75 * slope
        keep &= (facing > 0) & (points[:, 2] >= seen[row, col] - tolerance)
    colors = sample_image(image, points[keep, :2])
    out[texels.pixels[keep]] = np.clip(colors + 0.5, 0, 255).astype(np.uint8)
    return out.reshape(size, size, 3)
