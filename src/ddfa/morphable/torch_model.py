"""The morphable model as a torch module, with its arrays as buffers (moves with ``.to()``)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .model import MorphableModel


class TorchMorphableModel(nn.Module):
    """Differentiable reconstruction ``s·R·(mean + W·alpha) + t`` in the model frame.

    Buffers: ``mean`` (N, 3), ``basis`` (3N, 50), ``landmark_mean`` (68, 3),
    ``landmark_basis`` (204, 50), ``landmark_vertices`` (68,).
    """

    def __init__(self, model: MorphableModel, device=None, dtype=None):
        super().__init__()
        dtype = dtype or torch.float32
        self.name = model.name
        self.register_buffer("mean", torch.as_tensor(np.array(model.mean), dtype=dtype, device=device))
        self.register_buffer("basis", torch.as_tensor(np.array(model.basis), dtype=dtype, device=device))
        self.register_buffer(
            "landmark_mean", torch.as_tensor(np.array(model._landmark_mean), dtype=dtype, device=device)
        )
        self.register_buffer(
            "landmark_basis", torch.as_tensor(np.array(model._landmark_basis), dtype=dtype, device=device)
        )
        self.register_buffer(
            "landmark_vertices", torch.as_tensor(model.landmark_vertices, dtype=torch.long, device=device)
        )

    @property
    def num_vertices(self) -> int:
        return self.mean.shape[0]

    def forward(self, params: torch.Tensor, dense: bool = False, vertex_ids: torch.Tensor | None = None):
        """(B, 62) parameters -> (B, V, 3) model-frame vertices.

        ``V`` is 68 (landmarks), N (``dense=True``) or ``len(vertex_ids)`` when a subset of vertex
        ids is given (e.g. the resampled vertices of WPDC / VDC).
        """
        if vertex_ids is not None:
            rows = (3 * vertex_ids[:, None] + torch.arange(3, device=vertex_ids.device)).reshape(-1)
            mean, basis = self.mean[vertex_ids], self.basis[rows]
        elif dense:
            mean, basis = self.mean, self.basis
        else:
            mean, basis = self.landmark_mean, self.landmark_basis
        pose = params[:, :12].reshape(-1, 3, 4)
        shapes = (params[:, 12:] @ basis.T).reshape(params.shape[0], -1, 3) + mean
        return shapes @ pose[:, :, :3].transpose(1, 2) + pose[:, None, :, 3]
