"""Converted networks on disk (ONNX exports, int8 variants), verified before every use.

A converted model is derived from one source file (torch weights) by one *recipe* (the export
code and its settings, versioned by an integer that changes whenever the recipe's output
would). It lives in its own folder, keyed on both::

    <cache dir>/models/<name>-<source sha256[:16]>-r<recipe>/
        model.onnx        the converted network
        manifest.json     {"schema": 1, "name", "source_sha256", "recipe",
                           "files": {"model.onnx": <its sha256>}, "meta": {...}}
        openvino/         OpenVINO's compiled blobs of it (see :class:`BlobDir`)

Arrays derived from asset files (the no-neck morphable model, the landmarks' normal patches)
are kept the same way, as ``arrays.bin`` (:func:`cached_arrays`).

Before use the manifest must name the same source digest and recipe as the key, every file it
lists must hash to the recorded digest (a file is hashed once, then its digest is remembered in
the signed record of :func:`ddfa.assets.store.file_digest` for as long as its size, mtime,
ctime, inode and device stay the same: any write changes its ctime), and the manifest must carry a valid keyed checksum
(HMAC-SHA256 under a random per-user key kept outside the cache, :func:`cache_key`), so that a
replaced graph with a manifest rewritten to match is caught too; otherwise the folder is deleted
and the model converted again (with a message): a truncated, stale or tampered file is never
loaded. Loading a verified model needs neither torch nor onnx: ``meta`` carries what the source
checkpoint would have told (architecture, whitening, ...), so the inference path starts without
them.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import os
import secrets
import shutil
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..assets.store import file_digest
from ..userdirs import user_dir

SCHEMA = 1
MANIFEST = "manifest.json"
_ENTRY_LOCKS: dict[str, threading.Lock] = {}
_ENTRY_LOCKS_GUARD = threading.Lock()


ENV_CONFIG = "DDFA_CONFIG"
KEY_FILE = "cache.key"


def config_dir() -> Path:
    """``$DDFA_CONFIG``, or ``$XDG_CONFIG_HOME/ddfa``, or ``~/.config/ddfa``."""
    return user_dir(ENV_CONFIG, "XDG_CONFIG_HOME", ".config")


@functools.cache
def _key_for(path: Path) -> bytes:
    """The key in ``path``, made on first use. Published whole (written to a private temporary
    file, then hard-linked into place), so that processes starting together agree on one key and
    none reads a half-written one; a damaged key file (under 32 bytes) is replaced."""
    try:
        data = path.read_bytes()
        if len(data) >= 32:
            return data
    except OSError:
        pass
    key = secrets.token_bytes(32)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key)
        try:
            os.link(temporary, path)
        except FileExistsError:  # another process published its key first, or a damaged one is there
            data = path.read_bytes()
            if len(data) >= 32:
                return data
            os.replace(temporary, path)
    except OSError:
        pass  # not writable: a key for this process only (cached models then verify in it alone)
    finally:
        temporary.unlink(missing_ok=True)
    return key


def cache_key() -> bytes:
    """The per-user secret the manifests are signed with (made on first use, mode 0600)."""
    return _key_for(config_dir() / KEY_FILE)


def _mac(record: dict[str, Any]) -> str:
    return hmac.new(cache_key(), json.dumps(record, sort_keys=True).encode(), hashlib.sha256).hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    from ..io.atomic import atomic_write_bytes

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)


@contextmanager
def entry_lock(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on the cache entry ``directory``, for the threads of this process
    and (a ``.<name>.lock`` file beside it) across processes: processes starting together on an
    empty cache (a batch's workers, Ray actors, test workers) wait for the one converting
    instead of each converting again. One lock per entry: building one entry may need another
    (the int8 regressor is calibrated on faces of the morphable model, itself cached). Where the
    cache cannot be written, only this process's threads are kept apart."""
    with _ENTRY_LOCKS_GUARD:
        thread_lock = _ENTRY_LOCKS.setdefault(str(directory), threading.Lock())
    with thread_lock:
        try:
            directory.parent.mkdir(parents=True, exist_ok=True)
            handle = open(directory.parent / f".{directory.name}.lock", "a+b")
        except OSError:
            yield
            return
        with _file_locked(handle):
            yield


@contextmanager
def _file_locked(handle) -> Iterator[None]:
    """An exclusive lock on an open file, across processes (released on exit)."""
    with handle:
        if sys.platform == "win32":  # pragma: no cover (the tests run on Linux)
            import msvcrt
            import time

            while True:
                try:
                    msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
                    break
                except OSError:
                    time.sleep(0.05)
            try:
                yield
            finally:
                handle.seek(0)
                msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # released when the file is closed
            yield


