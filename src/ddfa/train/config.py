"""Training configuration: defaults, YAML files and command-line overrides.

Defaults reproduce 3DDFA's released WPDC recipe (``training/train_wpdc.sh`` of the 3DDFA
release, run by its ``train.py``):

============== ============ ===============================================================
key            default      source / meaning
============== ============ ===============================================================
loss           wpdc         ``--loss=wpdc``
resample_num   132          ``--resample-num=132``: random vertices added to the 68 landmarks
batch_size     512          ``--batch-size=512``: the **global** batch (3DDFA split it over 2
                            GPUs with DataParallel); under DDP each of K processes takes 512/K
lr             0.02         ``--base-lr=0.02``
epochs         50           ``--epochs=50``
milestones     [30, 40]     ``--milestones=30,40``: lr x gamma after each
gamma          0.2          ``train.py``'s ``adjust_learning_rate`` multiplies by 0.2
warmup         5            ``--warmup=5``: the first 5 epochs run at ``lr x warmup_factor``
warmup_factor  0.2          (``train.py`` runs warm-up epochs at 0.2 x base lr)
momentum       0.9          SGD, Nesterov, as ``train.py``
weight_decay   5e-4         ``train.py`` default
============== ============ ===============================================================

``train.py``'s own argparse defaults differ (batch 128, lr 0.001, 40 epochs, milestones
15,25,30, no warm-up, VDC); the released shell script is what trained 3DDFA's models, so its
values are used. 3DDFA's best model (``phase1_wpdc_vdc``) was then fine-tuned with VDC
(``train_vdc.sh``: lr 1e-5, no warm-up, same batch, epochs and milestones): ``stages`` expresses
that (``configs/3ddfa_wpdc_vdc.yaml``).

The model defaults follow 3DDFA_V2 (whose released weights ddfa fine-tunes): MobileNet-V1,
V2 whitening, the no-neck morphable model. ``width`` defaults to 1.0 (3DDFA's
``mobilenet_1``); ``--init mb05`` takes width 0.5 and the V2 whitening from the weights.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import InputError

#: keys a stage may override
STAGE_KEYS = ("name", "loss", "lr", "epochs", "milestones", "gamma", "warmup", "warmup_factor",
              "resample_num", "vdc_vertices", "batch_size")


@dataclass
class StageConfig:
    """One phase of training with its own loss, optimizer and learning-rate schedule."""

    name: str
    loss: str
    lr: float
    epochs: int
    milestones: list[int]
    gamma: float
    warmup: int
    warmup_factor: float
    resample_num: int
    vdc_vertices: str
    batch_size: int

    def lr_at(self, epoch: int) -> float:
        """Learning rate of 1-based ``epoch`` of this stage (3DDFA's step schedule)."""
        if epoch <= self.warmup:
            return self.lr * self.warmup_factor
        return self.lr * self.gamma ** sum(1 for m in self.milestones if epoch > m)


@dataclass
class TrainConfig:
    """Everything ``ddfa train`` needs; see the module docstring for the defaults' origin.

    Data: ``train`` / ``val`` are dataset specs (a folder in ddfa's format, a dict for 3DDFA's
    format, or a list of them; see :func:`ddfa.train.data.read_source`). Without ``val``,
    ``val_fraction`` of ``train`` is held out (0 disables validation).
    """

    train: Any = None
    val: Any = None
    val_fraction: float = 0.0
    # model
    arch: str = "mobilenet_v1"
    width: float | None = None
    init: str | None = None
    whitening: str | None = None
    mesh: str = "noneck"
    assets: str | None = None
    # loss and schedule (3DDFA's train_wpdc.sh)
    loss: str = "wpdc"
    resample_num: int = 132
    vdc_vertices: str = "resample"
    batch_size: int = 512
    lr: float = 0.02
    epochs: int = 50
    milestones: list[int] = field(default_factory=lambda: [30, 40])
    gamma: float = 0.2
    warmup: int = 5
    warmup_factor: float = 0.2
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    stages: list[dict] | None = None
    # data loading and augmentation
    augment: Any = True
    num_workers: int = 2
    preload: Any = "auto"
    val_batch_size: int = 128
    # run control
    out: str = "runs/train"
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    max_steps: int | None = None
    time_budget: float | None = None
    resume: str | None = None
    checkpoints: str = "all"
    log: str = "csv"
    log_every: int = 50
    progress: bool = True
    sync_bn: bool = True
    dtype: str = "float32"
    export_v2: bool = True

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, data: dict | None) -> "TrainConfig":
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"unknown training config key(s): {', '.join(unknown)}")
        cfg = cls(**data)
        cfg.validate()
        return cfg

    @classmethod
    def from_yaml(cls, path: str | os.PathLike, overrides: dict | None = None) -> "TrainConfig":
        """Read a YAML file (keys as the fields here), then apply ``overrides`` (non-None values)."""
        import yaml

        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except OSError as exc:
            raise InputError(f"{path}: cannot read the training config ({exc.strerror})") from None
        except yaml.YAMLError as exc:
            raise InputError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
        if not isinstance(data, dict):
            raise InputError(f"{path}: the training config must be a mapping of keys to values")
        data.update({k: v for k, v in (overrides or {}).items() if v is not None})
        return cls.from_dict(data)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        if self.mesh not in ("noneck", "full"):
            raise InputError(f"mesh must be 'noneck' or 'full', got {self.mesh!r}")
        if self.checkpoints not in ("all", "last"):
            raise InputError(f"checkpoints must be 'all' or 'last', got {self.checkpoints!r}")
        if self.log not in ("csv", "tensorboard", "both"):
            raise InputError(f"log must be 'csv', 'tensorboard' or 'both', got {self.log!r}")
        if self.dtype not in ("float32", "float64"):
            raise InputError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        if not 0.0 <= float(self.val_fraction) < 1.0:
            raise InputError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        for stage in self.stage_list():
            from .losses import LOSSES

            if stage.loss not in LOSSES:
                raise InputError(f"stage {stage.name!r}: unknown loss {stage.loss!r}; expected one of {LOSSES}")
            if stage.batch_size <= 0 or stage.epochs <= 0 or stage.lr <= 0:
                raise InputError(f"stage {stage.name!r}: batch_size, epochs and lr must be positive")
            if stage.vdc_vertices not in ("resample", "all"):
                raise InputError(f"vdc_vertices must be 'resample' or 'all', got {stage.vdc_vertices!r}")

    def stage_list(self) -> list[StageConfig]:
        """The stages to run: ``stages`` entries (each overriding the top-level keys) or one."""
        base = {k: getattr(self, k) for k in STAGE_KEYS if k != "name"}
        entries = self.stages or [{}]
        out = []
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise InputError(f"stages[{i}] must be a mapping, got {entry!r}")
            unknown = sorted(set(entry) - set(STAGE_KEYS))
            if unknown:
                raise InputError(f"stages[{i}]: unknown key(s) {', '.join(unknown)}")
            values = {**base, **entry}
            values.setdefault("name", values["loss"] if len(entries) == 1 else f"{i}-{values['loss']}")
            values["milestones"] = [int(m) for m in values["milestones"] or []]
            values["loss"] = str(values["loss"]).lower()
            out.append(StageConfig(**values))
        return out


def parse_override(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` (VALUE parsed as YAML) -> (key, value), for ``--set`` on the command line."""
    import yaml

    if "=" not in text:
        raise InputError(f"--set expects KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value)


__all__ = ["STAGE_KEYS", "StageConfig", "TrainConfig", "parse_override"]
