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

import csv
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..assets.safe_pickle import load_torch_checkpoint
from ..assets.store import resolve_assets
from ..errors import InputError, TrainingError
from ..morphable.model import load_morphable_model
from ..morphable.params import load_whitening
from ..nets.checkpoint import make_ddfa_checkpoint, normalise_checkpoint, to_v2_state_dict, whitening_from_meta
from ..nets.mobilenet_v1 import width_from_state_dict
from ..nets.registry import ARCHITECTURES, MODELS
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


def resolve_init(cfg: TrainConfig, store):
    """(state_dict or None, width, Whitening) from ``cfg.init`` / ``cfg.width`` / ``cfg.whitening``."""
    white = None
    if cfg.init:
        if cfg.init in MODELS:
            spec = MODELS[cfg.init]
            path = store.path(spec.weights)
            ckpt = normalise_checkpoint(load_torch_checkpoint(path), str(path))
            width, white_name = spec.width, spec.whitening
        elif Path(cfg.init).expanduser().is_file():
            path = Path(cfg.init).expanduser()
            ckpt = normalise_checkpoint(load_torch_checkpoint(path), str(path))
            width = float(ckpt.meta.get("width", width_from_state_dict(ckpt.state_dict)))
            white = whitening_from_meta(ckpt.meta)
            white_name = "v1" if ckpt.layout == "v1" else "v2"
        else:
            raise InputError(f"init {cfg.init!r} is neither a model name ({', '.join(sorted(MODELS))}) "
                             "nor a checkpoint file")
        state = ckpt.state_dict
        if cfg.width is not None and float(cfg.width) != width:
            raise InputError(f"width {cfg.width} differs from the init weights' width {width}")
        init_white = white.name if white is not None else white_name
        if cfg.whitening is not None and cfg.whitening != init_white:
            raise InputError(f"whitening {cfg.whitening!r} differs from the init weights' whitening {init_white!r}")
        if white is None:
            white = load_whitening(store, white_name)
        return state, float(width), white
    width = float(cfg.width) if cfg.width is not None else 1.0
    return None, width, load_whitening(store, cfg.whitening or "v2")


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
    def __init__(self, path: Path, append: bool):
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
    def __init__(self, folder: Path):
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


