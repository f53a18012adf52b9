"""Left/right mirroring of faces: the 68-point permutation, the dense vertex map, mirrored parameters.

A face seen in a horizontally flipped crop is the mirror image of the face: point ``i`` of the
flipped face is the reflection of point ``mirror(i)`` of the original, where ``mirror`` swaps
left and right (the right eye's outer corner becomes the left eye's outer corner, ...).

* **68 landmarks** (:data:`IBUG68_MIRROR`): the fixed iBUG permutation (jaw 0..16 reversed, brows
  17..21 <-> 26..22, nose bridge 27..30 fixed, nostrils 31..35 reversed, eyes 36..41 <-> 45..42
  / 47..46, lips 48..54 reversed, 55..59 reversed, inner lips 60..64 reversed, 65..67 reversed).
* **dense vertices** (:func:`vertex_mirror_map`): derived from the model's mean shape. The
  mean face is nearly symmetric about a plane ``x = x0`` of the model frame (x0 estimated from
  the 29 left/right landmark pairs, then refined where the reflected mean shape best meets
  itself); each vertex maps to the vertex nearest to its reflection.
  ``tests/core/test_mirror.py`` checks that the reflected mean shape
  lands on itself (median distance well under the mesh's vertex spacing), that the map is
  nearly an involution and that it agrees with :data:`IBUG68_MIRROR` at the landmarks.
* **parameters** (:func:`mirror_params`): the 62 parameters of the mirrored face, in the crop
  frame of the horizontally flipped 120x120 crop (crop pixel column ``j`` <-> ``119 - j``, i.e.
  model ``Vx -> 121 - Vx``, see :mod:`ddfa.morphable.frames`). Pose is exact: ``A' = D·A·D``,
  ``t' = D·t + (121, 0, 0) - A'·(2·x0, 0, 0)`` with ``A = s·R``, ``D = diag(-1, 1, 1)``. The 50
  shape and expression coefficients map affinely, ``α' = M·α + b``: the least-squares
  coefficients of the mirrored shape over the whole dense mesh (the reduced BFM basis is
  nearly, not exactly, closed under mirroring; the residual is reported by
  :attr:`MirrorMaps.coefficient_residual`).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

from .frames import CROP_SIZE
from .params import coefficients, join_params, pose_matrix

#: the mirror partner of each iBUG 68-point landmark (0-based): landmark ``i`` of a face seen in
#: a flipped image is landmark ``IBUG68_MIRROR[i]`` of the face, reflected
IBUG68_MIRROR = np.array(
    [*range(16, -1, -1),                    # jaw 0..16
     *range(26, 21, -1), *range(21, 16, -1),  # brows 17..21 <-> 26..22
     27, 28, 29, 30,                          # nose bridge
     35, 34, 33, 32, 31,                      # nostrils
     45, 44, 43, 42, 47, 46,                  # right eye 36..41 <- left eye
     39, 38, 37, 36, 41, 40,                  # left eye 42..47 <- right eye
     54, 53, 52, 51, 50, 49, 48,              # outer lips, upper 48..54
     59, 58, 57, 56, 55,                      # outer lips, lower 55..59
     64, 63, 62, 61, 60,                      # inner lips, upper 60..64
     67, 66, 65],                             # inner lips, lower 65..67
    dtype=np.int64,
)
IBUG68_MIRROR.setflags(write=False)

_REFLECT = np.array([-1.0, 1.0, 1.0])


@dataclass(frozen=True, eq=False)
class MirrorMaps:
    """Mirror data of one morphable model (:func:`mirror_maps`).

    Attributes:
        plane_x: x0 of the model-frame symmetry plane ``x = x0`` of the mean shape.
        vertex_map: (N,) int64 mirror partner of each vertex.
        vertex_distance: (N,) float64 distance from each vertex's reflection to its partner,
            model units (a measure of how symmetric the mean mesh is there).
        coefficient_matrix: (50, 50) float64 ``M`` of ``α' = M·α + b``.
        coefficient_offset: (50,) float64 ``b``.
        coefficient_residual: RMS over the mesh of ``mirror(shape(α)) - shape(M·α + b)`` for the
            mean face, model units (0 for a perfectly symmetric model).
    """

    plane_x: float
    vertex_map: np.ndarray
    vertex_distance: np.ndarray
    coefficient_matrix: np.ndarray
    coefficient_offset: np.ndarray
    coefficient_residual: float


_MAPS: weakref.WeakKeyDictionary[object, MirrorMaps] = weakref.WeakKeyDictionary()


def symmetry_plane(points: np.ndarray, x0: float | None = None, iterations: int = 3
                   ) -> tuple[float, np.ndarray, np.ndarray]:
    """The plane ``x = x0`` about which a point set is most nearly symmetric.

    Starts at ``x0`` (default: the midpoint of the x extent) and alternates between pairing each
    point with the point nearest its reflection and setting x0 to the median midpoint of the
    pairs.

    Args:
        points: (N, 3) points.
        x0: starting plane (a good start, e.g. from symmetric landmark pairs, needs few
            iterations).

    Returns:
        ``(x0, partner, distance)``: the plane, (N,) int64 nearest partner of each point's
        reflection and (N,) float64 the distance to it.
    """
    from scipy.spatial import cKDTree

    pts = np.asarray(points, dtype=np.float64)
    tree = cKDTree(pts)
    x0 = float((pts[:, 0].min() + pts[:, 0].max()) / 2) if x0 is None else float(x0)
    for _ in range(iterations):
        reflected = pts * _REFLECT + np.array([2 * x0, 0.0, 0.0])
        distance, partner = tree.query(reflected)
        x0 = float(np.median((pts[:, 0] + pts[partner, 0]) / 2))
    reflected = pts * _REFLECT + np.array([2 * x0, 0.0, 0.0])
    distance, partner = tree.query(reflected)
    return x0, partner.astype(np.int64), distance


def reflect_shape(points: np.ndarray, vertex_map: np.ndarray, plane_x: float) -> np.ndarray:
    """The mirror image of (..., N, 3) model-frame shapes (before pose) through ``x = plane_x``,
    with vertices renumbered so that vertex ``i`` of the result is the reflection of vertex
    ``vertex_map[i]``."""
    pts = np.asarray(points)[..., vertex_map, :]
    return pts * _REFLECT + np.array([2 * plane_x, 0.0, 0.0])


def mirror_maps(model) -> MirrorMaps:
    """The :class:`MirrorMaps` of a :class:`~ddfa.morphable.MorphableModel` (computed once per
    model object, ~1 s for the 38,365-vertex mesh)."""
    maps = _MAPS.get(model)
    if maps is None:
        maps = _build_maps(model)
        _MAPS[model] = maps
    return maps


def _build_maps(model) -> MirrorMaps:
    mean = np.asarray(model.mean, dtype=np.float64)
    basis = np.asarray(model.basis, dtype=np.float64)  # (3N, 50)
    landmarks = mean[np.asarray(model.landmark_vertices)]
    start = float(np.mean((landmarks[:, 0] + landmarks[IBUG68_MIRROR, 0]) / 2))  # symmetric landmark pairs
    plane_x, vertex_map, distance = symmetry_plane(mean, start, iterations=2)
    num = basis.shape[1]
    # the mirror operator on stacked shapes: linear part applied to the basis columns, affine
    # part to the mean
    mirrored_basis = (basis.reshape(-1, 3, num)[vertex_map] * _REFLECT[None, :, None]).reshape(-1, num)
    mirrored_mean = reflect_shape(mean, vertex_map, plane_x).reshape(-1)
    # scale the columns so that shape (~1e4) and expression (~1) coefficients are equally conditioned
    # (normal equations of the least-squares fit; the scaled basis is well conditioned)
    norms = np.linalg.norm(basis, axis=0)
    scaled = basis / norms
    targets = np.concatenate([mirrored_basis, (mirrored_mean - mean.reshape(-1))[:, None]], axis=1)
    solution = np.linalg.solve(scaled.T @ scaled, scaled.T @ targets) / norms[:, None]
    matrix, offset = solution[:, :num], solution[:, num]
    residual = mean.reshape(-1) + basis @ offset - mirrored_mean
    maps = MirrorMaps(plane_x=plane_x, vertex_map=vertex_map, vertex_distance=distance,
                      coefficient_matrix=matrix, coefficient_offset=offset,
                      coefficient_residual=float(np.sqrt((residual.reshape(-1, 3) ** 2).sum(1).mean())))
    for array in (maps.vertex_map, maps.vertex_distance, maps.coefficient_matrix, maps.coefficient_offset):
        array.setflags(write=False)
    return maps


def vertex_mirror_map(model) -> np.ndarray:
    """(N,) int64: the mirror partner of each vertex of ``model`` (see the module docstring)."""
    return mirror_maps(model).vertex_map


def mirror_params(params: np.ndarray, model, size: int = CROP_SIZE) -> np.ndarray:
    """The parameters of the mirror image of each face, in the horizontally flipped crop's frame.

    Applying it twice gives the input back (up to the small residual of the coefficient map).

    Args:
        params: (B, 62) or (62,) de-whitened parameters (crop frame of a ``size`` crop).
        model: the :class:`~ddfa.morphable.MorphableModel` the parameters belong to.

    Returns:
        float64 parameters of the same shape.
    """
    maps = mirror_maps(model)
    p = np.asarray(params, dtype=np.float64)
    pose = pose_matrix(p)
    reflect = np.diag(_REFLECT)
    linear = reflect @ pose[..., :3] @ reflect
    translation = pose[..., 3] * _REFLECT + np.array([size + 1.0, 0.0, 0.0])
    translation = translation - linear[..., :, 0] * (2 * maps.plane_x)
    coeffs = coefficients(p) @ maps.coefficient_matrix.T + maps.coefficient_offset
    return join_params(np.concatenate([linear, translation[..., None]], axis=-1), coeffs)


def mirror_points(points: np.ndarray, size: int = CROP_SIZE, permutation: np.ndarray | None = IBUG68_MIRROR
                  ) -> np.ndarray:
    """Crop-frame points of a horizontally flipped ``size`` crop -> the original crop's frame.

    ``x -> size - 1 - x`` (pixel column ``j`` <-> ``size - 1 - j``), y and z unchanged, and the
    points renumbered with ``permutation`` (the 68-point one by default; a vertex map for dense
    meshes, None for none).

    Args:
        points: (..., P, 2|3) crop-frame points (ddfa's 0-based frame).
    """
    out = np.array(points, dtype=np.float64, copy=True)
    out[..., 0] = (size - 1) - out[..., 0]
    return out if permutation is None else out[..., permutation, :]
