"""A z-buffered triangle rasteriser, JIT-compiled with numba (no compiler step for users).

:func:`rasterize` turns one or several triangle meshes in the *image frame* (0-based pixels,
origin at the centre of the top-left pixel, x right, y down, z towards the camera: larger z
is nearer, see :mod:`ddfa.morphable.frames`) into per-pixel buffers: the depth of the nearest
surface, which mesh and which triangle it belongs to, and the barycentric coordinates of the
pixel centre in that triangle. Everything else (depth maps, PNCC, shading, UV textures) is
an interpolation of per-vertex values with these buffers (:meth:`Raster.interpolate`).

Rules:

* a pixel ``(row i, column j)`` is sampled at its centre ``(x=j, y=i)``; it is covered by a
  triangle when the centre is inside or on an edge (a tolerance of 1e-5 in barycentric
  units closes the cracks between neighbours; a centre on a shared edge goes to one of them);
* the nearest surface (largest z) wins; ties go to either triangle;
* triangles of both windings are drawn (``cull_backfaces=True`` keeps only those of positive
  signed area ``(b - a) x (c - a)`` in the image frame: the front faces of ddfa's meshes);
  degenerate and off-image triangles are skipped.

How (:func:`zbuffer`, then :func:`compact`): one loop over the triangles
(:func:`_zbuffer_kernel`) takes each triangle's bounding box of pixel centres, clipped to the
image, tests those centres with the barycentric (edge) functions in float64 and keeps the
nearest candidate in a z-buffer that spans only the image window the vertices cover. The
meshes of faces have ~1 px triangles, so a box holds 0-4 centres; a 38k-vertex face of 400 px
takes ~2.5 ms on one core. A second pass gathers the covered pixels in row-major order: the
:class:`Raster` keeps only those; full-image buffers are built when first asked for. The
z-buffer is :func:`scratch` memory kept between calls (per thread): fresh pages cost more
than the rasterisation here.

The kernels are compiled by numba (``nogil``: threads rasterise in parallel) on the first call
of a process (~8 s for all of ddfa.render) and cached on disk: next to this file,
``$NUMBA_CACHE_DIR`` or numba's user cache folder, whichever is writable (loading takes
~0.5 s); without any, they are compiled once per process.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numba
import numpy as np

from ..errors import InputError

#: background value of :attr:`Raster.depth`
BACKGROUND_DEPTH = -np.inf
_EPS = 1e-5  # inside tolerance, barycentric units


def _jit(function):
    """``numba.njit`` for ddfa's kernels: cached on disk where a cache folder is writable
    (compiled once per process otherwise), releasing the GIL, no Python division checks."""
    try:
        return numba.njit(cache=True, nogil=True, error_model="numpy")(function)
    except RuntimeError:  # numba finds no writable cache location
        return numba.njit(nogil=True, error_model="numpy")(function)


def _readonly(array: np.ndarray) -> np.ndarray:
    """A read-only view of a kernel input: numba compiles (and caches) one specialisation per
    argument type, and read-only is part of the type; inputs are passed read-only always."""
    view = array.view()
    view.flags.writeable = False
    return view


@dataclass(eq=False)
class Raster:
    """Per-pixel result of :func:`rasterize` for an image of ``height x width`` pixels.

    The covered pixels are stored compactly (``pixels`` and the ``pixel_*`` arrays, P of
    them; :func:`rasterize` gives them in row-major order); the full-image buffers below are
    built on first access.

    Attributes:
        height, width: image size in pixels.
        pixels: (P,) int64 flat ids ``row * width + col`` of the covered pixels.
        pixel_depth: (P,) float32 z of the nearest surface there (image-frame pixels, larger =
            nearer the camera).
        pixel_face: (P,) int32 which mesh covers it (index along the first axis of a
            (F, N, 3) input; 0 for a single (N, 3) mesh).
        pixel_triangle: (P,) int32 row of ``triangles`` that covers it.
        pixel_barycentric: (P, 3) float32 weights of that triangle's three corners at the pixel
            centre (each in [0, 1], summing to 1).
        depth: (H, W) float32 full-image z buffer; ``-inf`` (:data:`BACKGROUND_DEPTH`) where no
            triangle covers the pixel.
        face_index: (H, W) int32, -1 for background.
        triangle_index: (H, W) int32, -1 for background.
        barycentric: (H, W, 3) float32, 0 for background.
        mask: (H, W) bool, True where covered.
    """

    height: int
    width: int
    pixels: np.ndarray
    pixel_depth: np.ndarray
    pixel_face: np.ndarray
    pixel_triangle: np.ndarray
    pixel_barycentric: np.ndarray
    _full: dict = field(default_factory=dict, repr=False)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    def _scatter(self, name: str, values: np.ndarray, fill: Any, dtype: Any, channels: tuple = ()) -> np.ndarray:
        if name not in self._full:
            out = np.full((self.height * self.width, *channels), fill, dtype=dtype)
            out[self.pixels] = values
            self._full[name] = out.reshape(self.height, self.width, *channels)
        return self._full[name]

    @property
    def depth(self) -> np.ndarray:
        return self._scatter("depth", self.pixel_depth, BACKGROUND_DEPTH, np.float32)

    @property
    def face_index(self) -> np.ndarray:
        return self._scatter("face_index", self.pixel_face, -1, np.int32)

    @property
    def triangle_index(self) -> np.ndarray:
        return self._scatter("triangle_index", self.pixel_triangle, -1, np.int32)

    @property
    def barycentric(self) -> np.ndarray:
        return self._scatter("barycentric", self.pixel_barycentric, 0.0, np.float32, (3,))

    @property
    def mask(self) -> np.ndarray:
        out = np.zeros(self.height * self.width, dtype=bool)
        out[self.pixels] = True
        return out.reshape(self.height, self.width)

    @property
    def rows(self) -> np.ndarray:
        """(P,) int64 row (y) of each covered pixel."""
        return self.pixels // self.width

    @property
    def cols(self) -> np.ndarray:
        """(P,) int64 column (x) of each covered pixel."""
        return self.pixels % self.width

    def interpolate_pixels(self, attributes: Any, triangles: Any) -> np.ndarray:
        """Per-vertex attributes interpolated at the covered pixels.

        Args:
            attributes: (N, C) or (N,) values shared by all meshes, or (F, N, C) one set per mesh.
            triangles: (T, 3) the triangles that were rasterised.

        Returns:
            (P, C) float32, in the order of :attr:`pixels`.

        Raises:
            InputError: ``triangles`` or ``attributes`` do not fit the rasterised meshes.
        """
        attributes = np.asarray(attributes, dtype=np.float32)
        if attributes.ndim == 1:
            attributes = attributes[:, None]
        if attributes.ndim not in (2, 3):
            raise InputError(f"interpolate: attributes must be (N,), (N, C) or (F, N, C), got {attributes.shape}")
        per_mesh = attributes.ndim == 3
        values = attributes.reshape(-1, attributes.shape[-1])
        return interpolate_vertex_values(self, values, triangles, attributes.shape[1] if per_mesh else 0)

    def interpolate(self, attributes: Any, triangles: Any, background: float = 0.0) -> np.ndarray:
        """Like :meth:`interpolate_pixels`, as an (H, W, C) float32 image (``background``
        elsewhere)."""
        values = self.interpolate_pixels(attributes, triangles)
        out = np.full((self.height * self.width, values.shape[1]), background, dtype=np.float32)
        out[self.pixels] = values
        return out.reshape(self.height, self.width, -1)


def as_triangles(triangles: Any, num_vertices: int | None, what: str = "rasterize") -> np.ndarray:
    """(T, 3) C-contiguous uint32 triangles, the kernels' layout (no copy for an int32 array
    such as a model's triangles: unsigned ids index without wrap-around checks).

    Args:
        triangles: (T, 3) integer vertex ids.
        num_vertices: the ids must lie in ``[0, num_vertices)`` (None: in ``[0, 2**31)``).
        what: the caller, named in errors.

    Raises:
        InputError: not a (T, 3) integer array, or ids out of range.
    """
    tris = np.asarray(triangles)
    if tris.ndim != 2 or tris.shape[1] != 3 or not np.issubdtype(tris.dtype, np.integer):
        raise InputError(f"{what}: triangles must be a (T, 3) integer array, got {tris.shape} {tris.dtype}")
    limit = 2**31 - 1 if num_vertices is None else num_vertices
    if tris.size and (tris.min() < 0 or tris.max() >= limit):
        raise InputError(f"{what}: triangle vertex ids must lie in [0, {limit}), got [{tris.min()}, {tris.max()}]")
    return np.ascontiguousarray(tris, dtype=np.int32).view(np.uint32)


def as_meshes(vertices: Any, what: str = "rasterize") -> np.ndarray:
    """(F, N, 3) C-contiguous float32 finite vertices from (N, 3) or (F, N, 3) input.

    Raises:
        InputError: another shape, non-numeric, inf or NaN.
    """
    try:
        verts = np.asarray(vertices, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{what}: vertices are not a numeric array ({exc})") from None
    if verts.ndim == 2:
        verts = verts[None]
    if verts.ndim != 3 or verts.shape[-1] != 3:
        raise InputError(f"{what}: vertices must be (N, 3) or (F, N, 3), got {np.shape(vertices)}")
    if not np.isfinite(verts).all():
        raise InputError(f"{what}: vertices contain inf or NaN")
    return np.ascontiguousarray(verts)


#: vertices farther than this from the image origin (pixels) are refused
MAX_COORDINATE = 1e9


@_jit
def _window(verts, height, width):
    """The window of pixel centres that (F, N, 3) vertices span, clipped to the image:
    (x0, y0, columns, rows), and whether all x, y lie within :data:`MAX_COORDINATE`."""
    lo_x, hi_x, lo_y, hi_y = np.inf, -np.inf, np.inf, -np.inf
    for f in range(verts.shape[0]):
        for v in range(verts.shape[1]):
            x, y = verts[f, v, 0], verts[f, v, 1]
            lo_x, hi_x = min(lo_x, x), max(hi_x, x)
            lo_y, hi_y = min(lo_y, y), max(hi_y, y)
    bounded = max(-lo_x, hi_x, -lo_y, hi_y) <= MAX_COORDINATE
    if not bounded:
        return (0, 0, 1, 1), False
    x0 = min(max(int(np.ceil(lo_x)), 0), width - 1)
    x1 = min(max(int(np.floor(hi_x)), 0), width - 1)
    y0 = min(max(int(np.ceil(lo_y)), 0), height - 1)
    y1 = min(max(int(np.floor(hi_y)), 0), height - 1)
    return (x0, y0, max(x1 - x0 + 1, 1), max(y1 - y0 + 1, 1)), True


@_jit
def _zbuffer_kernel(verts, tris, cull, window, zbuf, owner, weights, bounds):
    """Z-buffer (F, N, 3) float32 meshes sharing (T, 3) uint32 triangles into ``window`` =
    (x0, y0, columns, rows) of the image: on return, ``zbuf`` (float64, -inf off the meshes)
    holds the depth of the nearest candidate at each window pixel (row-major), ``owner``
    (2, n) int32 its mesh and triangle and ``weights`` (n, 2) float32 its barycentric weights
    of corners a, b (all three scratch, at least columns * rows long). Returns the number of
    covered pixels.

    Written for the ~1 px triangles of dense faces, where the cost is per triangle: the
    integer bounds (ceil x, floor x, ceil y, floor y) of each vertex are computed once per
    mesh into ``bounds`` ((N, 4) int32 scratch), so that a triangle's box of pixel centres is
    integer min/max (float min/max of mixed precision compile to unpredictable branches);
    unsigned indices need no wrap-around checks."""
    wx0, wy0, win_w, win_h = window
    wx1, wy1 = wx0 + win_w - 1, wy0 + win_h - 1
    zbuf[:win_w * win_h] = -np.inf  # float64: the exact nearest candidate wins
    covered = 0
    lo, hi = -_EPS, 1.0 + _EPS
    for f in range(verts.shape[0]):
        mesh = verts[f]
        for v in range(mesh.shape[0]):  # |x|, |y| <= MAX_COORDINATE: the bounds fit in int32
            bounds[v, 0], bounds[v, 1] = np.int32(np.ceil(mesh[v, 0])), np.int32(np.floor(mesh[v, 0]))
            bounds[v, 2], bounds[v, 3] = np.int32(np.ceil(mesh[v, 1])), np.int32(np.floor(mesh[v, 1]))
        for t in range(tris.shape[0]):
            ia, ib, ic = tris[t, 0], tris[t, 1], tris[t, 2]
            # the box of pixel centres, clipped to the window
            x0 = max(min(bounds[ia, 0], bounds[ib, 0], bounds[ic, 0]), wx0)
            x1 = min(max(bounds[ia, 1], bounds[ib, 1], bounds[ic, 1]), wx1)
            if x0 > x1:
                continue
            y0 = max(min(bounds[ia, 2], bounds[ib, 2], bounds[ic, 2]), wy0)
            y1 = min(max(bounds[ia, 3], bounds[ib, 3], bounds[ic, 3]), wy1)
            if y0 > y1:
                continue
            xa, ya = np.float64(mesh[ia, 0]), np.float64(mesh[ia, 1])
            xb, yb = np.float64(mesh[ib, 0]), np.float64(mesh[ib, 1])
            xc, yc = np.float64(mesh[ic, 0]), np.float64(mesh[ic, 1])
            area = (xb - xa) * (yc - ya) - (xc - xa) * (yb - ya)
            if area == 0.0 or (cull and area < 0.0):
                continue
            inv = 1.0 / area
            za, zb, zc = np.float64(mesh[ia, 2]), np.float64(mesh[ib, 2]), np.float64(mesh[ic, 2])
            for py in range(y0, y1 + 1):
                y = np.float64(py)
                row = (py - wy0) * win_w - wx0
                for px in range(x0, x1 + 1):
                    x = np.float64(px)
                    # b0 = area(p, b, c) / area, b1 = area(a, p, c) / area
                    b0 = ((xb - x) * (yc - y) - (xc - x) * (yb - y)) * inv
                    b1 = ((xc - x) * (ya - y) - (xa - x) * (yc - y)) * inv
                    if (b0 >= lo) & (b1 >= lo) & (b0 + b1 <= hi):
                        z = b0 * za + b1 * zb + (1.0 - b0 - b1) * zc
                        k = np.uint64(row + px)
                        current = zbuf[k]
                        if z > current:
                            covered += current == -np.inf
                            zbuf[k] = z
                            owner[0, k] = f
                            owner[1, k] = t
                            weights[k, 0] = b0
                            weights[k, 1] = b1
    return covered


@_jit
def _compact_kernel(width, window, zbuf, owner, weights, pixels, depth, face, triangle, bary):
    """Gather the covered pixels of :func:`_zbuffer_kernel`'s buffers, in row-major order, into
    the (P,) ``pixels`` (flat image ids), ``depth``, ``face``, ``triangle`` and (P, 3) ``bary``
    (clipped to [0, 1] and normalised) of a :class:`Raster`. Returns False when a depth is not
    finite in float32."""
    wx0, wy0, win_w, win_h = window
    n = 0
    finite = True
    zero, one = np.float32(0), np.float32(1)
    for row in range(win_h):
        start = row * win_w
        first = (wy0 + row) * width + wx0
        for col in range(win_w):
            k = start + col
            if zbuf[k] == -np.inf:
                continue
            pixels[n] = first + col
            depth[n] = zbuf[k]
            finite &= np.isfinite(depth[n])
            face[n] = owner[0, k]
            triangle[n] = owner[1, k]
            b0 = min(max(weights[k, 0], zero), one)
            b1 = min(max(weights[k, 1], zero), one)
            b2 = min(max(one - b0 - b1, zero), one)
            total = b0 + b1 + b2
            bary[n, 0], bary[n, 1], bary[n, 2] = b0 / total, b1 / total, b2 / total
            n += 1
    return finite


_SCRATCH = threading.local()
#: scratch arrays up to this many bytes are kept between calls (per thread and name)
SCRATCH_BYTES = 64 << 20


def scratch(name: str, shape: int | tuple[int, ...], dtype: Any) -> np.ndarray:
    """An uninitialised C-contiguous array of ``shape`` and ``dtype``, reused between calls of
    this thread that ask for the same ``name``: large per-frame temporaries without fresh pages
    to fault in every time (which costs ~0.5 ms a MB here). Valid until the next request for
    ``name`` on this thread."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    buffers = _SCRATCH.__dict__.setdefault("buffers", {})
    buffer = buffers.get(name)
    if buffer is None or len(buffer) < size:
        buffer = np.empty(max(size, 1 << 16), np.uint8)
        if size <= SCRATCH_BYTES:
            buffers[name] = buffer
    return buffer[:size].view(dtype).reshape(shape)


