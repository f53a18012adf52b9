"""Finding, verifying and safely loading model assets.

The asset root is, in order of precedence: the ``root`` argument (``--assets DIR`` on the
command line), the ``DDFA_HOME`` environment variable, or ``~/.cache/ddfa/assets`` (where
``ddfa assets fetch`` downloads to). Under it, files sit at their upstream paths
(``3DDFA/train.configs/u_shp.npy``, ``3DDFA_V2/weights/mb05_120x120.pth``, ...), so a pair of
upstream checkouts works as an asset root as they are.

Every known file is checked against its pinned sha256 before first use in a process; a file
that differs is refused with a message naming it. Files derived from the Basel Face Model are
for non-commercial research only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
import warnings
from pathlib import Path
from typing import Any, Union

import numpy as np

from ..caching import ContentCache
from ..errors import AssetError, InputError
from ..userdirs import user_dir
from .registry import KNOWN_FILES, KnownFile
from .safe_pickle import load_numpy_pickle, load_torch_checkpoint

ENV_HOME = "DDFA_HOME"
ENV_CACHE = "DDFA_CACHE"


def default_cache_dir() -> Path:
    """Directory for downloads and converted files: ``$DDFA_CACHE``, or ``$XDG_CACHE_HOME/ddfa``,
    or ``~/.cache/ddfa``."""
    return user_dir(ENV_CACHE, "XDG_CACHE_HOME", ".cache")


def default_asset_root() -> Path:
    """``$DDFA_HOME`` if set, else ``<cache dir>/assets``."""
    env = os.environ.get(ENV_HOME)
    if env:
        return Path(env).expanduser()
    return default_cache_dir() / "assets"


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of a file, hashed once per (path, size, mtime, inode) in a process, and across
    processes once per (path, size, mtime, ctime, inode, device) (:func:`_recorded_digest`)."""
    path = Path(path)
    stat = path.stat()
    resolved = str(path.resolve())
    key = (resolved, stat.st_size, stat.st_mtime_ns, stat.st_ino)
    return _DIGESTS.get_or_build(key, lambda: _recorded_digest(resolved, stat, path))


#: the digests of earlier processes, in the cache folder (signed like the converted models' manifests)
DIGEST_RECORD = "file-digests.json"
_RECORD_LOCK = threading.Lock()


def _stat_signature(stat: os.stat_result) -> list[int]:
    # ctime changes with every write, rename or attribute change and cannot be set back by a
    # user (unlike mtime): a file changed in any way since it was hashed no longer matches
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino, stat.st_dev]


def _recorded_digest(resolved: str, stat: os.stat_result, path: Path) -> str:
    """The sha256 an earlier process recorded for this very file (same path, size, mtime,
    ctime, inode and device, in a record carrying a valid keyed checksum), else hashed now and
    recorded: start-up then reads 42 MB of asset files once, not on every run (~0.1 s)."""
    from ..nets.model_cache import _mac, _write_atomic

    signature = _stat_signature(stat)
    record = default_cache_dir() / DIGEST_RECORD
    with _RECORD_LOCK:
        files = _read_record(record)
        entry = files.get(resolved)
        if entry is not None and entry[:-1] == signature and isinstance(entry[-1], str):
            return entry[-1]
    digest = sha256_file(path)
    with _RECORD_LOCK:
        files = {**_read_record(record), resolved: signature + [digest]}
        try:
            _write_atomic(record, json.dumps({"files": files, "mac": _mac({"files": files})}).encode())
        except OSError:  # a cache that cannot be written: hashed again next time
            pass
    return digest


#: the last digest record read: (its path and stat signature, its verified entries)
_LAST_RECORD: list = [None, {}]


def _read_record(record: Path) -> dict[str, list]:
    """The verified entries of the digest record (``{}`` when absent, unreadable or not signed
    with this user's key); parsed and checked once per version of the file."""
    try:
        version = (str(record), *_stat_signature(record.stat()))
    except OSError:
        return {}
    if _LAST_RECORD[0] == version:
        return _LAST_RECORD[1]
    from ..nets.model_cache import _mac

    try:
        data = json.loads(record.read_text())
        files = {str(k): list(v) for k, v in data["files"].items()}
        if not hmac.compare_digest(str(data.get("mac", "")), _mac({"files": files})):
            files = {}
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        files = {}
    _LAST_RECORD[:] = [version, files]
    return files


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# (resolved path, size, mtime_ns, inode) -> sha256, so that a file is hashed once per process
# (a file rewritten in place changes its mtime or size, and gets hashed again)
_DIGESTS: ContentCache[str] = ContentCache("file digests")
_WARNED_UNPINNED: set[str] = set()


