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
import math
import os
from dataclasses import dataclass, field, fields
from typing import Any, Literal, get_args

from ..errors import InputError

LossName = Literal["pdc", "vdc", "wpdc"]
#: VDC's vertices: the 68 landmarks + ``resample_num`` random ones, or every vertex
VdcVertices = Literal["resample", "all"]
MeshName = Literal["noneck", "full"]
WhiteningName = Literal["v2", "v1"]
CheckpointPolicy = Literal["all", "last"]
LogFormat = Literal["csv", "tensorboard", "both"]
DtypeName = Literal["float32", "float64"]

LOSSES: tuple[str, ...] = get_args(LossName)

#: keys a stage may override
STAGE_KEYS = ("name", "loss", "lr", "epochs", "milestones", "gamma", "warmup", "warmup_factor",
              "resample_num", "vdc_vertices", "batch_size")


#: numeric stage keys and their types (YAML reads ``1e-5`` as a string: numbers in strings are accepted)
_STAGE_NUMBERS: dict[str, type] = {"lr": float, "gamma": float, "warmup_factor": float, "epochs": int, "warmup": int,
                                   "resample_num": int, "batch_size": int}


def _number(key: str, value: Any, kind: type, where: str) -> float | int:
    """``value`` as a float or an int (integral values only), else :class:`InputError`."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if math.isnan(number) or (kind is int and not number.is_integer()):
        raise InputError(f"{where}{key} must be {'an integer' if kind is int else 'a number'}, got {value!r}")
    return int(number) if kind is int else number


def check_choice(key: str, value: Any, choices: Any, where: str = "") -> None:
    """Raise :class:`InputError` unless ``value`` is one of the ``Literal`` type ``choices``."""
    allowed = get_args(choices)
    if value not in allowed:
        expected = ", ".join(repr(a) for a in allowed)
        raise InputError(f"{where}unknown {key} {value!r}; expected one of {expected}")


@dataclass(frozen=True, kw_only=True)
class StageConfig:
    """One phase of training with its own loss, optimizer and learning-rate schedule."""

    name: str
    loss: LossName
    lr: float
    epochs: int
    milestones: list[int]
    gamma: float
    warmup: int
    warmup_factor: float
    resample_num: int
    vdc_vertices: VdcVertices
    batch_size: int

    def lr_at(self, epoch: int) -> float:
        """Learning rate of 1-based ``epoch`` of this stage (3DDFA's step schedule)."""
        if epoch <= self.warmup:
            return self.lr * self.warmup_factor
        return self.lr * self.gamma ** sum(1 for m in self.milestones if epoch > m)

    def validate(self) -> None:
        where = f"stage {self.name!r}: "
        check_choice("loss", self.loss, LossName, where)
        if self.batch_size <= 0 or self.epochs <= 0 or self.lr <= 0:
            raise InputError(f"{where}batch_size, epochs and lr must be positive")
        check_choice("vdc_vertices", self.vdc_vertices, VdcVertices, where)


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Everything ``ddfa train`` needs; see the module docstring for the defaults' origin.

    Data: ``train`` / ``val`` are dataset specs (a folder in ddfa's format, a dict for 3DDFA's
    format, or a list of them; see :func:`ddfa.train.data.read_source`). Without ``val``,
    ``val_fraction`` of ``train`` is held out (0 disables validation).

    Model: ``arch`` a registered architecture; ``width`` MobileNet-V1's width multiplier (default
    1.0, or the ``init`` weights'); ``init`` a model name or checkpoint to start from;
    ``whitening`` of the outputs (default ``"v2"``, or the ``init`` weights').
    """

    train: Any = None
    val: Any = None
    val_fraction: float = 0.0
    # model
    arch: str = "mobilenet_v1"
    width: float | None = None
    init: str | None = None
    whitening: WhiteningName | None = None
    mesh: MeshName = "noneck"
    assets: str | None = None
    # loss and schedule (3DDFA's train_wpdc.sh)
    loss: LossName = "wpdc"
    resample_num: int = 132
    vdc_vertices: VdcVertices = "resample"
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
    augment: bool | dict[str, float] = True
    num_workers: int = 2
    preload: bool | Literal["auto"] = "auto"
    val_batch_size: int = 128
    # run control
    out: str = "runs/train"
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    max_steps: int | None = None
    time_budget: float | None = None
    resume: str | None = None
    checkpoints: CheckpointPolicy = "all"
    log: LogFormat = "csv"
    log_every: int = 50
    progress: bool = True
    sync_bn: bool = True
    dtype: DtypeName = "float32"
    export_v2: bool = True

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, data: dict | None) -> TrainConfig:
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"unknown training config key(s): {', '.join(unknown)}")
        cfg = cls(**data)
        cfg.validate()
        return cfg

    @classmethod
    def from_yaml(cls, path: str | os.PathLike, overrides: dict | None = None) -> TrainConfig:
        """Read a YAML file (keys as the fields here), then apply ``overrides`` (non-None values)."""
        import yaml

        from ..io.results import read_mapping

        data = read_mapping(path, lambda text: yaml.safe_load(text) or {}, yaml.YAMLError, "training config")
        data.update({k: v for k, v in (overrides or {}).items() if v is not None})
        return cls.from_dict(data)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """Check every choice and range (also of each stage).

        Raises:
            InputError: the first value out of its choices or range.
        """
        check_choice("mesh", self.mesh, MeshName)
        if self.whitening is not None:
            check_choice("whitening", self.whitening, WhiteningName)
        check_choice("checkpoints", self.checkpoints, CheckpointPolicy)
        check_choice("log", self.log, LogFormat)
        check_choice("dtype", self.dtype, DtypeName)
        if not isinstance(self.val_fraction, (int, float)) or not 0.0 <= self.val_fraction < 1.0:
            raise InputError(f"val_fraction must be a number in [0, 1), got {self.val_fraction!r}")
        for stage in self.stage_list():
            stage.validate()

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
            try:
                values["milestones"] = [int(m) for m in values["milestones"] or []]
            except (TypeError, ValueError):
                raise InputError(f"milestones must be a list of epochs, got {values['milestones']!r}") from None
            values["loss"] = str(values["loss"]).lower()
            for key, kind in _STAGE_NUMBERS.items():
                values[key] = _number(key, values[key], kind, f"stages[{i}]: " if self.stages else "")
            out.append(StageConfig(**values))
        return out


def parse_override(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` (VALUE parsed as YAML) -> (key, value), for ``--set`` on the command line."""
    import yaml

    if "=" not in text:
        raise InputError(f"--set expects KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise InputError(f"--set {key.strip()}: the value is not valid YAML ({str(exc).splitlines()[0]})") from None


__all__ = ["LOSSES", "STAGE_KEYS", "LossName", "StageConfig", "TrainConfig", "VdcVertices", "check_choice",
           "parse_override"]
