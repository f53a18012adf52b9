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
photo's resolution. Only the face's own mesh is tested (self-occlusion); hair, hands, glasses
and other faces are not modelled (on AFLW's photos past 45 degrees of yaw, hair alone hides a
quarter of the near-side ear lobes and about a tenth of the near-side eyebrow points).

:func:`crude_visibility` is the baseline the issue asks to beat: at a turned head, the landmarks
beyond the nose, on the half of the face that turns away, are hidden.
"""

from __future__ import annotations

import weakref

import numpy as np
from scipy import sparse

from ..morphable.mirror import IBUG68_MIRROR
from .dense import vertex_normals
from .raster import rasterize

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

#: minimum z of the patch's mean unit normal, by landmark group; chosen on the development faces
#: (see the module docstring). Each group lists its iBUG landmarks on the image's left half of a
#: frontal face and on the midline; their mirror partners share the threshold.
FACING_GROUPS: dict[str, tuple[float, tuple[int, ...]]] = {
    "jaw": (-0.02, (0, 1, 2, 3, 4, 5, 6, 7)),        # AFLW's ear lobe (landmark 2)
    "chin": (-0.30, (8,)),
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

_PATCHES: weakref.WeakKeyDictionary[object, sparse.csr_matrix] = weakref.WeakKeyDictionary()


def landmark_patches(model, radius: float = NORMAL_RADIUS) -> sparse.csr_matrix:
    """(68, N) sparse averaging matrix: row k averages the vertices within ``radius`` x the mean
    face's width of landmark k on the mean face (computed once per model for the default radius)."""
    cached = _PATCHES.get(model)
    if cached is not None and radius == NORMAL_RADIUS:
        return cached
    matrix = patch_matrix(np.asarray(model.mean, dtype=np.float64), model.landmark_vertices, radius)
    if radius == NORMAL_RADIUS:
        _PATCHES[model] = matrix
    return matrix


def patch_matrix(mean: np.ndarray, vertex_ids, radius: float) -> sparse.csr_matrix:
    """(P, N) sparse matrix averaging, for each of ``vertex_ids``, the vertices of ``mean``
    (N, 3) within ``radius`` x its width (x extent) of it."""
    from scipy.spatial import cKDTree

    ids = np.asarray(vertex_ids, dtype=np.int64)
    width = float(np.ptp(mean[:, 0]))
    members = cKDTree(mean).query_ball_point(mean[ids], radius * width)
    rows = np.repeat(np.arange(len(ids)), [len(m) for m in members])
    cols = np.concatenate([np.asarray(m, dtype=np.int64) for m in members])
    weights = np.repeat([1.0 / len(m) for m in members], [len(m) for m in members])
    return sparse.csr_matrix((weights, (rows, cols)), shape=(len(ids), len(mean)))


def visibility_evidence(vertices: np.ndarray, triangles: np.ndarray, vertex_ids: np.ndarray,
                        patches: sparse.spmatrix | None = None, *, resolution: int = RESOLUTION,
                        window: float = WINDOW, depth_tolerance: float = DEPTH_TOLERANCE,
                        exact_tolerance: float = EXACT_TOLERANCE) -> tuple[np.ndarray, np.ndarray]:
    """What the visibility test reads from one mesh (see the module docstring).

    Args:
        vertices: (N, 3) mesh in the image frame (x right, y down, z towards the camera; any
            scale: the test rescales it).
        triangles: (T, 3) triangles in ddfa's order (front faces have positive signed area).
        vertex_ids: (P,) ids of the vertices to test (e.g. the 68 landmark vertices).
        patches: (P, N) matrix averaging, for each tested vertex, the normals that decide
            whether it faces the camera (default: the vertex's own normal).

    Returns:
        ``(facing_z, occluded)``: (P,) float64 z of the (patch's mean) unit normal and (P,)
        bool, hidden by the mesh itself (z-buffer).
    """
    verts = np.asarray(vertices, dtype=np.float64)
    ids = np.asarray(vertex_ids, dtype=np.int64)
    lo, hi = verts.min(axis=0), verts.max(axis=0)
    side = float(max(hi[0] - lo[0], hi[1] - lo[1], 1e-9))
    scale = (resolution - 1) / side
    local = ((verts - np.array([lo[0], lo[1], 0.0])) * scale).astype(np.float32)
    normal_z = vertex_normals(local, triangles)[:, 2].astype(np.float64)
    facing_z = normal_z[ids] if patches is None else np.asarray(patches @ normal_z, dtype=np.float64)
    depth = rasterize(local, triangles, resolution, resolution).depth
    half = max(0, int(round(window * resolution)))
    offsets = np.arange(-half, half + 1)
    cols = np.clip(np.rint(local[ids, 0]).astype(np.int64)[:, None, None] + offsets[None, None, :], 0, resolution - 1)
    rows = np.clip(np.rint(local[ids, 1]).astype(np.int64)[:, None, None] + offsets[None, :, None], 0, resolution - 1)
    window_depth = depth[rows, cols].reshape(len(ids), -1).astype(np.float64)
    own = depth[rows[:, half, 0], cols[:, 0, half]].astype(np.float64)
    z = local[ids, 2].astype(np.float64)
    # on the face's outline (background within the window): the outline is what the camera sees
    on_outline = np.isinf(window_depth).any(axis=1)
    # inside it: hidden behind the surface at its own pixel, or beside an occluding edge (a
    # surface much nearer within the window: the nose, the near cheek of a turned head)
    covered = own - z > exact_tolerance * (resolution - 1)
    beside_edge = window_depth.max(axis=1) - z > depth_tolerance * (resolution - 1)
    return facing_z, ~on_outline & (covered | beside_edge)


def vertex_visibility(vertices: np.ndarray, triangles: np.ndarray, vertex_ids: np.ndarray,
                      patches: sparse.spmatrix | None = None, *, facing_min: float | np.ndarray = 0.0,
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
