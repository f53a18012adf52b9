"""Loading untrusted pickles and torch checkpoints.

Upstream 3DDFA / 3DDFA_V2 ship numpy arrays in pickles. A pickle can run arbitrary code when
loaded, so ddfa never calls :func:`pickle.load` on them: :func:`load_numpy_pickle` uses an
unpickler that resolves only the handful of globals needed to rebuild numpy arrays (every
pickle protocol, 0 to 5, of numpy 1.x and 2.x), each replaced by a checked stand-in; plain
containers (dict, list, tuple, set, str, bytes, numbers) need no globals at all. Torch
checkpoints go through ``torch.load(weights_only=True)``.

A pickle cannot run code here, and it cannot exhaust memory or time either
(:class:`PickleBudget`):

* **size**: files larger than ``max_bytes`` are refused before reading;
* **elements**: arrays and containers together may hold at most ``max_elements`` elements
  (default: the pickle's size in bytes plus 65,536: every element of a genuine pickle costs at
  least one byte of it). An array's size is checked *before* it is allocated, so a 59-byte
  pickle cannot ask for a billion-element array; containers are counted along every path, so
  a few hundred bytes of shared nested lists (a structure with 2**60 paths) are refused quickly
  instead of hanging whoever walks them;
* **depth**: nesting deeper than ``max_depth`` (default 100) is refused, never a
  RecursionError;
* arrays are built only by numpy's own code from a state checked first (shape, dtype, length
  of the data): no object arrays, no array subclasses.

Every refusal is an :class:`~ddfa.errors.UnsafePickleError` naming the file.
"""

from __future__ import annotations

import io
import math
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AssetError, UnsafePickleError


@dataclass(frozen=True, kw_only=True)
class PickleBudget:
    """Limits of :func:`loads_numpy_pickle` (see the module docstring).

    Attributes:
        max_bytes: largest pickle accepted, in bytes (256 MiB).
        max_depth: deepest nesting of containers (100).
        max_elements: most array elements plus container items (None: the pickle's size in
            bytes plus 65,536).
    """

    max_bytes: int = 256 << 20
    max_depth: int = 100
    max_elements: int | None = None

    def elements_for(self, size: int) -> int:
        return self.max_elements if self.max_elements is not None else size + 65536


DEFAULT_BUDGET = PickleBudget()


class _Context:
    """Per-load state: the file's name and the element budget left."""

    def __init__(self, source: str, elements: int):
        self.source = source
        self.left = elements

    def spend(self, count: int, what: str) -> None:
        self.left -= count
        if self.left < 0:
            raise UnsafePickleError(f"{self.source}: refused to load: more elements than the budget allows "
                                    f"({what}); the file is not a genuine asset")

    def refuse(self, why: str) -> UnsafePickleError:
        return UnsafePickleError(f"{self.source}: refused to load: {why}; the file is not a genuine asset")


class _NdarrayStandIn:
    """Stands for ``numpy.ndarray`` in a pickle: ``_reconstruct`` takes it as the array type;
    calling it (``ndarray(shape)``: an allocation of any size from a few bytes) is refused."""

    def __init__(self, ctx: _Context):
        self._ctx = ctx

    def __call__(self, *args, **kwargs):
        raise self._ctx.refuse("a direct numpy.ndarray(...) call (arrays are rebuilt from their data only)")


class _PendingArray:
    """What ``numpy.core.multiarray._reconstruct`` returns here: an empty stand-in whose
    ``__setstate__`` (pickle's BUILD) checks numpy's array state before numpy sees it."""

    __slots__ = ("array", "_ctx")

    def __init__(self, ctx: _Context):
        self.array: np.ndarray | None = None
        self._ctx = ctx

    def __setstate__(self, state) -> None:
        ctx = self._ctx
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise ctx.refuse("an array with a malformed state")
        version, (shape, dtype, is_fortran, raw) = (state[0] if len(state) == 5 else 1), state[-4:]
        if not isinstance(dtype, np.dtype) or dtype.hasobject:
            raise ctx.refuse("an object-dtype (or malformed) array")
        count = _checked_count(ctx, shape)
        if isinstance(raw, str):  # a Python 2 pickle: bytes as latin-1 text
            raw = raw.encode("latin1")
        if not isinstance(raw, (bytes, bytearray)) or len(raw) != count * dtype.itemsize:
            raise ctx.refuse("an array whose data does not match its shape and dtype")
        array = np.ndarray.__new__(np.ndarray, (0,), "b")
        checked: Any = (version, tuple(int(n) for n in shape), dtype, bool(is_fortran), bytes(raw))
        array.__setstate__(checked)  # numpy's own parser wants a plain int/bool flag
        self.array = array


