"""The one reconstruction of 3DDFA: ``V = s·R·(mean + W·α) + t``, for numpy and torch alike.

Every place that turns parameters into points calls these functions: the numpy and torch
morphable models, the training losses, the PAF anchors, the pose box and synthesis.

Shapes: ``params`` (B, 62) de-whitened (see :mod:`ddfa.morphable.params`); ``mean`` (V, 3)
and ``basis`` (3V, 50) with rows interleaved x0, y0, z0, x1, ... and columns shape (40) then
expression (10); results (B, V, 3) in the model frame (y up, crop-pixel units), in the
dtype and array type of ``params``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .params import coefficients, pose_matrix

#: a numpy array or a torch tensor (the functions here follow the type of their input)
ArrayLike = Any


def basis_rows(vertex_ids):
    """(V,) vertex ids -> (3V,) rows x, y, z of each vertex in an interleaved basis.

    numpy or torch, following ``vertex_ids``.
    """
    if isinstance(vertex_ids, np.ndarray):
        return (3 * vertex_ids[:, None] + np.arange(3)).reshape(-1)
    import torch

    return (3 * vertex_ids[:, None] + torch.arange(3, device=vertex_ids.device)).reshape(-1)


def shape_points(coeffs: ArrayLike, mean: ArrayLike, basis: ArrayLike) -> ArrayLike:
    """(B, 50) coefficients -> (B, V, 3) face shapes ``mean + W·α`` before pose."""
    if isinstance(coeffs, np.ndarray):
        flat = (basis @ coeffs.T).T  # (3V, 50) @ (50, B): one BLAS call for the whole batch
    else:
        flat = coeffs @ basis.T
    return flat.reshape(coeffs.shape[0], -1, 3) + mean


def apply_pose(pose: ArrayLike, points: ArrayLike) -> ArrayLike:
    """``s·R·X + t``: (B, 3, 4) poses ``P = [s·R | t]`` and (B, V, 3) points -> (B, V, 3)."""
    return points @ pose[..., :3].swapaxes(-1, -2) + pose[..., None, :, 3]


def reconstruct(params: ArrayLike, mean: ArrayLike, basis: ArrayLike) -> ArrayLike:
    """(B, 62) parameters -> (B, V, 3) posed vertices ``s·R·(mean + W·α) + t``.

    For numpy input the parameters are computed in their own float dtype (float32 for
    integer input) and ``mean``/``basis`` are cast to it.
    """
    if isinstance(params, np.ndarray):
        dtype = params.dtype if params.dtype in (np.float32, np.float64) else np.dtype(np.float32)
        params = params.astype(dtype, copy=False)
        mean, basis = mean.astype(dtype, copy=False), basis.astype(dtype, copy=False)
    return apply_pose(pose_matrix(params), shape_points(coefficients(params), mean, basis))