def rasterize(vertices: Any, triangles: Any, height: int, width: int, *, cull_backfaces: bool = False) -> Raster:
    """Z-buffered rasterisation of one or several meshes into an ``height x width`` image.

    Args:
        vertices: (N, 3) or (F, N, 3) float vertices in the image frame (x, y pixels, 0-based,
            y down; z towards the camera, larger = nearer). Several meshes share ``triangles``
            and occlude each other correctly.
        triangles: (T, 3) int vertex ids.
        height, width: size of the image in pixels.
        cull_backfaces: skip triangles whose signed area ``(b - a) x (c - a)`` in the image
            frame is not positive: the back faces of ddfa's meshes (whose front faces have
            positive area); off by default.

    Returns:
        a :class:`Raster`: ``depth`` (H, W) float32 (background ``-inf``), ``face_index`` and
        ``triangle_index`` (H, W) int32 (background -1), ``barycentric`` (H, W, 3) float32,
        and the same values for the covered pixels only (``pixels``, ``pixel_*``, in
        row-major order).

    Raises:
        InputError: bad shapes, vertex ids out of range, or non-finite depths.
    """
    return compact(zbuffer(vertices, triangles, height, width, cull_backfaces))


class ZBuffer(NamedTuple):
    """The z-buffer of :func:`zbuffer`, in this thread's :func:`scratch` memory (overwritten by
    the next z-buffer of the thread): ``window`` = (x0, y0, columns, rows) of the image it
    spans; per window pixel (row-major) ``depth`` (float64, -inf where nothing is drawn),
    ``owner`` (2, n) int32 mesh and triangle, ``weights`` (n, 2) float32 raw barycentric
    weights of corners a, b; ``covered`` pixels."""

    height: int
    width: int
    window: tuple
    depth: np.ndarray
    owner: np.ndarray
    weights: np.ndarray
    covered: int


