"""Multi-process training with PyTorch's own DistributedDataParallel, launched by ``torchrun``.

``torchrun --nproc_per_node K -m ddfa.cli.main train CONFIG.yaml`` (or ``python -m
torch.distributed.run ...``) starts K processes; each reads ``RANK``, ``LOCAL_RANK`` and
``WORLD_SIZE`` from the environment and joins the default process group with
``torch.distributed.init_process_group`` (NCCL on GPUs, gloo on CPUs).

Batch norm: with a per-process batch each process would normalise with its own batch's
statistics, so K processes would not train like one process with the same global batch.
:func:`convert_sync_batchnorm` makes batch statistics global: PyTorch's ``SyncBatchNorm`` on
GPUs, and on CPUs (where ``SyncBatchNorm`` is not supported) :class:`DistributedBatchNorm2d`,
which all-reduces the per-channel sums with a differentiable all-reduce. Then K processes
follow the single-process trajectory up to float rounding.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True, kw_only=True)
class DistInfo:
    """This process's place in the job: ``rank`` of ``world_size``, ``local_rank`` on its node."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def dist_info_from_env() -> DistInfo:
    """Read torchrun's ``RANK`` / ``LOCAL_RANK`` / ``WORLD_SIZE`` (one process if unset)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return DistInfo(rank=int(os.environ.get("RANK", "0")), local_rank=int(os.environ.get("LOCAL_RANK", "0")),
                    world_size=world)


def init_distributed(info: DistInfo, device: torch.device) -> None:
    """Join torchrun's process group (NCCL for CUDA devices, gloo otherwise) if world_size > 1."""
    if info.distributed and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)


def shutdown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class _AllReduceSum(torch.autograd.Function):
    """Sum over processes; the gradient of a sum is the sum of the gradients."""

    @staticmethod
    def forward(ctx, tensor):
        out = tensor.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Differentiable sum of ``tensor`` over all processes (identity with one process)."""
    return _AllReduceSum.apply(tensor) if _active() else tensor


class DistributedBatchNorm2d(nn.BatchNorm2d):
    """``BatchNorm2d`` whose training statistics are those of the global batch, on any device.

    In training mode under an initialised process group the per-channel mean and (biased)
    variance are computed from sums all-reduced over processes (two passes, as a single process
    computes them); running statistics update as in ``BatchNorm2d`` with the global count.
    Otherwise it is exactly ``BatchNorm2d``. Parameter and buffer names are unchanged.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and _active()):
            return super().forward(x)
        dims = (0, 2, 3)
        count = torch.tensor([x.numel() // x.shape[1]], dtype=torch.float64, device=x.device)
        dist.all_reduce(count)
        total = float(count.item())
        mean = all_reduce_sum(x.sum(dims)) / total
        centred = x - mean[None, :, None, None]
        var = all_reduce_sum((centred * centred).sum(dims)) / total
        tracked, running_mean, running_var = self.num_batches_tracked, self.running_mean, self.running_var
        if self.track_running_stats and tracked is not None and running_mean is not None and running_var is not None:
            with torch.no_grad():
                tracked.add_(1)
                factor = 1.0 / float(tracked) if self.momentum is None else self.momentum
                running_mean.mul_(1 - factor).add_(mean.detach(), alpha=factor)
                unbiased = var.detach() * (total / max(total - 1.0, 1.0))
                running_var.mul_(1 - factor).add_(unbiased, alpha=factor)
        out = centred * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            out = out * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return out


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Make every ``BatchNorm2d`` use global-batch statistics (see the module docstring)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            new = DistributedBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                         child.track_running_stats, device=device)
            new.load_state_dict(child.state_dict())
            new.train(child.training)
            setattr(module, name, new)
        else:
            convert_sync_batchnorm(child, device)
    return module


def mean_over_processes(value: float, device: torch.device) -> float:
    """Average a Python float over processes (for logging)."""
    if not _active():
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item()) / dist.get_world_size()


def barrier() -> None:
    if _active():
        dist.barrier()


__all__ = [
    "DistInfo",
    "DistributedBatchNorm2d",
    "all_reduce_sum",
    "barrier",
    "convert_sync_batchnorm",
    "dist_info_from_env",
    "init_distributed",
    "mean_over_processes",
    "shutdown_distributed",
]
