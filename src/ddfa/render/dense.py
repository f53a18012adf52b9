"""Renderings of the dense meshes of all faces of a photo: shaded mesh, depth, PNCC.

Every rendering takes the photo (or its ``(height, width)``) first and the faces of that photo
second (:class:`~ddfa.face.Face` records, or anything with ``vertices`` (N, 3) in the image
frame and ``triangles`` (T, 3)), and rasterises the faces together with
:func:`~ddfa.render.rasterize`, so nearer faces hide farther ones. Image-frame conventions:
0-based pixels, y down, z towards the camera (larger z = nearer).

:func:`vertex_normals` is ddfa's one vertex-normal routine (rendering, UV visibility,
synthetic training data).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from ..assets.store import AssetsLike
from ..errors import InputError
from .raster import (
    Raster,
    _jit,
    _readonly,
    as_meshes,
    as_triangles,
    compact,
    interpolate_vertex_values,
    scratch,
    zbuffer,
)

#: default light of :func:`render_shaded`: a unit direction *towards* the light in the image
#: frame (x right, y down, z towards the camera): in front of the face, a little above-left
LIGHT_DIRECTION = (-0.25, -0.35, 1.0)


class Scene:
    """The dense meshes of several faces z-buffered into one ``height x width`` image.

    Faces that share a morphable model are rasterised as one (F, N, 3) batch (``batched``);
    faces of different models (rare) are merged into one mesh. For use within one rendering:
    ``vertices``, ``zbuffer`` and the raster's per-pixel arrays are scratch memory of this
    thread (see :func:`~ddfa.render.raster.scratch`), overwritten by the next ``Scene``.

    Attributes:
        faces: the faces, in order.
        vertices: (F, N, 3) float32 (batched) or the (sum N_f, 3) merged vertices.
        triangles: (T, 3) uint32 shared triangles (batched) or the merged ones.
        zbuffer: the :class:`~ddfa.render.raster.ZBuffer`.
        raster: its :class:`Raster` (covered pixels in ``raster.pixels``), with ``raster=True``.
        face_of_pixel: (P,) int index into ``faces`` of the face seen at each covered pixel.
    """

    def __init__(self, faces: Sequence, height: int, width: int, *, raster: bool = True):
        self.faces = list(faces)
        self.height, self.width = int(height), int(width)
        self.batched = True
        if not self.faces:
            self.vertices, self.triangles = np.zeros((0, 0, 3), np.float32), np.zeros((0, 3), np.uint32)
        else:
            tris = [np.asarray(f.triangles) for f in self.faces]
            self.batched = all(t is tris[0] or np.array_equal(t, tris[0]) for t in tris[1:])
            meshes = [np.asarray(f.vertices) for f in self.faces]
            if self.batched:
                if any(m.shape != meshes[0].shape for m in meshes):
                    raise InputError(f"faces sharing triangles must have vertices of one shape, got "
                                     f"{sorted({m.shape for m in meshes})}")
                self.vertices = scratch("scene_vertices", (len(meshes),) + meshes[0].shape, np.float32)
                for k, mesh in enumerate(meshes):
                    self.vertices[k] = mesh
                self.triangles = as_triangles(tris[0], self.vertices.shape[1])
            else:
                sizes = [len(m) for m in meshes]
                self._vertex_starts = np.concatenate([[0], np.cumsum(sizes)])
                self._triangle_starts = np.concatenate([[0], np.cumsum([len(t) for t in tris])])
                self.vertices = np.concatenate(meshes).astype(np.float32, copy=False)
                self.triangles = as_triangles(np.concatenate([t + s for t, s in zip(tris, self._vertex_starts)]),
                                              len(self.vertices))
        self.zbuffer = zbuffer(self.vertices, self.triangles, height, width)
        self._raster = compact(self.zbuffer, transient=True) if raster else None

    @property
    def raster(self) -> Raster:
        """The :class:`Raster` of the z-buffer (only for a scene built with ``raster=True``)."""
        if self._raster is None:
            raise RuntimeError("this Scene was built with raster=False")
        return self._raster

    @property
    def face_of_pixel(self) -> np.ndarray:
        """(P,) int64 index into ``faces`` of the face seen at each covered pixel."""
        if self.batched:
            return self.raster.pixel_face.astype(np.int64)
        return np.searchsorted(self._triangle_starts, self.raster.pixel_triangle, side="right") - 1

    def interpolate_vertex_values(self, values: np.ndarray) -> np.ndarray:
        """Interpolate values of all faces' vertices, concatenated face after face into
        (sum N_f, C), at the covered pixels: (P, C) float32 in the order of ``raster.pixels``."""
        values = np.asarray(values, dtype=np.float32)
        if not self.faces:
            return np.zeros((0, values.reshape(len(values), -1).shape[1]), np.float32)
        num_vertices = self.vertices.shape[1] if self.batched else 0  # merged: ids are global
        return interpolate_vertex_values(self.raster, values, self.triangles, num_vertices)

    def interpolate(self, per_face: Sequence[np.ndarray]) -> np.ndarray:
        """Interpolate per-vertex values (one (N_f, C) array per face) at the covered pixels.

        Returns:
            (P, C) float32 in the order of ``raster.pixels``.
        """
        arrays = [np.asarray(a, dtype=np.float32).reshape(len(a), -1) for a in per_face]
        return self.interpolate_vertex_values(np.concatenate(arrays))


def _image_size(image_or_shape: Any, caller: str) -> tuple[int, int]:
    """(height, width) of an image or a shape; a helpful error for the old ``(faces, shape)``
    argument order."""
    if isinstance(image_or_shape, np.ndarray):
        shape: tuple = image_or_shape.shape
    else:
        try:
            shape = tuple(image_or_shape)
        except TypeError:
            shape = ()
        if not all(isinstance(v, numbers.Real) for v in shape[:2]):
            raise InputError(f"{caller}: the first argument must be the image or its (height, width), then the "
                             f"faces: {caller}(image_or_shape, faces); got {type(image_or_shape).__name__}")
    if len(shape) < 2 or int(shape[0]) < 1 or int(shape[1]) < 1:
        raise InputError(f"{caller}: expected an image or an (height, width) shape, got {shape}")
    return int(shape[0]), int(shape[1])


# ---------------------------------------------------------------------- normals
@_jit
def _sum_normals(verts, f, tris, summed):
    """Fill (N, 4) float32 ``summed[:, :3]`` with the sums of the (area-weighted) normals
    ``(b - a) x (c - a)`` of the triangles around each vertex of mesh ``f`` of (F, N, 3)
    ``verts``: out of the face for ddfa's triangle order in the image frame."""
    zero = np.float32(0)
    summed[:] = 0
    for t in range(tris.shape[0]):
        a, b, c = tris[t, 0], tris[t, 1], tris[t, 2]
        ax, ay, az = verts[f, a, 0], verts[f, a, 1], verts[f, a, 2]
        ux, uy, uz = verts[f, b, 0] - ax, verts[f, b, 1] - ay, verts[f, b, 2] - az
        vx, vy, vz = verts[f, c, 0] - ax, verts[f, c, 1] - ay, verts[f, c, 2] - az
        nx, ny, nz = uy * vz - uz * vy, uz * vx - ux * vz, ux * vy - uy * vx
        for corner in (a, b, c):  # padded to 4 floats: one vector add per corner
            summed[corner, 0] += nx
            summed[corner, 1] += ny
            summed[corner, 2] += nz
            summed[corner, 3] += zero


