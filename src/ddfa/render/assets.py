"""The extra upstream files that dense outputs need, loaded lazily and cached per asset root.

=======================================  ==================================================
file                                     used for
=======================================  ==================================================
``3DDFA_V2/configs/ncc_code.npy``        PNCC colours of the no-neck mesh (3, 38365)
``3DDFA/train.configs/pncc_code.npy``    PNCC colours of the full mesh (3, 53215)
``3DDFA_V2/configs/BFM_UV.mat``          UV coordinates of the 53,215 vertices (texture maps)
``3DDFA/train.configs/Model_PAF.pkl``    the 64x64 anchor grid of pose-adaptive features
=======================================  ==================================================

Which asset root: a :class:`~ddfa.face.Face` knows its :class:`MorphableModel` but not the
store it came from, so :func:`render_assets` resolves the store in this order: the ``assets``
argument (an :class:`~ddfa.assets.AssetStore` or a folder), else the root that
:func:`~ddfa.morphable.load_morphable_model` loaded the face's model from
(``MorphableModel.asset_root``), else the default root (``$DDFA_HOME``).
Everything is loaded through the store, so checksums are verified; one
:class:`RenderAssets` per root is kept for the life of the process.

Relations checked by the tests: ``ncc_code`` is the no-neck mean shape (shape + expression
means) scaled to [0, 1] per axis; ``pncc_code`` is 3DDFA's mean *identity* shape (``u_shp``)
scaled to [0, 1] over all 53,215 vertices; the two differ by up to 0.19 on shared vertices
because their ranges differ, so each mesh uses its own code.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..assets.store import AssetStore, resolve_assets
from ..errors import AssetError

NCC_NONECK = "3DDFA_V2/configs/ncc_code.npy"
NCC_FULL = "3DDFA/train.configs/pncc_code.npy"
UV_COORDS = "3DDFA_V2/configs/BFM_UV.mat"
PAF_MODEL = "3DDFA/train.configs/Model_PAF.pkl"

#: the PAF anchors form a PAF_GRID x PAF_GRID grid
PAF_GRID = 64

_CACHE: dict[str, "RenderAssets"] = {}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class PafBasis:
    """The 3DMM restricted to the 64x64 PAF anchors (model frame, like the dense basis).

    Attributes:
        mean: (4096, 3) float32 anchor positions of the mean face, row-major over the grid
            ``(row, col)`` = (top to bottom, image-left to image-right of a frontal face).
        basis: (12288, 50) float32, rows interleaved x, y, z per anchor in the same order;
            columns 0-39 shape, 40-49 expression.
    """

    mean: np.ndarray
    basis: np.ndarray


class RenderAssets:
    """Lazy loaders of one asset root's render files (see the module docstring)."""

    def __init__(self, store: AssetStore):
        self.store = store

    def ncc_code(self, model) -> np.ndarray:
        """(N, 3) float32 NCC colour code in [0, 1] of ``model``'s vertices (x, y, z of the
        normalised mean face)."""
        if model.name == "noneck":
            return self._ncc_noneck
        if model.name == "full":
            return self._ncc_full
        return self._ncc_full[np.asarray(model.vertex_ids_in_full)]

    def uv_coords(self, model) -> np.ndarray:
        """(N, 2) float32 UV coordinates in [0, 1] of ``model``'s vertices (v up)."""
        return self._uv_full[np.asarray(model.vertex_ids_in_full)]

    @cached_property
    def paf(self) -> PafBasis:
        data = self.store.load_pickle(PAF_MODEL)
        try:
            mean = np.asarray(data["mu_filter"], dtype=np.float32).reshape(-1, 3)
            basis = np.concatenate([data["w_filter"], data["w_exp_filter"]], axis=1).astype(np.float32)
        except (KeyError, TypeError, ValueError) as exc:
            raise AssetError(f"{self.store.root / PAF_MODEL}: unexpected content ({exc})") from None
        n = PAF_GRID * PAF_GRID
        if mean.shape != (n, 3) or basis.shape != (3 * n, 50):
            raise AssetError(f"{self.store.root / PAF_MODEL}: expected a {PAF_GRID}x{PAF_GRID} anchor basis, "
                             f"got mean {mean.shape}, basis {basis.shape}")
        # stored column-major over the grid (x runs along the first index): make it row-major
        order = np.arange(n).reshape(PAF_GRID, PAF_GRID).T.ravel()
        rows = (3 * order[:, None] + np.arange(3)).ravel()
        return PafBasis(np.ascontiguousarray(mean[order]), np.ascontiguousarray(basis[rows]))

    @cached_property
    def _ncc_noneck(self) -> np.ndarray:
        return self._load_code(NCC_NONECK)

    @cached_property
    def _ncc_full(self) -> np.ndarray:
        return self._load_code(NCC_FULL)

    @cached_property
    def _uv_full(self) -> np.ndarray:
        uv = self.store.load_mat(UV_COORDS).get("UV")
        if uv is None or uv.ndim != 2 or uv.shape[1] != 2:
            raise AssetError(f"{self.store.root / UV_COORDS}: expected a 'UV' array of shape (53215, 2)")
        return np.ascontiguousarray(uv, dtype=np.float32)

    def _load_code(self, relpath: str) -> np.ndarray:
        code = self.store.load_npy(relpath)
        if code.ndim != 2 or code.shape[0] != 3:
            raise AssetError(f"{self.store.root / relpath}: expected a (3, N) colour code, got {code.shape}")
        return np.ascontiguousarray(code.T, dtype=np.float32)


def _root_of_model(model) -> str | None:
    """The asset root that ``model`` was loaded from, if known."""
    return getattr(model, "asset_root", None)


def render_assets(assets: AssetStore | str | os.PathLike | None = None, model=None) -> RenderAssets:
    """The :class:`RenderAssets` of ``assets``, else of ``model``'s asset root, else the default
    root (see the module docstring)."""
    if assets is None:
        root = _root_of_model(model)
        store = AssetStore(root) if root is not None else resolve_assets(None)
    else:
        store = resolve_assets(assets)
    key = str(store.root.resolve())
    with _LOCK:
        found = _CACHE.get(key)
        if found is None:
            found = _CACHE[key] = RenderAssets(store)
    return found
