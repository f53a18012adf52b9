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

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

from ..assets.store import AssetsLike, AssetStore, resolve_assets
from ..caching import ContentCache
from ..errors import AssetError, InputError
from .params import NUM_EXPRESSION, NUM_PARAMS, NUM_SHAPE
from .reconstruct import basis_rows, reconstruct

if TYPE_CHECKING:  # pragma: no cover
    from .torch_model import TorchMorphableModel

NUM_LANDMARKS = 68
MeshVariant = Literal["noneck", "full"]

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
        content_key: sha256 hex digest of the asset files the model was built from and of its
            recipe (``""`` for a model built by hand): what the arrays derived from it are
            cached under (e.g. :func:`ddfa.render.visibility.landmark_patches`).
    """

    name: str
    mean: np.ndarray
    basis: np.ndarray
    landmark_vertices: np.ndarray
    triangles: np.ndarray
    vertex_ids_in_full: np.ndarray
    content_key: str = field(default="", repr=False)
    _landmark_mean: np.ndarray = field(init=False, repr=False)
    _landmark_basis: np.ndarray = field(init=False, repr=False)
    _torch_cache: dict = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self):
        mean, basis = self.subset(self.landmark_vertices)
        object.__setattr__(self, "_landmark_mean", np.ascontiguousarray(mean))
        object.__setattr__(self, "_landmark_basis", np.ascontiguousarray(basis))

    @property
    def num_vertices(self) -> int:
        return self.mean.shape[0]

    @property
    def landmark_mean(self) -> np.ndarray:
        """(68, 3) float32 mean shape at the 68 landmarks."""
        return self._landmark_mean

    @property
    def landmark_basis(self) -> np.ndarray:
        """(204, 50) float32 basis rows of the 68 landmarks (x, y, z interleaved)."""
        return self._landmark_basis

    def subset(self, vertex_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, basis)`` restricted to ``vertex_ids``: (V, 3) and (3V, 50) float32."""
        ids = np.asarray(vertex_ids, dtype=np.int64)
        return self.mean[ids], self.basis[basis_rows(ids)]

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
        if params.ndim != 2 or params.shape[-1] != NUM_PARAMS:
            raise InputError(f"expected (B, 62) parameters, got {tuple(params.shape)}")
        mean, basis = (self.mean, self.basis) if dense else (self._landmark_mean, self._landmark_basis)
        if not isinstance(params, np.ndarray):
            key = (dense, params.device, params.dtype)
            if key not in self._torch_cache:
                import torch

                self._torch_cache[key] = tuple(
                    torch.tensor(a, dtype=params.dtype, device=params.device) for a in (mean, basis)
                )
            mean, basis = self._torch_cache[key]
        out = reconstruct(params, mean, basis)
        return out[0] if single else out

    def landmarks(self, params):
        """(B, 68, 3) landmarks in the model frame (see :meth:`reconstruct`)."""
        return self.reconstruct(params, dense=False)

    def vertices(self, params):
        """(B, N, 3) dense vertices in the model frame (see :meth:`reconstruct`)."""
        return self.reconstruct(params, dense=True)

    def to_torch(self, device=None, dtype=None) -> TorchMorphableModel:
        """The same model as a torch module (buffers on ``device``), for losses and GPUs."""
        from .torch_model import TorchMorphableModel

        return TorchMorphableModel(self, device=device, dtype=dtype)


# ---------------------------------------------------------------------- loading
_MODELS: ContentCache[MorphableModel] = ContentCache("morphable models")


def load_morphable_model(assets: AssetsLike = None, variant: MeshVariant = "noneck") -> MorphableModel:
    """Build the ``"noneck"`` (3DDFA_V2, 38,365 vertices) or ``"full"`` (3DDFA, 53,215) model.

    Both come from 3DDFA's dense basis; the no-neck model keeps the vertices listed in
    3DDFA_V2's ``configs/indices.npy``. Cached on the content (sha256) of the files it is
    built from: the same files anywhere give the same (read-only) model object.

    Args:
        assets: an :class:`~ddfa.assets.AssetStore`, an asset folder, or None (``$DDFA_HOME``).
        variant: ``"noneck"`` or ``"full"``.
    """
    if variant not in ("noneck", "full"):
        raise InputError(f"unknown morphable model variant {variant!r}; expected 'noneck' or 'full'")
    store = resolve_assets(assets)
    files = list(FULL_FILES.values()) if variant == "full" else [
        *(FULL_FILES[k] for k in ("u_shp", "u_exp", "w_shp", "w_exp", "keypoints")), NONECK_INDICES, NONECK_TRI]
    key = (variant, *(store.digest(f) for f in files))
    return _MODELS.get_or_build(key, lambda: _cached_model(store, variant, key))


#: version of the way :func:`_build_arrays` derives the arrays (bump when its output would change)
MODEL_RECIPE = 1


def _cached_model(store: AssetStore, variant: str, key: tuple[str, ...]) -> MorphableModel:
    """The model, its arrays read from the cache of converted files (built there on first use:
    cutting the no-neck model out of 3DDFA's basis takes ~50 ms, reading it back a few)."""
    from ..nets.model_cache import cached_arrays

    content_key = hashlib.sha256(json.dumps([*key, MODEL_RECIPE]).encode()).hexdigest()
    arrays = cached_arrays(f"morphable-{variant}", source_sha256=content_key, recipe=MODEL_RECIPE,
                           cache_dir=store.cache_dir, describe=f"the {variant} morphable model",
                           build=lambda: _build_arrays(store, variant))
    model = MorphableModel(name=variant, **arrays, content_key=content_key)
    for array in (model.mean, model.basis, model.triangles, model.landmark_vertices, model.vertex_ids_in_full):
        array.setflags(write=False)
    return model


def _build_arrays(store: AssetStore, variant: str) -> dict[str, np.ndarray]:
    """The model's arrays (fields of :class:`MorphableModel`), from the asset files."""
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
            raise AssetError(f"{store.root / NONECK_INDICES}: expected sorted vertex ids below {num_full}")
        rows = basis_rows(ids)
        basis = np.concatenate([w_shp[rows], w_exp[rows]], axis=1)
        mean = mean[ids]
        landmarks = np.searchsorted(ids, full_landmarks)
        if not np.array_equal(ids[landmarks], full_landmarks):
            raise AssetError(f"{store.root}: a landmark vertex is missing from the no-neck vertex set")
        triangles = np.asarray(store.load_pickle(NONECK_TRI), dtype=np.int32)
        triangles = np.ascontiguousarray(triangles.T if triangles.shape[0] == 3 else triangles)
    return {
        "mean": np.ascontiguousarray(mean, dtype=np.float32),
        "basis": np.ascontiguousarray(basis, dtype=np.float32),
        "landmark_vertices": landmarks.astype(np.int64),
        "triangles": np.ascontiguousarray(triangles, dtype=np.int32),
        "vertex_ids_in_full": ids,
    }


def _check_shapes(mean, w_shp, w_exp, landmarks, store) -> None:
    n3 = mean.size
    if w_shp.shape != (n3, NUM_SHAPE) or w_exp.shape != (n3, NUM_EXPRESSION):
        raise AssetError(
            f"{store.root}: inconsistent morphable model arrays: mean {mean.shape}, "
            f"shape basis {w_shp.shape}, expression basis {w_exp.shape}"
        )
    if landmarks.shape != (NUM_LANDMARKS,):
        raise AssetError(f"{store.root}: expected 68 landmarks, found {landmarks.shape}")
