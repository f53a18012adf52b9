"""3DDFA's training losses: PDC, VDC and WPDC (Zhu et al., TPAMI 2019, section 4).

Every loss takes the network output ``pred`` and the target, both **whitened** (B, 62) tensors
(``(p - mean) / std`` with the :class:`~ddfa.morphable.params.Whitening` given to the loss), and
returns a scalar tensor. They run on whatever device the inputs are on (the morphable model and
whitening are buffers that move with ``.to(device)``) and in the inputs' dtype.

* :class:`PDCLoss` (Parameter Distance Cost): mean squared error of the whitened parameters.
* :class:`VDCLoss` (Vertex Distance Cost): mean squared distance, per coordinate, between the
  vertices (model frame, crop pixels) reconstructed from the prediction and from the target,
  over all vertices or over the 68 landmarks plus ``resample_num`` random vertices. The
  predicted z translation is replaced by the target's (it does not move the projection).
* :class:`WPDCLoss` (Weighted Parameter Distance Cost): ``mean(w · (pred - target)²)`` on the
  whitened parameters, where the weight of each parameter is the size of the vertex
  displacement it causes on its own (see :func:`wpdc_weights`); weights are constants for the
  gradient.

With 3DDFA's full 53,215-vertex model, v1 whitening and ``resample_num=0`` these reproduce the
original implementation's losses, weights and gradients (``tests/train/test_losses.py``).

Random vertex subsets are drawn with ``torch.randperm`` on the CPU from the ``generator`` passed
to ``forward`` (or the global torch generator), so a seeded generator makes a run repeatable
and every DDP rank can draw the same subset.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from ..morphable.model import MorphableModel
from ..morphable.params import NUM_PARAMS, Whitening
from ..morphable.torch_model import TorchMorphableModel

#: Scale converting shape/expression-coefficient displacements into crop pixels in the WPDC
#: weights: a typical pose scale ``s`` of 120x120 training crops. Fitted to 3DDFA's reference
#: weights (``golden/losses.npz``), against which it reproduces them to 1e-7.
WPDC_SHAPE_SCALE = 5.7339936e-4
#: Added to every raw WPDC weight before normalising (keeps all-zero rows finite).
WPDC_EPS = 1e-6

LOSSES = ("pdc", "vdc", "wpdc")


class _ModelLoss(nn.Module):
    """Base class: holds the whitening and the morphable model as buffers."""

    def __init__(self, model: MorphableModel, whitening: Whitening):
        super().__init__()
        self.register_buffer("param_mean", torch.as_tensor(np.array(whitening.mean, dtype=np.float32)))
        self.register_buffer("param_std", torch.as_tensor(np.array(whitening.std, dtype=np.float32)))
        self.whitening_name = whitening.name
        self.morphable = TorchMorphableModel(model)

    def dewhiten(self, whitened: torch.Tensor) -> torch.Tensor:
        """(B, 62) whitened -> de-whitened parameters, in the input's dtype."""
        return whitened * self.param_std.to(whitened.dtype) + self.param_mean.to(whitened.dtype)

    def vertex_ids(self, resample_num: int | None, generator: torch.Generator | None = None) -> torch.Tensor | None:
        """Vertex subset: None for all vertices, else the 68 landmarks + ``resample_num`` random ids.

        The random ids are a uniform draw without replacement from all N vertices (a landmark
        may be drawn again, as in 3DDFA).
        """
        if resample_num is None:
            return None
        ids = self.morphable.landmark_vertices
        if resample_num > 0:
            extra = torch.randperm(self.morphable.num_vertices, generator=generator)[:resample_num]
            ids = torch.cat([ids, extra.to(ids.device)])
        return ids

    def shapes(self, coeffs: torch.Tensor, ids: torch.Tensor | None) -> torch.Tensor:
        """(B, 50) shape+expression coefficients -> (B, V, 3) un-posed shapes at vertices ``ids``."""
        if ids is None:
            mean, basis = self.morphable.mean, self.morphable.basis
        else:
            mean, basis = self.morphable.mean[ids], self.morphable.basis[_rows(ids)]
        mean, basis = mean.to(coeffs.dtype), basis.to(coeffs.dtype)
        return (coeffs @ basis.T).reshape(coeffs.shape[0], -1, 3) + mean

    def _check(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        if pred.shape != target.shape or pred.ndim != 2 or pred.shape[1] != NUM_PARAMS:
            raise InputError(
                f"loss inputs must both be (B, 62) whitened parameters, got {tuple(pred.shape)} and "
                f"{tuple(target.shape)}"
            )


def _rows(ids: torch.Tensor) -> torch.Tensor:
    """(V,) vertex ids -> (3V,) rows of the interleaved basis."""
    return (3 * ids[:, None] + torch.arange(3, device=ids.device)).reshape(-1)


class PDCLoss(nn.Module):
    """Parameter Distance Cost: ``mean((pred - target)²)`` over the (B, 62) whitened parameters."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor, generator=None) -> torch.Tensor:
        return torch.mean((pred - target) ** 2)


class VDCLoss(_ModelLoss):
    """Vertex Distance Cost: mean squared vertex-coordinate difference, in crop pixels².

    Args:
        model: the morphable model whose vertices are compared.
        whitening: the whitening of ``pred`` and ``target``.
        resample_num: None (default) compares all N vertices; an int compares the 68 landmarks
            plus that many random vertices (0: landmarks only). 3DDFA's ``VDCLoss()`` default is
            all vertices, its training script's ``--opt-style resample`` uses 132.
    """

    def __init__(self, model: MorphableModel, whitening: Whitening, resample_num: int | None = None):
        super().__init__(model, whitening)
        self.resample_num = resample_num

    def forward(self, pred: torch.Tensor, target: torch.Tensor, generator=None) -> torch.Tensor:
        self._check(pred, target)
        ids = self.vertex_ids(self.resample_num, generator)
        p, g = self.dewhiten(pred), self.dewhiten(target)
        # the z translation does not change the projection: use the target's
        p = torch.cat([p[:, :11], g[:, 11:12], p[:, 12:]], dim=1)
        dense = ids is None
        vertices = self.morphable(p, dense=dense, vertex_ids=ids)
        target_vertices = self.morphable(g, dense=dense, vertex_ids=ids)
        return torch.mean((vertices - target_vertices) ** 2)


def wpdc_weights(
    pred: torch.Tensor,
    target: torch.Tensor,
    shapes: torch.Tensor,
    basis: torch.Tensor,
    shape_scale: float = WPDC_SHAPE_SCALE,
    eps: float = WPDC_EPS,
) -> torch.Tensor:
    """WPDC's per-parameter weights (B, 62), each row normalised so that its maximum is 1.

    The weight of parameter ``i`` is the norm, over the chosen V vertices, of the displacement of
    the target face when ``p_i`` alone moves from its target value to its predicted value
    (TPAMI eq. 8, ``‖V(p^{de,i}) − V(p^g)‖``), computed in closed form:

    * pose entry ``P[r, c]``, ``c < 3``: ``|Δ P[r,c]| · ‖S_c‖``, ``S_c`` the c-th coordinate of
      the target's un-posed shape over the V vertices;
    * translation ``P[r, 3]``: ``|Δ t_r| · sqrt(V)``; the z translation ``P[2, 3]`` (index 11)
      does not affect the projection and gets weight 0;
    * shape/expression coefficient ``j``: ``shape_scale · |Δ α_j| · ‖W_j‖`` with ``W_j`` the
      basis column over the V vertices and ``shape_scale`` a typical pose scale ``s`` (a
      rotation keeps the norm).

    ``eps`` is added before dividing each row by its maximum.

    Args:
        pred, target: (B, 62) **de-whitened** parameters (treated as constants).
        shapes: (B, V, 3) un-posed target shapes ``mean + W·α_target`` at the V vertices.
        basis: (3V, 50) basis rows of the V vertices.
    """
    with torch.no_grad():
        diff = (pred - target).abs()
        coord_norm = shapes.norm(dim=1)  # (B, 3): ‖S_x‖, ‖S_y‖, ‖S_z‖
        sqrt_v = math.sqrt(shapes.shape[1])
        weights = torch.zeros_like(diff)
        pose_diff = diff[:, :12].reshape(-1, 3, 4)
        pose_norm = torch.cat([coord_norm, torch.full_like(coord_norm[:, :1], sqrt_v)], dim=1)  # (B, 4)
        weights[:, :12] = (pose_diff * pose_norm[:, None, :]).reshape(-1, 12) + eps
        weights[:, 11] = 0.0
        weights[:, 12:] = shape_scale * diff[:, 12:] * basis.norm(dim=0) + eps
        weights /= weights.max(dim=1, keepdim=True).values
    return weights


class WPDCLoss(_ModelLoss):
    """Weighted Parameter Distance Cost: ``mean(w · (pred − target)²)`` on whitened parameters.

    Args:
        model, whitening: as for :class:`VDCLoss`.
        resample_num: random vertices added to the 68 landmarks for the weights (132 as in
            3DDFA's training; 0 = landmarks only, deterministic).
        shape_scale: see :func:`wpdc_weights`.
    """

    def __init__(self, model: MorphableModel, whitening: Whitening, resample_num: int = 132,
                 shape_scale: float = WPDC_SHAPE_SCALE):
        super().__init__(model, whitening)
        self.resample_num = int(resample_num)
        self.shape_scale = float(shape_scale)

    def weights(self, pred: torch.Tensor, target: torch.Tensor, generator=None) -> torch.Tensor:
        """(B, 62) weights for whitened ``pred`` / ``target`` (see :func:`wpdc_weights`)."""
        self._check(pred, target)
        ids = self.vertex_ids(self.resample_num, generator)
        with torch.no_grad():
            p, g = self.dewhiten(pred.detach()), self.dewhiten(target.detach())
            basis = self.morphable.basis[_rows(ids)].to(p.dtype)
            return wpdc_weights(p, g, self.shapes(g[:, 12:], ids), basis, self.shape_scale)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, generator=None) -> torch.Tensor:
        weights = self.weights(pred, target, generator)
        return torch.mean(weights * (pred - target) ** 2)


def build_loss(name: str, model: MorphableModel, whitening: Whitening, *, resample_num: int = 132,
               vdc_vertices: str = "resample") -> nn.Module:
    """A loss by name (``"pdc"``, ``"vdc"``, ``"wpdc"``) configured as 3DDFA's training did.

    Args:
        resample_num: random vertices (beyond the 68 landmarks) of WPDC and resampled VDC.
        vdc_vertices: ``"resample"`` (landmarks + ``resample_num``, 3DDFA's ``train.py``
            default) or ``"all"`` (every vertex).
    """
    name = name.lower()
    if name == "pdc":
        return PDCLoss()
    if name == "vdc":
        if vdc_vertices not in ("resample", "all"):
            raise InputError(f"vdc_vertices must be 'resample' or 'all', got {vdc_vertices!r}")
        return VDCLoss(model, whitening, resample_num=None if vdc_vertices == "all" else resample_num)
    if name == "wpdc":
        return WPDCLoss(model, whitening, resample_num=resample_num)
    raise InputError(f"unknown loss {name!r}; expected one of {', '.join(LOSSES)}")