@dataclass(frozen=True)
class ConvertedModel:
    """A verified converted model.

    Attributes:
        name: what it is (``"regressor"``, ``"faceboxes"``, ...).
        path: the model file (None when the cache is not writable: then ``data`` holds it).
        data: the model's bytes when it is held in memory only.
        meta: what the conversion recorded about the source (JSON values).
        directory: its cache folder (None in memory).
        sha256: the model file's digest.
    """

    name: str
    path: Path | None
    data: bytes | None
    meta: dict[str, Any] = field(default_factory=dict)
    directory: Path | None = None
    sha256: str = ""

    def source(self) -> bytes | str:
        """A path (str) or the bytes, for an engine to load."""
        return str(self.path) if self.path is not None else self.data  # type: ignore[return-value]


def entry_dir(cache_dir: str | os.PathLike, name: str, source_sha256: str, recipe: int) -> Path:
    return Path(cache_dir) / "models" / f"{name}-{source_sha256[:16]}-r{recipe}"


def verified(directory: Path, name: str, source_sha256: str, recipe: int,
             filename: str = "model.onnx") -> ConvertedModel | None:
    """The converted model in ``directory`` if its manifest and checksums hold, else None."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
        if (manifest.get("schema") != SCHEMA or manifest.get("source_sha256") != source_sha256
                or manifest.get("recipe") != recipe or manifest.get("name") != name):
            return None
        files = manifest["files"]
        if filename not in files:
            return None
        signed = {k: v for k, v in manifest.items() if k != "mac"}
        if not hmac.compare_digest(str(manifest.get("mac", "")), _mac(signed)):
            return None
        for fname, digest in files.items():
            # hashed once, then remembered while the file's stat (incl. ctime) stays the same
            if file_digest(directory / fname) != digest:
                return None
        return ConvertedModel(name, directory / filename, None, dict(manifest.get("meta", {})), directory,
                              files[filename])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def converted_model(
    name: str,
    *,
    source_sha256: str,
    recipe: int,
    cache_dir: str | os.PathLike | None,
    build: Callable[[], tuple[bytes, dict[str, Any]]],
    describe: str,
    filename: str = "model.onnx",
    quiet: bool = False,
) -> ConvertedModel:
    """The converted model of ``name`` for a source file, from the cache or built now.

    Args:
        name: the model's name in the cache (part of the folder name).
        source_sha256: sha256 of the source file (weights) it is converted from.
        recipe: version of the conversion recipe.
        cache_dir: the cache root (None: build in memory, no cache).
        build: ``build() -> (model bytes, meta)``; called only on a miss.
        describe: what is converted, for the one-line message printed on a miss.
        quiet: no message.
    """
    if cache_dir is None:
        data, meta = build()
        return ConvertedModel(name, None, data, meta, None, sha256_bytes(data))
    directory = entry_dir(cache_dir, name, source_sha256, recipe)
    with entry_lock(directory):
        found = verified(directory, name, source_sha256, recipe, filename)
        if found is not None:
            return found
        stale = directory.exists()
        if not quiet:
            why = "its cached copy failed verification" if stale else "first use"
            print(f"ddfa: converting {describe} ({why}; cached in {directory})", file=sys.stderr, flush=True)
        data, meta = build()
        digest = sha256_bytes(data)
        try:
            if stale:
                shutil.rmtree(directory, ignore_errors=True)
            _write_atomic(directory / filename, data)
            file_digest(directory / filename)  # remembered: the next start need not hash it again
            manifest: dict[str, Any] = {"schema": SCHEMA, "name": name, "source_sha256": source_sha256,
                                        "recipe": recipe, "files": {filename: digest}, "meta": meta}
            manifest["mac"] = _mac(manifest)
            _write_atomic(directory / MANIFEST, json.dumps(manifest, indent=1).encode())
        except OSError:  # a read-only cache: keep the conversion in memory
            return ConvertedModel(name, None, data, meta, None, digest)
        return ConvertedModel(name, directory / filename, None, meta, directory, digest)


def cached_arrays(
    name: str,
    *,
    source_sha256: str,
    recipe: int,
    cache_dir: str | os.PathLike | None,
    build: Callable[[], dict[str, Any]],
    describe: str,
) -> dict[str, Any]:
    """Numpy arrays derived from asset files (e.g. the 38,365-vertex model cut out of 3DDFA's
    basis), kept in the cache and verified like a converted model (a changed file is rebuilt,
    never loaded).

    The arrays' bytes lie one after the other in ``arrays.bin`` (each at a multiple of 64
    bytes); their dtypes, shapes and offsets are in the signed manifest. Reading them back is
    one file read, no pickle and no per-array checksum (``np.load`` of an ``.npz`` spends most
    of its time in zip CRCs).

    Args:
        name, source_sha256, recipe, cache_dir, describe: as :func:`converted_model`
            (``source_sha256``: a digest of everything the arrays are computed from).
        build: ``build() -> {name: ndarray}`` of numeric arrays; called only on a miss.

    Returns:
        ``{name: ndarray}``, read-only, with the dtypes and shapes ``build`` gave them.
    """
    import numpy as np

    def serialised() -> tuple[bytes, dict[str, Any]]:
        chunks, layout, offset = [], {}, 0
        for key, value in build().items():
            array = np.ascontiguousarray(value)
            if array.dtype.hasobject:
                raise TypeError(f"cached_arrays: {key} is not a numeric array")
            pad = -offset % 64
            chunks.append(b"\0" * pad)
            offset += pad
            layout[key] = [array.dtype.str, list(array.shape), offset]
            chunks.append(array.tobytes())
            offset += array.nbytes
        return b"".join(chunks), {"arrays": layout}

    found = converted_model(name, source_sha256=source_sha256, recipe=recipe, cache_dir=cache_dir,
                            build=serialised, describe=describe, filename="arrays.bin", quiet=True)
    data = found.path.read_bytes() if found.path is not None else found.data or b""
    out = {}
    for key, (dtype, shape, offset) in found.meta["arrays"].items():
        dt = np.dtype(dtype)
        out[key] = np.frombuffer(data, dtype=dt, count=int(np.prod(shape, dtype=np.int64)),
                                 offset=offset).reshape(shape)
    return out


def asset_model(store, relpath: str, name: str) -> ConvertedModel:
    """A ready ONNX file of the asset folder (a detector shipped as ONNX) as a converted model:
    copied into the cache (checked against its pinned sha256 first), where OpenVINO keeps its
    compiled blobs beside it, and verified before each use like every converted model."""
    digest = store.digest(relpath)
    return converted_model(name, source_sha256=digest, recipe=1, cache_dir=store.cache_dir,
                           build=lambda: (store.path(relpath).read_bytes(), {"asset": relpath}),
                           describe=relpath, quiet=True)


class BlobDir:
    """A folder an engine writes compiled blobs to, checked like the converted models.

    ddfa keeps OpenVINO's compiled networks there (:meth:`write`, exported blobs) and imports
    them without compiling again (:meth:`read`, checked first). :meth:`verify` deletes every
    file there that is not listed, with the same sha256, in ``blobs.json`` (itself signed like
    the manifests); :meth:`record` lists what an engine has written. So a blob that was changed
    after it was written is compiled again rather than loaded.
    """

    LIST = "blobs.json"

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def _listed(self) -> dict[str, str]:
        try:
            data = json.loads((self.directory / self.LIST).read_text())
            files = {str(k): str(v) for k, v in data["files"].items()}
            if not hmac.compare_digest(str(data.get("mac", "")), _mac({"files": files})):
                return {}
            return files
        except (OSError, ValueError, AttributeError, KeyError, TypeError):
            return {}

    def verify(self) -> None:
        if not self.directory.is_dir():
            return
        listed = self._listed()
        for path in self.directory.iterdir():
            if path.name == self.LIST or not path.is_file():
                continue
            if listed.get(path.name) != _sha256_file(path):
                path.unlink(missing_ok=True)

    def read(self, name: str) -> bytes | None:
        """The bytes of file ``name`` if it is listed with this content, else None (and a file
        that is there but not listed so is deleted)."""
        path = self.directory / name
        try:
            data = path.read_bytes()
        except OSError:
            return None
        if self._listed().get(name) == sha256_bytes(data):
            return data
        path.unlink(missing_ok=True)
        return None

    def write(self, name: str, data: bytes) -> None:
        """Write file ``name`` (atomically) and list it; a cache that cannot be written is skipped."""
        try:
            _write_atomic(self.directory / name, data)
            listed = self._listed()
            listed[name] = sha256_bytes(data)
            _write_atomic(self.directory / self.LIST, json.dumps({"files": listed, "mac": _mac({"files": listed})},
                                                                 indent=1).encode())
        except OSError:
            pass

    def record(self) -> None:
        try:
            if not self.directory.is_dir():
                return
            listed = self._listed()
            # what verify() left is listed and intact; hash only what the engine added
            current = {p.name: listed.get(p.name) or _sha256_file(p) for p in self.directory.iterdir()
                       if p.is_file() and p.name != self.LIST and not p.name.endswith(".part")}
            if current != listed:
                record = {"files": current, "mac": _mac({"files": current})}
                _write_atomic(self.directory / self.LIST, json.dumps(record, indent=1).encode())
        except OSError:
            pass


__all__ = ["BlobDir", "ConvertedModel", "asset_model", "cache_key", "cached_arrays", "config_dir", "converted_model",
           "entry_dir", "verified"]
