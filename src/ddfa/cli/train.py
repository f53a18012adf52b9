"""``ddfa train``: train a regressor with 3DDFA's losses and recipe (see :mod:`ddfa.train`).

``ddfa train CONFIG.yaml [--key value ...] [--set KEY=VALUE ...]``: flags override the YAML
file's keys (:class:`ddfa.train.config.TrainConfig`). Several GPUs or nodes:
``torchrun --nproc_per_node 4 -m ddfa.cli.main train CONFIG.yaml``.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from ..train.config import TrainConfig

#: (flag, config key, type, help) of the most used keys; any key can be set with --set KEY=VALUE
FLAGS = (
    ("--train", "train", str, "training data: a ddfa dataset folder (images/ + params.npz, as ddfa synth writes)"),
    ("--val", "val", str, "validation data folder (validation NME each epoch)"),
    ("--val-fraction", "val_fraction", float, "hold out this fraction of --train for validation"),
    ("--out", "out", str, "output folder for checkpoints and logs (default: runs/train)"),
    ("--init", "init", str, "start from weights: a model name (mb05, mb1) or a checkpoint path"),
    ("--width", "width", float, "MobileNet-V1 width multiplier (default 1.0, or the --init weights')"),
    ("--whitening", "whitening", str, "parameter whitening: v2 (default) or v1"),
    ("--mesh", "mesh", str, "morphable model of the losses: noneck (default) or full"),
    ("--loss", "loss", str, "pdc, vdc or wpdc (default: wpdc)"),
    ("--resample-num", "resample_num", int, "random vertices added to the 68 landmarks (default 132)"),
    ("--batch-size", "batch_size", int, "global batch size (default 512, split over processes)"),
    ("--lr", "lr", float, "base learning rate (default 0.02)"),
    ("--epochs", "epochs", int, "epochs (default 50)"),
    ("--warmup", "warmup", int, "warm-up epochs at lr x warmup_factor (default 5)"),
    ("--max-steps", "max_steps", int, "stop after this many optimizer steps (checkpointed; resumable)"),
    ("--time-budget", "time_budget", float, "stop after this many seconds (checkpointed; resumable)"),
    ("--resume", "resume", str, "continue from a checkpoint: a path, or 'auto' for OUT/last.pth"),
    ("--device", "device", str, "auto (default), cpu, cuda, cuda:1, ..."),
    ("--threads", "threads", int, "torch CPU threads"),
    ("--num-workers", "num_workers", int, "data loader worker processes (default 2)"),
    ("--seed", "seed", int, "random seed (default 0)"),
    ("--log", "log", str, "csv (default), tensorboard or both"),
    ("--assets", "assets", str, "asset directory (default: $DDFA_HOME)"),
)


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "train",
        help="train a 3DMM parameter regressor (3DDFA's WPDC/VDC/PDC recipe)",
        description="Train a MobileNet-V1 regressor on 120x120 crops with 3DDFA's losses and schedule. "
        "Keys of CONFIG.yaml are the fields of ddfa.train.config.TrainConfig (examples in configs/); "
        "flags override them. "
        "Multi-GPU: torchrun --nproc_per_node K -m ddfa.cli.main train CONFIG.yaml",
    )
    parser.add_argument("config", nargs="?", default=None, help="YAML config file (optional)")
    for flag, key, kind, text in FLAGS:
        parser.add_argument(flag, dest=f"cfg_{key}", metavar=key.upper(), type=kind, default=None, help=text)
    parser.add_argument("--milestones", dest="cfg_milestones", metavar="EPOCHS", default=None,
                        help="comma-separated epochs after which lr is multiplied by gamma (default 30,40)")
    parser.add_argument("--no-progress", dest="cfg_progress", action="store_const", const=False, default=None,
                        help="no progress bar")
    parser.add_argument("--no-augment", dest="cfg_augment", action="store_const", const=False, default=None,
                        help="switch off augmentation")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="set any config key (VALUE in YAML syntax), e.g. --set stages='[{loss: vdc}]'")
    parser.set_defaults(func=run)
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The training config of a command line: the YAML file, then the flags, then ``--set``."""
    from ..errors import InputError
    from ..train.config import TrainConfig, parse_override

    overrides = {k[4:]: v for k, v in vars(args).items() if k.startswith("cfg_") and v is not None}
    text = overrides.get("milestones")
    if isinstance(text, str):
        try:
            overrides["milestones"] = [int(m) for m in text.split(",") if m.strip()]
        except ValueError:
            raise InputError(f"--milestones expects comma-separated epochs, got {text!r}") from None
    for text in args.overrides:
        key, value = parse_override(text)
        overrides[key] = value
    if args.config:
        return TrainConfig.from_yaml(args.config, overrides)
    return TrainConfig.from_dict(overrides)


def run(args: argparse.Namespace) -> int:
    from ..train.trainer import train

    cfg = config_from_args(args)
    result = train(cfg)
    if result.final is not None:
        nme = result.val_nme
        extra = f", validation NME {nme:.3f}%" if nme is not None else ""
        state = " (stopped by budget; --resume auto continues)" if result.stopped_early else ""
        print(f"trained {result.steps} steps{extra}{state}; model: {result.final}")
    return 0
