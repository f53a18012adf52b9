"""Loading untrusted pickles and torch checkpoints.

Upstream 3DDFA / 3DDFA_V2 ship numpy arrays in pickles. A pickle can run arbitrary code when
loaded, so ddfa never calls :func:`pickle.load` on them: :func:`load_numpy_pickle` uses an
unpickler that resolves only the handful of globals needed to rebuild numpy arrays, and plain
containers (dict, list, tuple, str, numbers) need no globals at all. Torch checkpoints go
through ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AssetError, UnsafePickleError

# (module, name) pairs the unpickler may resolve: what numpy needs to rebuild arrays, in
# the module spellings of numpy 1.x and 2.x. Nothing here can run code.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): np.ndarray.__new__,  # replaced below
    ("numpy._core.multiarray", "_reconstruct"): np.ndarray.__new__,  # replaced below
    ("numpy.core.multiarray", "scalar"): None,
    ("numpy._core.multiarray", "scalar"): None,
}


def _numpy_reconstruct(subtype, shape, dtype):
    # numpy's own ``_reconstruct`` (an empty array that BUILD then fills), restricted to
    # plain ndarrays: a pickle may not make us instantiate any other class.
    if subtype is not np.ndarray:
        raise UnsafePickleError(f"pickle asks for array subclass {subtype!r}")
    return np.ndarray.__new__(np.ndarray, shape, dtype)


def _numpy_scalar(dtype, data=None):
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise UnsafePickleError("pickle asks for a numpy scalar of object dtype")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


for _key in list(_ALLOWED_GLOBALS):
    if _key[1] == "_reconstruct":
        _ALLOWED_GLOBALS[_key] = _numpy_reconstruct
    elif _key[1] == "scalar":
        _ALLOWED_GLOBALS[_key] = _numpy_scalar


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def __init__(self, file, source: str):
        super().__init__(file, encoding="latin1")
        self._source = source

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self._source}: refused to load; the pickle references {module}.{name}, "
                "but only numpy arrays and plain containers are allowed. "
                "The file is not a genuine asset: delete it and fetch it again "
                "(`ddfa assets fetch`)."
            ) from None

    def persistent_load(self, pid):
        raise UnsafePickleError(f"{self._source}: refused to load a persistent-id pickle")


def _check_arrays(obj: Any, source: str) -> None:
    """Reject object-dtype arrays anywhere in the loaded structure."""
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise UnsafePickleError(f"{source}: refused to load an object-dtype array")
    elif isinstance(obj, dict):
        for value in obj.values():
            _check_arrays(value, source)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            _check_arrays(value, source)


def loads_numpy_pickle(data: bytes, source: str = "<bytes>") -> Any:
    """Unpickle ``data`` admitting only numpy arrays and plain containers.

    Raises:
        UnsafePickleError: the pickle references any other global (e.g. ``os.system``).
        AssetError: the bytes are not a valid pickle.
    """
    try:
        obj = _NumpyOnlyUnpickler(io.BytesIO(data), source).load()
    except UnsafePickleError:
        raise
    except Exception as exc:  # truncated or garbage pickle
        raise AssetError(f"{source}: not a readable pickle ({type(exc).__name__}: {exc})") from None
    _check_arrays(obj, source)
    return obj


def load_numpy_pickle(path: str | Path) -> Any:
    """Load a pickle file of numpy arrays safely (see :func:`loads_numpy_pickle`)."""
    path = Path(path)
    return loads_numpy_pickle(path.read_bytes(), source=str(path))


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