@_jit
def _normals_kernel(verts, tris, summed, out):
    """Fill (F, N, 3) float32 ``out`` with the unit vertex normals of (F, N, 3) float32 meshes
    sharing (T, 3) uint32 triangles (see :func:`_sum_normals`; (N, 4) ``summed`` is scratch);
    0 for vertices of no triangle."""
    for f in range(verts.shape[0]):
        _sum_normals(verts, f, tris, summed)
        for v in range(verts.shape[1]):
            nx, ny, nz = summed[v, 0], summed[v, 1], summed[v, 2]
            length = np.sqrt(nx * nx + ny * ny + nz * nz)
            scale = np.float32(1) / length if length > 0 else np.float32(0)
            out[f, v, 0], out[f, v, 1], out[f, v, 2] = nx * scale, ny * scale, nz * scale


def vertex_normals(vertices: Any, triangles: Any, *, frame: Literal["image", "model"] = "image") -> np.ndarray:
    """Unit vertex normals (area-weighted mean of the adjacent triangles' normals): ddfa's one
    vertex-normal routine.

    Orientation: each triangle ``(a, b, c)`` contributes ``(b - a) x (c - a)`` (length twice
    its area). ddfa's triangles (those of :class:`~ddfa.morphable.MorphableModel`) run clockwise
    seen from the front in a y-up frame, i.e. counter-clockwise in the y-down image and crop
    frames, so this cross product points *out of the face* there. In a y-up frame (the model
    frame, or the ``(x, -y, z)`` export frame of :mod:`ddfa.io.mesh`) the same product points
    into the face; ``frame="model"`` negates it, so the result points out of the face in that
    frame too (it then equals the image-frame normal with y negated).

    Args:
        vertices: (N, 3) or (F, N, 3) vertices (any float dtype; computed in float32).
        triangles: (T, 3) integer vertex ids in ddfa's order.
        frame: ``"image"`` for y-down vertices (image or crop frame), ``"model"`` for y-up ones
            (model frame, export frame).

    Returns:
        (N, 3) or (F, N, 3) float32 unit normals in the frame of ``vertices``, pointing out of
        the face: a frontal face's normals have z > 0 (towards the camera) in either frame.
        Vertices of no triangle get 0.

    Raises:
        InputError: bad shapes, vertex ids out of range or an unknown ``frame``.
    """
    if frame not in ("image", "model"):
        raise InputError(f"vertex_normals: frame must be 'image' or 'model', got {frame!r}")
    try:
        verts = np.asarray(vertices, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InputError(f"vertex_normals: vertices are not a numeric array ({exc})") from None
    single = verts.ndim == 2
    if verts.ndim not in (2, 3) or verts.shape[-1] != 3:
        raise InputError(f"vertex_normals: vertices must be (N, 3) or (F, N, 3), got {verts.shape}")
    meshes = np.ascontiguousarray(verts[None] if single else verts)
    tris = as_triangles(triangles, meshes.shape[1], "vertex_normals")
    out = np.empty(meshes.shape, np.float32)
    _normals_kernel(_readonly(meshes), _readonly(tris), scratch("normal_sums", (meshes.shape[1], 4), np.float32), out)
    if frame == "model":
        np.negative(out, out=out)
    return out[0] if single else out


@_jit
def _shade_kernel(verts, tris, light, half, ambient, diffuse, specular, shininess, power, summed, out):
    """Fill (F*N, 2) float32 ``out`` with the shading of the vertices of (F, N, 3) float32
    meshes sharing (T, 3) uint32 triangles, mesh after mesh: Lambert intensity ``ambient +
    diffuse * max(n·light, 0)`` and Blinn-Phong gloss ``specular * max(n·half, 0) **
    shininess`` of the unit vertex normals n (as :func:`_normals_kernel`), lit from both sides
    (n flipped to face the camera). ``power`` >= 0: ``shininess`` is that integer, raised by
    squaring (much faster than ``pow``); -1 otherwise. ``summed`` (N, 4) float32 is scratch.
    Scalar loops only: numba compiles array expressions several seconds longer."""
    num_vertices = verts.shape[1]
    zero, one = np.float32(0), np.float32(1)
    for f in range(verts.shape[0]):
        rows = out[f * num_vertices:(f + 1) * num_vertices]
        _sum_normals(verts, f, tris, summed)
        for v in range(num_vertices):
            nx, ny, nz = summed[v, 0], summed[v, 1], summed[v, 2]
            length = np.sqrt(nx * nx + ny * ny + nz * nz)
            # unit normal, flipped towards the camera (two-sided lighting); 0 for lone vertices
            scale = (-one if nz < 0 else one) / length if length > 0 else zero
            nx, ny, nz = nx * scale, ny * scale, nz * scale
            rows[v, 0] = ambient + diffuse * min(max(nx * light[0] + ny * light[1] + nz * light[2], zero), one)
            base = min(max(nx * half[0] + ny * half[1] + nz * half[2], zero), one)
            if power >= 0:
                gloss = one
                exponent = power
                while exponent:
                    if exponent & 1:
                        gloss *= base
                    base *= base
                    exponent >>= 1
            else:
                gloss = base ** shininess
            rows[v, 1] = specular * gloss


@_jit
def _blend_kernel(flat, width, window, zbuf, owner, weights, tris, num_vertices, shade, albedo, keep, gloss_scale):
    """Blend the shaded meshes into (H*W, 3) uint8 ``flat`` in place, at the covered pixels of
    a z-buffer (:class:`~ddfa.render.raster.ZBuffer`: ``window``, ``zbuf``, ``owner``,
    ``weights``): ``photo * keep + intensity * albedo + gloss * gloss_scale``, clipped to
    [0, 255] and rounded, with the (V, 2) per-vertex ``shade`` (intensity, gloss) interpolated
    there (vertex ids ``face * num_vertices + tris[triangle]``). Reads the z-buffer directly:
    no :class:`Raster` to build."""
    wx0, wy0, win_w, win_h = window
    zero, one, top, half = np.float32(0), np.float32(1), np.float32(255), np.float32(0.5)
    for row in range(win_h):
        for col in range(win_w):
            k = row * win_w + col
            if zbuf[k] == -np.inf:
                continue
            # the raster's barycentric weights: clipped to [0, 1], normalised (as compact())
            w0 = min(max(weights[k, 0], zero), one)
            w1 = min(max(weights[k, 1], zero), one)
            w2 = min(max(one - w0 - w1, zero), one)
            total = w0 + w1 + w2
            w0, w1, w2 = w0 / total, w1 / total, w2 / total
            t = owner[1, k]
            base = owner[0, k] * num_vertices
            a, b, c = base + tris[t, 0], base + tris[t, 1], base + tris[t, 2]
            intensity = shade[a, 0] * w0 + shade[b, 0] * w1 + shade[c, 0] * w2
            gloss = (shade[a, 1] * w0 + shade[b, 1] * w1 + shade[c, 1] * w2) * gloss_scale
            pixel = (wy0 + row) * width + wx0 + col
            for channel in range(3):
                value = np.float32(flat[pixel, channel]) * keep + intensity * albedo[channel] + gloss
                flat[pixel, channel] = np.uint8(int(min(max(value, zero), top) + half))


# ---------------------------------------------------------------------- renderings
def render_shaded(image: np.ndarray, faces: Sequence, *, alpha: float = 0.6,
                  color: Sequence[float] = (0.85, 0.85, 0.85), light: Sequence[float] = LIGHT_DIRECTION,
                  ambient: float = 0.3, diffuse: float = 0.65, specular: float = 0.15,
                  shininess: float = 16.0) -> np.ndarray:
    """The ``3d`` output: every face's dense mesh, shaded grey, blended over the photo.

    Shading: one directional light, Lambert diffuse + Blinn-Phong specular (viewer along +z),
    evaluated at the vertices (area-weighted vertex normals) and interpolated over the
    triangles (Gouraud; the triangles are about a pixel, so this equals per-pixel shading);
    lit from both sides so that a face's inner side seen at its silhouette is not black.

    Args:
        image: (H, W, 3) uint8 BGR photo (not modified).
        faces: faces of that photo.
        alpha: opacity of the mesh over the photo (1: mesh only).
        color: albedo, BGR in [0, 1].
        light: direction towards the light, image frame (normalised here).
        ambient, diffuse, specular, shininess: shading weights.

    Returns:
        (H, W, 3) uint8 BGR.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InputError(f"render_shaded: expected an (H, W, 3) uint8 BGR image, got {image.shape} {image.dtype}")
    if not 0 <= alpha <= 1:
        raise InputError(f"render_shaded: alpha must lie in [0, 1], got {alpha}")
    height, width = _image_size(image, "render_shaded")
    out = image.copy()
    scene = Scene(faces, height, width, raster=False)
    zbuf = scene.zbuffer
    if zbuf.covered == 0:
        return out
    # shade every vertex once, then interpolate the intensity (at ~1 px triangles this equals
    # per-pixel shading)
    towards = np.asarray(light, dtype=np.float32)
    towards = _readonly(towards / np.linalg.norm(towards))
    half = towards + np.array([0, 0, 1], np.float32)
    half = _readonly(half / np.linalg.norm(half))
    f32 = np.float32
    power = int(shininess) if float(shininess).is_integer() and 0 <= shininess <= 1024 else -1
    weights = (f32(ambient), f32(diffuse), f32(specular), f32(shininess), power)
    if scene.batched:  # one batched computation for all faces
        meshes = [(scene.vertices, scene.triangles)]
    else:
        meshes = [(as_meshes(f.vertices, "render_shaded"), as_triangles(f.triangles, len(f.vertices), "render_shaded"))
                  for f in scene.faces]
    per_vertex = scratch("vertex_shading", (sum(v.shape[0] * v.shape[1] for v, _ in meshes), 2), np.float32)
    start = 0
    for verts, tris in meshes:
        stop = start + verts.shape[0] * verts.shape[1]
        _shade_kernel(_readonly(verts), _readonly(tris), towards, half, *weights,
                      scratch("normal_sums", (verts.shape[1], 4), np.float32), per_vertex[start:stop])
        start = stop
    albedo = np.asarray(color, np.float32) * f32(255 * alpha)
    num_vertices = scene.vertices.shape[1] if scene.batched else 0  # merged meshes: global vertex ids
    buffers = (_readonly(a) for a in (zbuf.depth, zbuf.owner, zbuf.weights))
    _blend_kernel(out.reshape(-1, 3), width, zbuf.window, *buffers, _readonly(scene.triangles), num_vertices,
                  _readonly(per_vertex), _readonly(albedo), f32(1 - alpha), f32(255 * alpha))
    return out


def render_depth(image_or_shape: np.ndarray | Sequence[int], faces: Sequence, *,
                 normalize: bool = True) -> np.ndarray:
    """Per-pixel depth of the nearest face.

    Args:
        image_or_shape: the photo, or its ``(height, width)``.
        faces: faces of that photo.
        normalize: True: per face, ``(z - zmin) / (zmax - zmin)`` over that face's vertices,
            so 1 is its nearest point and 0 its farthest (3DDFA_V2's depth image); 0 off the
            faces. False: raw image-frame z in pixels (``z = s·Vz``, larger = nearer; see
            :mod:`ddfa.morphable.frames`), NaN off the faces.

    Returns:
        (H, W) float32.
    """
    height, width = _image_size(image_or_shape, "render_depth")
    scene = Scene(faces, height, width)
    raster = scene.raster
    out = np.full(height * width, 0.0 if normalize else np.nan, dtype=np.float32)
    z = raster.pixel_depth
    if normalize and len(z):
        zs = [np.asarray(f.vertices)[:, 2] for f in scene.faces]
        lo = np.array([v.min() for v in zs], np.float32)
        span = np.array([max(float(v.max() - v.min()), 1e-6) for v in zs], np.float32)
        face_of_pixel = scene.face_of_pixel
        z = np.clip((z - lo[face_of_pixel]) / span[face_of_pixel], 0, 1)
    out[raster.pixels] = z
    return out.reshape(height, width)


def render_pncc(image_or_shape: np.ndarray | Sequence[int], faces: Sequence, *,
                assets: AssetsLike = None) -> np.ndarray:
    """Projected Normalised Coordinate Code: each pixel coloured by the NCC code (the
    normalised mean-face x, y, z in [0, 1]) of the surface point seen there.

    Args:
        image_or_shape: the photo, or its ``(height, width)``.
        faces: faces of that photo.
        assets: asset store or folder for the NCC codes (default: each face's
            :attr:`~ddfa.face.Face.assets`, else the default root; see
            :func:`ddfa.render.assets.assets_of`).

    Returns:
        (H, W, 3) float32 NCC (x, y, z) in [0, 1]; 0 off the faces. As an image, x is red,
        y green and z blue.
    """
    from .assets import assets_of

    height, width = _image_size(image_or_shape, "render_pncc")
    scene = Scene(faces, height, width)
    out = np.zeros((height * width, 3), dtype=np.float32)
    if scene.faces and len(scene.raster.pixels):
        codes = [assets_of(f, assets).ncc_code(f.model) for f in scene.faces]
        out[scene.raster.pixels] = scene.interpolate(codes)
    return out.reshape(height, width, 3)


def sample_image(image: np.ndarray, points: Any) -> np.ndarray:
    """Bilinear samples of an image at sub-pixel points.

    Args:
        image: (H, W, C) or (H, W) array (any dtype OpenCV remaps: uint8, float32, ...).
        points: (..., 2) image-frame ``(x, y)`` (0-based pixel centres); points outside the
            image take the nearest border pixel.

    Returns:
        (..., C) float32 (C = 1 dropped for a 2-D image).
    """
    import cv2

    pts = np.asarray(points, dtype=np.float32)
    flat = pts.reshape(-1, 2)
    image = np.asarray(image)
    if image.shape[0] >= 32767 or image.shape[1] >= 32767:
        raise InputError(f"cannot sample an image of {image.shape[1]}x{image.shape[0]} pixels (32767 at most)")
    if not len(flat):  # nothing to sample (e.g. a face entirely outside the photo)
        return np.zeros(pts.shape[:-1] + image.shape[2:], np.float32)
    # cv2.remap maps must be under 32767 wide and high: lay the points out in rows of 1024
    cols = 1024
    padded = np.zeros((-(-len(flat) // cols) * cols, 2), np.float32)
    padded[:len(flat)] = flat
    grid = padded.reshape(-1, cols, 2)
    parts = [cv2.remap(image, grid[r:r + 16384, :, 0].copy(), grid[r:r + 16384, :, 1].copy(), cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE) for r in range(0, len(grid), 16384)]
    values = np.concatenate(parts).reshape((-1,) + image.shape[2:])[:len(flat)].astype(np.float32)
    return values.reshape(pts.shape[:-1] + image.shape[2:])


def vertex_colors(image: np.ndarray, vertices: Any) -> np.ndarray:
    """(N, 3) uint8 colours of the photo under each vertex (bilinear), in the image's channel
    order (BGR for ddfa images)."""
    values = sample_image(np.asarray(image), np.asarray(vertices)[:, :2])
    return np.clip(values + 0.5, 0, 255).astype(np.uint8)
