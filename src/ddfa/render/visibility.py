"""Which landmarks the camera sees: from the dense mesh's normals and its z-buffer.

A landmark is **visible** when

1. its part of the face faces the camera enough: the mean unit vertex normal of the mesh around
   it (the vertices within :data:`NORMAL_RADIUS` x the mean face's width of the landmark vertex,
   on the mean face) has z above the landmark's own threshold :data:`FACING_MIN` (z towards the
   camera; the projection is orthographic, as the model's). A patch, not the landmark vertex's
   own normal: landmarks sit in small folds (the inner eye corners face the nose) that are
   visible although their own vertex faces away; and
2. the face itself does not hide it (z-buffer). If the landmark lies on the face's outline
   (background within :data:`WINDOW` of its pixel) the outline is what the camera sees and it
   is not hidden. Inside the outline it is hidden when the surface at its own pixel lies more
   than :data:`EXACT_TOLERANCE` in front of it (behind the nose, the cheek), or when a surface
   within the window lies more than :data:`DEPTH_TOLERANCE` in front of it (right beside an
   occluding edge: the far eye corner next to the nose bridge of a turned head).

The facing thresholds are per landmark (mirror-symmetric; :data:`FACING_MIN`, built from
:data:`FACING_GROUPS`) because "visible" is a judgement, not only geometry: people who annotate
faces call a landmark hidden well before its surface turns edge-on, and earlier for some
landmarks than for others (a far-side eyebrow's middle goes before its inner end; the near
eye's inner corner disappears behind the eyeball in a profile, which the mesh's flat eye
surface does not model). The thresholds were chosen on the AFLW2000-3D *development* faces
(those of the 1700 shared development photos) against AFLW's visibility marks, for the
landmarks AFLW's 21 points correspond to; the landmarks between them take the mean of their
neighbours' (``experiments/visibility_check.py --calibrate`` re-derives them; the agreement is
reported there on the other 300 faces and on all 2000). Two physical checks hold: the mean
face seen from the front shows its landmarks, seen at 75 degrees it hides its far half.

Distances are fractions of the mesh's larger side: the mesh is rasterised in its own frame,
scaled so that that side spans :data:`RESOLUTION` pixels, so the test does not depend on the
photo's resolution. The test reads the z-buffer only in the landmarks' windows and the normals
only in their patches, so it computes just those, in numpy (the same normals as
:func:`ddfa.render.dense.vertex_normals` and the same depths as :func:`ddfa.render.raster.rasterize`,
which the tests check, without their compiled kernels: ``ddfa align`` writes visibility into
every JSON and must not pay numba's start-up for it). Only the face's own mesh is tested
(self-occlusion); hair, hands, glasses and other faces are not modelled (on AFLW's photos past
45 degrees of yaw, hair alone hides a quarter of the near-side ear lobes and about a tenth of
the near-side eyebrow points).

:func:`crude_visibility` is the baseline the issue asks to beat: at a turned head, the landmarks
beyond the nose, on the half of the face that turns away, are hidden.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import weakref
from dataclasses import dataclass

import numpy as np

from ..boxes import point_bounds
from ..morphable.mirror import IBUG68_MIRROR

#: side in pixels of the raster the visibility test uses
RESOLUTION = 256
#: radius of the patch whose mean normal decides "facing", fraction of the mean face's width
NORMAL_RADIUS = 0.12
#: half-size of the occlusion window, fraction of the raster's side
WINDOW = 0.012
#: a surface this far in front of the landmark within the window (fraction of the mesh's larger
#: side) hides it, unless the landmark is on the face's outline
DEPTH_TOLERANCE = 0.1
#: a surface this far in front of the landmark at its own pixel hides it
EXACT_TOLERANCE = 0.08
#: a jaw landmark (iBUG 0-16) on the face's outline passes the facing test with a patch normal
#: z this much below its threshold (physical: the outline is what the camera sees; at 10 degrees
#: of yaw the far jaw's patches already face slightly away); 0 for the other landmarks
OUTLINE_MARGIN = np.where(np.arange(68) <= 16, 0.25, 0.0)

#: minimum z of the patch's mean unit normal, by landmark group; chosen on the development faces
#: (see the module docstring). Each group lists its iBUG landmarks on the image's left half of a
#: frontal face and on the midline; their mirror partners share the threshold.
FACING_GROUPS: dict[str, tuple[float, tuple[int, ...]]] = {
    "jaw": (0.00, (0, 1, 2, 3, 4, 5, 6, 7)),         # AFLW's ear lobe (landmark 2)
    "chin": (-0.06, (8,)),
    "brow, outer end": (0.00, (17,)),
    "brow, centre": (0.32, (19,)),
    "brow, inner end": (0.16, (21,)),
    "eye, outer corner": (0.26, (36,)),
    "eye, inner corner": (0.42, (39,)),
    "eyelids": (0.04, (37, 38, 40, 41)),            # with the corners: AFLW's eye centre
    "nose, midline": (-0.06, (27, 28, 29, 30, 33)),  # AFLW's nose tip
    "nose, wing": (0.28, (31,)),
    "mouth, corner": (0.24, (48, 60)),
    "mouth, midline": (-0.10, (51, 57, 62, 66)),     # AFLW's mouth centre
}
#: landmarks between two calibrated ones take the mean of their thresholds
FACING_BETWEEN: dict[int, tuple[int, int]] = {
    18: (17, 19), 20: (19, 21), 32: (31, 33), 49: (48, 51), 50: (48, 51), 58: (48, 57), 59: (48, 57),
    61: (60, 62), 67: (60, 66),
}


def facing_thresholds(groups: dict[str, tuple[float, tuple[int, ...]]] | None = None) -> np.ndarray:
    """(68,) per-landmark facing thresholds from ``groups`` (default :data:`FACING_GROUPS`),
    mirror-symmetric, with the in-between landmarks of :data:`FACING_BETWEEN`."""
    out = np.full(68, np.nan)
    for value, ids in (groups or FACING_GROUPS).values():
        out[list(ids)] = value
    for k, (a, b) in FACING_BETWEEN.items():
        out[k] = 0.5 * (out[a] + out[b])
    left = ~np.isnan(out)
    out[IBUG68_MIRROR[left]] = out[left]
    assert not np.isnan(out).any(), "every landmark needs a facing threshold"
    return out


#: (68,) minimum z of each landmark's patch normal
FACING_MIN = facing_thresholds()


@dataclass(frozen=True)
class Patches:
    """For each of P tested vertices, the vertices whose normals it averages: ``members`` (M,)
    int64 vertex ids, patch after patch; ``starts`` (P,) int64 offset of each patch in
    ``members``; ``counts`` (P,) int64 its size (every patch holds at least its own vertex);
    ``triangles`` (A,) int64 ids of the mesh's triangles with a corner in some patch (their
    normals are the ones needed), or None (all); ``corners`` (3, A) int64 those triangles'
    vertex ids, a row per corner (kept: gathering them per face cost ~2 ms), or None."""

    members: np.ndarray
    starts: np.ndarray
    counts: np.ndarray
    triangles: np.ndarray | None = None
    corners: np.ndarray | None = None

    def average(self, values: np.ndarray) -> np.ndarray:
        """(P,) float64 mean of per-vertex ``values`` (N,) over each patch."""
        return np.add.reduceat(np.asarray(values, dtype=np.float64)[self.members], self.starts) / self.counts


_PATCHES: weakref.WeakKeyDictionary[object, Patches] = weakref.WeakKeyDictionary()


#: version of :func:`vertex_patches` (bump when its output would change)
PATCHES_RECIPE = 2


def landmark_patches(model, radius: float = NORMAL_RADIUS) -> Patches:
    """The patch of each of the 68 landmarks: the vertices within ``radius`` x the mean face's
    width of it on the mean face. For the default radius, computed once per model, and for a
    model built from asset files (``model.content_key``) kept in the cache of converted files
    (~50 ms to compute, the start-up of one photo's JSON reads them back)."""
    cached = _PATCHES.get(model)
    if cached is not None and radius == NORMAL_RADIUS:
        return cached

    def compute() -> Patches:
        return vertex_patches(np.asarray(model.mean, dtype=np.float64), model.landmark_vertices, radius,
                              model.triangles)

    key = getattr(model, "content_key", "")
    if radius != NORMAL_RADIUS:
        return compute()
    if key:
        from ..assets.store import default_cache_dir
        from ..nets.model_cache import cached_arrays

        arrays = cached_arrays(f"patches-{model.name}", source_sha256=f"{key}-{radius!r}", recipe=PATCHES_RECIPE,
                               cache_dir=default_cache_dir(), describe="the landmarks' normal patches",
                               build=lambda: dataclasses.asdict(compute()))
        patches = Patches(**arrays)
    else:
        patches = compute()
    _PATCHES[model] = patches
    return patches


def vertex_patches(mean: np.ndarray, vertex_ids, radius: float, triangles=None) -> Patches:
    """For each of ``vertex_ids``, the vertices of ``mean`` (N, 3) within ``radius`` x its width
    (x extent) of it (one (P, N) distance matrix, a few ms for the 68 landmarks); with the
    mesh's (T, 3) ``triangles``, also those that touch a patch (their normals are needed) and
    their corners."""
    ids = np.asarray(vertex_ids, dtype=np.int64)
    reach = radius * float(np.ptp(mean[:, 0]))
    centred = mean - mean.mean(axis=0)
    squared = ((centred**2).sum(axis=1)[None, :] - 2.0 * centred[ids] @ centred.T
               + (centred[ids] ** 2).sum(axis=1)[:, None])
    rows, members = np.nonzero(squared <= reach * reach)  # row-major: patch after patch, ids ascending
    counts = np.bincount(rows, minlength=len(ids)).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    touching = corners = None
    if triangles is not None:
        in_patch = np.zeros(len(mean), dtype=bool)
        in_patch[members] = True
        tris = np.asarray(triangles, dtype=np.intp)
        touching = np.flatnonzero(in_patch[tris[:, 0]] | in_patch[tris[:, 1]] | in_patch[tris[:, 2]]).astype(np.int64)
        corners = np.ascontiguousarray(tris[touching].T, dtype=np.int64)
    return Patches(members.astype(np.int64), starts, counts, touching, corners)


#: a pixel centre on a triangle's edge is inside within this many barycentric units (as
#: :func:`ddfa.render.raster.rasterize`)
INSIDE_TOLERANCE = 1e-5


def vertex_normal_z(local: np.ndarray, triangles: np.ndarray, patches: Patches | None,
                    vertex_ids: np.ndarray) -> np.ndarray:
    """z of the unit vertex normals (area-weighted mean of the adjacent triangles' normals,
    :func:`ddfa.render.dense.vertex_normals` in the image frame) of the patches' vertices (or of
    ``vertex_ids`` without patches), averaged per patch: (P,) float64."""
    verts = np.asarray(local, dtype=np.float32)
    if patches is not None and patches.corners is not None:
        columns = patches.corners  # (3, A): a row per corner
    else:
        columns = triangle_columns(triangles)
        if patches is not None and patches.triangles is not None:
            columns = np.take(columns, patches.triangles, axis=1)
    corners = columns.ravel()  # corner a of every triangle, then b, then c (contiguous)
    # (np.take of whole rows: ~4x faster than fancy indexing them)
    a, b, c = (np.take(verts, ids, axis=0) for ids in columns)
    (ux, uy, uz), (vx, vy, vz) = (b - a).T, (c - a).T
    # (b - a) x (c - a): float32, length twice the area, summed over each vertex's triangles
    summed = np.stack([np.bincount(corners, weights=np.tile(component, 3), minlength=len(verts))
                       for component in (uy * vz - uz * vy, uz * vx - ux * vz, ux * vy - uy * vx)],
                      axis=1).astype(np.float32)
    length = np.sqrt((summed**2).sum(axis=1))
    normal_z = np.divide(summed[:, 2], length, out=np.zeros(len(verts), np.float32), where=length > 0)
    normal_z = normal_z.astype(np.float64)
    return normal_z[np.asarray(vertex_ids, dtype=np.int64)] if patches is None else patches.average(normal_z)


_COLUMNS: dict[int, tuple[weakref.ref, np.ndarray]] = {}


def triangle_columns(triangles) -> np.ndarray:
    """(3, T) contiguous intp vertex ids of (T, 3) ``triangles``, a row per corner. For a
    read-only array (a model's triangles) kept while that array lives: converted once, not for
    every face (~1.5 ms)."""
    key = id(triangles)
    kept = _COLUMNS.get(key)
    if kept is not None and kept[0]() is triangles:
        return kept[1]
    columns = np.ascontiguousarray(np.asarray(triangles).T, dtype=np.intp)
    if not isinstance(triangles, np.ndarray) or triangles.flags.writeable:  # (it could change)
        return columns

    def forget(_: weakref.ref) -> None:
        _COLUMNS.pop(key, None)

    ref = weakref.ref(triangles, forget)
    columns.flags.writeable = False  # (shared)
    _COLUMNS[key] = (ref, columns)
    return columns


def depth_at(local: np.ndarray, triangles: np.ndarray, rows: np.ndarray, cols: np.ndarray, size: int
             ) -> np.ndarray:
    """Depth of the nearest surface of a mesh at some pixels of a ``size`` x ``size`` raster, as
    :func:`ddfa.render.raster.rasterize` gives it there (both windings; -inf off the mesh),
    rasterising only the triangles whose box of pixel centres meets one of those pixels.

    Args:
        local: (N, 3) float32 vertices in raster pixels (x right, y down, z towards the camera).
        triangles: (T, 3) vertex ids.
        rows, cols: integer pixel coordinates in ``[0, size)``, any (same) shape.

    Returns:
        float64 depths shaped like ``rows``.
    """
    local32 = np.asarray(local, dtype=np.float32)
    verts = local32.astype(np.float64)
    flat = (np.asarray(rows, np.int64) * size + np.asarray(cols, np.int64)).ravel()
    wanted = np.zeros(size * size, dtype=bool)
    wanted[flat] = True
    table = np.zeros((size + 1, size + 1), dtype=np.int32)  # summed-area table of the wanted pixels
    table[1:, 1:] = wanted.reshape(size, size).cumsum(axis=0, dtype=np.int32).cumsum(axis=1, dtype=np.int32)
    # (contiguous intp columns: these gathers over every triangle are most of the cost)
    ceil_x, floor_x = np.ceil(local32[:, 0]).astype(np.int32), np.floor(local32[:, 0]).astype(np.int32)
    ceil_y, floor_y = np.ceil(local32[:, 1]).astype(np.int32), np.floor(local32[:, 1]).astype(np.int32)
    ta, tb, tc = triangle_columns(triangles)
    # the box of pixel centres of each triangle, clipped to the raster
    x0 = np.maximum(np.minimum(np.minimum(ceil_x[ta], ceil_x[tb]), ceil_x[tc]), 0)
    x1 = np.minimum(np.maximum(np.maximum(floor_x[ta], floor_x[tb]), floor_x[tc]), size - 1)
    y0 = np.maximum(np.minimum(np.minimum(ceil_y[ta], ceil_y[tb]), ceil_y[tc]), 0)
    y1 = np.minimum(np.maximum(np.maximum(floor_y[ta], floor_y[tb]), floor_y[tc]), size - 1)
    keep = np.flatnonzero((x0 <= x1) & (y0 <= y1))
    x0, x1, y0, y1 = (np.take(v, keep).astype(np.int64) for v in (x0, x1, y0, y1))
    # (flat np.take: ~3x faster than indexing the 2-D table with two index arrays)
    summed, stride = table.ravel(), size + 1
    top, bottom = y0 * stride, (y1 + 1) * stride
    hits = (np.take(summed, bottom + x1 + 1) - np.take(summed, top + x1 + 1) - np.take(summed, bottom + x0)
            + np.take(summed, top + x0)) > 0
    keep, x0, y0 = keep[hits], x0[hits], y0[hits]
    width, height = x1[hits] - x0 + 1, y1[hits] - y0 + 1
    # every (triangle, pixel centre of its box) pair, flat: the boxes of dense faces hold ~1 pixel
    cells = width * height
    owner = np.repeat(np.arange(len(keep)), cells)
    within = np.arange(len(owner)) - np.repeat(np.cumsum(cells) - cells, cells)
    px = x0[owner] + within % width[owner]
    py = y0[owner] + within // width[owner]
    candidate = wanted[py * size + px]
    owner, px, py = owner[candidate], px[candidate], py[candidate]
    hit = keep[owner]
    (xa, ya, za), (xb, yb, zb), (xc, yc, zc) = (np.take(verts, np.take(t, hit), axis=0).T for t in (ta, tb, tc))
    area = (xb - xa) * (yc - ya) - (xc - xa) * (yb - ya)
    inv = np.divide(1.0, area, out=np.zeros_like(area), where=area != 0)
    x, y = px.astype(np.float64), py.astype(np.float64)
    b0 = ((xb - x) * (yc - y) - (xc - x) * (yb - y)) * inv
    b1 = ((xc - x) * (ya - y) - (xa - x) * (yc - y)) * inv
    inside = ((area != 0) & (b0 >= -INSIDE_TOLERANCE) & (b1 >= -INSIDE_TOLERANCE)
              & (b0 + b1 <= 1.0 + INSIDE_TOLERANCE))
    z = b0 * za + b1 * zb + (1.0 - b0 - b1) * zc
    depth = np.full(size * size, -np.inf)
    np.maximum.at(depth, (py * size + px)[inside], z[inside])
    return depth[flat].reshape(np.shape(rows))


def visibility_evidence(vertices: np.ndarray, triangles: np.ndarray, vertex_ids: np.ndarray,
                        patches: Patches | None = None, *, resolution: int = RESOLUTION,
                        window: float = WINDOW, depth_tolerance: float = DEPTH_TOLERANCE,
                        exact_tolerance: float = EXACT_TOLERANCE) -> tuple[np.ndarray, np.ndarray]:
    """What the visibility test reads from one mesh (see the module docstring).

    Args:
        vertices: (N, 3) mesh in the image frame (x right, y down, z towards the camera; any
            scale: the test rescales it).
        triangles: (T, 3) triangles in ddfa's order (front faces have positive signed area).
        vertex_ids: (P,) ids of the vertices to test (e.g. the 68 landmark vertices).
        patches: for each tested vertex, the vertices whose mean normal decides whether it faces
            the camera (default: the vertex's own normal).

    Returns:
        ``(facing_z, occluded)``: (P,) float64 z of the (patch's mean) unit normal (for the 68
        landmarks, plus :data:`OUTLINE_MARGIN` where on the mesh's outline) and (P,) bool,
        hidden by the mesh itself (z-buffer).
    """
    verts = np.asarray(vertices, dtype=np.float64)
    ids = np.asarray(vertex_ids, dtype=np.int64)
    lo, hi = point_bounds(verts)
    side = float(max(hi[0] - lo[0], hi[1] - lo[1], 1e-9))
    scale = (resolution - 1) / side
    local = ((verts - np.array([lo[0], lo[1], 0.0])) * scale).astype(np.float32)
    half = max(0, int(round(window * resolution)))
    offsets = np.arange(-half, half + 1)
    cols = np.clip(np.rint(local[ids, 0]).astype(np.int64)[:, None, None] + offsets[None, None, :], 0, resolution - 1)
    rows = np.clip(np.rint(local[ids, 1]).astype(np.int64)[:, None, None] + offsets[None, :, None], 0, resolution - 1)
    rows, cols = np.broadcast_arrays(rows, cols)
    if compiled_kernels_loaded():  # the renderer's kernels: ~3x faster per face, once loaded
        from .dense import vertex_normals
        from .raster import rasterize

        normal_z = vertex_normals(local, triangles)[:, 2].astype(np.float64)
        facing_z = normal_z[ids] if patches is None else patches.average(normal_z)
        depth = rasterize(local, triangles, resolution, resolution).depth[rows, cols].astype(np.float64)
    else:
        facing_z = vertex_normal_z(local, triangles, patches, ids)
        depth = depth_at(local, triangles, rows, cols, resolution)  # (P, 2 half + 1, 2 half + 1)
    window_depth = depth.reshape(len(ids), -1)
    own = depth[:, half, half]
    z = local[ids, 2].astype(np.float64)
    # on the face's outline (background within the window): the outline is what the camera sees
    on_outline = np.isinf(window_depth).any(axis=1)
    # inside it: hidden behind the surface at its own pixel, or beside an occluding edge (a
    # surface much nearer within the window: the nose, the near cheek of a turned head)
    covered = own - z > exact_tolerance * (resolution - 1)
    beside_edge = window_depth.max(axis=1) - z > depth_tolerance * (resolution - 1)
    # the outline is seen even where the surface there turns a little away (the far jaw of a
    # slightly turned head): its facing test is relaxed by OUTLINE_MARGIN
    margin = OUTLINE_MARGIN if len(ids) == len(OUTLINE_MARGIN) else 0.0  # (the 68 landmarks only)
    return facing_z + margin * on_outline, ~on_outline & (covered | beside_edge)


_KERNELS_READY = threading.Event()


def compiled_kernels_loaded() -> bool:
    """Whether the visibility test runs on the renderer's numba kernels (about 7 ms per face)
    rather than in numpy (about twice that, nothing to load): once :func:`load_compiled_kernels` has
    finished, or where the renderer is in use anyway (its modules imported, e.g. for dense
    outputs). Both give the same depths and normals (tested)."""
    return _KERNELS_READY.is_set() or ("ddfa.render.raster" in sys.modules and "ddfa.render.dense" in sys.modules)


def load_compiled_kernels() -> None:
    """Import numba and load (or compile, the first time on a machine) the kernels the
    visibility test can use: worth it for a run of many faces (a folder), not for one photo
    (0.5-0.7 s). Safe to call from a background thread; the test switches over when done."""
    from .dense import vertex_normals
    from .raster import rasterize

    tiny = np.array([[0.0, 0.0, 0.0], [4.0, 0.0, 0.0], [0.0, 4.0, 0.0]], np.float32)
    vertex_normals(tiny, np.array([[0, 1, 2]]))
    rasterize(tiny, np.array([[0, 1, 2]]), 8, 8)
    _KERNELS_READY.set()


_LOADER: list[threading.Thread] = []  # the one thread of load_compiled_kernels_in_background
_LOADER_LOCK = threading.Lock()


def load_compiled_kernels_in_background() -> threading.Thread:
    """:func:`load_compiled_kernels` in a thread, while models load and the first faces run (in
    numpy until it is done); errors leave numpy doing the work. Not a daemon: the interpreter
    waits for it at exit (a thread killed inside numba's compiler would abort the process).
    Once per process: later calls return the same thread."""

    def load() -> None:
        try:
            load_compiled_kernels()
        except Exception:
            pass

    with _LOADER_LOCK:
        if not _LOADER:
            _LOADER.append(threading.Thread(target=load, name="ddfa-visibility-kernels", daemon=False))
            _LOADER[0].start()
        return _LOADER[0]


def vertex_visibility(vertices: np.ndarray, triangles: np.ndarray, vertex_ids: np.ndarray,
                      patches: Patches | None = None, *, facing_min: float | np.ndarray = 0.0,
                      **options) -> np.ndarray:
    """(P,) bool visibility of some vertices of one mesh: facing the camera (normal or patch
    normal z above ``facing_min``, one value or one per vertex) and not hidden by the mesh
    itself. Arguments and ``options`` as :func:`visibility_evidence`."""
    facing_z, occluded = visibility_evidence(vertices, triangles, vertex_ids, patches, **options)
    return (facing_z > facing_min) & ~occluded


def landmark_visibility(vertices: np.ndarray, model, **options) -> np.ndarray:
    """(68,) bool visibility of the 68 landmarks of one face from its (N, 3) dense mesh in the
    image frame and its :class:`~ddfa.morphable.MorphableModel` (triangles, landmark vertices).
    ``options``: ``facing_min`` (default :data:`FACING_MIN`) and those of
    :func:`visibility_evidence`."""
    options.setdefault("facing_min", FACING_MIN)
    return vertex_visibility(vertices, model.triangles, model.landmark_vertices, landmark_patches(model),
                             **options)


def landmark_evidence(vertices: np.ndarray, model, **options) -> tuple[np.ndarray, np.ndarray]:
    """``(facing_z, occluded)`` of the 68 landmarks (:func:`visibility_evidence`), e.g. to
    choose the facing thresholds."""
    return visibility_evidence(vertices, model.triangles, model.landmark_vertices, landmark_patches(model),
                               **options)


def crude_visibility(yaw: float) -> np.ndarray:
    """The crude rule: (68,) bool, False for the landmarks of the far half of a turned face.

    The far half is the side the face turns away from: for yaw > 0 (turned towards the image's
    left, ddfa's convention) the landmarks that lie on the image's left in a frontal face
    (iBUG jaw 0-7, brow 17-21, eye 36-41, ...), for yaw < 0 their mirror partners; the
    midline (nose bridge and tip, chin, lip centres) stays visible, and so does everything at
    yaw 0.
    """
    far = _FAR_LEFT if yaw > 0 else _FAR_LEFT[IBUG68_MIRROR] if yaw < 0 else np.zeros(68, bool)
    return ~far


#: the landmarks on the image's left half of a frontal face (iBUG order), midline excluded
_FAR_LEFT = np.zeros(68, dtype=bool)
_FAR_LEFT[[*range(0, 8), *range(17, 22), 31, 32, *range(36, 42), 48, 49, 50, 58, 59, 60, 61, 67]] = True
