"""Model assets: locate, verify (sha256), safely load and fetch the upstream files."""

from .registry import BFM_LICENCE_NOTE, GROUPS, KNOWN_FILES, KnownFile
from .safe_pickle import load_numpy_pickle, load_torch_checkpoint, loads_numpy_pickle
from .store import AssetStore, default_asset_root, default_cache_dir, resolve_assets, sha256_file

__all__ = [
    "AssetStore",
    "BFM_LICENCE_NOTE",
    "GROUPS",
    "KNOWN_FILES",
    "KnownFile",
    "default_asset_root",
    "default_cache_dir",
    "load_numpy_pickle",
    "load_torch_checkpoint",
    "loads_numpy_pickle",
    "resolve_assets",
    "sha256_file",
]
