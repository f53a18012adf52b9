"""The 62-parameter layout of 3DDFA and its (de)whitening.

``params[..., 0:12]`` is a row-major 3x4 matrix ``P = [s·R | t]`` (scaled rotation and
translation, model frame, y up, units of 120x120-crop pixels); ``params[..., 12:52]`` are the
40 shape coefficients and ``params[..., 52:62]`` the 10 expression coefficients of the
reduced Basel Face Model. Networks regress *whitened* parameters, ``(p - mean) / std``.

Functions here accept numpy arrays or torch tensors of shape (..., 62).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from ..assets.store import AssetsLike

#: a numpy array or a torch tensor (the functions here follow the type of their input)
ArrayLike = Any

NUM_PARAMS = 62
NUM_POSE = 12
NUM_SHAPE = 40
NUM_EXPRESSION = 10
NUM_COEFFICIENTS = NUM_SHAPE + NUM_EXPRESSION
POSE = slice(0, NUM_POSE)
SHAPE = slice(NUM_POSE, NUM_POSE + NUM_SHAPE)
EXPRESSION = slice(NUM_POSE + NUM_SHAPE, NUM_PARAMS)
#: shape and expression together, in the column order of the morphable model's basis
COEFFICIENTS = slice(NUM_POSE, NUM_PARAMS)
#: index of the translation's z (``P[2, 3]``) in the flat vector
TRANSLATION_Z = 11


def _check(params: ArrayLike) -> None:
    if params.shape[-1] != NUM_PARAMS:
        raise InputError(f"expected (..., 62) parameters, got shape {tuple(params.shape)}")


def pose_matrix(params: ArrayLike) -> ArrayLike:
    """(..., 62) parameters -> (..., 3, 4) pose ``P = [s·R | t]`` (a view where possible)."""
    _check(params)
    return params[..., POSE].reshape(*params.shape[:-1], 3, 4)


def coefficients(params: ArrayLike) -> ArrayLike:
    """(..., 62) parameters -> (..., 50) shape then expression coefficients (a view)."""
    _check(params)
    return params[..., COEFFICIENTS]


def split_params(params: ArrayLike):
    """Split (..., 62) parameters into ``P`` (..., 3, 4), shape (..., 40) and expression (..., 10)."""
    _check(params)
    return pose_matrix(params), params[..., SHAPE], params[..., EXPRESSION]


def join_params(pose: ArrayLike, coeffs: ArrayLike) -> ArrayLike:
    """Inverse of (:func:`pose_matrix`, :func:`coefficients`): (..., 3, 4) and (..., 50) -> (..., 62).

    numpy or torch, following ``pose``; the dtype is that of ``pose``.
    """
    flat = pose.reshape(*pose.shape[:-2], NUM_POSE)
    if isinstance(pose, np.ndarray):
        return np.concatenate([flat, np.asarray(coeffs, dtype=flat.dtype)], axis=-1)
    import torch

    return torch.cat([flat, coeffs.to(flat.dtype)], dim=-1)


@dataclass(frozen=True)
class Whitening:
    """Per-parameter mean and standard deviation, (62,) float32 each.

    ``name`` is ``"v2"`` (3DDFA_V2's ``param_mean_std_62d_120x120.pkl``) or ``"v1"`` (3DDFA's
    ``param_whitening.pkl``); the two differ, and a model only works with its own.
    """

    mean: np.ndarray
    std: np.ndarray
    name: str = "custom"

    def dewhiten(self, raw: ArrayLike) -> ArrayLike:
        """Whitened (..., 62) -> parameters: ``raw * std + mean``."""
        mean, std = self._like(raw)
        return raw * std + mean

    def whiten(self, params: ArrayLike) -> ArrayLike:
        """Parameters (..., 62) -> whitened: ``(params - mean) / std``."""
        mean, std = self._like(params)
        return (params - mean) / std

    def _like(self, x):
        if isinstance(x, np.ndarray):
            return self.mean.astype(x.dtype, copy=False), self.std.astype(x.dtype, copy=False)
        import torch

        return (
            torch.as_tensor(self.mean, dtype=x.dtype, device=x.device),
            torch.as_tensor(self.std, dtype=x.dtype, device=x.device),
        )


WHITENING_FILES = {
    "v2": ("3DDFA_V2/configs/param_mean_std_62d_120x120.pkl", "mean", "std"),
    "v1": ("3DDFA/train.configs/param_whitening.pkl", "param_mean", "param_std"),
}


def load_whitening(assets: AssetsLike = None, name: str = "v2") -> Whitening:
    """Load the ``"v2"`` or ``"v1"`` whitening from an asset store, folder or None (``$DDFA_HOME``)."""
    from ..assets.store import resolve_assets

    store = resolve_assets(assets)
    try:
        relpath, mean_key, std_key = WHITENING_FILES[name]
    except KeyError:
        raise InputError(f"unknown whitening {name!r}; expected one of {sorted(WHITENING_FILES)}") from None
    data = store.load_pickle(relpath)
    mean = np.asarray(data[mean_key], dtype=np.float32).reshape(NUM_PARAMS)
    std = np.asarray(data[std_key], dtype=np.float32).reshape(NUM_PARAMS)
    return Whitening(mean=mean, std=std, name=name)
