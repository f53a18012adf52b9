"""Reading and writing: images (:mod:`.image`), per-image JSON (:mod:`.results`), meshes
(:mod:`.mesh`) and ``ddfa batch``'s Parquet tables (:mod:`.batch`, needs pyarrow).

``ddfa.io.read_batch`` and ``ddfa.io.column_array`` are imported on first use, so that
``import ddfa`` does not load pyarrow.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name in ("read_batch", "column_array"):
        from . import batch

        return getattr(batch, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