class Trainer:
    """Runs the stages of a :class:`TrainConfig` in this process (one rank under torchrun)."""

    def __init__(self, cfg: TrainConfig, info: DistInfo | None = None):
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
        init_state, self.width, self.whitening = resolve_init(cfg, self.store)
        self.morphable = load_morphable_model(self.store, cfg.mesh)
        self.out = Path(cfg.out)
        self._build_data()
        if cfg.arch not in ARCHITECTURES:
            raise InputError(f"unknown architecture {cfg.arch!r}; expected one of {', '.join(ARCHITECTURES)}")
        torch.manual_seed(cfg.seed)
        self.net = ARCHITECTURES[cfg.arch](width=self.width, num_outputs=62)
        if init_state is not None:
            self.net.load_state_dict(init_state, strict=True)
        self.dtype = getattr(torch, cfg.dtype)
        self.net.to(self.device, self.dtype)
        if self.info.distributed and cfg.sync_bn:
            self.net = convert_sync_batchnorm(self.net, self.device)
        self.model: nn.Module = self.net
        if self.info.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(self.net, device_ids=ids)
        self.param_mean = torch.as_tensor(self.whitening.mean, device=self.device, dtype=self.dtype)
        self.param_std = torch.as_tensor(self.whitening.std, device=self.device, dtype=self.dtype)
        self.torch_morphable = self.morphable.to_torch(device=self.device, dtype=self.dtype)
        self.history: list[dict] = []
        self.step = 0

    # ------------------------------------------------------------------ data
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

    def _whiten(self, params: torch.Tensor) -> torch.Tensor:
        return (params - self.param_mean) / self.param_std

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
            pred = self.net(images.to(self.device, self.dtype)) * self.param_std + self.param_mean
            nme = landmark_nme(pred, params.to(self.device, self.dtype), self.torch_morphable)
            total += float(nme.sum())
            count += len(nme)
        self.net.train(was_training)
        return 100.0 * total / count

    def checkpoint(self, *, stage_index: int, epoch: int, batch: int, optimizer, with_state: bool = True) -> dict:
        """The checkpoint dict (ddfa layout + ``train_state`` when ``with_state``)."""
        stage = self.stages[stage_index]
        ckpt = make_ddfa_checkpoint(self.net, arch=self.cfg.arch, width=self.width, whitening=self.whitening,
                                    epoch=int(epoch), step=int(self.step), stage=stage.name, loss=stage.loss,
                                    mesh=self.cfg.mesh)
        if not with_state:  # deployable weights are float32 whatever the training dtype
            ckpt["state_dict"] = {k: v.float() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()}
        if with_state:
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

    def _load_resume(self, path: Path):
        obj = load_torch_checkpoint(path)
        state = obj.get("train_state")
        if not isinstance(state, dict):
            raise InputError(f"{path}: not a resumable ddfa training checkpoint (no train_state)")
        ckpt = normalise_checkpoint(obj, str(path))
        self.net.load_state_dict(ckpt.state_dict, strict=True)
        self.step = int(state["step"])
        self.history = [dict(row) for row in state.get("history", [])]
        torch.set_rng_state(state["rng_torch"])
        return state

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

    # ------------------------------------------------------------------ main loop
    def run(self) -> TrainResult:
        cfg, info = self.cfg, self.info
        if info.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
        barrier()
        resume = self._resume_path()
        start_stage, start_epoch, start_batch, opt_state = 0, 0, 0, None
        if resume is not None:
            state = self._load_resume(resume)
            start_stage, start_epoch, start_batch = int(state["stage"]), int(state["epoch"]), int(state["batch"])
            opt_state = state["optimizer"]
        loggers = []
        if info.is_main:
            import yaml

            (self.out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
            if cfg.log in ("csv", "both"):
                loggers.append(_CsvLog(self.out / "log.csv", append=resume is not None))
            if cfg.log in ("tensorboard", "both"):
                loggers.append(_TensorBoardLog(self.out / "tensorboard"))
        t0 = time.monotonic()
        stopped = False
        last_path = None
        optimizer = None
        epochs_before = sum(s.epochs for s in self.stages[:start_stage])
        epochs_done = epochs_before + start_epoch
        current = min(start_stage, len(self.stages) - 1)
        try:
            for si in range(start_stage, len(self.stages)):
                current = si
                stage = self.stages[si]
                optimizer = self._optimizer(stage)
                if opt_state is not None and si == start_stage:
                    optimizer.load_state_dict(opt_state)
                loss_fn = self._loss(stage)
                local_batch = stage.batch_size // info.world_size
                first_epoch = start_epoch if si == start_stage else 0
                for epoch in range(first_epoch, stage.epochs):
                    skip = start_batch if (si == start_stage and epoch == start_epoch) else 0
                    global_epoch = epochs_before + epoch
                    lr = stage.lr_at(epoch + 1)
                    for group in optimizer.param_groups:
                        group["lr"] = lr
                    stopped, batch = self._train_epoch(stage, si, epoch, global_epoch, skip, local_batch, optimizer,
                                                       loss_fn, lr, loggers, t0)
                    if stopped:
                        last_path = self._save_last(si, epoch, batch, optimizer, per_epoch=False)
                        break
                    val = self.validate() if info.is_main else None
                    row = {"time": round(time.monotonic() - t0, 2), "kind": "epoch", "stage": stage.name,
                           "epoch": global_epoch + 1, "step": self.step, "lr": lr, "val_nme": val}
                    self._log(row, loggers)
                    if info.is_main and val is not None and cfg.progress:
                        print(f"[{stage.name}] epoch {global_epoch + 1}: val NME {val:.3f}%", file=sys.stderr)
                    epochs_done = global_epoch + 1
                    last_path = self._save_last(si, epoch + 1, 0, optimizer, per_epoch=True,
                                                global_epoch=epochs_done)
                if stopped:
                    break
                epochs_before += stage.epochs
            final = None
            if stopped and info.is_main:  # validate the weights the run ends with
                val = self.validate()
                if val is not None:
                    self._log({"time": round(time.monotonic() - t0, 2), "kind": "final",
                               "stage": self.stages[current].name, "step": self.step, "val_nme": val}, loggers)
            if info.is_main:
                final = self.out / "final.pth"
                ckpt = self.checkpoint(stage_index=current, epoch=epochs_done, batch=0, optimizer=optimizer,
                                       with_state=False)
                _save(ckpt, final)
                if cfg.export_v2:
                    _save(to_v2_state_dict(ckpt["state_dict"]), self.out / "final_v2.pth")
            barrier()
        finally:
            for logger in loggers:
                logger.close()
        return TrainResult(self.out, final if info.is_main else None, last_path, self.step, list(self.history),
                           stopped)

    def _save_last(self, si, epoch, batch, optimizer, *, per_epoch: bool, global_epoch: int | None = None):
        if not self.info.is_main:
            barrier()
            return None
        ckpt = self.checkpoint(stage_index=si, epoch=epoch, batch=batch, optimizer=optimizer)
        path = self.out / "last.pth"
        _save(ckpt, path)
        if per_epoch and self.cfg.checkpoints == "all" and global_epoch is not None:
            _save(ckpt, self.out / f"epoch_{global_epoch:03d}.pth")
        barrier()
        return path

    def _log(self, row: dict, loggers) -> None:
        self.history.append(row)
        for logger in loggers:
            logger.write(row)

    def _budget_left(self, t0: float) -> bool:
        if self.cfg.max_steps is not None and self.step >= int(self.cfg.max_steps):
            return False
        if self.cfg.time_budget is not None:
            spent = torch.tensor([time.monotonic() - t0], dtype=torch.float64, device=self.device)
            # every rank must stop at the same step: use rank 0's clock
            if self.info.distributed:
                import torch.distributed as dist

                dist.broadcast(spent, 0)
            if float(spent.item()) >= float(self.cfg.time_budget):
                return False
        return True

    def _train_epoch(self, stage, si, epoch, global_epoch, skip, local_batch, optimizer, loss_fn, lr, loggers, t0):
        cfg, info = self.cfg, self.info
        self.train_set.set_epoch(global_epoch)
        loader = make_loader(self.train_set, local_batch, shuffle=True, seed=cfg.seed, rank=info.rank,
                             world_size=info.world_size, num_workers=cfg.num_workers,
                             pin_memory=self.device.type == "cuda")
        loader.sampler.set_epoch(global_epoch)
        steps = len(loader)
        if steps == 0:
            raise InputError(f"{len(self.train_set)} training crops are fewer than one batch of {stage.batch_size}")
        if skip:
            loader = make_loader(self.train_set, local_batch, shuffle=True, seed=cfg.seed, rank=info.rank,
                                 world_size=info.world_size, num_workers=cfg.num_workers,
                                 pin_memory=self.device.type == "cuda")
            loader.sampler.set_epoch(global_epoch)
            loader = _skip_batches(loader, skip)
        self.model.train()
        bar = None
        if info.is_main and cfg.progress:
            from tqdm import tqdm

            bar = tqdm(total=steps, initial=skip, desc=f"[{stage.name}] epoch {global_epoch + 1}", leave=False,
                       dynamic_ncols=True)
        batch = skip
        running, n_running = 0.0, 0
        log_every = max(1, int(cfg.log_every))
        try:
            for images, params in loader:
                if not self._budget_left(t0):
                    return True, batch
                images = images.to(self.device, self.dtype, non_blocking=True)
                target = self._whiten(params.to(self.device, self.dtype, non_blocking=True))
                pred = self.model(images)
                loss = loss_fn(pred, target, generator=self._generator())
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                self.step += 1
                batch += 1
                value = mean_over_processes(float(loss.detach()), self.device)
                if not math.isfinite(value):
                    raise TrainingError(f"training diverged at step {self.step} (loss {value}); "
                                        f"lower the learning rate (lr {lr})")
                running += value
                n_running += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{value:.4g}", lr=f"{lr:.3g}")
                if self.step % log_every == 0 or batch == steps:
                    self._log({"time": round(time.monotonic() - t0, 2), "kind": "step", "stage": stage.name,
                               "epoch": global_epoch + 1, "step": self.step, "lr": lr,
                               "loss": running / n_running}, loggers)
                    running, n_running = 0.0, 0
            if not self._budget_left(t0) and batch < steps:
                return True, batch
        finally:
            if bar is not None:
                bar.close()
        return False, batch


def _skip_batches(loader, skip: int):
    """Iterate ``loader`` from batch ``skip`` on without loading the skipped batches' images."""
    sampler = loader.sampler
    indices = list(iter(sampler))[skip * loader.batch_size:]
    return torch.utils.data.DataLoader(loader.dataset, batch_size=loader.batch_size, sampler=indices,
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
