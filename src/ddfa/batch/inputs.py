"""What ``ddfa batch`` reads: the list of input images, and each image's pixels.

An input is a folder (searched recursively for image files), a glob (``photos/**/*.jpg``), a
list file (``.txt``/``.lst``/``.list``: one path per line, ``#`` comments; ``.csv``/``.tsv``: a
column named ``path``, ``uri``, ``url``, ``image``, ``file`` or ``filename``, else the first
column; ``.parquet``/``.pq``: such a column, else the only string column) or a single image.
Each can be a local path or an fsspec URI (``s3://bucket/photos/``, ``gs://...``,
``file:///...``) when the filesystem's package (s3fs, gcsfs, ...) is installed.

Every image is identified by one string, its *key*: the absolute path for a local file, the URI
otherwise. Relative entries of a list file are relative to the list file's folder. Keys are the
``path`` column of the output tables and what a resumed run compares.
"""

from __future__ import annotations

import csv
import glob
import io
import os
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ImageReadError, InputError
from ..io.image import decode_image, is_image_file, read_image

LIST_FORMATS = {".txt": "text", ".lst": "text", ".list": "text", ".csv": "csv", ".tsv": "tsv",
                ".parquet": "parquet", ".pq": "parquet"}
PATH_COLUMNS = ("path", "uri", "url", "image", "file", "filename")
_GLOB_CHARS = frozenset("*?[")


def is_uri(text: str) -> bool:
    """True for ``scheme://...`` (an fsspec URI), False for a local path."""
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.replace("+", "").replace("-", "").isalnum() and len(scheme) > 1


@dataclass(frozen=True)
class InputList:
    """The images of a run, in listing order.

    Attributes:
        paths: unique image keys (absolute local paths or URIs), first occurrence order.
        duplicates: entries dropped because they repeat an earlier one.
    """

    paths: list[str]
    duplicates: int = 0


def list_inputs(specs: str | Sequence[str]) -> InputList:
    """Expand folders, globs and list files into the unique image keys to process.

    Raises:
        InputError: an input that does not exist, matches nothing, or is an unreadable list.
    """
    if isinstance(specs, str):
        specs = [specs]
    seen: set[str] = set()
    paths: list[str] = []
    duplicates = 0
    for spec in specs:
        for key in (_list_uri(spec) if is_uri(spec) else _list_local(spec)):
            if key in seen:
                duplicates += 1
                continue
            seen.add(key)
            paths.append(key)
    return InputList(paths, duplicates)


def _list_local(spec: str) -> list[str]:
    path = Path(spec).expanduser()
    if path.is_dir():
        found = sorted(os.path.abspath(p) for p in path.rglob("*") if p.is_file() and is_image_file(p))
        if not found:
            raise InputError(f"{spec}: folder contains no image files")
        return found
    if path.is_file() and path.suffix.lower() in LIST_FORMATS:
        return _parse_list(path.read_bytes(), path.suffix.lower(), spec,
                           lambda entry: entry if is_uri(entry) else os.path.abspath(path.parent / entry))
    if path.is_file():
        return [os.path.abspath(path)]
    if _GLOB_CHARS & set(spec):
        found = sorted(os.path.abspath(p) for p in glob.glob(str(path), recursive=True) if os.path.isfile(p))
        if not found:
            raise InputError(f"{spec}: the pattern matches no file")
        return found
    raise InputError(f"{spec}: no such file, folder or list")


def _filesystem(spec: str):
    import fsspec

    try:
        return fsspec.core.url_to_fs(spec)
    except (ImportError, ValueError) as exc:
        raise InputError(f"{spec}: cannot open this location ({exc}); install the fsspec filesystem "
                         "for its scheme (e.g. s3fs, gcsfs)") from None


def _list_uri(spec: str) -> list[str]:
    fs, path = _filesystem(spec)
    try:
        if _GLOB_CHARS & set(path):
            found = fs.glob(path, detail=True)
            keys = sorted(fs.unstrip_protocol(p) for p, info in found.items() if info.get("type") == "file")
            if not keys:
                raise InputError(f"{spec}: the pattern matches no file")
            return keys
        if fs.isdir(path):
            keys = sorted(fs.unstrip_protocol(p) for p in fs.find(path) if is_image_file(p))
            if not keys:
                raise InputError(f"{spec}: folder contains no image files")
            return keys
        suffix = posixpath.splitext(path)[1].lower()
        if suffix in LIST_FORMATS and fs.isfile(path):
            with fs.open(path, "rb") as handle:
                data = handle.read()
            folder = posixpath.dirname(path)

            def resolve(entry: str) -> str:
                if is_uri(entry):
                    return entry
                return fs.unstrip_protocol(posixpath.normpath(posixpath.join(folder, entry)))

            return _parse_list(data, suffix, spec, resolve)
        if fs.isfile(path):
            return [fs.unstrip_protocol(path)]
    except OSError as exc:
        raise InputError(f"{spec}: cannot list ({exc})") from None
    raise InputError(f"{spec}: no such file, folder or list")


def _parse_list(data: bytes, suffix: str, source: str, resolve) -> list[str]:
    """The entries of a list file, each passed through ``resolve`` (relative -> key)."""
    kind = LIST_FORMATS[suffix]
    if kind == "parquet":
        entries = _parquet_column(data, source)
    else:
        text = data.decode("utf-8-sig", errors="replace")
        if kind == "text":
            entries = [line.strip() for line in text.splitlines()]
            entries = [e for e in entries if e and not e.startswith("#")]
        else:
            rows = [r for r in csv.reader(io.StringIO(text), delimiter="\t" if kind == "tsv" else ",") if r]
            column = 0
            if rows:
                header = [cell.strip().lower() for cell in rows[0]]
                named = [i for i, cell in enumerate(header) if cell in PATH_COLUMNS]
                if named:
                    column = named[0]
                    rows = rows[1:]
            entries = [r[column].strip() for r in rows if len(r) > column and r[column].strip()]
    if not entries:
        raise InputError(f"{source}: the list names no image")
    return [resolve(str(e)) for e in entries]


def _parquet_column(data: bytes, source: str) -> list[str]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover
        raise InputError(f"{source}: reading a Parquet list needs pyarrow: pip install 'ddfa[batch]'") from None
    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{source}: not a readable Parquet file ({exc})") from None
    by_name = {name.lower(): name for name in table.column_names}
    names = [by_name[c] for c in PATH_COLUMNS if c in by_name]
    if not names:
        names = [f.name for f in table.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
        if len(names) != 1:
            raise InputError(f"{source}: no column named {'/'.join(PATH_COLUMNS)} and not exactly one string "
                             f"column (columns: {', '.join(table.column_names)})")
    return [v for v in table.column(names[0]).to_pylist() if v]


def load_image(key: str) -> np.ndarray:
    """The pixels of one input: (H, W, 3) uint8 BGR, decoded as :func:`ddfa.read_image` does.

    Raises:
        ImageReadError: missing, unreadable, empty, truncated or not an image (naming ``key``).
    """
    if not is_uri(key):
        return read_image(key)
    fs, path = _filesystem(key)
    try:
        with fs.open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise ImageReadError(f"{key}: no such file") from None
    except (OSError, ValueError) as exc:
        raise ImageReadError(f"{key}: cannot read ({exc})") from None
    return decode_image(data, key).image


__all__ = ["LIST_FORMATS", "PATH_COLUMNS", "InputList", "is_uri", "list_inputs", "load_image"]
