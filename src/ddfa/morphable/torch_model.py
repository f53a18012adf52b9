"""The morphable model as a torch module, with its arrays as buffers (moves with ``.to()``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from .reconstruct import basis_rows, reconstruct

if TYPE_CHECKING:  # pragma: no cover
    from .model import MorphableModel


class TorchMorphableModel(nn.Module):
    """Differentiable reconstruction ``s·R·(mean + W·alpha) + t`` in the model frame
    (:func:`ddfa.morphable.reconstruct.reconstruct`).

    Buffers: ``mean`` (N, 3), ``basis`` (3N, 50), ``landmark_mean`` (68, 3),
    ``landmark_basis`` (204, 50), ``landmark_vertices`` (68,).
    """

    mean: torch.Tensor
    basis: torch.Tensor
    landmark_mean: torch.Tensor
    landmark_basis: torch.Tensor
    landmark_vertices: torch.Tensor

    def __init__(self, model: MorphableModel, device=None, dtype=None):
        super().__init__()
        dtype = dtype or torch.float32
        self.name = model.name
        arrays = {"mean": model.mean, "basis": model.basis,
                  "landmark_mean": model.landmark_mean, "landmark_basis": model.landmark_basis}
        for name, array in arrays.items():
            self.register_buffer(name, torch.as_tensor(np.array(array), dtype=dtype, device=device))
        self.register_buffer(
            "landmark_vertices", torch.as_tensor(np.array(model.landmark_vertices), dtype=torch.long, device=device)
        )

    @property
    def num_vertices(self) -> int:
        return int(self.mean.shape[0])

    def subset(self, vertex_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, basis)`` restricted to ``vertex_ids``: (V, 3) and (3V, 50)."""
        return self.mean[vertex_ids], self.basis[basis_rows(vertex_ids)]

    def forward(self, params: torch.Tensor, dense: bool = False, vertex_ids: torch.Tensor | None = None):
        """(B, 62) parameters -> (B, V, 3) model-frame vertices.

        ``V`` is 68 (landmarks), N (``dense=True``) or ``len(vertex_ids)`` when a subset of vertex
        ids is given (e.g. the resampled vertices of WPDC / VDC).
        """
        if vertex_ids is not None:
            mean, basis = self.subset(vertex_ids)
        elif dense:
            mean, basis = self.mean, self.basis
        else:
            mean, basis = self.landmark_mean, self.landmark_basis
        return reconstruct(params, mean, basis)