class AssetStore:
    """A directory of upstream model files, checked against pinned checksums.

    Args:
        root: the asset directory; None means ``$DDFA_HOME`` or the default download folder.
        verify: check sha256 of known files before use (default True).
    """

    def __init__(self, root: str | os.PathLike | None = None, *, verify: bool = True):
        self.root = Path(root).expanduser() if root is not None else default_asset_root()
        self.verify = verify

    def __repr__(self) -> str:
        return f"AssetStore({str(self.root)!r})"

    # ------------------------------------------------------------------ lookup
    def status(self, relpath: str) -> str:
        """``"ok"``, ``"missing"``, ``"corrupt"`` or ``"unverified"`` (no pinned checksum)."""
        path = self.root / relpath
        if not path.is_file():
            return "missing"
        known = KNOWN_FILES.get(relpath)
        if known is None or known.sha256 is None:
            return "unverified"
        return "ok" if self._digest(path) == known.sha256 else "corrupt"

    def path(self, relpath: str, *, verify: bool | None = None) -> Path:
        """Absolute path of an asset, checked against its pinned sha256.

        Raises:
            AssetError: the file is missing, or its checksum differs from the pinned one.
        """
        path = self.root / relpath
        if not path.is_file():
            raise AssetError(
                f"missing model file {relpath!r} under asset directory {str(self.root)!r}. "
                f"Point ddfa at a folder holding the 3DDFA/3DDFA_V2 files with --assets DIR or "
                f"{ENV_HOME}=DIR, or download them with `ddfa assets fetch`."
            )
        if self.verify if verify is None else verify:
            self._check(relpath, path)
        return path

    def exists(self, relpath: str) -> bool:
        return (self.root / relpath).is_file()

    def digest(self, relpath: str) -> str:
        """sha256 of an asset's content, after the pinned-checksum check of :meth:`path`.

        This is the key of every in-process cache derived from the file (see
        :mod:`ddfa.caching`).
        """
        path = self.root / relpath
        if not path.is_file() or (self.verify and self._pinned(relpath)):
            path = self.path(relpath)  # raises for a missing file, verifies a pinned one
        return self._digest(path)

    def _digest(self, path: Path) -> str:
        return file_digest(path)

    @staticmethod
    def _pinned(relpath: str) -> bool:
        known = KNOWN_FILES.get(relpath)
        return known is not None and known.sha256 is not None

    def _check(self, relpath: str, path: Path) -> None:
        known: KnownFile | None = KNOWN_FILES.get(relpath)
        if known is None or known.sha256 is None:
            if relpath not in _WARNED_UNPINNED:
                _WARNED_UNPINNED.add(relpath)
                warnings.warn(f"{path}: no pinned checksum for this file; using it unverified", stacklevel=3)
            return
        digest = self._digest(path)
        if digest != known.sha256:
            raise AssetError(
                f"{path}: checksum mismatch (sha256 {digest[:12]}..., expected {known.sha256[:12]}...); "
                "the file is corrupt or was modified. Delete it and run `ddfa assets fetch`, "
                "or copy the original upstream file there."
            )

    # ------------------------------------------------------------------ loaders
    def load_npy(self, relpath: str) -> np.ndarray:
        """Load a ``.npy`` asset (never with pickles enabled)."""
        path = self.path(relpath)
        try:
            return np.load(path, allow_pickle=False)
        except Exception as exc:
            raise AssetError(f"{path}: not a readable .npy array ({exc})") from None

    def load_pickle(self, relpath: str) -> Any:
        """Load a pickle asset with the numpy-only unpickler."""
        return load_numpy_pickle(self.path(relpath))

    def load_mat(self, relpath: str) -> dict[str, np.ndarray]:
        """Load a MATLAB ``.mat`` asset (arrays only)."""
        from scipy.io import loadmat

        path = self.path(relpath)
        try:
            return {k: v for k, v in loadmat(path).items() if not k.startswith("__")}
        except Exception as exc:
            raise AssetError(f"{path}: not a readable .mat file ({exc})") from None

    def load_checkpoint(self, relpath: str) -> dict:
        """Load a torch checkpoint with ``weights_only=True``."""
        return load_torch_checkpoint(self.path(relpath))

    @property
    def cache_dir(self) -> Path:
        """Where converted files (e.g. ONNX exports) are kept."""
        return default_cache_dir()


AssetsLike = Union["AssetStore", str, os.PathLike, None]


def resolve_assets(assets: AssetsLike) -> AssetStore:
    """Accept an :class:`AssetStore`, a directory, or None (``$DDFA_HOME`` / default).

    This is the one way every ``assets=`` argument of ddfa is read.
    """
    if isinstance(assets, AssetStore):
        return assets
    if assets is not None and not isinstance(assets, (str, os.PathLike)):
        raise InputError(f"assets must be an AssetStore, a folder or None, got {type(assets).__name__}")
    return AssetStore(assets)
