"""The extra upstream files that dense outputs need, loaded lazily and cached by content.

=======================================  ==================================================
file                                     used for
=======================================  ==================================================
``3DDFA_V2/configs/ncc_code.npy``        PNCC colours of the no-neck mesh (3, 38365)
``3DDFA/train.configs/pncc_code.npy``    PNCC colours of the full mesh (3, 53215)
``3DDFA_V2/configs/BFM_UV.mat``          UV coordinates of the 53,215 vertices (texture maps)
``3DDFA/train.configs/Model_PAF.pkl``    the 64x64 anchor grid of pose-adaptive features
=======================================  ==================================================

Which asset root (:func:`assets_of`): the ``assets`` argument of the render function (an
:class:`~ddfa.assets.AssetStore`, a folder, or None), else the store the face was aligned with
(:attr:`ddfa.face.Face.assets`, set by :class:`~ddfa.FaceAligner`), else the default root
(``$DDFA_HOME``, see :func:`ddfa.assets.store.resolve_assets`). Everything is loaded through
the store, so checksums are verified. Loaded arrays are kept in a
:class:`~ddfa.caching.ContentCache` keyed on each file's sha256
(:meth:`~ddfa.assets.AssetStore.digest`): two roots holding the same files share them, a file
replaced in place is loaded again, and :func:`ddfa.clear_caches` empties it. The cached arrays
are read-only.

Relations checked by the tests: ``ncc_code`` is the no-neck mean shape (shape + expression
means) scaled to [0, 1] per axis; ``pncc_code`` is 3DDFA's mean *identity* shape (``u_shp``)
scaled to [0, 1] over all 53,215 vertices; the two differ by up to 0.19 on shared vertices
because their ranges differ, so each mesh uses its own code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from ..assets.store import AssetsLike, AssetStore, resolve_assets
from ..caching import ContentCache
from ..errors import AssetError
from ..morphable.reconstruct import basis_rows

if TYPE_CHECKING:  # pragma: no cover
    from ..morphable.model import MorphableModel

T = TypeVar("T")

NCC_NONECK = "3DDFA_V2/configs/ncc_code.npy"
NCC_FULL = "3DDFA/train.configs/pncc_code.npy"
UV_COORDS = "3DDFA_V2/configs/BFM_UV.mat"
PAF_MODEL = "3DDFA/train.configs/Model_PAF.pkl"

#: the PAF anchors form a PAF_GRID x PAF_GRID grid
PAF_GRID = 64

#: (file kind, sha256 of the file) -> the array(s) loaded from it
_CACHE: ContentCache[Any] = ContentCache("render assets")


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
    """Lazy, content-cached loaders of one asset store's render files (see the module docstring).

    Cheap to make: the arrays live in the module's content cache, not in this object.
    """

    def __init__(self, store: AssetStore):
        self.store = store

    def __repr__(self) -> str:
        return f"RenderAssets({self.store!r})"

    def ncc_code(self, model: MorphableModel) -> np.ndarray:
        """(N, 3) float32 NCC colour code in [0, 1] of ``model``'s vertices (x, y, z of the
        normalised mean face); read-only for the two standard meshes."""
        if model.name == "noneck":
            return self._cached(NCC_NONECK, self._load_code)
        full = self._cached(NCC_FULL, self._load_code)
        return full if model.name == "full" else full[np.asarray(model.vertex_ids_in_full)]

    def uv_coords(self, model: MorphableModel) -> np.ndarray:
        """(N, 2) float32 UV coordinates in [0, 1] of ``model``'s vertices (v up)."""
        return self._cached(UV_COORDS, self._load_uv)[np.asarray(model.vertex_ids_in_full)]

    @property
    def paf(self) -> PafBasis:
        """The :class:`PafBasis` of ``Model_PAF.pkl`` (read-only arrays)."""
        return self._cached(PAF_MODEL, self._load_paf)

    # ------------------------------------------------------------------ loading
    def _cached(self, relpath: str, load: Callable[[str], T]) -> T:
        return _CACHE.get_or_build((relpath, self.store.digest(relpath)), lambda: load(relpath))

    def _load_paf(self, relpath: str) -> PafBasis:
        data = self.store.load_pickle(relpath)
        try:
            mean = np.asarray(data["mu_filter"], dtype=np.float32).reshape(-1, 3)
            basis = np.concatenate([data["w_filter"], data["w_exp_filter"]], axis=1).astype(np.float32)
        except (KeyError, TypeError, ValueError) as exc:
            raise AssetError(f"{self.store.root / relpath}: unexpected content ({exc})") from None
        n = PAF_GRID * PAF_GRID
        if mean.shape != (n, 3) or basis.shape != (3 * n, 50):
            raise AssetError(f"{self.store.root / relpath}: expected a {PAF_GRID}x{PAF_GRID} anchor basis, "
                             f"got mean {mean.shape}, basis {basis.shape}")
        # stored column-major over the grid (x runs along the first index): make it row-major
        order = np.arange(n).reshape(PAF_GRID, PAF_GRID).T.ravel()
        return PafBasis(_frozen(mean[order]), _frozen(basis[basis_rows(order)]))

    def _load_uv(self, relpath: str) -> np.ndarray:
        uv = self.store.load_mat(relpath).get("UV")
        if uv is None or uv.ndim != 2 or uv.shape[1] != 2:
            raise AssetError(f"{self.store.root / relpath}: expected a 'UV' array of shape (53215, 2)")
        return _frozen(uv)

    def _load_code(self, relpath: str) -> np.ndarray:
        code = self.store.load_npy(relpath)
        if code.ndim != 2 or code.shape[0] != 3:
            raise AssetError(f"{self.store.root / relpath}: expected a (3, N) colour code, got {code.shape}")
        return _frozen(code.T)


def _frozen(array: np.ndarray) -> np.ndarray:
    """A contiguous read-only float32 copy (shared through the cache: nobody may write to it)."""
    out = np.array(array, dtype=np.float32, order="C", copy=True)
    out.flags.writeable = False
    return out


def render_assets(assets: AssetsLike = None) -> RenderAssets:
    """The :class:`RenderAssets` of ``assets``: an :class:`~ddfa.assets.AssetStore`, a folder, or
    None for the default root."""
    return RenderAssets(resolve_assets(assets))


def assets_of(face: Any, assets: AssetsLike = None) -> RenderAssets:
    """The :class:`RenderAssets` to render ``face`` with: ``assets`` when given, else the face's
    own store (:attr:`ddfa.face.Face.assets`), else the default root."""
    return render_assets(assets if assets is not None else getattr(face, "assets", None))