def _checked_count(ctx: _Context, shape) -> int:
    if not isinstance(shape, tuple) or len(shape) > 64 or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
        raise ctx.refuse(f"an array of malformed shape {shape!r:.60}")
    count = math.prod(shape)
    ctx.spend(count, f"an array of shape {shape}")
    return count


def _make_globals(ctx: _Context) -> dict[tuple[str, str], Any]:
    """The globals a numpy pickle may name, each a checked stand-in bound to this load."""

    def reconstruct(subtype, shape, dtype):
        # numpy's _reconstruct(ndarray, (0,), b'b'): an empty array that BUILD then fills
        if not isinstance(subtype, _NdarrayStandIn):
            raise ctx.refuse(f"array subclass {subtype!r:.60}")
        return _PendingArray(ctx)

    def frombuffer(buffer, dtype, shape, order):
        # protocol 5: numpy's _frombuffer(buffer, dtype, shape, order)
        if not isinstance(dtype, np.dtype) or dtype.hasobject:
            raise ctx.refuse("an object-dtype (or malformed) array")
        count = _checked_count(ctx, shape)
        if isinstance(buffer, pickle.PickleBuffer):
            buffer = buffer.raw()
        size = len(memoryview(buffer).cast("B")) if isinstance(buffer, (bytes, bytearray, memoryview)) else -1
        if size != count * dtype.itemsize or order not in ("C", "F"):
            raise ctx.refuse("an array whose data does not match its shape and dtype")
        array = np.frombuffer(buffer, dtype=dtype).reshape(shape, order=order)
        return array if array.flags.writeable else array.copy(order="K")

    def scalar(dtype, data=None):
        if not isinstance(dtype, np.dtype) or dtype.hasobject:
            raise ctx.refuse("a numpy scalar of object dtype")
        if isinstance(data, str):
            data = data.encode("latin1")
        if not isinstance(data, (bytes, bytearray)) or len(data) != dtype.itemsize:
            raise ctx.refuse("a numpy scalar whose data does not match its dtype")
        return np.frombuffer(bytes(data), dtype=dtype, count=1)[0]

    def make_dtype(spec, align=False, copy=False):
        if isinstance(spec, bytes):
            spec = spec.decode("latin1")
        if not isinstance(spec, str):
            raise ctx.refuse(f"a numpy dtype from {type(spec).__name__}")
        try:
            dtype = np.dtype(spec, align=bool(align), copy=bool(copy))
        except (TypeError, ValueError):
            raise ctx.refuse(f"an invalid numpy dtype {spec!r:.40}") from None
        if dtype.hasobject:
            raise ctx.refuse("an object dtype")
        return dtype

    def codecs_encode(text, encoding="utf-8", errors="strict"):
        # protocols 0-2 spell bytes as _codecs.encode(str, 'latin1')
        if not isinstance(text, str) or str(encoding).lower().replace("_", "-") not in ("latin1", "latin-1"):
            raise ctx.refuse("_codecs.encode used for anything but latin-1 bytes")
        return text.encode("latin1")

    def empty_bytes(*args):
        # protocols 0-2 spell b"" as bytes(): no arguments allowed
        if args:
            raise ctx.refuse("bytes() called with arguments")
        return b""

    allowed: dict[tuple[str, str], Any] = {("numpy", "ndarray"): _NdarrayStandIn(ctx), ("numpy", "dtype"): make_dtype,
                                           ("_codecs", "encode"): codecs_encode, ("builtins", "bytes"): empty_bytes,
                                           ("__builtin__", "bytes"): empty_bytes}
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = reconstruct
        allowed[(f"{core}.multiarray", "scalar")] = scalar
        allowed[(f"{core}.numeric", "_frombuffer")] = frombuffer
    return allowed


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def __init__(self, file, ctx: _Context):
        super().__init__(file, encoding="latin1")
        self._ctx = ctx
        self._allowed = _make_globals(ctx)

    def find_class(self, module: str, name: str):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self._ctx.source}: refused to load; the pickle references {module}.{name}, "
                "but only numpy arrays and plain containers are allowed. "
                "The file is not a genuine asset: delete it and fetch it again "
                "(`ddfa assets fetch`)."
            ) from None

    def persistent_load(self, pid):
        raise UnsafePickleError(f"{self._ctx.source}: refused to load a persistent-id pickle")