def zbuffer(vertices: Any, triangles: Any, height: int, width: int, cull_backfaces: bool = False) -> ZBuffer:
    """The z-buffer pass of :func:`rasterize` (same arguments), without the compaction into a
    :class:`Raster` (:func:`compact`): for renderers that use it right away."""
    verts = as_meshes(vertices)
    tris = as_triangles(triangles, verts.shape[1])
    height, width = int(height), int(width)
    if height < 1 or width < 1:
        raise InputError(f"rasterize: image size must be positive, got {height}x{width}")
    num_faces, num_vertices, _ = verts.shape
    if num_faces * len(tris) >= 2**31:
        raise InputError(f"rasterize: too many triangles ({num_faces} meshes x {len(tris)}; 2**31 at most)")
    if num_faces * num_vertices == 0 or len(tris) == 0:  # nothing to draw
        verts, tris = np.zeros((1, 1, 3), np.float32), np.zeros((0, 3), np.uint32)
    verts, tris = _readonly(verts), _readonly(tris)
    window, bounded = _window(verts, height, width)
    if not bounded:
        raise InputError(f"rasterize: vertex x, y must lie within {MAX_COORDINATE:g} pixels of the image origin")
    size = window[2] * window[3]
    buffers = (scratch("zbuffer", size, np.float64), scratch("owner", (2, size), np.int32),
               scratch("weights", (size, 2), np.float32))
    count = _zbuffer_kernel(verts, tris, bool(cull_backfaces), window, *buffers,
                            scratch("vertex_bounds", (verts.shape[1], 4), np.int32))
    return ZBuffer(height, width, window, *buffers, count)


