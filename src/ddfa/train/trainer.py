"""The trainer behind ``ddfa train``: SGD on 3DDFA's losses, checkpoints, resume, DDP.

Outputs in ``cfg.out``:

* ``last.pth``: ddfa checkpoint (loads with ``ddfa.create_model``) plus ``train_state``
  (optimizer, stage, epoch, batch, step, config, history, RNG), written after every epoch and
  when a step or time budget stops the run; ``resume: auto`` / ``--resume auto`` continues it.
  Everything in it is tensors and plain containers, so ``torch.load(weights_only=True)`` reads it.
* ``epoch_NNN.pth``: the same after each epoch (``checkpoints: all``).
* ``final.pth``: weights + metadata only, for ``FaceAligner(model=PATH)`` / ``ddfa benchmark``;
  ``final_v2.pth``: the same weights in 3DDFA_V2's state-dict layout.
* ``log.csv`` (and/or TensorBoard events): train loss and learning rate every ``log_every``
  steps, validation NME (%) every epoch; ``config.yaml``: the resolved configuration.

Determinism: the shuffling permutation depends on (seed, epoch), the augmentation of each
sample on (seed, epoch, index) and WPDC/VDC's vertex resampling on (seed, step), so a resumed
run repeats the uninterrupted run's trajectory, and K DDP processes at a global batch B follow
the single-process run at batch B (with synchronised batch norm).
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from ..assets.safe_pickle import load_torch_checkpoint
from ..assets.store import AssetStore, resolve_assets
from ..errors import InputError, TrainingError
from ..morphable.model import load_morphable_model
from ..morphable.params import NUM_PARAMS, Whitening, load_whitening
from ..nets.checkpoint import make_ddfa_checkpoint, to_v2_state_dict
from ..nets.registry import build_network, load_checkpoint
from .config import StageConfig, TrainConfig
from .data import AugmentConfig, CropDataset, make_loader, read_source
from .distributed import (
    DistInfo,
    barrier,
    convert_sync_batchnorm,
    dist_info_from_env,
    init_distributed,
    mean_over_processes,
    shutdown_distributed,
)
from .losses import build_loss
from .metrics import landmark_nme

LOG_COLUMNS = ("time", "kind", "stage", "epoch", "step", "lr", "loss", "val_nme")
#: what a resumable checkpoint's ``train_state`` must hold
_TRAIN_STATE_KEYS = ("optimizer", "stage", "epoch", "batch", "step", "rng_torch")


@dataclass
class TrainResult:
    """What a run produced: paths, the number of optimizer steps and the logged history."""

    out: Path
    final: Path | None
    last: Path | None
    steps: int
    history: list[dict] = field(default_factory=list)
    stopped_early: bool = False

    @property
    def val_nme(self) -> float | None:
        vals = [row["val_nme"] for row in self.history if row.get("val_nme") not in (None, "")]
        return float(vals[-1]) if vals else None

    @property
    def train_losses(self) -> list[float]:
        return [float(row["loss"]) for row in self.history if row["kind"] == "step"]


@dataclass(frozen=True, kw_only=True)
class InitialWeights:
    """The network a run starts from.

    Attributes:
        arch: registered architecture (:func:`ddfa.nets.registry.build_network`).
        config: its build keywords (MobileNet-V1: ``{"width": w}``).
        whitening: the whitening of the network's outputs (and of the training targets).
        state_dict: weights to start from, or None for a random initialisation.
    """

    arch: str
    config: Mapping[str, Any]
    whitening: Whitening
    state_dict: Mapping[str, torch.Tensor] | None = None

    @property
    def width(self) -> float:
        """MobileNet-V1 width multiplier (1.0 when the config has none)."""
        return float(self.config.get("width", 1.0))


def resolve_init(cfg: TrainConfig, store: AssetStore) -> InitialWeights:
    """The starting network of ``cfg``: ``init`` weights (a model name or checkpoint path, looked
    up by :func:`ddfa.nets.registry.load_checkpoint`) checked against ``arch`` / ``width`` /
    ``whitening``, or a random ``arch`` network of ``width`` (default 1.0) with ``whitening``
    (default ``"v2"``).

    Raises:
        InputError: ``init`` is neither a model name nor a checkpoint, or it disagrees with an
            explicit ``arch``, ``width`` or ``whitening``.
    """
    if not cfg.init:
        width = float(cfg.width) if cfg.width is not None else 1.0
        return InitialWeights(arch=cfg.arch, config={"width": width},
                              whitening=load_whitening(store, cfg.whitening or "v2"))
    ckpt = load_checkpoint(cfg.init, assets=store)
    if ckpt.arch != cfg.arch:
        raise InputError(f"arch {cfg.arch!r} differs from the init weights' architecture {ckpt.arch!r}")
    init_width = ckpt.config.get("width")
    if cfg.width is not None and (init_width is None or float(cfg.width) != float(init_width)):
        raise InputError(f"width {cfg.width} differs from the init weights' width {init_width}")
    if cfg.whitening is not None and cfg.whitening != ckpt.whitening.name:
        raise InputError(f"whitening {cfg.whitening!r} differs from the init weights' whitening "
                         f"{ckpt.whitening.name!r}")
    return InitialWeights(arch=ckpt.arch, config=dict(ckpt.config), whitening=ckpt.whitening,
                          state_dict=ckpt.state_dict)


def _pick_device(cfg: TrainConfig, info: DistInfo) -> torch.device:
    name = cfg.device
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", info.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


class _CsvLog:
    def __init__(self, path: Path, append: bool) -> None:
        self.path = path
        exists = append and path.is_file()
        self.handle = open(path, "a" if exists else "w", newline="")
        self.writer = csv.DictWriter(self.handle, fieldnames=LOG_COLUMNS)
        if not exists:
            self.writer.writeheader()

    def write(self, row: dict) -> None:
        self.writer.writerow({k: row.get(k, "") for k in LOG_COLUMNS})
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()


class _TensorBoardLog:
    def __init__(self, folder: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception:  # tensorboard is optional
            raise InputError("log: tensorboard needs the tensorboard package (pip install tensorboard)") from None
        self.writer = SummaryWriter(str(folder))

    def write(self, row: dict) -> None:
        step = int(row["step"])
        for key in ("loss", "lr", "val_nme"):
            if row.get(key) not in (None, ""):
                self.writer.add_scalar(f"{row['kind']}/{key}", float(row[key]), step)

    def close(self) -> None:
        self.writer.close()


def _save(obj: dict, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


class _Logger(Protocol):
    def write(self, row: dict) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True, kw_only=True)
class _Position:
    """Where a run starts: ``stage`` index, 0-based ``epoch`` of that stage and ``batch`` of that
    epoch (all 0 for a fresh run; a resumed run continues from its checkpoint's position)."""

    stage: int = 0
    epoch: int = 0
    batch: int = 0


@dataclass(frozen=True, kw_only=True)
class _Epoch:
    """One epoch to train: its stage, 0-based epoch within the stage and over all stages, the
    batches already done (a resumed epoch) and its learning rate."""

    stage: StageConfig
    stage_index: int
    epoch: int
    global_epoch: int
    skip: int
    lr: float


@dataclass
class _Progress:
    """How far the stages got: the stage reached, the epochs completed over all stages, the last
    optimizer, the last resumable checkpoint and whether a step or time budget stopped the run."""

    stage_index: int
    epochs_done: int
    optimizer: torch.optim.Optimizer | None = None
    last: Path | None = None
    stopped: bool = False


class _RunningMean:
    """Mean of the loss values since the last log row."""

    def __init__(self) -> None:
        self.total, self.count = 0.0, 0

    def add(self, value: float) -> None:
        self.total += value
        self.count += 1

    def pop(self) -> float:
        mean = self.total / self.count
        self.total, self.count = 0.0, 0
        return mean


class Trainer:
    """Runs the stages of a :class:`TrainConfig` in this process (one rank under torchrun)."""

    def __init__(self, cfg: TrainConfig, info: DistInfo | None = None) -> None:
        cfg.validate()
        self.cfg = cfg
        self.info = info or dist_info_from_env()
        self.stages = cfg.stage_list()
        for stage in self.stages:
            if stage.batch_size % self.info.world_size:
                raise InputError(f"batch_size {stage.batch_size} is not divisible by {self.info.world_size} processes")
        if cfg.threads:
            torch.set_num_threads(int(cfg.threads))
        self.device = _pick_device(cfg, self.info)
        init_distributed(self.info, self.device)
        self.store = resolve_assets(cfg.assets)
        self.init = resolve_init(cfg, self.store)
        self.whitening = self.init.whitening
        self.morphable = load_morphable_model(self.store, cfg.mesh)
        self.out = Path(cfg.out)
        self._build_data()
        self.dtype = getattr(torch, cfg.dtype)
        self.net = self._build_network()
        self.model: nn.Module = self.net
        if self.info.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(self.net, device_ids=ids)
        self.torch_morphable = self.morphable.to_torch(device=self.device, dtype=self.dtype)
        self.history: list[dict] = []
        self.step = 0
        self._loggers: list[_Logger] = []
        self._t0 = time.monotonic()

    @property
    def width(self) -> float:
        """MobileNet-V1 width multiplier of the trained network."""
        return self.init.width

    # ------------------------------------------------------------------ construction
    def _build_network(self) -> nn.Module:
        """The bare network: seeded random init or the init weights, on the device, BN synchronised."""
        torch.manual_seed(self.cfg.seed)
        net = build_network(self.init.arch, self.init.config, num_outputs=NUM_PARAMS,
                            state_dict=self.init.state_dict, source=str(self.cfg.init or self.init.arch)).train()
        net.to(self.device, self.dtype)
        if self.info.distributed and self.cfg.sync_bn:
            net = convert_sync_batchnorm(net, self.device)
        return net

    def _build_data(self) -> None:
        cfg = self.cfg
        whitenings = {self.whitening.name: self.whitening}
        train_src = read_source(cfg.train, whitenings, self.store) if cfg.train is not None else None
        if train_src is None or len(train_src) == 0:
            raise InputError("no training data: set `train` (a dataset folder or 3DDFA list) in the config")
        val_src = read_source(cfg.val, whitenings, self.store) if cfg.val is not None else None
        if val_src is None and cfg.val_fraction > 0:
            order = np.random.default_rng(cfg.seed).permutation(len(train_src))
            n_val = max(1, int(round(len(train_src) * cfg.val_fraction)))
            val_src, train_src = train_src.subset(np.sort(order[:n_val])), train_src.subset(np.sort(order[n_val:]))
        self.train_set = CropDataset(train_src, AugmentConfig.from_dict(cfg.augment), preload=cfg.preload,
                                     seed=cfg.seed)
        self.val_set = CropDataset(val_src, None, preload=cfg.preload) if val_src is not None else None

    # ------------------------------------------------------------------ pieces
    def _optimizer(self, stage: StageConfig) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.net.parameters(), lr=stage.lr, momentum=self.cfg.momentum,
                               weight_decay=self.cfg.weight_decay, nesterov=self.cfg.nesterov)

    def _loss(self, stage: StageConfig) -> nn.Module:
        return build_loss(stage.loss, self.morphable, self.whitening, resample_num=stage.resample_num,
                          vdc_vertices=stage.vdc_vertices).to(self.device, self.dtype)

    def _generator(self) -> torch.Generator:
        return torch.Generator().manual_seed((self.cfg.seed * 1_000_003 + self.step) % (2**63))

    @torch.no_grad()
    def validate(self) -> float | None:
        """Mean landmark NME (%) of the bare network on the validation set (rank 0 only)."""
        if self.val_set is None or len(self.val_set) == 0:
            return None
        was_training = self.net.training
        self.net.eval()
        loader = torch.utils.data.DataLoader(self.val_set, batch_size=self.cfg.val_batch_size, shuffle=False,
                                             num_workers=0)
        total, count = 0.0, 0
        for images, params in loader:
            pred = self.whitening.dewhiten(self.net(images.to(self.device, self.dtype)))
            nme = landmark_nme(pred, params.to(self.device, self.dtype), self.torch_morphable)
            total += float(nme.sum())
            count += len(nme)
        self.net.train(was_training)
        return 100.0 * total / count

    def checkpoint(self, *, stage_index: int, epoch: int, batch: int, optimizer: torch.optim.Optimizer | None,
                   with_state: bool = True) -> dict:
        """The checkpoint dict (ddfa layout + ``train_state`` when ``with_state``)."""
        stage = self.stages[stage_index]
        ckpt = make_ddfa_checkpoint(self.net, arch=self.init.arch, width=self.width, whitening=self.whitening,
                                    epoch=int(epoch), step=int(self.step), stage=stage.name, loss=stage.loss,
                                    mesh=self.cfg.mesh)
        if not with_state:  # deployable weights are float32 whatever the training dtype
            ckpt["state_dict"] = {k: v.float() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()}
            return ckpt
        if optimizer is None:
            raise TrainingError("a resumable checkpoint needs the optimizer")
        ckpt["train_state"] = {
            "optimizer": optimizer.state_dict(),
            "stage": int(stage_index),
            "epoch": int(epoch),
            "batch": int(batch),
            "step": int(self.step),
            "config": self.cfg.to_dict(),
            "history": [dict(row) for row in self.history],
            "rng_torch": torch.get_rng_state(),
        }
        return ckpt

    # ------------------------------------------------------------------ resume
    def _resume_path(self) -> Path | None:
        if not self.cfg.resume:
            return None
        if self.cfg.resume == "auto":
            path = self.out / "last.pth"
            return path if path.is_file() else None
        path = Path(self.cfg.resume).expanduser()
        if not path.is_file():
            raise InputError(f"resume checkpoint {path} not found")
        return path

    def _load_resume(self, path: Path) -> dict:
        """Load the weights, step, history and torch RNG of a resumable checkpoint; its ``train_state``."""
        state = load_torch_checkpoint(path).get("train_state")
        if not isinstance(state, dict) or any(key not in state for key in _TRAIN_STATE_KEYS):
            raise InputError(f"{path}: not a resumable ddfa training checkpoint (no complete train_state)")
        self.net.load_state_dict(load_checkpoint(path, assets=self.store).state_dict, strict=True)
        self.step = int(state["step"])
        self.history = [dict(row) for row in state.get("history", [])]
        torch.set_rng_state(state["rng_torch"])
        return state

    def _restore(self, path: Path | None) -> tuple[_Position, dict | None]:
        """Where to start and the optimizer state to start with (none for a fresh run)."""
        if path is None:
            return _Position(), None
        state = self._load_resume(path)
        start = _Position(stage=int(state["stage"]), epoch=int(state["epoch"]), batch=int(state["batch"]))
        return start, state["optimizer"]

    # ------------------------------------------------------------------ main loop
    def run(self) -> TrainResult:
        """Train every stage (from the resume checkpoint's position if any), then write ``final.pth``."""
        if self.info.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
        barrier()
        resume = self._resume_path()
        start, optimizer_state = self._restore(resume)
        self._t0 = time.monotonic()
        final = None
        try:
            self._open_loggers(append=resume is not None)
            progress = self._run_stages(start, optimizer_state)
            if self.info.is_main:
                final = self._finish(progress)
            barrier()
        finally:
            self._close_loggers()
        return TrainResult(self.out, final, progress.last, self.step, list(self.history), progress.stopped)

    def _open_loggers(self, *, append: bool) -> None:
        """Write ``config.yaml`` and open the CSV / TensorBoard logs (rank 0 only)."""
        if not self.info.is_main:
            return
        import yaml

        (self.out / "config.yaml").write_text(yaml.safe_dump(self.cfg.to_dict(), sort_keys=False))
        if self.cfg.log in ("csv", "both"):
            self._loggers.append(_CsvLog(self.out / "log.csv", append=append))
        if self.cfg.log in ("tensorboard", "both"):
            self._loggers.append(_TensorBoardLog(self.out / "tensorboard"))

    def _close_loggers(self) -> None:
        for logger in self._loggers:
            logger.close()
        self._loggers = []

    def _epochs(self, stage_index: int, start: _Position) -> Iterator[_Epoch]:
        """The epochs of stage ``stage_index`` still to train when the run starts at ``start``."""
        stage = self.stages[stage_index]
        before = sum(s.epochs for s in self.stages[:stage_index])
        resumed = stage_index == start.stage
        for epoch in range(start.epoch if resumed else 0, stage.epochs):
            yield _Epoch(stage=stage, stage_index=stage_index, epoch=epoch, global_epoch=before + epoch,
                         skip=start.batch if resumed and epoch == start.epoch else 0, lr=stage.lr_at(epoch + 1))

    def _run_stages(self, start: _Position, optimizer_state: dict | None) -> _Progress:
        """Train from ``start`` until the last stage ends or a budget stops the run."""
        progress = _Progress(stage_index=min(start.stage, len(self.stages) - 1),
                             epochs_done=sum(s.epochs for s in self.stages[:start.stage]) + start.epoch)
        for stage_index in range(start.stage, len(self.stages)):
            stage = self.stages[stage_index]
            optimizer = self._optimizer(stage)
            if optimizer_state is not None and stage_index == start.stage:
                optimizer.load_state_dict(optimizer_state)
            progress.stage_index, progress.optimizer = stage_index, optimizer
            loss_fn = self._loss(stage)
            for epoch in self._epochs(stage_index, start):
                stopped_at = self._train_epoch(epoch, optimizer, loss_fn)
                if stopped_at is not None:
                    progress.last = self._save_last(epoch, epoch.epoch, stopped_at, optimizer)
                    progress.stopped = True
                    return progress
                self._end_epoch(epoch)
                progress.epochs_done = epoch.global_epoch + 1
                progress.last = self._save_last(epoch, epoch.epoch + 1, 0, optimizer, per_epoch=True)
        return progress

    def _end_epoch(self, epoch: _Epoch) -> None:
        """Validate (rank 0) and log the epoch."""
        val = self.validate() if self.info.is_main else None
        self._log("epoch", epoch.stage.name, epoch=epoch.global_epoch + 1, step=self.step, lr=epoch.lr, val_nme=val)
        if self.info.is_main and val is not None and self.cfg.progress:
            print(f"[{epoch.stage.name}] epoch {epoch.global_epoch + 1}: val NME {val:.3f}%", file=sys.stderr)

    def _finish(self, progress: _Progress) -> Path:
        """Rank 0: validate the weights a stopped run ends with, write ``final.pth`` (and the V2 export)."""
        if progress.stopped:
            val = self.validate()
            if val is not None:
                self._log("final", self.stages[progress.stage_index].name, step=self.step, val_nme=val)
        final = self.out / "final.pth"
        ckpt = self.checkpoint(stage_index=progress.stage_index, epoch=progress.epochs_done, batch=0,
                               optimizer=progress.optimizer, with_state=False)
        _save(ckpt, final)
        if self.cfg.export_v2:
            _save(to_v2_state_dict(ckpt["state_dict"]), self.out / "final_v2.pth")
        return final

    def _save_last(self, epoch: _Epoch, stage_epoch: int, batch: int, optimizer: torch.optim.Optimizer, *,
                   per_epoch: bool = False) -> Path | None:
        """Write the resumable ``last.pth`` at (``epoch``'s stage, ``stage_epoch``, ``batch``), and
        ``epoch_NNN.pth`` after a whole epoch with ``checkpoints: all``; None on other ranks."""
        if not self.info.is_main:
            barrier()
            return None
        ckpt = self.checkpoint(stage_index=epoch.stage_index, epoch=stage_epoch, batch=batch, optimizer=optimizer)
        path = self.out / "last.pth"
        _save(ckpt, path)
        if per_epoch and self.cfg.checkpoints == "all":
            _save(ckpt, self.out / f"epoch_{epoch.global_epoch + 1:03d}.pth")
        barrier()
        return path

    def _log(self, kind: str, stage: str, **values: Any) -> None:
        """Record a history row (time since the start, kind, stage, then ``values``) and write it."""
        row = {"time": round(time.monotonic() - self._t0, 2), "kind": kind, "stage": stage, **values}
        self.history.append(row)
        for logger in self._loggers:
            logger.write(row)

    def _budget_left(self) -> bool:
        if self.cfg.max_steps is not None and self.step >= int(self.cfg.max_steps):
            return False
        if self.cfg.time_budget is not None:
            spent = torch.tensor([time.monotonic() - self._t0], dtype=torch.float64, device=self.device)
            # every rank must stop at the same step: use rank 0's clock
            if self.info.distributed:
                import torch.distributed as dist

                dist.broadcast(spent, 0)
            if float(spent.item()) >= float(self.cfg.time_budget):
                return False
        return True

    # ------------------------------------------------------------------ one epoch
    def _epoch_loader(self, epoch: _Epoch) -> tuple[torch.utils.data.DataLoader, int]:
        """This rank's loader for ``epoch`` (from batch ``epoch.skip`` on) and the epoch's batch count."""
        cfg, info = self.cfg, self.info
        batch_size = epoch.stage.batch_size // info.world_size
        self.train_set.set_epoch(epoch.global_epoch)
        loader = make_loader(self.train_set, batch_size, shuffle=True, seed=cfg.seed, rank=info.rank,
                             world_size=info.world_size, num_workers=cfg.num_workers,
                             pin_memory=self.device.type == "cuda")
        loader.sampler.set_epoch(epoch.global_epoch)  # type: ignore[attr-defined]
        steps = len(loader)
        if steps == 0:
            raise InputError(f"{len(self.train_set)} training crops are fewer than one batch of "
                             f"{epoch.stage.batch_size}")
        return (_skip_batches(loader, epoch.skip, batch_size) if epoch.skip else loader), steps

    def _progress_bar(self, epoch: _Epoch, steps: int) -> contextlib.AbstractContextManager:
        """A tqdm bar on rank 0 with ``progress``, else a context that yields None."""
        if not (self.info.is_main and self.cfg.progress):
            return contextlib.nullcontext()
        from tqdm import tqdm

        return tqdm(total=steps, initial=epoch.skip, desc=f"[{epoch.stage.name}] epoch {epoch.global_epoch + 1}",
                    leave=False, dynamic_ncols=True)

    def _sgd_step(self, images: torch.Tensor, params: torch.Tensor, optimizer: torch.optim.Optimizer,
                  loss_fn: nn.Module, lr: float) -> float:
        """One optimizer step on a batch of crops and de-whitened parameters; the loss averaged
        over processes.

        Raises:
            TrainingError: the loss is NaN or infinite.
        """
        images = images.to(self.device, self.dtype, non_blocking=True)
        target = self.whitening.whiten(params.to(self.device, self.dtype, non_blocking=True))
        loss = loss_fn(self.model(images), target, generator=self._generator())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        self.step += 1
        value = mean_over_processes(float(loss.detach()), self.device)
        if not math.isfinite(value):
            raise TrainingError(f"training diverged at step {self.step} (loss {value}); lower the learning rate "
                                f"(lr {lr})")
        return value

    def _train_epoch(self, epoch: _Epoch, optimizer: torch.optim.Optimizer, loss_fn: nn.Module) -> int | None:
        """Train ``epoch`` from batch ``epoch.skip``; None when it completes, else the number of
        batches done when the step or time budget stopped it."""
        loader, steps = self._epoch_loader(epoch)
        for group in optimizer.param_groups:
            group["lr"] = epoch.lr
        self.model.train()
        log_every = max(1, int(self.cfg.log_every))
        running = _RunningMean()
        batch = epoch.skip
        with self._progress_bar(epoch, steps) as bar:
            for images, params in loader:
                if not self._budget_left():
                    return batch
                value = self._sgd_step(images, params, optimizer, loss_fn, epoch.lr)
                batch += 1
                running.add(value)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{value:.4g}", lr=f"{epoch.lr:.3g}")
                if self.step % log_every == 0 or batch == steps:
                    self._log("step", epoch.stage.name, epoch=epoch.global_epoch + 1, step=self.step, lr=epoch.lr,
                              loss=running.pop())
        return None


def _skip_batches(loader: torch.utils.data.DataLoader, skip: int, batch_size: int) -> torch.utils.data.DataLoader:
    """Iterate ``loader`` (batches of ``batch_size``) from batch ``skip`` on without loading the
    skipped batches' images."""
    indices = list(iter(loader.sampler))[skip * batch_size:]
    return torch.utils.data.DataLoader(loader.dataset, batch_size=batch_size, sampler=indices,
                                       num_workers=loader.num_workers, pin_memory=loader.pin_memory,
                                       drop_last=loader.drop_last, worker_init_fn=loader.worker_init_fn)


def train(cfg: TrainConfig, info: DistInfo | None = None) -> TrainResult:
    """Run a training configuration in this process (see :class:`Trainer`)."""
    trainer = Trainer(cfg, info)
    try:
        return trainer.run()
    finally:
        shutdown_distributed()


__all__ = ["TrainResult", "Trainer", "TrainingError", "resolve_init", "train"]