_PLAIN = (str, bytes, int, float, complex, bool, type(None))


def _finish(obj: Any, ctx: _Context, max_depth: int, arrays: dict[int, Any], depth: int = 0) -> Any:
    """The loaded structure with every pending array replaced by its ndarray, checked: plain
    types only, depth and element budgets. Containers are counted along every path."""
    if depth > max_depth:
        raise ctx.refuse(f"nesting deeper than {max_depth} levels")
    if isinstance(obj, _PendingArray):
        if obj.array is None:
            raise ctx.refuse("an array that was never filled")
        return obj.array
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise ctx.refuse("an object-dtype array")
        return obj
    if isinstance(obj, (np.generic,) + _PLAIN):
        return obj
    if isinstance(obj, (list, tuple, set, frozenset, dict)):
        ctx.spend(len(obj) + 1, "containers")
        if isinstance(obj, dict):
            return {_finish(k, ctx, max_depth, arrays, depth + 1): _finish(v, ctx, max_depth, arrays, depth + 1)
                    for k, v in obj.items()}
        items = [_finish(v, ctx, max_depth, arrays, depth + 1) for v in obj]
        if isinstance(obj, list):
            return items
        return type(obj)(items)
    if isinstance(obj, bytearray):
        return obj
    raise ctx.refuse(f"an object of type {type(obj).__name__}")


def loads_numpy_pickle(data: bytes, source: str = "<bytes>", *, budget: PickleBudget = DEFAULT_BUDGET) -> Any:
    """Unpickle ``data`` admitting only numpy arrays and plain containers, within ``budget``.

    Raises:
        UnsafePickleError: the pickle references any other global (e.g. ``os.system``), holds
            object arrays, or exceeds the size, depth or element budget.
        AssetError: the bytes are not a valid pickle.
    """
    if len(data) > budget.max_bytes:
        raise UnsafePickleError(f"{source}: refused to load: {len(data):,} bytes is more than the budget of "
                                f"{budget.max_bytes:,}")
    ctx = _Context(source, budget.elements_for(len(data)))
    try:
        obj = _NumpyOnlyUnpickler(io.BytesIO(data), ctx).load()
    except UnsafePickleError:
        raise
    except RecursionError:
        raise ctx.refuse("nesting too deep to read") from None
    except MemoryError:
        raise ctx.refuse("more memory than available") from None
    except Exception as exc:  # truncated or garbage pickle
        raise AssetError(f"{source}: not a readable pickle ({type(exc).__name__}: {exc})") from None
    try:
        return _finish(obj, ctx, budget.max_depth, {})
    except RecursionError:
        raise ctx.refuse("nesting too deep to check") from None


def load_numpy_pickle(path: str | Path, *, budget: PickleBudget = DEFAULT_BUDGET) -> Any:
    """Load a pickle file of numpy arrays safely (see :func:`loads_numpy_pickle`); files larger
    than ``budget.max_bytes`` are refused before reading."""
    path = Path(path)
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        raise AssetError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if size > budget.max_bytes:
        raise UnsafePickleError(f"{path}: refused to load: {size:,} bytes is more than the budget of "
                                f"{budget.max_bytes:,}")
    return loads_numpy_pickle(path.read_bytes(), source=str(path), budget=budget)


def load_torch_checkpoint(path: str | Path) -> dict:
    """Load a torch checkpoint with ``weights_only=True`` onto the CPU.

    Returns whatever dict the file holds: a state dict, or a dict with a ``state_dict`` key.
    """
    import torch

    path = Path(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise AssetError(
            f"{path}: cannot load as a torch checkpoint with weights_only=True "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). "
            "It is corrupt or holds code; fetch it again."
        ) from None
    if not isinstance(obj, dict):
        raise AssetError(f"{path}: expected a dict of tensors, found {type(obj).__name__}")
    return obj
