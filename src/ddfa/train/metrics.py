"""Validation metric: 2D landmark NME between predicted and target parameters.

NME follows the AFLW2000-3D protocol: the mean distance between the 68 predicted and target
landmarks (x, y in crop pixels) divided by ``sqrt(w·h)`` of the target landmarks' bounding box,
per face; reported in percent. Both landmark sets are projected with the same model, so the
crop-frame offset convention cancels.
"""

from __future__ import annotations

import torch

from ..morphable.torch_model import TorchMorphableModel


def landmark_nme(pred_params: torch.Tensor, target_params: torch.Tensor, model: TorchMorphableModel) -> torch.Tensor:
    """(B, 62) de-whitened predicted / target parameters -> (B,) NME as a fraction (not %)."""
    pred = model(pred_params)[..., :2]
    target = model(target_params)[..., :2]
    extent = target.amax(dim=1) - target.amin(dim=1)  # (B, 2)
    norm = torch.sqrt(extent[:, 0] * extent[:, 1]).clamp_min(1e-6)
    return (pred - target).norm(dim=-1).mean(dim=1) / norm


__all__ = ["landmark_nme"]