def compact(zbuf: ZBuffer, transient: bool = False) -> Raster:
    """The :class:`Raster` of a z-buffer (call before the next z-buffer of the thread).
    ``transient``: its per-pixel arrays live in this thread's :func:`scratch` memory,
    overwritten by the next transient raster (for renderers that use them within one call).

    Raises:
        InputError: a depth is not finite in float32.
    """
    count = zbuf.covered
    # the five per-pixel arrays share one block: one allocation (or scratch) per call
    block = scratch("raster", 32 * count, np.uint8) if transient else np.empty(32 * count, np.uint8)
    pixels = block[:8 * count].view(np.int64)
    depth, face, triangle = (block[4 * k * count:4 * (k + 1) * count].view(dtype)
                             for k, dtype in ((2, np.float32), (3, np.int32), (4, np.int32)))
    bary = block[20 * count:].view(np.float32).reshape(count, 3)
    if not _compact_kernel(zbuf.width, zbuf.window, zbuf.depth, zbuf.owner, zbuf.weights, pixels, depth, face,
                           triangle, bary):
        raise InputError("rasterize: vertices give non-finite depths (z overflows float32)")
    return Raster(zbuf.height, zbuf.width, pixels, depth, face, triangle, bary)


@_jit
def _interpolate_kernel(values, tris, num_vertices, pixel_face, pixel_triangle, bary):
    """(P, C) float32 ``values`` (V, C) interpolated at the pixels; vertex ids are
    ``face * num_vertices + tris[triangle]`` ((T, 3) uint32 ``tris``). Returns an empty array if
    an id is out of range."""
    count, channels = len(pixel_triangle), values.shape[1]
    out = np.empty((count, channels), np.float32)
    num_values, num_tris = values.shape[0], tris.shape[0]
    for p in range(count):
        t = pixel_triangle[p]
        base = pixel_face[p] * num_vertices
        if t < 0 or t >= num_tris or base < 0:
            return out[:0]
        a, b, c = base + tris[t, 0], base + tris[t, 1], base + tris[t, 2]
        if max(a, b, c) >= num_values:
            return out[:0]
        w0, w1, w2 = bary[p, 0], bary[p, 1], bary[p, 2]
        for k in range(channels):
            out[p, k] = values[a, k] * w0 + values[b, k] * w1 + values[c, k] * w2
    return out


