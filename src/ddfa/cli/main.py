"""The ``ddfa`` command: one sub-command per module of :mod:`ddfa.cli`.

Each sub-command module defines ``register(subparsers) -> argparse.ArgumentParser`` (which sets
``func`` via ``set_defaults``) and a ``run(args) -> int`` exit code. Errors that ddfa raises on
purpose (:class:`ddfa.errors.DdfaError`) are printed as one line, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import DdfaError

#: sub-command modules under ddfa.cli, in the order ``ddfa --help`` lists them
SUBCOMMANDS = ("align", "assets", "export", "benchmark", "train", "synth", "video")

DESCRIPTION = """\
ddfa: 3D dense face alignment in full pose range (3DDFA / 3DDFA_V2).

From photos, folders or videos to 68 landmarks, head pose and dense 3D faces.
Model files are read from --assets DIR or $DDFA_HOME (see `ddfa assets list`).
The 3DMM data and pretrained models are for non-commercial research use only.
"""


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="ddfa", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"ddfa {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"{__package__}.{name}").register(subparsers)
    return parser


def add_common_model_options(parser: argparse.ArgumentParser, *, detector: bool = True) -> None:
    """Options shared by the sub-commands that run a model."""
    group = parser.add_argument_group("model")
    group.add_argument("--model", default="mb05",
                       help="regressor: mb05, mb1, 3ddfa-v1, or a checkpoint file (default: mb05)")
    group.add_argument("--assets", metavar="DIR", default=None,
                       help="asset directory holding the 3DDFA/ and 3DDFA_V2/ files (default: $DDFA_HOME)")
    group.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0 (default: cpu)")
    group.add_argument("--backend", default="auto", choices=("auto", "torch", "onnxruntime"),
                       help="inference engine: auto = onnxruntime on CPU if installed, else torch")
    if detector:
        group.add_argument("--detector", default="faceboxes", help="face detector plug-in (default: faceboxes)")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except DdfaError as exc:
        print(f"ddfa: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ddfa: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
