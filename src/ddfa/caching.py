"""In-process caches of things derived from asset files, keyed on content, clearable in one call.

Every cache of ddfa that outlives a call is a :class:`ContentCache` registered here, so that
:func:`clear_caches` empties all of them (and, on request, the on-disk cache of converted
models under :func:`ddfa.assets.default_cache_dir`). Keys are the sha256 digests of the source
files (plus whatever else determines the value), never a path alone: a file overwritten in
place gives a new key, so a stale value is never returned.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")

_REGISTRY: list[ContentCache] = []


class ContentCache(Generic[V]):
    """A thread-safe dict from a content key to a value built once per key.

    Args:
        name: what the cache holds (for debugging and :func:`cache_info`).
    """

    def __init__(self, name: str):
        self.name = name
        self._data: dict[Hashable, V] = {}
        self._lock = threading.Lock()
        _REGISTRY.append(self)

    def get_or_build(self, key: Hashable, build: Callable[[], V]) -> V:
        """The value under ``key``; ``build()`` makes it (outside the lock) when absent."""
        with self._lock:
            if key in self._data:
                return self._data[key]
        value = build()
        with self._lock:
            return self._data.setdefault(key, value)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


def cache_info() -> dict[str, int]:
    """Number of entries of each in-process cache, by name."""
    return {cache.name: len(cache) for cache in _REGISTRY}


def clear_caches(*, disk: bool = False) -> None:
    """Empty every in-process cache of ddfa (models, weights, render assets, verified digests).

    Args:
        disk: also delete the converted-model cache on disk (``<cache dir>/models``: ONNX
            exports, int8 variants and OpenVINO's compiled blobs, see
            :mod:`ddfa.nets.model_cache`); it is rebuilt from the asset files on next use.
    """
    for cache in _REGISTRY:
        cache.clear()
    if disk:
        from .assets.store import default_cache_dir

        for folder in ("models", "onnx"):  # "onnx": the layout of ddfa 0.1's first exports
            shutil.rmtree(default_cache_dir() / folder, ignore_errors=True)