def interpolate_vertex_values(raster: Raster, values: Any, triangles: Any, num_vertices: int = 0) -> np.ndarray:
    """Per-vertex ``values`` interpolated at a raster's covered pixels.

    Args:
        raster: the :class:`Raster` of ``triangles``.
        values: (V, C) values: of the ``num_vertices`` vertices of each mesh, mesh after mesh
            (the vertex of corner id ``i`` in mesh ``f`` is row ``f * num_vertices + i``), or,
            with ``num_vertices=0``, one set shared by all meshes.
        triangles: (T, 3) int the rasterised triangles.

    Returns:
        (P, C) float32 in the order of ``raster.pixels``.

    Raises:
        InputError: a vertex of the raster's triangles has no row in ``values``.
    """
    values = np.ascontiguousarray(values, dtype=np.float32)
    values = values.reshape(len(values), -1)
    tris = as_triangles(triangles, None, "interpolate")
    inputs = (values, tris, np.ascontiguousarray(raster.pixel_face, dtype=np.int32),
              np.ascontiguousarray(raster.pixel_triangle, dtype=np.int32),
              np.ascontiguousarray(raster.pixel_barycentric, dtype=np.float32))
    values, tris, face, triangle, bary = (_readonly(a) for a in inputs)
    out = _interpolate_kernel(values, tris, int(num_vertices), face, triangle, bary)
    if len(out) < len(raster.pixels):
        raise InputError(f"interpolate: {len(values)} vertex values and {len(tris)} triangles do not fit the "
                         "rasterised meshes")
    return out
