"""The ``ddfa`` command: one sub-command per module of :mod:`ddfa.cli`.

Each sub-command module defines ``register(subparsers) -> argparse.ArgumentParser`` (which sets
``func`` via ``set_defaults``) and a ``run(args) -> int`` exit code. Errors that ddfa raises on
purpose (:class:`ddfa.errors.DdfaError`) are printed as one line, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import typing

from ..errors import DdfaError, InputError
from ..runtime import BACKENDS

#: sub-command modules under ddfa.cli, in the order ``ddfa --help`` lists them
SUBCOMMANDS = ("align", "batch", "assets", "export", "benchmark", "train", "synth", "video")

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
    """Options shared by the sub-commands that run a model: the model, the runtime context
    (:class:`~ddfa.BaseOptions`) and, with ``detector``, the detector plug-in and its options."""
    group = parser.add_argument_group("model")
    group.add_argument("--model", default="mb05",
                       help="regressor: mb05, mb1, 3ddfa-v1, a registered name, or a checkpoint file (default: mb05)")
    group.add_argument("--assets", metavar="DIR", default=None,
                       help="asset directory holding the 3DDFA/ and 3DDFA_V2/ files (default: $DDFA_HOME)")
    group.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0 (default: cpu)")
    group.add_argument("--backend", default="auto", choices=BACKENDS,
                       help="inference engine: auto = onnxruntime on CPU if installed, else torch")
    group.add_argument("--threads", type=int, default=None, metavar="N",
                       help="CPU threads of the inference engine (default: all cores)")
    if detector:
        group.add_argument("--detector", default="faceboxes",
                           help="face detector plug-in (default: faceboxes; 'none' is refused where no boxes "
                           "can be given)")
        group.add_argument("--detector-option", action="append", default=[], metavar="KEY=VALUE",
                           help="an option of the detector plug-in, by name (repeatable), e.g. "
                           "--detector-option score_threshold=0.6")


def base_options_from_args(args: argparse.Namespace):
    """The runtime context (:class:`~ddfa.BaseOptions`) of a sub-command's options."""
    from ..runtime import BaseOptions

    return BaseOptions(assets=args.assets, device=args.device, backend=args.backend,
                       threads=getattr(args, "threads", None))


def detector_options_from_args(args: argparse.Namespace) -> dict:
    """``--detector-option KEY=VALUE`` pairs, each value converted to the type of the plug-in's
    option of that name.

    Raises:
        InputError: a malformed pair, an option the plug-in does not have, or a value of the
            wrong type.
    """
    pairs = getattr(args, "detector_option", None) or []
    if not pairs:
        return {}
    from ..detect.base import detector_spec

    if args.detector in (None, "none"):
        raise InputError("--detector-option given with --detector none")
    spec = detector_spec(args.detector)
    types = typing.get_type_hints(spec.options_type) if spec.options_type is not None else {}
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise InputError(f"--detector-option {pair!r}: expected KEY=VALUE")
        if key not in types:
            raise InputError(f"--detector-option {key!r}: detector {args.detector!r} has no such option; "
                             f"expected one of {', '.join(sorted(types)) or '(none)'}")
        out[key] = _convert(value.strip(), types[key], key)
    return out


def _convert(value: str, kind, key: str):
    """A command-line string as a value of ``kind`` (bool, int, float, str, or Optional of one)."""
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if args:  # Optional[X] / X | None
        if value.lower() == "none":
            return None
        kind = args[0]
    try:
        if kind is bool:
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(value)
            return value.lower() in ("true", "1", "yes")
        if kind in (int, float):
            return kind(value)
    except ValueError:
        raise InputError(f"--detector-option {key}={value!r}: expected {getattr(kind, '__name__', kind)}") from None
    return value


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
