"""Downloading the official upstream files, with a progress bar and checksum pinning.

Nothing in ddfa's tests calls this; it needs a network. A download goes to a temporary file
next to its target and is moved into place only when its sha256 equals the pinned one.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..errors import AssetError
from .registry import KNOWN_FILES, KnownFile
from .store import AssetStore


def download_file(
    known: KnownFile,
    store: AssetStore,
    *,
    progress: bool = True,
    opener: Callable[[str], Any] = urllib.request.urlopen,
    allow_unpinned: bool = False,
) -> Path:
    """Download one known file into ``store.root``; returns its path.

    Raises:
        AssetError: network failure, or the downloaded bytes do not match the pinned sha256
            (the partial file is removed).
    """
    if known.sha256 is None and not allow_unpinned:
        raise AssetError(f"{known.path}: no pinned checksum; pass --allow-unpinned to download it anyway")
    target = store.root / known.path
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=target.name + ".", suffix=".part", dir=target.parent)
    try:
        try:
            response = opener(known.url)
        except Exception as exc:
            raise AssetError(f"{known.url}: download failed ({exc})") from None
        total = known.size or int(getattr(response, "headers", {}).get("Content-Length", 0) or 0) or None
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=total, unit="B", unit_scale=True, desc=known.path, leave=False)
        with os.fdopen(fd, "wb") as out:
            while True:
                block = response.read(1 << 16)
                if not block:
                    break
                out.write(block)
                digest.update(block)
                if bar is not None:
                    bar.update(len(block))
        if bar is not None:
            bar.close()
        got = digest.hexdigest()
        if known.sha256 is not None and got != known.sha256:
            raise AssetError(
                f"{known.url}: downloaded file has sha256 {got}, expected {known.sha256}; not saved"
            )
        os.replace(tmp_name, target)
        return target
    finally:
        if os.path.exists(tmp_name):
            os.remove(tmp_name)


def fetch(
    store: AssetStore,
    paths: Iterable[str] | None = None,
    *,
    progress: bool = True,
    allow_unpinned: bool = False,
    opener: Callable[[str], Any] = urllib.request.urlopen,
) -> dict[str, str]:
    """Download every missing or corrupt file of ``paths`` (default: all pinned files).

    Returns:
        relpath -> ``"present"``, ``"downloaded"`` or ``"failed: <reason>"``.
    """
    if paths is None:
        paths = [p for p, k in KNOWN_FILES.items() if k.sha256 is not None or allow_unpinned]
    report: dict[str, str] = {}
    for relpath in paths:
        known = KNOWN_FILES.get(relpath)
        if known is None:
            report[relpath] = "failed: not a known file"
            continue
        if store.status(relpath) in ("ok",):
            report[relpath] = "present"
            continue
        try:
            download_file(known, store, progress=progress, opener=opener, allow_unpinned=allow_unpinned)
            report[relpath] = "downloaded"
        except AssetError as exc:
            report[relpath] = f"failed: {exc}"
    return report
