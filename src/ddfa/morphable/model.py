"""The 3D morphable model of 3DDFA: mean face, shape and expression bases, landmarks, mesh.

Model frame: right-handed, x to the subject's left as seen in the photo (image right), y up,
z towards the camera, in units that become 120x120-crop pixels once the pose ``P = [s·R | t]``
is applied. A face with parameters ``p`` has vertices

    V = s·R · (mean + W_shp · a_shp + W_exp · a_exp) + t            (N, 3)

Two vertex sets exist: ``"full"``, 3DDFA's 53,215 vertices, and ``"noneck"``, the 38,365 of
them that 3DDFA_V2 keeps (``configs/indices.npy``); both share the 68 landmarks.

Arrays: ``(B, N, 3)`` float32 for batches of vertex sets, ``(B, 62)`` for parameters.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .params import NUM_EXPRESSION, NUM_PARAMS, NUM_SHAPE

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .torch_model import TorchMorphableModel

NUM_LANDMARKS = 68

_V1_DIR = "3DDFA/train.configs/"
FULL_FILES = {
    "u_shp": _V1_DIR + "u_shp.npy",
    "u_exp": _V1_DIR + "u_exp.npy",
    "w_shp": _V1_DIR + "w_shp_sim.npy",
    "w_exp": _V1_DIR + "w_exp_sim.npy",
    "keypoints": _V1_DIR + "keypoints_sim.npy",
    "tri": "3DDFA/visualize/tri.mat",
}
NONECK_INDICES = "3DDFA_V2/configs/indices.npy"
NONECK_TRI = "3DDFA_V2/configs/tri.pkl"


@dataclass(frozen=True, eq=False)
class MorphableModel:
    """A reduced BFM with N vertices.

    Attributes:
        name: ``"full"`` (53,215 vertices) or ``"noneck"`` (38,365).
        mean: (N, 3) float32 mean shape plus mean expression, model frame.
        basis: (3N, 50) float32, rows interleaved x0, y0, z0, x1, ...; columns 0-39 shape,
            40-49 expression.
        landmark_vertices: (68,) int64 vertex ids of the 68 landmarks (standard iBUG order).
        triangles: (T, 3) int32 0-based vertex ids, as stored upstream: seen from the front they
            run clockwise, so in the model frame (y up) ``(v1 - v0) x (v2 - v0)`` points into the
            head, and in the image frame (y down) a front-facing triangle has a positive signed
            area ``(x1 - x0)(y2 - y0) - (x2 - x0)(y1 - y0)``.
        vertex_ids_in_full: (N,) int64 id of each vertex in the 53,215-vertex model.
        asset_root: the asset folder the model was loaded from (None when built by hand); other
            files of the same release (colour codes, UV maps) are looked up there.
    """

    name: str
    mean: np.ndarray
    basis: np.ndarray
    landmark_vertices: np.ndarray
    triangles: np.ndarray
    vertex_ids_in_full: np.ndarray
    asset_root: str | None = None
    _landmark_mean: np.ndarray = field(init=False, repr=False)
    _landmark_basis: np.ndarray = field(init=False, repr=False)
    _torch_cache: dict = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self):
        rows = (3 * self.landmark_vertices[:, None] + np.arange(3)).ravel()
        object.__setattr__(self, "_landmark_mean", np.ascontiguousarray(self.mean[self.landmark_vertices]))
        object.__setattr__(self, "_landmark_basis", np.ascontiguousarray(self.basis[rows]))

    @property
    def num_vertices(self) -> int:
        return self.mean.shape[0]

    @property
    def shape_basis(self) -> np.ndarray:
        """(3N, 40) float32 shape basis (a view)."""
        return self.basis[:, :NUM_SHAPE]

    @property
    def expression_basis(self) -> np.ndarray:
        """(3N, 10) float32 expression basis (a view)."""
        return self.basis[:, NUM_SHAPE:]

    # ------------------------------------------------------------------ reconstruction
    def reconstruct(self, params, dense: bool = False):
        """Vertices in the model frame.

        Args:
            params: (B, 62) or (62,) de-whitened parameters, numpy or torch.
            dense: all N vertices if True, else the 68 landmarks.

        Returns:
            (B, N or 68, 3) (or (N or 68, 3) for a single vector), same array type and dtype.
        """
        single = params.ndim == 1
        if single:
            params = params[None]
        if params.shape[-1] != NUM_PARAMS:
            raise ValueError(f"expected (B, 62) parameters, got {tuple(params.shape)}")
        mean, basis = (self.mean, self.basis) if dense else (self._landmark_mean, self._landmark_basis)
        if isinstance(params, np.ndarray):
            out = _reconstruct_numpy(params, mean, basis)
        else:
            key = (dense, params.device, params.dtype)
            if key not in self._torch_cache:
                import torch

                self._torch_cache[key] = tuple(
                    torch.tensor(a, dtype=params.dtype, device=params.device) for a in (mean, basis)
                )
            out = _reconstruct_torch(params, *self._torch_cache[key])
        return out[0] if single else out

    def landmarks(self, params):
        """(B, 68, 3) landmarks in the model frame (see :meth:`reconstruct`)."""
        return self.reconstruct(params, dense=False)

    def vertices(self, params):
        """(B, N, 3) dense vertices in the model frame (see :meth:`reconstruct`)."""
        return self.reconstruct(params, dense=True)

    def to_torch(self, device=None, dtype=None) -> "TorchMorphableModel":
        """The same model as a torch module (buffers on ``device``), for losses and GPUs."""
        from .torch_model import TorchMorphableModel

        return TorchMorphableModel(self, device=device, dtype=dtype)


def _reconstruct_numpy(params: np.ndarray, mean: np.ndarray, basis: np.ndarray) -> np.ndarray:
    dtype = params.dtype if params.dtype in (np.float32, np.float64) else np.float32
    params = params.astype(dtype, copy=False)
    pose = params[:, :12].reshape(-1, 3, 4)
    coeffs = params[:, 12:]
    # (3N, 50) @ (50, B) -> (B, N, 3): one BLAS call for the whole batch
    shapes = (basis.astype(dtype, copy=False) @ coeffs.T).T.reshape(len(params), -1, 3)
    shapes += mean.astype(dtype, copy=False)
    return np.matmul(shapes, pose[:, :, :3].transpose(0, 2, 1)) + pose[:, None, :, 3]


def _reconstruct_torch(params: "torch.Tensor", mean_t: "torch.Tensor", basis_t: "torch.Tensor") -> "torch.Tensor":
    pose = params[:, :12].reshape(-1, 3, 4)
    shapes = (params[:, 12:] @ basis_t.T).reshape(len(params), -1, 3) + mean_t
    return shapes @ pose[:, :, :3].transpose(1, 2) + pose[:, None, :, 3]


# ---------------------------------------------------------------------- loading
_CACHE: dict[tuple[str, str], MorphableModel] = {}
_CACHE_LOCK = threading.Lock()


def load_morphable_model(store, variant: str = "noneck") -> MorphableModel:
    """Build the ``"noneck"`` (3DDFA_V2, 38,365 vertices) or ``"full"`` (3DDFA, 53,215) model.

    Both come from 3DDFA's dense basis; the no-neck model keeps the vertices listed in
    3DDFA_V2's ``configs/indices.npy``. Cached per asset root and variant.
    """
    if variant not in ("noneck", "full"):
        raise ValueError(f"unknown morphable model variant {variant!r}; expected 'noneck' or 'full'")
    key = (str(store.root.resolve()), variant)
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
    mean = (store.load_npy(FULL_FILES["u_shp"]) + store.load_npy(FULL_FILES["u_exp"])).reshape(-1, 3)
    w_shp = store.load_npy(FULL_FILES["w_shp"])
    w_exp = store.load_npy(FULL_FILES["w_exp"])
    keypoint_rows = store.load_npy(FULL_FILES["keypoints"]).astype(np.int64)
    full_landmarks = keypoint_rows[0::3] // 3
    num_full = mean.shape[0]
    _check_shapes(mean, w_shp, w_exp, full_landmarks, store)
    if variant == "full":
        ids = np.arange(num_full, dtype=np.int64)
        triangles = store.load_mat(FULL_FILES["tri"])["tri"].T.astype(np.int32) - 1
        basis = np.concatenate([w_shp, w_exp], axis=1)
        landmarks = full_landmarks
    else:
        ids = store.load_npy(NONECK_INDICES).astype(np.int64)
        if ids.ndim != 1 or np.any(np.diff(ids) <= 0) or ids[-1] >= num_full:
            raise ValueError(f"{store.root / NONECK_INDICES}: expected sorted vertex ids below {num_full}")
        rows = (3 * ids[:, None] + np.arange(3)).ravel()
        basis = np.concatenate([w_shp[rows], w_exp[rows]], axis=1)
        mean = mean[ids]
        landmarks = np.searchsorted(ids, full_landmarks)
        if not np.array_equal(ids[landmarks], full_landmarks):
            raise ValueError("a landmark vertex is missing from the no-neck vertex set")
        triangles = np.asarray(store.load_pickle(NONECK_TRI), dtype=np.int32)
        triangles = np.ascontiguousarray(triangles.T if triangles.shape[0] == 3 else triangles)
    model = MorphableModel(
        name=variant,
        mean=np.ascontiguousarray(mean, dtype=np.float32),
        basis=np.ascontiguousarray(basis, dtype=np.float32),
        landmark_vertices=landmarks.astype(np.int64),
        triangles=np.ascontiguousarray(triangles, dtype=np.int32),
        vertex_ids_in_full=ids,
        asset_root=key[0],
    )
    for array in (model.mean, model.basis, model.triangles):
        array.setflags(write=False)
    with _CACHE_LOCK:
        _CACHE[key] = model
    return model


def _check_shapes(mean, w_shp, w_exp, landmarks, store) -> None:
    n3 = mean.size
    if w_shp.shape != (n3, NUM_SHAPE) or w_exp.shape != (n3, NUM_EXPRESSION):
        raise ValueError(
            f"{store.root}: inconsistent morphable model arrays: mean {mean.shape}, "
            f"shape basis {w_shp.shape}, expression basis {w_exp.shape}"
        )
    if landmarks.shape != (NUM_LANDMARKS,):
        raise ValueError(f"{store.root}: expected 68 landmarks, found {landmarks.shape}")
